// router.js: history-API routing for the single page: a table of path patterns
// ("/products/:id") to view functions, link interception, and focus management
// so keyboard and screen-reader users land on the new page's heading.

const routes = [];
let notFound = null;
let current = 0;   // navigation counter: a slow view that finished late does not overwrite a newer one

export function route(pattern, view) {
  const names = [];
  const re = new RegExp('^' + pattern.replace(/:(\w+)/g, (_, n) => { names.push(n); return '([^/]+)'; }) + '/?$');
  routes.push({ re, names, view });
}

export function fallback(view) { notFound = view; }

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  return render();
}

/** Re-renders the current URL (after sign-in, for example). */
export async function render() {
  const nav = ++current;
  const { pathname, searchParams } = new URL(location.href);
  let view = notFound;
  let params = {};
  for (const r of routes) {
    const m = r.re.exec(pathname);
    if (m) {
      view = r.view;
      r.names.forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
      break;
    }
  }
  const main = document.getElementById('main');
  main.setAttribute('aria-busy', 'true');
  const stale = () => nav !== current;
  try {
    let node;
    try {
      node = await view({ params, query: searchParams, stale });
    } catch (err) {   // a bug or an unexpected answer: say so instead of leaving the old page
      console.error(err);
      node = document.createElement('section');
      node.innerHTML = '<h1>Something went wrong</h1><p role="alert"></p><p><a href="/">Back to the shop</a></p>';
      node.querySelector('p').textContent = err && err.message ? err.message : String(err);
    }
    if (stale()) return;
    main.replaceChildren(node);
  } finally {
    if (!stale()) main.removeAttribute('aria-busy');
  }
  document.dispatchEvent(new CustomEvent('routed', { detail: { pathname } }));
  const heading = main.querySelector('h1');
  if (heading) {
    document.title = `${heading.textContent} · souk`;
    if (nav > 1) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: true }); }
  }
  if (nav > 1 && !location.hash) window.scrollTo(0, 0);
}

export function start() {
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener('popstate', () => render());
  return render();
}
