// storefront.test.js: a person shopping on the real platform through the storefront:
// search "coffee", open a product, register, add to cart, change the quantity, save
// the test card (after a mistyped one is refused with its field error) and an
// address, check out, see the order confirmed, cancel it; read and mark a
// notification; then the admin edits that product's price and sees the checkout's
// trace as a waterfall on the order page. Screenshots go to
// build/screenshots/. Run: make browser-test (or `node --test` here).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Platform, launchBrowser, watchErrors, signIn, apiJson, apiCustomer, REPO } from './platform.js';

const SHOTS = path.join(REPO, 'build', 'screenshots');
const ADMIN = { email: 'admin@browser.test', password: 'admin-password-for-browser' };
const T = 15000;   // generous per-step wait: argon2id hashing and the checkout saga take a moment

let platform;
let browser;
let page;
let nav;   // the header's main navigation
const pageErrors = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  platform = await new Platform({ SOUK_ADMIN_EMAIL: ADMIN.email, SOUK_ADMIN_PASSWORD: ADMIN.password }).up();
  browser = await launchBrowser();
  page = browser.context.pages()[0] || await browser.context.newPage();
  page.setDefaultTimeout(T);
  watchErrors(page, pageErrors);   // exceptions and CSP violations fail the tests
  page.on('dialog', (d) => d.accept());
  nav = page.getByRole('navigation', { name: 'Main' });
});

after(async () => {
  await browser?.close();
  platform?.down({ keep: process.env.KEEP_VAR === '1' });
});

const login = (email, password) => signIn(page, platform.url, email, password);

