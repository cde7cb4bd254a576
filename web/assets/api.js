// api.js: every call the storefront makes to the gateway: JSON fetch, the session
// (access token in memory, refresh token in sessionStorage, one refresh on a 401),
// and problem+json errors turned into ApiError for the views to show.

const REFRESH_KEY = 'souk.refresh';
const CLIENT_ID = 'souk-web';

let accessToken = null;
let claims = null;            // decoded access-token payload: sub, roles, exp
let refreshing = null;        // the one refresh in flight: rotated tokens must never be sent twice
const listeners = new Set();

/** An error the user can read: status, stable code, detail and field errors. */
export class ApiError extends Error {
  constructor(status, problem) {
    const text = String(problem.detail || problem.error_description || problem.title || `Request failed (${status})`);
    super(text.charAt(0).toUpperCase() + text.slice(1));
    this.status = status;
    this.code = problem.code || problem.error || null;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.problem = problem;
  }
}

function decodeClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

function setTokens(body) {
  accessToken = body ? body.access_token : null;
  claims = accessToken ? decodeClaims(accessToken) : null;
  if (body && body.refresh_token) sessionStorage.setItem(REFRESH_KEY, body.refresh_token);
  if (!body) sessionStorage.removeItem(REFRESH_KEY);
  for (const fn of listeners) fn(session());
}

/** The signed-in user as far as the token says, or null. */
export function session() {
  if (!claims) return null;
  return { id: claims.sub, roles: claims.roles || [], admin: (claims.roles || []).includes('admin') };
}

export function onSession(fn) { listeners.add(fn); }

/** Reads a response into JSON, or throws ApiError (problem+json or anything else). */
async function readBody(res) {
  if (res.status === 204) return null;
  const text = await res.text();
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch { body = { detail: text.slice(0, 200) }; }
  }
  if (!res.ok) throw new ApiError(res.status, body || { title: res.statusText });
  return body;
}

async function tokenRequest(params) {
  let res;
  try {
    res = await fetch('/oauth/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams({ client_id: CLIENT_ID, ...params }),
    });
  } catch {
    throw new ApiError(0, { detail: 'The shop cannot be reached. Check your connection and try again.' });
  }
  return readBody(res);
}

export async function login(email, password) {
  setTokens(await tokenRequest({ grant_type: 'password', username: email, password }));
  return session();
}

/** Trades the stored refresh token for new tokens; false when there is none or it was refused. */
export function refresh() {
  if (refreshing) return refreshing;
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return Promise.resolve(false);
  refreshing = tokenRequest({ grant_type: 'refresh_token', refresh_token: token })
    .then((body) => { setTokens(body); return true; })
    .catch((err) => {
      // A refused refresh token ends the session; a network failure keeps it for later.
      if (err.status >= 400 && err.status < 500) setTokens(null);
      return false;
    })
    .finally(() => { refreshing = null; });
  return refreshing;
}

export async function logout() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  setTokens(null);
  if (token) {
    fetch('/oauth/revoke', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, token_type_hint: 'refresh_token', client_id: CLIENT_ID }),
    }).catch(() => {});
  }
}

/** Restores a session after a reload from the refresh token kept for this tab. */
export async function resume() {
  if (!accessToken && sessionStorage.getItem(REFRESH_KEY)) await refresh();
  return session();
}

/**
 * One API call. opts: {method, body (JSON-encoded), headers, raw (return {body, status, headers})}.
 * A 401 with a session refreshes once and repeats the call.
 */
export async function api(path, opts = {}) {
  const attempt = async () => {
    const headers = { Accept: 'application/json', ...(opts.headers || {}) };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
    try {
      return await fetch(path, {
        method: opts.method || 'GET',
        headers,
        cache: opts.cache || 'default',
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      });
    } catch {
      throw new ApiError(0, { detail: 'The shop cannot be reached. Check your connection and try again.' });
    }
  };
  let res = await attempt();
  const hadSession = accessToken !== null;
  if (res.status === 401 && sessionStorage.getItem(REFRESH_KEY) && (await refresh())) res = await attempt();
  if (res.status === 401 && hadSession && !session()) {
    throw new ApiError(401, { code: 'session_ended', detail: 'Your session has ended. Please sign in again.' });
  }
  const body = await readBody(res);
  return opts.raw ? { status: res.status, headers: res.headers, body } : body;
}

/** A random idempotency key (works outside secure contexts too). */
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
