// views/shop.js: the catalog: search and filters (q, category, price, stock, sort)
// kept in the URL, a product grid with "load more" over next_page_token, and the
// product page with add-to-cart.

import { api, session } from '../api.js';
import { h, money, toCents, notice, field, productImage, showFormError, busy } from '../ui.js';
import { navigate } from '../router.js';

const PAGE_SIZE = 24;
let categories = null;   // fetched once per page load; they change rarely

export async function loadCategories() {
  if (!categories) {
    try { categories = (await api('/api/v1/categories')).items; } catch { categories = []; }
  }
  return categories;
}

function card(p) {
  const out = p.stock_available <= 0;
  return h('li', { class: 'card' },
    h('a', { href: `/products/${encodeURIComponent(p.id)}`, class: 'card-link' },
      productImage(p, 'card-img'),
      h('span', { class: 'card-name' }, p.name)),
    h('div', { class: 'card-meta' },
      h('span', { class: 'price' }, money(p.price_cents, p.currency)),
      h('span', { class: out ? 'stock stock-out' : 'stock' }, out ? 'Out of stock' : `${p.stock_available} in stock`)));
}

/** / and /search: the filter form and the results. */
export async function listView({ query }) {
  const cats = await loadCategories();
  const q = query.get('q') || '';
  const params = new URLSearchParams();
  for (const k of ['q', 'category', 'sort', 'min_price', 'max_price', 'in_stock']) {
    if (query.get(k)) params.set(k, query.get(k));
  }
  params.set('page_size', PAGE_SIZE);

  const cents = (k) => (query.get(k) ? (Number(query.get(k)) / 100).toFixed(2) : '');
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter products', onsubmit: (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const next = new URLSearchParams();
    if (fd.get('q').trim()) next.set('q', fd.get('q').trim());
    if (fd.get('category')) next.set('category', fd.get('category'));
    if (fd.get('sort')) next.set('sort', fd.get('sort'));
    for (const k of ['min_price', 'max_price']) {
      const c = toCents(fd.get(k));
      if (Number.isNaN(c)) {
        showFormError(form, { message: 'Prices are amounts like 12 or 12.50.', errors: [{ field: k, message: 'not a price' }] });
        return;
      }
      if (c !== null) next.set(k, c);
    }
    if (fd.get('in_stock')) next.set('in_stock', 'true');
    navigate(`/?${next}`);
  } },
  h('div', { class: 'form-error', tabindex: -1 }),
  field('Search', { name: 'q', type: 'search', value: q, maxlength: 200, placeholder: 'coffee, tent, novel…' }),
  field('Category', { name: 'category', value: query.get('category') || '',
    options: [['', 'All categories'], ...cats.map((c) => [c.slug, c.name])] }),
  field('Sort by', { name: 'sort', value: query.get('sort') || '',
    options: [['', q ? 'Relevance' : 'Newest'], ['price_asc', 'Price: low to high'], ['price_desc', 'Price: high to low'], ['newest', 'Newest'], ['relevance', 'Relevance']] }),
  field('Min price ($)', { name: 'min_price', inputmode: 'decimal', value: cents('min_price'), size: 6 }),
  field('Max price ($)', { name: 'max_price', inputmode: 'decimal', value: cents('max_price'), size: 6 }),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'in_stock', value: '1', checked: query.get('in_stock') === 'true' }), ' In stock only'),
  h('button', { type: 'submit', class: 'btn' }, 'Apply'));

  const cat = cats.find((c) => c.slug === query.get('category'));
  const title = q ? `Results for “${q}”` : cat ? cat.name : 'All products';
  const grid = h('ul', { class: 'grid', 'aria-label': 'Products' });
  const status = h('p', { class: 'muted', role: 'status' });
  const more = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
  let token = null;
  let shown = 0;

  async function load() {
    const p = new URLSearchParams(params);
    if (token) p.set('page_token', token);
    more.disabled = true;
    try {
      const page = await api(`/api/v1/products?${p}`);
      grid.append(...page.items.map(card));
      shown += page.items.length;
      token = page.next_page_token;
      more.hidden = !token;
      status.textContent = shown === 0 ? 'No products match. Try fewer words or other filters.' : `Showing ${shown} product${shown === 1 ? '' : 's'}${token ? '' : ' (all)'}.`;
    } catch (err) {
      status.replaceChildren(notice('error', err.message, err.errors.length ? ` (${err.errors.map((e) => `${e.field}: ${e.message}`).join('; ')})` : ''));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', async () => {
    const before = grid.children.length;
    await load();
    grid.children[before]?.querySelector('a')?.focus();
  });
  await load();

  // Open beside the results on wide screens; folded above them on a phone.
  const filters = h('details', { class: 'filter-box', open: matchMedia('(min-width: 801px)').matches || null },
    h('summary', {}, 'Filters'), form);
  return h('div', { class: 'shop' },
    h('aside', { class: 'sidebar' }, filters,
      h('nav', { 'aria-label': 'Categories', class: 'cats' }, h('h2', {}, 'Categories'),
        h('ul', {}, cats.map((c) => h('li', {}, h('a', { href: `/?category=${c.slug}`, 'aria-current': c === cat ? 'page' : null }, c.name, h('span', { class: 'muted' }, ` ${c.product_count}`))))))),
    h('section', { class: 'results' }, h('h1', {}, title), status, grid, h('div', { class: 'more' }, more)));
}

