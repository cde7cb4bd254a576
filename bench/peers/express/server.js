// server.js: the benchmark peer — the catalog's product reads served by Express and
// better-sqlite3, the way a Node developer would write them (one process, defaults).
// Env: PORT (listen on 127.0.0.1), DB_PATH (the catalog's SQLite file, opened read-only).
'use strict';

const express = require('express');
const Database = require('better-sqlite3');

const port = Number(process.env.PORT || 3000);
const db = new Database(process.env.DB_PATH || 'catalog.db', { readonly: true, fileMustExist: true });

const COLUMNS = `p.id, p.sku, p.name, p.description, p.price_cents, p.currency, p.category,
  p.image_url, p.attributes, p.on_hand - p.reserved AS stock_available, p.created_at,
  p.updated_at, p.version`;
const getProduct = db.prepare(`SELECT ${COLUMNS} FROM products p WHERE p.id = ? AND p.archived = 0`);
// The two listings the benchmark asks for: a category by price, and full-text search.
const listByCategoryPrice = db.prepare(`SELECT ${COLUMNS} FROM products p
  WHERE p.archived = 0 AND (@category IS NULL OR p.category = @category)
  ORDER BY p.price_cents, p.id LIMIT @limit`);
const search = db.prepare(`SELECT ${COLUMNS}
  FROM products_fts f JOIN products p ON p.rid = f.rowid
  WHERE products_fts MATCH @match AND p.archived = 0
  ORDER BY bm25(products_fts, 10.0, 1.0), p.id LIMIT @limit`);

function toProduct(row) {
  const { version, ...product } = row;
  product.attributes = JSON.parse(product.attributes);
  return { product, etag: `"v${version}"` };
}

const app = express();

app.get('/api/v1/products/:id', (req, res) => {
  const row = getProduct.get(req.params.id);
  if (!row) {
    return res.status(404).type('application/problem+json').json({
      type: 'about:blank', title: 'Not Found', status: 404, code: 'product_not_found',
      detail: `no product ${req.params.id}`,
    });
  }
  const { product, etag } = toProduct(row);
  res.set('ETag', etag);
  res.json(product);
});

app.get('/api/v1/products', (req, res) => {
  const limit = Math.min(Math.max(parseInt(req.query.page_size, 10) || 20, 1), 100);
  const q = typeof req.query.q === 'string' ? req.query.q : '';
  const words = q.match(/[\p{L}\p{N}]+/gu) || [];
  let rows;
  if (words.length > 0) {
    rows = search.all({ match: words.map((w) => `"${w}"*`).join(' '), limit });
  } else {
    const category = typeof req.query.category === 'string' ? req.query.category : null;
    rows = listByCategoryPrice.all({ category, limit });
  }
  res.json({ items: rows.map((r) => toProduct(r).product), next_page_token: null });
});

app.get('/readyz', (req, res) => res.json({ status: 'ready' }));

app.listen(port, '127.0.0.1', () => console.log(`express peer on 127.0.0.1:${port}`));
