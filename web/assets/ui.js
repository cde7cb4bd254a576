// ui.js: small DOM helpers shared by the views: element builder, money and date
// formatting, form errors from ApiError, status messages.

/** h('a', {href: '/x', class: 'btn'}, 'text', child…): builds an element; null children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function money(cents, currency = 'USD') {
  return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100);
}

export function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? '' : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Dollars as typed ("12.50") → integer cents, or null when empty; NaN when not a price. */
export function toCents(text) {
  const t = String(text).trim();
  if (t === '') return null;
  if (!/^\d{1,9}(\.\d{1,2})?$/.test(t)) return NaN;
  const [whole, frac = ''] = t.split('.');
  return Number(whole) * 100 + Number(frac.padEnd(2, '0'));
}

const REASONS = {
  out_of_stock: 'some items are out of stock',
  product_unavailable: 'a product is no longer available',
  payment_declined: 'the card was declined',
  payment_method_invalid: 'the payment method is not valid',
  payment_failed: 'the payment failed',
  reservation_expired: 'the stock reservation expired',
  reservation_failed: 'the stock could not be reserved',
  capture_failed: 'the payment could not be captured',
  cancelled_by_customer: 'you cancelled it',
  cancelled_by_admin: 'the shop cancelled it',
};
export function reasonText(reason) {
  return REASONS[reason] || (reason ? reason.replace(/_/g, ' ') : '');
}

/** A status line: kind is 'info', 'ok' or 'error'. role=alert for errors so screen readers speak it. */
export function notice(kind, ...content) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...content);
}

/**
 * Shows an error on a form: the detail in the form's error box, and each field error
 * beside its input (matched by name, "card.number" → name="card.number") with aria-invalid.
 */
export function showFormError(form, err) {
  clearFormError(form);
  let box = form.querySelector('.form-error');
  if (!box) { box = h('div', { class: 'form-error', tabindex: -1 }); form.prepend(box); }
  const unmatched = [];
  for (const fe of err.errors || []) {
    const input = form.querySelector(`[name="${CSS.escape(fe.field)}"]`);
    if (!input) { unmatched.push(`${fe.field}: ${fe.message}`); continue; }
    const id = `${input.id || input.name}-err`;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', id);
    input.closest('label, .field')?.append(h('span', { class: 'field-error', id }, fe.message));
  }
  box.replaceChildren(notice('error', err.message, unmatched.length ? h('ul', {}, unmatched.map((u) => h('li', {}, u))) : null));
  const first = form.querySelector('[aria-invalid="true"]');
  (first || box).focus?.();
  if (!first) box.scrollIntoView({ block: 'nearest' });
}

export function clearFormError(form) {
  form.querySelector('.form-error')?.replaceChildren();
  form.querySelectorAll('.field-error').forEach((e) => e.remove());
  form.querySelectorAll('[aria-invalid]').forEach((e) => { e.removeAttribute('aria-invalid'); e.removeAttribute('aria-describedby'); });
}

/** A labelled input: field('Email', {name: 'email', type: 'email', required: true}). */
export function field(label, attrs, hint) {
  const id = attrs.id || `f-${attrs.name.replace(/\W/g, '-')}`;
  const control = attrs.options
    ? h('select', { ...attrs, options: null, id }, attrs.options.map(([v, t]) => h('option', { value: v, selected: String(attrs.value ?? '') === String(v) }, t)))
    : h('input', { type: 'text', ...attrs, id });
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'hint' }, hint) : null);
}

/** Disables a form's buttons while fn runs; returns fn's result. */
export async function busy(form, fn) {
  const buttons = form.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  form.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    form.removeAttribute('aria-busy');
  }
}

export function productImage(p, cls = '') {
  const img = h('img', { src: p.image_url || '/img/products/placeholder.svg', alt: '', class: cls, loading: 'lazy', width: 400, height: 300 });
  img.addEventListener('error', () => { img.src = '/img/products/placeholder.svg'; }, { once: true });
  return img;
}