test('a customer finds coffee, registers, checks out, and cancels', async () => {
  const email = `shopper-${Date.now()}@browser.test`;

  // Search from the header. The page comes with its CSP (no inline script, no framing):
  // every step below runs under it, and a violation fails the test (watchErrors).
  const home = await page.goto(`${platform.url}/`);
  assert.match(home.headers()['content-security-policy'], /script-src 'self';.*frame-ancestors 'none'/);
  await page.locator('html[data-ready]').waitFor({ state: 'attached' });
  await page.getByRole('searchbox', { name: 'Search products' }).fill('coffee');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Results for “coffee”' }).waitFor();
  const cards = page.locator('.grid .card');
  await cards.first().waitFor();
  const names = await page.locator('.grid .card-name').allTextContents();
  assert.ok(names.length >= 5, `few results: ${names}`);
  assert.ok(names.slice(0, 5).every((n) => /coffee/i.test(n)), `top results not about coffee: ${names.slice(0, 5)}`);
  assert.equal(new URL(page.url()).searchParams.get('q'), 'coffee');
  // Product images are served and are the category's picture, not the placeholder.
  await page.waitForFunction(() => [...document.querySelectorAll('.grid img')].slice(0, 4).every((i) => i.complete && i.naturalWidth > 0));
  assert.match(await page.locator('.grid img').first().getAttribute('src'), /^\/img\/products\/\w+\/\d+\.svg$/);
  await page.screenshot({ path: path.join(SHOTS, 'products.png') });
  // "Load more" follows next_page_token: the next page is appended, nothing repeats.
  const first = await cards.count();
  await page.getByRole('button', { name: 'Load more' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('.grid .card').length > n, first);
  const hrefs = await page.locator('.grid .card-link').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.equal(new Set(hrefs).size, hrefs.length, 'a product was listed twice');

  // Filters: a price cap in dollars narrows the list (the URL holds cents).
  await page.getByLabel('Max price ($)').fill('20');
  await page.getByLabel('Sort by').selectOption('price_asc');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL(/max_price=2000/);
  await page.locator('.grid .card').first().waitFor();
  const prices = (await page.locator('.grid .price').allTextContents()).map((p) => Number(p.replace(/[^0-9.]/g, '')));
  assert.ok(prices.length > 0 && prices.every((p) => p <= 20), `prices over $20: ${prices}`);
  assert.deepEqual(prices, [...prices].sort((a, b) => a - b), 'not sorted by price');

  // Open an in-stock coffee product.
  const card = page.locator('.grid .card').filter({ hasText: /coffee/i }).filter({ hasText: 'in stock' }).filter({ hasNotText: 'Out of stock' }).first();
  const productName = (await card.locator('.card-name').textContent()).trim();
  await card.getByRole('link').click();
  await page.getByRole('heading', { level: 1, name: productName }).waitFor();
  const productUrl = page.url();
  assert.match(productUrl, /\/products\/prd_/);

  // Adding to the cart needs an account: sign-in page, then registration, then back here.
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL(/\/login\?next=/);
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.getByLabel('Name').fill('Browser Shopper');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('a long enough passphrase');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(productUrl);
  await page.getByRole('heading', { level: 1, name: productName }).waitFor();

  await page.getByLabel('Quantity').fill('2');
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.getByText('Added to your cart.').waitFor();
  await nav.getByRole('link', { name: 'Cart 2 items' }).waitFor();

  // The cart: change the quantity to 3, then back to 1.
  await nav.getByRole('link', { name: /^Cart/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Your cart' }).waitFor();
  const qty = page.getByLabel(`Quantity of ${productName}`);
  assert.equal(await qty.inputValue(), '2');
  await qty.fill('1');
  await qty.press('Enter');
  await page.getByText(`Updated ${productName}.`).waitFor();
  await nav.getByRole('link', { name: 'Cart 1 item' }).waitFor();

  // Checkout: no card or address yet, so both forms are open.
  await page.getByRole('link', { name: 'Check out' }).click();
  await page.getByRole('heading', { level: 1, name: 'Checkout' }).waitFor();
  const cardForm = page.getByRole('form', { name: 'Add a card' });
  await cardForm.getByLabel('Card number').fill('4242 4242 4242 4241');   // a typo: fails Luhn
  await cardForm.getByLabel('CVC').fill('123');
  await cardForm.getByLabel('Name on card').fill('Browser Shopper');
  await cardForm.getByRole('button', { name: 'Save card' }).click();
  // The problem+json is shown: its detail, and the field error beside the number.
  await cardForm.locator('.field-error').first().waitFor();
  assert.equal(await cardForm.getByLabel('Card number').getAttribute('aria-invalid'), 'true');
  await cardForm.getByLabel('Card number').fill('4242 4242 4242 4242');
  await cardForm.getByRole('button', { name: 'Save card' }).click();
  await page.getByRole('radio', { name: /VISA •••• 4242/ }).waitFor();
  assert.ok(await page.getByRole('radio', { name: /VISA •••• 4242/ }).isChecked());

  const addrForm = page.getByRole('form', { name: 'Add an address' });
  await addrForm.getByLabel('Full name').fill('Browser Shopper');
  await addrForm.getByLabel('Address', { exact: true }).fill('1 Test Street');
  await addrForm.getByLabel('Postal code').fill('10115');
  await addrForm.getByLabel('City').fill('Berlin');
  await addrForm.getByLabel('Country code').fill('DE');
  await addrForm.getByRole('button', { name: 'Save address' }).click();
  await page.getByRole('radio', { name: /1 Test Street/ }).waitFor();

  await page.getByRole('button', { name: 'Place order' }).click();
  await page.waitForURL(/\/orders\/ord_[^?]+\?placed=1/);
  await page.getByText('Thank you! Your order is confirmed.').waitFor();
  await page.locator('.order .table').getByText(productName).waitFor();
  assert.equal((await page.locator('.status').first().textContent()).trim(), 'Confirmed');
  await page.screenshot({ path: path.join(SHOTS, 'order-confirmed.png'), fullPage: true });
  const orderUrl = page.url().split('?')[0];


  // Cancel it (the confirm() dialog is accepted): refunded and cancelled.
  await page.getByRole('button', { name: 'Cancel order' }).click();
  await page.getByText('Order cancelled.').waitFor();
  assert.equal((await page.locator('.status').first().textContent()).trim(), 'Cancelled');
  await page.getByText(/refunded/).first().waitFor();

  // The orders list shows it.
  await nav.getByRole('link', { name: 'Orders' }).click();
  await page.getByRole('heading', { level: 1, name: 'Your orders' }).waitFor();
  // The order.confirmed event emptied the cart: the header no longer counts items.
  await nav.getByRole('link', { name: 'Cart', exact: true }).waitFor();
  await page.locator(`a[href="${new URL(orderUrl).pathname}"]`).waitFor();

  // Notifications arrive over the event feed: wait for one, then mark it read.
  await nav.getByRole('link', { name: /^Inbox/ }).click();
  const deadline = Date.now() + T;
  while (await page.locator('.note.unread').count() === 0 && Date.now() < deadline) {
    await page.waitForTimeout(500);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Notifications' }).waitFor();
  }
  const unread = await page.locator('.note.unread').count();
  assert.ok(unread > 0, 'no notification arrived');
  assert.ok(await page.getByRole('button', { name: 'Load more' }).isHidden(), 'load more shown on the only page');
  await page.locator('.note.unread').first().getByRole('button', { name: 'Mark as read' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('.note.unread').length === n - 1, unread);

  // Reloading keeps the session (refresh token in sessionStorage, access token in memory only).
  await page.goto(orderUrl);
  await nav.getByRole('link', { name: 'Account', exact: true }).waitFor();
  assert.equal((await page.locator('.status').first().textContent()).trim(), 'Cancelled');

  // Sign out: the tab forgets the refresh token and the server revokes it.
  const refreshToken = await page.evaluate(() => sessionStorage.getItem('souk.refresh'));
  assert.ok(refreshToken);
  const revoked = page.waitForResponse((r) => r.url().endsWith('/oauth/revoke'));
  await nav.getByRole('link', { name: 'Account', exact: true }).click();
  await page.getByRole('link', { name: 'Sign out' }).click();
  await nav.getByRole('link', { name: 'Sign in' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.equal((await revoked).status(), 200);
  const reuse = await fetch(`${platform.url}/oauth/token`, { method: 'POST',
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'souk-web' }) });
  assert.equal(reuse.status, 400);

  assert.deepEqual(pageErrors, []);
});

test('the admin changes a product price with If-Match', async () => {
  const { items } = await (await fetch(`${platform.url}/api/v1/products?q=coffee&page_size=1`)).json();
  const p = items[0];
  await login(ADMIN.email, ADMIN.password);
  await nav.getByRole('link', { name: 'Admin' }).click();
  await page.getByRole('heading', { level: 1, name: 'Admin' }).waitFor();
  await page.getByLabel('Product id').fill(p.id);
  await page.getByRole('button', { name: 'Edit product' }).click();
  await page.getByRole('heading', { level: 1, name: 'Edit product' }).waitFor();
  const newPrice = (p.price_cents + 101) / 100;
  await page.getByLabel('Price ($)').fill(newPrice.toFixed(2));
  await page.getByRole('button', { name: 'Save price' }).click();
  await page.getByText(/^Price saved/).waitFor();
  const after = await (await fetch(`${platform.url}/api/v1/products/${p.id}`)).json();
  assert.equal(after.price_cents, p.price_cents + 101);

  // Someone else changes it meanwhile: the stale ETag is refused (412) and the page says so.
  const tok = await (await fetch(`${platform.url}/oauth/token`, { method: 'POST',
    body: new URLSearchParams({ grant_type: 'password', username: ADMIN.email, password: ADMIN.password, client_id: 'souk-web' }) })).json();
  const cur = await fetch(`${platform.url}/api/v1/products/${p.id}`);
  const r = await fetch(`${platform.url}/api/v1/products/${p.id}`, { method: 'PATCH',
    headers: { Authorization: `Bearer ${tok.access_token}`, 'Content-Type': 'application/json', 'If-Match': cur.headers.get('ETag') },
    body: JSON.stringify({ price_cents: 777 }) });
  assert.equal(r.status, 200);
  await page.getByLabel('Price ($)').fill('9.99');
  await page.getByRole('button', { name: 'Save price' }).click();
  await page.getByText(/Someone changed this product meanwhile/).waitFor();
  assert.equal(await page.getByLabel('Price ($)').inputValue(), '7.77');
  assert.deepEqual(pageErrors, []);
});

test('the admin sees the checkout of an order as a trace waterfall', async () => {
  await login(ADMIN.email, ADMIN.password);
  await nav.getByRole('link', { name: 'Admin' }).click();
  await page.getByRole('heading', { level: 1, name: 'Admin' }).waitFor();
  await page.locator('.admin tbody a').first().click();   // the newest order: the shopper's, checked out above
  await page.getByRole('heading', { level: 2, name: 'Checkout trace' }).waitFor();
  await page.getByText(/^\d+ spans from \d+ services/).waitFor();
  assert.doesNotMatch(await page.locator('.trace').textContent(), /null|undefined|NaN/);
  const rows = page.locator('.waterfall .span-row');
  await rows.first().waitFor();
  const spans = await rows.evaluateAll((rs) => rs.map((r) => ({
    service: r.dataset.service, depth: Number(r.dataset.depth), name: r.querySelector('.span-name').textContent,
    bar: r.querySelector('.span-bar').getBoundingClientRect().toJSON(),
    track: r.querySelector('.span-track').getBoundingClientRect().toJSON() })));
  const services = new Set(spans.map((s) => s.service));
  for (const s of ['gateway', 'orders', 'catalog', 'payments', 'cart', 'notify'])
    assert.ok(services.has(s), `no ${s} span in the waterfall: ${[...services]}`);
  // the tree: the gateway's request first, at depth 0; each row at most one deeper than the one before
  assert.equal(spans[0].service, 'gateway');
  assert.equal(spans[0].depth, 0);
  assert.match(spans[0].name, /^POST \/api\/v1\/orders/);
  spans.slice(1).forEach((s, i) => assert.ok(s.depth >= 1 && s.depth <= spans[i].depth + 1, `row ${i + 1}: ${JSON.stringify(s)}`));
  // the root's bar starts the timeline (the events' consumers may end after it); every
  // bar is drawn inside its track, none before the root's
  assert.ok(Math.abs(spans[0].bar.left - spans[0].track.left) < 1, JSON.stringify(spans[0]));
  for (const s of spans) {
    assert.ok(s.bar.width >= 1 && s.bar.left >= s.track.left - 1 && s.bar.right <= s.track.right + 1, JSON.stringify(s));
    assert.ok(s.bar.left - s.track.left >= spans[0].bar.left - spans[0].track.left - 1, JSON.stringify(s));
  }
  await page.locator('.trace').screenshot({ path: path.join(SHOTS, 'order-trace.png') });
  assert.deepEqual(pageErrors, []);
});

test('an expired access token is refreshed once; a lost checkout answer is retried with its key; a declined card ends in a rejected order', async () => {
  // The customer's cart, declined card and address, set up through the API.
  const c = await apiCustomer(platform.url, 'declined');
  const { items } = await apiJson(platform.url, 'GET', '/api/v1/products?q=coffee&in_stock=true&page_size=1');
  await apiJson(platform.url, 'PUT', `/api/v1/cart/items/${items[0].id}`, c.token, { quantity: 1 });
  await apiJson(platform.url, 'POST', '/api/v1/payment-methods', c.token,
    { card: { number: '4000000000000002', exp_month: 12, exp_year: new Date().getUTCFullYear() + 2, cvc: '123' } });
  await apiJson(platform.url, 'POST', '/api/v1/users/me/addresses', c.token,
    { name: 'Declined Shopper', line1: '2 Test Street', city: 'Lyon', postal_code: '69001', country: 'FR' });

  await login(c.email, c.password);
  // The next cart read answers 401 as if the access token had expired: the page
  // trades its refresh token once and repeats the call.
  let refused = 0;
  await page.route('**/api/v1/cart', (route) => {
    if (refused++ === 0) {
      return route.fulfill({ status: 401, contentType: 'application/problem+json',
        body: JSON.stringify({ type: 'about:blank', title: 'Unauthorized', status: 401, code: 'invalid_token', detail: 'token expired' }) });
    }
    return route.continue();
  });
  const refreshes = [];
  page.on('request', (r) => { if (r.url().endsWith('/oauth/token') && /grant_type=refresh_token/.test(r.postData() || '')) refreshes.push(r); });
  await nav.getByRole('link', { name: /^Cart/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Your cart' }).waitFor();
  await page.getByRole('link', { name: items[0].name }).waitFor();
  await page.unroute('**/api/v1/cart');
  assert.ok(refused >= 2, 'the refused call was not repeated');
  assert.equal(refreshes.length, 1);

  await page.getByRole('link', { name: 'Check out' }).click();
  await page.getByRole('radio', { name: /VISA •••• 0002/ }).check();
  await page.getByRole('radio', { name: /2 Test Street/ }).check();
  // The first answer is lost on the way back (the order was placed): the page offers a
  // retry, which sends the same Idempotency-Key and gets the same order back.
  const posts = [];
  page.on('request', (r) => { if (r.url().endsWith('/api/v1/orders') && r.method() === 'POST') posts.push(r); });
  await page.route('**/api/v1/orders', async (route) => {
    await route.fetch();
    await route.abort('connectionreset');
  }, { times: 1 });
  await page.getByRole('button', { name: 'Place order' }).click();
  await page.getByText(/retry safely/).waitFor();
  const replay = page.waitForResponse((r) => r.url().endsWith('/api/v1/orders') && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Place order' }).click();
  const res = await replay;
  assert.equal(res.headers()['idempotent-replayed'], 'true');
  assert.equal(posts.length, 2);
  assert.equal(posts[0].headers()['idempotency-key'], posts[1].headers()['idempotency-key']);
  await page.waitForURL(/\/orders\/ord_/);
  await page.getByText('The order could not be placed:').waitFor();
  await page.getByText('the card was declined').waitFor();
  assert.equal((await page.locator('.status').first().textContent()).trim(), 'Rejected');
  assert.equal(await page.getByRole('button', { name: 'Cancel order' }).count(), 0);
  assert.deepEqual(pageErrors, []);
});
