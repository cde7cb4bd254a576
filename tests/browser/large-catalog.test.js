// large-catalog.test.js: the storefront on a catalog of 100,000 products (issue 13):
// the shop page, a category, a search and a product each show their content within a
// second of being asked for. Each step is timed from the click in the storefront to its
// content, best of five tries, so a moment of load elsewhere on a shared machine does not
// decide it; a catalog whose pages cost what the catalog holds misses by far.
// The catalog is made by `catalog seed --products 100000` before `souk seed` (which then
// leaves it as it is), kept in build/test-cache/ keyed by the catalog binary.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Platform, launchBrowser, REPO } from './platform.js';

const BUILD = process.env.SOUK_BUILD_DIR || path.join(REPO, 'build');
const PRODUCTS = 100000;
const LIMIT_MS = 1000;
const TRIES = 5;
const T = 30000;

/** The seeded database for this catalog binary: made once, then copied. */
function seededCatalog() {
  const bin = path.join(BUILD, 'bin', 'catalog');
  const key = createHash('sha256').update(readFileSync(bin)).digest('hex').slice(0, 16);
  const dir = path.join(BUILD, 'test-cache');
  const cached = path.join(dir, `catalog-${PRODUCTS}-${key}.db`);
  if (existsSync(cached)) return cached;
  mkdirSync(dir, { recursive: true });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'souk-seed-'));
  try {
    const db = path.join(tmp, 'catalog.db');
    const r = spawnSync(bin, ['seed', '--products', String(PRODUCTS)], { encoding: 'utf8', timeout: 600000,
      env: { ...process.env, SOUK_VAR: tmp, SOUK_DB: `sqlite:${db}` } });
    if (r.status !== 0) throw new Error(`catalog seed exited ${r.status}: ${r.stderr}${r.stdout}`);
    // the seed checkpoints its load into the database file: nothing is left in a WAL
    if (existsSync(`${db}-wal`) && statSync(`${db}-wal`).size > 0) throw new Error('the seed left a WAL behind');
    copyFileSync(db, `${cached}.part`);
    renameSync(`${cached}.part`, cached);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return cached;
}

/** The platform, with the large catalog in place before `souk seed` runs. */
class LargeCatalogPlatform extends Platform {
  souk(...args) {
    if (args[0] === 'seed') {
      mkdirSync(path.join(this.var, 'db'), { recursive: true });
      copyFileSync(seededCatalog(), path.join(this.var, 'db', 'catalog.db'));
    }
    return super.souk(...args);
  }
}

let platform;
let browser;
let page;
const pageErrors = [];
const times = {};

before(async () => {
  platform = await new LargeCatalogPlatform().up();
  browser = await launchBrowser();
  page = browser.context.pages()[0] || await browser.context.newPage();
  page.setDefaultTimeout(T);
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  console.log(`large catalog, best of ${TRIES} (ms): ${JSON.stringify(times)}`);
  await browser?.close();
  platform?.down({ keep: process.env.KEEP_VAR === '1' });
});

/** The shop's product list has settled: its status line says how many it shows. */
const listShown = () => page.locator('.results [role=status]').filter({ hasText: /^Showing \d+ product/ }).waitFor();

/** Best time of TRIES runs of setup() then act() until done(); asserts under LIMIT_MS. */
async function timed(name, setup, act, done) {
  let best = Infinity;
  for (let i = 0; i < TRIES && best >= LIMIT_MS; i++) {
    await setup();
    const t0 = Date.now();
    await act();
    await done();
    best = Math.min(best, Date.now() - t0);
  }
  times[name] = best;
  assert.ok(best < LIMIT_MS, `${name} took ${best} ms at best of ${TRIES} (limit ${LIMIT_MS} ms)`);
}

test('the shop, a category, a search and a product, each within a second at 100k products', async () => {
  const cats = await (await fetch(`${platform.url}/api/v1/categories`)).json();
  assert.equal(cats.items.reduce((n, c) => n + c.product_count, 0), PRODUCTS);
  const kitchen = cats.items.find((c) => c.slug === 'kitchen');

  // The first visit loads the storefront's code too, which costs the same at any catalog
  // size and mostly measures the browser on a busy machine: logged, not held to the limit.
  const t0 = Date.now();
  await page.goto(`${platform.url}/`);
  await page.locator('html[data-ready]').waitFor({ state: 'attached' });
  await listShown();
  times['first visit (not held)'] = Date.now() - t0;
  const shop = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Shop', exact: true });
  await timed('shop page', () => page.goto(`${platform.url}/?q=mug`).then(listShown), () => shop.click(), async () => {
    await page.getByRole('heading', { level: 1, name: 'All products' }).waitFor();
    await listShown();
  });
  assert.ok(await page.locator('.grid .card').count() >= 20);

  const catLink = page.getByRole('navigation', { name: 'Categories' }).getByRole('link', { name: kitchen.name });
  await timed('a category', () => page.goto(`${platform.url}/`).then(listShown), () => catLink.click(), async () => {
    await page.getByRole('heading', { level: 1, name: kitchen.name }).waitFor();
    await listShown();
  });
  // its count is the maintained one, and it is the catalog's: thousands, not the demo's 86
  assert.match(await catLink.textContent(), new RegExp(`${kitchen.product_count}$`));
  assert.ok(kitchen.product_count > 5000, `kitchen has ${kitchen.product_count}`);
  const hrefs = await page.locator('.grid .card-link').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.ok(hrefs.length >= 20 && new Set(hrefs).size === hrefs.length);

  const search = page.getByRole('searchbox', { name: 'Search products' });
  await timed('a search', () => page.goto(`${platform.url}/`).then(listShown).then(() => search.fill('coffee')),
    () => page.getByRole('button', { name: 'Search', exact: true }).click(), async () => {
      await page.getByRole('heading', { level: 1, name: 'Results for “coffee”' }).waitFor();
      await listShown();
    });
  const names = await page.locator('.grid .card-name').allTextContents();
  assert.ok(names.length >= 20);
  assert.ok(names.every((n) => /coffee/i.test(n)), `top results not about coffee: ${names}`);

  const first = page.locator('.grid .card-link').first();
  const productName = (await page.locator('.grid .card-name').first().textContent()).trim();
  const productUrl = await first.getAttribute('href');
  await timed('a product', () => page.goto(`${platform.url}/?q=coffee`).then(listShown), () => first.click(), async () => {
    await page.getByRole('heading', { level: 1, name: productName }).waitFor();
  });
  assert.equal(new URL(page.url()).pathname, productUrl);
  assert.deepEqual(pageErrors, []);
});
