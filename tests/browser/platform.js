// platform.js: the whole souk platform for browser tests: `souk seed` and `souk up -d`
// in a temporary SOUK_VAR on a free port range (gateway = base + 0, as in
// tests/e2e/conftest.py), serving this checkout's web/; stopped with `souk down`
// and then by PID. Also launches Debian's chromium through playwright-core.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(process.env.SOUK_BUILD_DIR || path.join(REPO, 'build'), 'bin');
// services.txt: each service listens on base + (its port - 8080), the gateway on the base
const OFFSETS = readFileSync(path.join(REPO, 'services.txt'), 'utf8').split('\n')
  .map((line) => line.trim().split(/\s+/))
  .filter((w) => w[0] === 'service' || w[0] === 'edge')
  .map((w) => Number(w[2]) - 8080);

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base whose service ports (and the gateway's admin port, base + 1100, cli/README.md)
 *  are free, away from the default 8080-8086 and below the kernel's ephemeral range
 *  (32768+), where outgoing connections could take a port between this check and the
 *  services' bind. */
async function freePortBase() {
  for (let i = 0; i < 200; i++) {
    const base = 20000 + 10 * Math.floor(Math.random() * 1160);   // base + 1100 < 32768
    let ok = true;
    for (const off of OFFSETS) ok = ok && await portFree(base + off);
    ok = ok && await portFree(base + 1100);   // the gateway's admin listener (/metrics)
    if (ok) return base;
  }
  throw new Error('no free port range');
}

export class Platform {
  constructor(env = {}) {
    this.extraEnv = env;
  }

  souk(...args) {
    const r = spawnSync(path.join(BIN, 'souk'), args, { env: this.env, encoding: 'utf8', timeout: 60000 });
    if (r.status !== 0) throw new Error(`souk ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async up() {
    if (!existsSync(path.join(BIN, 'souk'))) throw new Error(`${BIN}/souk is missing: run make first`);
    this.var = mkdtempSync(path.join(os.tmpdir(), 'souk-browser-'));
    this.base = await freePortBase();
    this.url = `http://127.0.0.1:${this.base}`;
    this.env = { ...process.env, SOUK_VAR: this.var, SOUK_PORT_BASE: String(this.base), SOUK_BIN_DIR: BIN,
      SOUK_WEB_DIR: path.join(REPO, 'web'), ...this.extraEnv };
    this.souk('seed');
    this.souk('up', '-d');   // returns once every instance answers /readyz
    return this;
  }

  pids() {
    const pids = [];
    try {
      for (const line of readFileSync(path.join(this.var, 'run', 'souk.state'), 'utf8').split('\n')) {
        const pid = Number(line.split(/\s+/)[3]);
        if (pid > 0) pids.push(pid);
      }
      pids.push(Number(readFileSync(path.join(this.var, 'run', 'souk.pid'), 'utf8').split(/\s+/)[0]));
    } catch { /* not started, or already stopped cleanly */ }
    return pids.filter((p) => p > 0);
  }

  down({ keep = false } = {}) {
    if (!this.var) return;
    const pids = this.pids();
    spawnSync(path.join(BIN, 'souk'), ['down'], { env: this.env, timeout: 30000 });
    for (const pid of pids) {   // belt and braces: nothing may outlive the test
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (!keep) rmSync(this.var, { recursive: true, force: true });
  }
}

/** Debian's chromium (never a downloaded browser) with a fresh profile. */
export async function launchBrowser() {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'souk-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/** Collect into errors what must never happen on a page: uncaught exceptions, and
 *  Content-Security-Policy violations (chromium reports each as a console error, e.g.
 *  "Refused to execute inline script because it violates … Content Security Policy"). */
export function watchErrors(page, errors) {
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Content-Security-Policy/i.test(m.text())) {
      errors.push(`CSP violation: ${m.text()}`);
    }
  });
}

/** A JSON call to the platform's API (test setup); throws with the status and body when not 2xx. */
export async function apiJson(base, method, url, token, body) {
  const r = await fetch(`${base}${url}`, { method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body && JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Registers a customer through the API and returns {email, password, token}. */
export async function apiCustomer(base, name) {
  const email = `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@browser.test`;
  const password = 'a long test passphrase';
  await apiJson(base, 'POST', '/api/v1/users', null, { email, password, name });
  const r = await fetch(`${base}/oauth/token`, { method: 'POST',
    body: new URLSearchParams({ grant_type: 'password', username: email, password, client_id: 'souk-web' }) });
  if (!r.ok) throw new Error(`login: ${r.status} ${await r.text()}`);
  return { email, password, token: (await r.json()).access_token };
}

/** Signs in through the storefront's form and waits for the shop page it returns to. */
export async function signIn(page, base, email, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => u.pathname === '/');
  await page.getByRole('heading', { level: 1, name: 'All products' }).waitFor();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account', exact: true }).waitFor();
}
