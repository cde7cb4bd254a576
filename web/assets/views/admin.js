// views/admin.js: the minimal back office for an admin: recent orders with "ship",
// and a product editor (price with If-Match against the product's ETag; stock).

import { api, session } from '../api.js';
import { h, money, when, notice, field, toCents, showFormError, clearFormError, busy, reasonText } from '../ui.js';
import { navigate } from '../router.js';
import { needLogin } from './account.js';
import { statusBadge } from './orders.js';

function needAdmin() {
  const gate = needLogin();
  if (gate) return gate;
  if (!session().admin) return h('section', {}, h('h1', {}, 'Admin'), notice('error', 'This page is for shop administrators.'));
  return null;
}

export async function adminView() {
  const gate = needAdmin();
  if (gate) return gate;
  const rows = h('tbody', {});
  const status = h('div', { 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
  let token = null;

  function row(o) {
    const ship = o.status === 'confirmed' ? h('button', { type: 'button', class: 'btn btn-small', onclick: async () => {
      ship.disabled = true;
      try {
        const done = await api(`/api/v1/orders/${encodeURIComponent(o.id)}/ship`, { method: 'POST' });
        tr.replaceWith(row(done));
        status.replaceChildren(notice('ok', `Order ${o.id} shipped.`));
      } catch (err) {
        status.replaceChildren(notice('error', `${o.id}: ${err.message}`));
        ship.disabled = false;
      }
    } }, 'Ship') : null;
    const tr = h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: `/orders/${encodeURIComponent(o.id)}` }, o.id)),
      h('td', { class: 'mono small' }, o.user_id),
      h('td', {}, when(o.created_at)),
      h('td', {}, statusBadge(o), o.reason ? h('span', { class: 'muted small' }, ` ${reasonText(o.reason)}`) : null),
      h('td', { class: 'num' }, money(o.total_cents, o.currency)),
      h('td', {}, ship));
    return tr;
  }
  async function load() {
    try {
      const p = new URLSearchParams({ page_size: 25 });
      if (token) p.set('page_token', token);
      const page = await api(`/api/v1/orders?${p}`);
      rows.append(...page.items.map(row));
      token = page.next_page_token;
      more.hidden = !token;
    } catch (err) {
      status.replaceChildren(notice('error', err.message));
    }
  }
  more.addEventListener('click', load);
  await load();

  const find = h('form', { class: 'row', role: 'search', 'aria-label': 'Edit a product', onsubmit: (e) => {
    e.preventDefault();
    const id = new FormData(find).get('id').trim();
    if (id) navigate(`/admin/products/${encodeURIComponent(id)}`);
  } }, field('Product id', { name: 'id', required: true, maxlength: 64, placeholder: 'prd_…' }),
  h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Edit product'));

  return h('section', { class: 'admin' }, h('h1', {}, 'Admin'),
    h('h2', {}, 'Products'), h('p', { class: 'muted' }, 'Open a product from the shop and choose “Edit”, or enter its id.'), find,
    h('h2', {}, 'Orders'), status,
    h('table', { class: 'table' }, h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Order'), h('th', { scope: 'col' }, 'Customer'), h('th', { scope: 'col' }, 'Placed'),
      h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col', class: 'num' }, 'Total'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))), rows),
    h('div', { class: 'more' }, more));
}

export async function adminProductView({ params }) {
  const gate = needAdmin();
  if (gate) return gate;
  const url = `/api/v1/products/${encodeURIComponent(params.id)}`;
  const root = h('section', { class: 'narrow' });
  let p, etag;

  async function reload() {
    const res = await api(url, { raw: true, cache: 'no-cache' });
    p = res.body;
    etag = res.headers.get('ETag');
  }
  try { await reload(); } catch (err) {
    return h('section', {}, h('h1', {}, 'Product not found'), notice('error', err.message));
  }

  const info = h('div', {});
  const drawInfo = () => info.replaceChildren(h('p', {}, h('a', { href: `/products/${encodeURIComponent(p.id)}` }, p.name)),
    h('p', { class: 'muted' }, `Price ${money(p.price_cents, p.currency)} · ${p.stock_available} available · version ${etag}`));
  drawInfo();

  const priceForm = h('form', { class: 'stack', 'aria-label': 'Price', onsubmit: async (e) => {
    e.preventDefault();
    const cents = toCents(new FormData(priceForm).get('price'));
    if (!Number.isInteger(cents)) { showFormError(priceForm, { message: 'Enter a price like 19.99.', errors: [{ field: 'price', message: 'not a price' }] }); return; }
    await busy(priceForm, async () => {
      try {
        const res = await api(url, { method: 'PATCH', body: { price_cents: cents }, headers: { 'If-Match': etag }, raw: true });
        p = res.body; etag = res.headers.get('ETag') || etag;
        clearFormError(priceForm);
        priceForm.querySelector('.form-error').replaceChildren(notice('ok', `Price saved: ${money(p.price_cents, p.currency)}.`));
        drawInfo();
      } catch (err) {
        if (err.status === 412) {
          await reload(); drawInfo();
          priceForm.price.value = (p.price_cents / 100).toFixed(2);
          err.message = 'Someone changed this product meanwhile; the current values are shown. Check them and save again.';
        }
        showFormError(priceForm, err);
      }
    });
  } }, h('div', { class: 'form-error', tabindex: -1 }),
  field('Price ($)', { name: 'price', inputmode: 'decimal', required: true, value: (p.price_cents / 100).toFixed(2) }),
  h('button', { type: 'submit', class: 'btn' }, 'Save price'));

  const stockForm = h('form', { class: 'stack', 'aria-label': 'Stock', onsubmit: async (e) => {
    e.preventDefault();
    const n = Number(new FormData(stockForm).get('on_hand'));
    await busy(stockForm, async () => {
      try {
        const res = await api(`${url}/stock`, { method: 'PUT', body: { on_hand: n }, raw: true });
        p = res.body; etag = res.headers.get('ETag') || etag;
        clearFormError(stockForm);
        stockForm.querySelector('.form-error').replaceChildren(notice('ok', `Stock saved: ${p.stock_available} available.`));
        drawInfo();
      } catch (err) { showFormError(stockForm, err); }
    });
  } }, h('div', { class: 'form-error', tabindex: -1 }),
  field('Units on hand', { name: 'on_hand', type: 'number', min: 0, max: 1000000, required: true, value: p.stock_available },
    'The total in the warehouse, including units held for orders in progress (it cannot go below those).'),
  h('button', { type: 'submit', class: 'btn' }, 'Save stock'));

  root.append(h('h1', {}, 'Edit product'), info, priceForm, stockForm, h('p', {}, h('a', { href: '/admin' }, 'Back to admin')));
  return root;
}
