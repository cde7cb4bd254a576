// app.js: placeholder storefront script: shows how many products the API has.
fetch('/api/v1/products?page_size=1')
  .then((r) => r.json())
  .then((b) => { document.getElementById('status').textContent = `catalog reachable (${b.items.length ? 'has products' : 'empty'})`; })
  .catch(() => { document.getElementById('status').textContent = 'catalog unavailable'; });
