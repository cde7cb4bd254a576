// views/orders.js: the customer's orders and one order: status (polling while
// pending, as after a 202 from checkout), lines, totals, and cancel; an admin also
// sees the order's checkout trace (views/trace.js).

import { api, session } from '../api.js';
import { h, money, when, notice, reasonText } from '../ui.js';
import { needLogin } from './account.js';
import { traceSection } from './trace.js';

const POLL_MS = 1000;
const POLL_LIMIT = 60;   // then the page says it is still running and stops asking

const LABEL = { pending: 'Processing', confirmed: 'Confirmed', shipped: 'Shipped', rejected: 'Rejected', cancelled: 'Cancelled' };

export function statusBadge(o) {
  return h('span', { class: `status status-${o.status}` }, LABEL[o.status] || o.status);
}

export async function ordersView({ query }) {
  const gate = needLogin();
  if (gate) return gate;
  const list = h('tbody', {});
  const more = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
  const status = h('div', { role: 'status' });
  let token = null;
  async function load() {
    try {
      const p = new URLSearchParams({ page_size: 20 });
      if (token) p.set('page_token', token);
      if (query.get('user_id')) p.set('user_id', query.get('user_id'));
      const page = await api(`/api/v1/orders?${p}`);
      list.append(...page.items.map((o) => h('tr', {},
        h('th', { scope: 'row' }, h('a', { href: `/orders/${encodeURIComponent(o.id)}` }, o.id)),
        h('td', {}, when(o.created_at)),
        h('td', {}, statusBadge(o), o.reason ? h('span', { class: 'muted small' }, ` ${reasonText(o.reason)}`) : null),
        h('td', { class: 'num' }, money(o.total_cents, o.currency)))));
      token = page.next_page_token;
      more.hidden = !token;
      if (!list.children.length) status.replaceChildren(h('p', {}, 'No orders yet. ', h('a', { href: '/' }, 'Start shopping')));
    } catch (err) {
      status.replaceChildren(notice('error', err.message));
    }
  }
  more.addEventListener('click', load);
  await load();
  return h('section', {}, h('h1', {}, 'Your orders'), status,
    h('table', { class: 'table' }, h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Order'), h('th', { scope: 'col' }, 'Placed'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col', class: 'num' }, 'Total'))), list),
    h('div', { class: 'more' }, more));
}

function banner(o, placed) {
  if (o.status === 'pending') return notice('info', h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' We are confirming your order: reserving stock and authorising payment…');
  if (o.cancellation_pending) return notice('info', h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Cancelling: the refund is being made…');
  if (o.status === 'confirmed' && placed) return notice('ok', h('strong', {}, 'Thank you! Your order is confirmed.'), ' A confirmation is on its way to your inbox.');
  if (o.status === 'rejected') return notice('error', h('strong', {}, 'The order could not be placed: '), reasonText(o.reason), '. Nothing was charged.');
  if (o.status === 'cancelled') return notice('info', `This order was cancelled (${reasonText(o.reason)}).`,
    o.refunded_cents ? ` ${money(o.refunded_cents, o.currency)} refunded.` : '', o.cancellation_pending ? ' The refund is on its way.' : '');
  if (o.status === 'shipped') return notice('ok', `Shipped ${o.shipped_at ? when(o.shipped_at) : ''}.`);
  return null;
}

export async function orderView({ params, query, stale }) {
  const gate = needLogin();
  if (gate) return gate;
  const url = `/api/v1/orders/${encodeURIComponent(params.id)}`;
  let o;
  try {
    o = await api(url);
  } catch (err) {
    return h('section', {}, h('h1', {}, err.status === 404 ? 'Order not found' : 'Could not load the order'), notice('error', err.message));
  }
  const placed = query.get('placed') === '1';
  const root = h('section', { class: 'order' });
  const live = h('div', { 'aria-live': 'polite' });
  // made once: the polls redraw the order, not the trace
  const trace = session()?.admin && o.trace_id ? [traceSection(o.trace_id)] : [];

  function draw() {
    const cancel = o.status === 'confirmed' && !o.cancellation_pending ? h('button', { type: 'button', class: 'btn btn-secondary', onclick: async () => {
      if (!confirm('Cancel this order? The payment will be refunded.')) return;
      cancel.disabled = true;
      try {
        o = await api(`${url}/cancel`, { method: 'POST' });
        draw();
        live.replaceChildren(notice('ok', o.cancellation_pending ? 'Cancellation requested: the refund is on its way.' : 'Order cancelled.'));
        poll();
      } catch (err) {
        live.replaceChildren(notice('error', err.message));
        cancel.disabled = false;
      }
    } }, 'Cancel order') : null;
    const a = o.shipping_address || {};
    root.replaceChildren(
      h('h1', {}, 'Order ', h('span', { class: 'mono' }, o.id)),
      h('p', {}, statusBadge(o), ' ', h('span', { class: 'muted' }, `placed ${when(o.created_at)}`)),
      live,
      h('div', { class: 'order-banner' }, banner(o, placed)),
      h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col', class: 'num' }, 'Price'),
          h('th', { scope: 'col', class: 'num' }, 'Qty'), h('th', { scope: 'col', class: 'num' }, 'Total'))),
        h('tbody', {}, (o.items || []).map((it) => h('tr', {},
          h('th', { scope: 'row' }, h('a', { href: `/products/${encodeURIComponent(it.product_id)}` }, it.name)),
          h('td', { class: 'num' }, money(it.unit_price_cents, o.currency)),
          h('td', { class: 'num' }, it.quantity),
          h('td', { class: 'num' }, money(it.line_total_cents, o.currency)))))),
      h('dl', { class: 'totals' },
        h('dt', {}, 'Subtotal'), h('dd', {}, money(o.subtotal_cents, o.currency)),
        h('dt', {}, 'Shipping'), h('dd', {}, o.shipping_cents ? money(o.shipping_cents, o.currency) : 'Free'),
        h('dt', {}, 'Total'), h('dd', { class: 'price' }, money(o.total_cents, o.currency)),
        o.refunded_cents ? [h('dt', {}, 'Refunded'), h('dd', {}, money(o.refunded_cents, o.currency))] : null),
      h('h2', {}, 'Shipping to'),
      h('address', {}, [a.name, a.line1, a.line2, `${a.postal_code || ''} ${a.city || ''}`, a.region, a.country].filter((x) => x && x.trim()).map((l) => [l, h('br')])),
      h('p', { class: 'actions' }, h('a', { href: '/orders', class: 'btn btn-secondary' }, 'All orders'), cancel),
      ...trace);
  }
  // 202 from checkout, or a cancel whose refund is still running: ask again until settled.
  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    const unsettled = () => o.status === 'pending' || o.cancellation_pending;
    for (let i = 0; i < POLL_LIMIT && unsettled(); i++) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (stale() || !root.isConnected) return;
      try {
        o = await api(url);
        if (!unsettled()) live.replaceChildren();
        draw();
      } catch { /* keep the last answer; the next poll may work */ }
    }
    polling = false;
    if (unsettled()) live.replaceChildren(notice('info', 'Still processing. Reload this page in a minute to see the result.'));
  }
  draw();
  poll();
  return root;
}
