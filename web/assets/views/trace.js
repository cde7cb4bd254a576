// views/trace.js: an order's checkout trace for the admin, as a waterfall: the spans
// every service still holds (GET /api/v1/admin/traces/{id}, docs/tracing.md) in tree
// order, each row indented by its depth, its bar placed by its start and sized by its
// duration on the trace's timeline.

import { api } from '../api.js';
import { h, notice } from '../ui.js';

const KIND = { 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' };

/** The "Checkout trace" section; it loads by itself. Returns the element. */
export function traceSection(traceId) {
  const body = h('div', { class: 'trace-body' }, h('p', { class: 'muted' }, 'Loading the trace…'));
  load(traceId, body);
  return h('section', { class: 'trace', 'aria-labelledby': 'trace-title' },
    h('h2', { id: 'trace-title' }, 'Checkout trace'),
    h('p', { class: 'muted small' }, 'Trace ', h('span', { class: 'mono' }, traceId)),
    body);
}

const ms = (ns) => ns / 1e6;
const fmt = (v) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + ' ms';

async function load(id, body) {
  let t;
  try {
    t = await api(`/api/v1/admin/traces/${encodeURIComponent(id)}`);
  } catch (err) {
    body.replaceChildren(notice('error', `The trace cannot be shown: ${err.message}`));
    return;
  }
  if (!t.spans.length) {
    body.replaceChildren(notice('info', 'No service holds this trace any more: each keeps its recent spans only.'));
    return;
  }
  // nanoseconds since the epoch overflow a double's exact range: offsets in BigInt first
  const t0 = t.spans.reduce((m, s) => (BigInt(s.start_time_unix_nano) < m ? BigInt(s.start_time_unix_nano) : m),
    BigInt(t.spans[0].start_time_unix_nano));
  const rel = (s, k) => ms(Number(BigInt(s[k]) - t0));
  const total = Math.max(...t.spans.map((s) => rel(s, 'end_time_unix_nano')), 0.001);
  const rows = t.spans.map((s) => {
    const start = rel(s, 'start_time_unix_nano');
    const dur = Math.max(rel(s, 'end_time_unix_nano') - start, 0);
    const failed = s.status && s.status.code === 2;
    const bar = h('div', { class: `span-bar kind-${KIND[s.kind] || 'internal'}${failed ? ' span-error' : ''}` });
    bar.style.left = `${(start / total) * 100}%`;
    bar.style.width = `${Math.max((dur / total) * 100, 0.4)}%`;
    const name = h('th', { scope: 'row', class: 'span-name' }, s.name, failed ? h('span', { class: 'span-failed' }, ' failed') : null);
    name.style.paddingLeft = `${0.5 + Math.min(s.depth, 20) * 1.1}em`;
    return h('tr', { class: 'span-row', dataset: { service: s.service, depth: String(s.depth) } },
      name,
      h('td', { class: 'span-service' }, s.service),
      h('td', { class: 'span-track', 'aria-hidden': 'true', title: `${fmt(start)} → ${fmt(start + dur)}` }, bar),
      h('td', { class: 'num' }, fmt(dur)));
  });
  const services = [...new Set(t.spans.map((s) => s.service))];
  body.replaceChildren(...[
    h('p', {}, `${t.span_count} spans from ${services.length} services (${services.join(', ')}) in ${fmt(total)}.`),
    t.unreachable.length ? notice('info', 'Not answering, their part may be missing: ',
      t.unreachable.map((u) => `${u.service} (${u.error})`).join(', ')) : null,
    h('div', { class: 'waterfall-wrap' },
      h('table', { class: 'table waterfall' },
        h('caption', { class: 'sr-only' }, 'Spans of the checkout, in call order, with their timing'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Span'), h('th', { scope: 'col' }, 'Service'),
          h('th', { scope: 'col' }, 'Timeline'), h('th', { scope: 'col', class: 'num' }, 'Duration'))),
        h('tbody', {}, rows))),
  ].filter(Boolean));
}