/** /products/:id */
export async function productView({ params }) {
  let p;
  try {
    p = await api(`/api/v1/products/${encodeURIComponent(params.id)}`);
  } catch (err) {
    return h('section', {}, h('h1', {}, err.status === 404 ? 'Product not found' : 'Could not load the product'),
      notice('error', err.message), h('p', {}, h('a', { href: '/' }, 'Back to the shop')));
  }
  const out = p.stock_available <= 0;
  const msg = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'buy', onsubmit: async (e) => {
    e.preventDefault();
    if (!session()) { navigate(`/login?next=${encodeURIComponent(location.pathname)}`); return; }
    const qty = Number(new FormData(form).get('quantity'));
    await busy(form, async () => {
      try {
        const cart = await api('/api/v1/cart');
        const have = cart.items.find((i) => i.product_id === p.id)?.quantity || 0;
        await api(`/api/v1/cart/items/${encodeURIComponent(p.id)}`, { method: 'PUT', body: { quantity: Math.min(99, have + qty) } });
        document.dispatchEvent(new Event('cart-changed'));
        msg.replaceChildren(notice('ok', 'Added to your cart. ', h('a', { href: '/cart' }, 'View cart')));
      } catch (err) {
        showFormError(form, err);
      }
    });
  } },
  h('div', { class: 'form-error', tabindex: -1 }),
  field('Quantity', { name: 'quantity', type: 'number', min: 1, max: 99, value: 1, required: true, class: 'qty' }),
  h('button', { type: 'submit', class: 'btn', disabled: out }, out ? 'Out of stock' : 'Add to cart'));

  const attrs = Object.entries(p.attributes || {});
  return h('article', { class: 'product' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/' }, 'Shop'), ' / ',
      h('a', { href: `/?category=${encodeURIComponent(p.category)}` }, p.category)),
    h('div', { class: 'product-body' },
      productImage(p, 'product-img'),
      h('div', { class: 'product-info' },
        h('h1', {}, p.name),
        h('p', { class: 'price price-big' }, money(p.price_cents, p.currency)),
        h('p', { class: out ? 'stock stock-out' : 'stock' }, out ? 'Out of stock' : `${p.stock_available} in stock`),
        h('p', {}, p.description),
        form, msg,
        attrs.length ? h('table', { class: 'attrs' }, h('caption', {}, 'Details'),
          h('tbody', {}, attrs.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k.replace(/_g$/, ' (g)').replace(/_/g, ' ')), h('td', {}, typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v)))))) : null,
        h('p', { class: 'muted small' }, `SKU ${p.sku}`,
          session()?.admin ? [' · ', h('a', { href: `/admin/products/${encodeURIComponent(p.id)}` }, 'Edit (admin)')] : null))));
}
