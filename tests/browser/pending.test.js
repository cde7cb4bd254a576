// pending.test.js: checkout and cancel when orders answers before the saga settles
// (SOUK_ORDERS_WAIT_MS=0, and a card whose first authorisation fails transiently so
// the saga needs a retry): the storefront gets 202 pending, shows the order, and
// polls GET /api/v1/orders/{id} until it is confirmed; a cancel settles the same way.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Platform, launchBrowser, watchErrors, signIn, apiJson, apiCustomer } from './platform.js';

const T = 15000;
let platform;
let browser;
let page;
const pageErrors = [];

before(async () => {
  platform = await new Platform({ SOUK_ORDERS_WAIT_MS: '0' }).up();
  browser = await launchBrowser();
  page = browser.context.pages()[0] || await browser.context.newPage();
  page.setDefaultTimeout(T);
  watchErrors(page, pageErrors);   // exceptions and CSP violations fail the tests
  page.on('dialog', (d) => d.accept());
});

after(async () => {
  await browser?.close();
  platform?.down({ keep: process.env.KEEP_VAR === '1' });
});

test('a 202 pending checkout is polled until confirmed, then cancelled', async () => {
  const c = await apiCustomer(platform.url, 'pending');
  const { items } = await apiJson(platform.url, 'GET', '/api/v1/products?q=coffee&in_stock=true&page_size=1');
  await apiJson(platform.url, 'PUT', `/api/v1/cart/items/${items[0].id}`, c.token, { quantity: 1 });
  // 4000000000000119: the first authorisation of each key fails with processing_error; the saga retries after a backoff.
  await apiJson(platform.url, 'POST', '/api/v1/payment-methods', c.token,
    { card: { number: '4000000000000119', exp_month: 12, exp_year: new Date().getUTCFullYear() + 2, cvc: '123' } });
  await apiJson(platform.url, 'POST', '/api/v1/users/me/addresses', c.token,
    { name: 'Pending Shopper', line1: '3 Test Street', city: 'Oslo', postal_code: '0150', country: 'NO' });

  await signIn(page, platform.url, c.email, c.password);
  await page.goto(`${platform.url}/checkout`);
  await page.getByRole('heading', { level: 1, name: 'Checkout' }).waitFor();
  const placed = page.waitForResponse((r) => r.url().endsWith('/api/v1/orders') && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Place order' }).click();
  const res = await placed;
  assert.equal(res.status(), 202, await res.text());
  assert.equal((await res.json()).status, 'pending');
  const key = res.request().headers()['idempotency-key'];
  assert.match(key, /^web-[0-9a-f]{32}$/);

  await page.waitForURL(/\/orders\/ord_[^?]+\?placed=1/);
  await page.getByText('Thank you! Your order is confirmed.').waitFor();
  assert.equal((await page.locator('.status').first().textContent()).trim(), 'Confirmed');

  await page.getByRole('button', { name: 'Cancel order' }).click();
  await page.locator('.status').filter({ hasText: 'Cancelled' }).waitFor();
  await page.getByText(/refunded/).first().waitFor();
  assert.equal(await page.getByRole('button', { name: 'Cancel order' }).count(), 0);
  assert.deepEqual(pageErrors, []);
});
