// app.js: the storefront's entry point: the route table, the header (cart count,
// unread notifications, account links) and session restore on load.

import { route, fallback, start, render } from './router.js';
import { api, resume, session, onSession } from './api.js';
import { h } from './ui.js';
import { listView, productView } from './views/shop.js';
import { loginView, registerView, logoutView, accountView } from './views/account.js';
import { cartView, checkoutView } from './views/cart.js';
import { ordersView, orderView } from './views/orders.js';
import { notificationsView } from './views/notifications.js';
import { adminView, adminProductView } from './views/admin.js';

route('/', listView);
route('/products/:id', productView);
route('/login', loginView);
route('/register', registerView);
route('/logout', logoutView);
route('/account', accountView);
route('/cart', cartView);
route('/checkout', checkoutView);
route('/orders', ordersView);
route('/orders/:id', orderView);
route('/notifications', notificationsView);
route('/admin', adminView);
route('/admin/products/:id', adminProductView);
fallback(() => h('section', {}, h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '/' }, 'Back to the shop'))));

const nav = document.getElementById('nav');

function link(href, text, extra) {
  const here = location.pathname === href || (href !== '/' && location.pathname.startsWith(href + '/'));
  return h('li', {}, h('a', { href, 'aria-current': here ? 'page' : null }, text, extra));
}

function count(n, one, many) {
  return n ? h('span', { class: 'count', 'aria-label': `${n} ${n === 1 ? one : many}` }, String(n)) : null;
}

let counts = { cart: 0, unread: 0 };

function drawNav() {
  const s = session();
  nav.replaceChildren(h('ul', {},
    link('/', 'Shop'),
    s ? [link('/cart', 'Cart', count(counts.cart, 'item', 'items')), link('/orders', 'Orders'),
      link('/notifications', 'Inbox', count(counts.unread, 'unread', 'unread')), s.admin ? link('/admin', 'Admin') : null,
      link('/account', 'Account')]
      : [link('/login', 'Sign in'), link('/register', 'Register')]));
}

async function refreshCounts() {
  if (!session()) { counts = { cart: 0, unread: 0 }; drawNav(); return; }
  const [cart, notes] = await Promise.allSettled([api('/api/v1/cart'), api('/api/v1/notifications?page_size=50')]);
  if (cart.status === 'fulfilled') counts.cart = cart.value.items.reduce((n, i) => n + i.quantity, 0);
  if (notes.status === 'fulfilled') counts.unread = notes.value.items.filter((n) => !n.read).length;
  drawNav();
}

// The header search goes through the same URL parameters as the filter form.
document.getElementById('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = new FormData(e.target).get('q').trim();
  history.pushState(null, '', q ? `/?q=${encodeURIComponent(q)}` : '/');
  render();
});

document.addEventListener('routed', () => {
  drawNav();
  refreshCounts();   // the cart empties and notifications arrive through events, between page views
  const q = new URL(location.href).searchParams.get('q');
  document.getElementById('search-q').value = location.pathname === '/' ? q || '' : '';
});
document.addEventListener('cart-changed', refreshCounts);
document.addEventListener('notes-changed', refreshCounts);
onSession(() => refreshCounts());

(async () => {
  await resume();
  drawNav();
  await start();
  document.documentElement.dataset.ready = '1';
})();
