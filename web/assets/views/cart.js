// views/cart.js: the cart (change quantity, remove) and checkout: pick or add a
// card and an address, then place the order with an Idempotency-Key that is new
// for each attempt and reused when the same attempt is retried after a failure.

import { api, newKey } from '../api.js';
import { h, money, notice, showFormError, busy } from '../ui.js';
import { navigate } from '../router.js';
import { needLogin, cardForm, addressForm, cardText, addressText } from './account.js';

const FREE_SHIPPING_CENTS = 5000;   // orders' shipping rule (services/orders/README.md)
const SHIPPING_CENTS = 499;

function changed() { document.dispatchEvent(new Event('cart-changed')); }

export async function cartView() {
  const gate = needLogin();
  if (gate) return gate;
  const root = h('section', { class: 'cart' }, h('h1', {}, 'Your cart'));
  const body = h('div', {});
  const live = h('div', { 'aria-live': 'polite', class: 'live' });
  root.append(live, body);

  function draw(cart) {
    if (!cart.items.length) {
      body.replaceChildren(h('p', {}, 'Your cart is empty. ', h('a', { href: '/' }, 'Browse the shop')));
      return;
    }
    const rows = cart.items.map((it) => {
      const qty = h('input', { type: 'number', min: 1, max: 99, value: it.quantity, id: `q-${it.product_id}`, class: 'qty', 'aria-label': `Quantity of ${it.name}` });
      const update = async (quantity) => {
        try {
          draw(await api(`/api/v1/cart/items/${encodeURIComponent(it.product_id)}`, quantity === 0
            ? { method: 'DELETE' } : { method: 'PUT', body: { quantity } }));
          live.replaceChildren(notice('ok', quantity === 0 ? `Removed ${it.name}.` : `Updated ${it.name}.`));
          changed();
        } catch (err) {
          live.replaceChildren(notice('error', err.message));
        }
      };
      qty.addEventListener('change', () => {
        const n = Number(qty.value);
        if (Number.isInteger(n) && n >= 1 && n <= 99) update(n);
        else live.replaceChildren(notice('error', 'Quantity must be a whole number from 1 to 99.'));
      });
      return h('tr', {},
        h('th', { scope: 'row' }, h('a', { href: `/products/${encodeURIComponent(it.product_id)}` }, it.name)),
        h('td', { class: 'num' }, money(it.unit_price_cents, cart.currency)),
        h('td', {}, qty),
        h('td', { class: 'num' }, money(it.line_total_cents, cart.currency)),
        h('td', {}, h('button', { type: 'button', class: 'btn btn-small btn-secondary', 'aria-label': `Remove ${it.name}`, onclick: () => update(0) }, 'Remove')));
    });
    const shipping = cart.subtotal_cents >= FREE_SHIPPING_CENTS ? 0 : SHIPPING_CENTS;
    body.replaceChildren(
      h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col', class: 'num' }, 'Price'),
          h('th', { scope: 'col' }, 'Quantity'), h('th', { scope: 'col', class: 'num' }, 'Total'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', {}, rows)),
      h('dl', { class: 'totals' },
        h('dt', {}, 'Subtotal'), h('dd', {}, money(cart.subtotal_cents, cart.currency)),
        h('dt', {}, 'Shipping (estimate)'), h('dd', {}, shipping ? money(shipping, cart.currency) : 'Free'),
        h('dt', {}, 'Total'), h('dd', { class: 'price' }, money(cart.subtotal_cents + shipping, cart.currency))),
      shipping ? h('p', { class: 'muted' }, `Free shipping from ${money(FREE_SHIPPING_CENTS, cart.currency)}.`) : null,
      h('p', { class: 'actions' }, h('a', { href: '/', class: 'btn btn-secondary' }, 'Keep shopping'), h('a', { href: '/checkout', class: 'btn' }, 'Check out')));
  }
  try {
    draw(await api('/api/v1/cart'));
  } catch (err) {
    body.replaceChildren(notice('error', err.message));
  }
  return root;
}

/** A radio group of saved things, with the newest (last added) checked. */
function choices(name, legend, items, text, selected) {
  return h('fieldset', { class: 'choices' }, h('legend', {}, legend),
    items.length ? items.map((it) => h('label', { class: 'choice' },
      h('input', { type: 'radio', name, value: it.id, required: true, checked: it.id === selected }), ' ', text(it)))
      : h('p', { class: 'muted' }, 'None saved yet: add one below.'));
}

export async function checkoutView() {
  const gate = needLogin();
  if (gate) return gate;
  let cart, cards, me;
  try {
    [cart, cards, me] = await Promise.all([api('/api/v1/cart'), api('/api/v1/payment-methods?page_size=50'), api('/api/v1/users/me')]);
  } catch (err) {
    return h('section', {}, h('h1', {}, 'Checkout'), notice('error', err.message));
  }
  if (!cart.items.length) {
    return h('section', {}, h('h1', {}, 'Checkout'), h('p', {}, 'Your cart is empty. ', h('a', { href: '/' }, 'Browse the shop')));
  }
  const pms = cards.items;
  const addrs = me.addresses || [];
  let pmSel = pms.at(-1)?.id;
  let adSel = addrs.at(-1)?.id;
  // One attempt = one key; the key is kept for a retry of the same body and dropped on a definitive answer.
  let attempt = null;

  const cardBox = h('div', {});
  const addrBox = h('div', {});
  const drawCards = () => cardBox.replaceChildren(choices('payment_method_id', 'Pay with', pms, cardText, pmSel));
  const drawAddrs = () => addrBox.replaceChildren(choices('address_id', 'Ship to', addrs, addressText, adSel));
  drawCards();
  drawAddrs();

  const shipping = cart.subtotal_cents >= FREE_SHIPPING_CENTS ? 0 : SHIPPING_CENTS;
  const form = h('form', { class: 'stack', 'aria-label': 'Place order', onsubmit: async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const body = { payment_method_id: fd.get('payment_method_id'), address_id: fd.get('address_id') };
    const json = JSON.stringify(body);
    if (!attempt || attempt.json !== json) attempt = { key: newKey(), json };
    await busy(form, async () => {
      try {
        const res = await api('/api/v1/orders', { method: 'POST', body, headers: { 'Idempotency-Key': attempt.key }, raw: true });
        attempt = null;
        changed();
        navigate(`/orders/${encodeURIComponent(res.body.id)}?placed=1`);
      } catch (err) {
        // Network failures and 5xx may or may not have placed the order: retrying with the same key is safe.
        const retryable = err.status === 0 || err.status >= 500 || err.code === 'idempotency_key_in_use';
        if (!retryable) attempt = null;
        showFormError(form, retryable
          ? Object.assign(err, { message: `${err.message} Press “Place order” again to retry safely.` }) : err);
      }
    });
  } },
  h('div', { class: 'form-error', tabindex: -1 }),
  cardBox, addrBox,
  h('dl', { class: 'totals' },
    h('dt', {}, `Items (${cart.items.reduce((n, i) => n + i.quantity, 0)})`), h('dd', {}, money(cart.subtotal_cents, cart.currency)),
    h('dt', {}, 'Shipping'), h('dd', {}, shipping ? money(shipping, cart.currency) : 'Free'),
    h('dt', {}, 'Total'), h('dd', { class: 'price' }, money(cart.subtotal_cents + shipping, cart.currency))),
  h('p', { class: 'muted small' }, 'Prices are confirmed when stock is reserved.'),
  h('button', { type: 'submit', class: 'btn btn-big' }, 'Place order'));

  return h('section', { class: 'checkout' }, h('h1', {}, 'Checkout'),
    h('div', { class: 'two-col' },
      form,
      h('div', {},
        h('details', { open: !pms.length }, h('summary', {}, 'Add a card'),
          cardForm(async (pm) => { pms.push(pm); pmSel = pm.id; drawCards(); })),
        h('details', { open: !addrs.length }, h('summary', {}, 'Add an address'),
          addressForm(async (a) => { addrs.push(a); adSel = a.id; drawAddrs(); })))));
}
