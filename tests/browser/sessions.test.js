// The dashboard's session cookie in Debian's Chromium with a real (persistent) profile:
// after the dashboard signed in, a page on another loopback port and a paired extension's
// service worker each hold an events-only token bound to their origin, and each tries to
// open /ws with no token, relying on the cookie. Neither may become the owner. A recorder
// on a third loopback port shows whether Chromium attaches the cookie at all in each case
// (cookies ignore the port, so what reaches the recorder would reach the hub); the test
// prints what it saw as `OBSERVED ...` lines. Then the dashboard's Sign out control ends
// the session and deletes the cookie.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, startHub, stopHub, signInUrl, waitConnected, tempDir, hubToken, connectRpc, rpcInPage, waitFor } from './helpers.js';

/** A fixed public key pins the extension id (Chrome derives the id from `key`). */
const KEY = 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA50KauTtcAZ67IxqRxeoYcmDv02wZGzqi7aZeDbnT4h2UnZVFlRnpqwd6lG++wfBsjBDuOzUdK1TjdwFmo7UcfEXBmcreZmdY8jRG6Vqbob9u8eEpMfZaYqtHrAEDv7QILjQKvhK42sA3xrgc+ZK4gZHXRvZJE1Vnrrs/TiNE3RhUExz6mMY3TK2aY9yFRADtIqwfXg3juW9ZMkjTrv3jFCBnVy6amQFgP3L5pqop5Qm0ARJftIdJMbJ9h5Gvb5cOu4OXrewJgLDmp7LU6hXa0B7TbTqm2ItT+uJA1SRtEsGZSSRmXNwItxDonKBVfW1wxlcGhiZxWGl07OrbI0yo2QIDAQAB';
const EXT_ID = 'gicphdoffnhcbkipgfnlgmgnelkbhhlg';
const EXT_ORIGIN = `chrome-extension://${EXT_ID}`;

let hub;
let owner;
let other; // serves the other-port page and records WebSocket upgrades
let profile;
let context;
let dashboard;
let sw;

/**
 * An HTTP server on another loopback port: `GET /` is a plain page; every WebSocket
 * upgrade is recorded (its headers) and dropped.
 */
async function otherPortServer() {
  const upgrades = [];
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>another app</title><p>another app on loopback');
  });
  server.on('upgrade', (req, socket) => { upgrades.push(req.headers); socket.destroy(); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    upgrades,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

/** A minimal MV3 extension with the reference extension's host permissions and `key`. */
function buildExtension(dir) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({
    manifest_version: 3,
    name: 'session cookie probe',
    version: '0.1.0',
    key: KEY,
    background: { service_worker: 'sw.js' },
    permissions: ['storage'],
    host_permissions: ['http://127.0.0.1/*', 'http://localhost/*'],
  }));
  fs.writeFileSync(path.join(dir, 'sw.js'), 'self.ready = true;\n');
  return dir;
}

/**
 * Runs in the page or the service worker: opens a WebSocket to `url` (with `protocols`
 * if given), and once open asks for an admin token with `client.create`. Resolves with
 * `{opened, created}` (`created`: `ok` or the error kind) or `{opened, closeCode}`.
 */
function tryWebSocket({ url, protocols }) {
  return new Promise((resolve) => {
    const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
    let opened = false;
    const timer = setTimeout(() => { try { ws.close(); } catch { /* ignore */ } resolve({ opened, timedOut: true }); }, 15_000);
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'client.create', params: { name: 'stolen', scopes: ['admin'] } }));
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.id !== 1) return;
      clearTimeout(timer);
      ws.close();
      resolve({ opened, created: m.error ? (m.error.data?.kind ?? 'error') : 'ok' });
    };
    ws.onclose = (ev) => { clearTimeout(timer); resolve({ opened, closeCode: ev.code }); };
  });
}

/** Whether a recorded upgrade carried the session cookie. */
const carriesSession = (headers) => /(^|;\s*)semantest_session=[0-9a-f]{64}/.test(headers.cookie ?? '');

/** Opens a WebSocket from `where` (a page or the worker) to the recorder; returns its headers. */
async function recordUpgrade(where) {
  const before = other.upgrades.length;
  await where.evaluate(tryWebSocket, { url: `ws://127.0.0.1:${other.port}/probe` });
  await waitFor(() => other.upgrades.length > before, { message: 'the recorded upgrade' });
  return other.upgrades[other.upgrades.length - 1];
}

before(async () => {
  hub = await startHub();
  owner = await connectRpc(hub, { token: await hubToken(hub.dataDir) });
  other = await otherPortServer();
  const extDir = buildExtension(path.join(await tempDir('session-ext-'), 'extension'));
  profile = await tempDir('session-profile-');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--disable-extensions'],
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      `--disable-extensions-except=${extDir}`, `--load-extension=${extDir}`,
    ],
  });
  sw = context.serviceWorkers().find((w) => w.url().startsWith(EXT_ORIGIN))
    ?? await context.waitForEvent('serviceworker', { predicate: (w) => w.url().startsWith(EXT_ORIGIN), timeout: 15_000 });
  // The dashboard signs in through a one-time link: the cookie is now in the profile.
  dashboard = await context.newPage();
  await dashboard.goto(await signInUrl(hub.dataDir));
  await waitConnected(dashboard);
});

after(async () => {
  await context?.close();
  owner?.close?.();
  await other?.close();
  await stopHub(hub);
});

test('the dashboard itself is the owner through its cookie', async () => {
  const clients = await rpcInPage(dashboard, 'client.list', {});
  assert.ok(Array.isArray(clients.clients), JSON.stringify(clients));
});

test('a page on another loopback port with an events token does not become the owner through the cookie', async () => {
  const { token } = await owner.request('client.create', { name: 'other-port page', scopes: ['events'], origin: other.origin });
  const page = await context.newPage();
  await page.goto(`${other.origin}/`);
  const seen = await recordUpgrade(page);
  const attached = carriesSession(seen);
  console.log(`OBSERVED page ${other.origin} -> ws://127.0.0.1:<other port>: Origin ${seen.origin}, session cookie ${attached ? 'attached' : 'not attached'}`);
  // The attack's premise: cookies ignore the port, so Chromium sends the dashboard's
  // cookie with this page's WebSocket.
  assert.ok(attached, `the cookie should reach another port of 127.0.0.1: ${JSON.stringify(seen)}`);
  assert.equal(seen.origin, other.origin);

  const hubWs = `ws://127.0.0.1:${hub.port}/ws`;
  const cookieOnly = await page.evaluate(tryWebSocket, { url: hubWs });
  assert.equal(cookieOnly.opened, false, `the cookie alone opened the hub: ${JSON.stringify(cookieOnly)}`);
  const withToken = await page.evaluate(tryWebSocket, { url: hubWs, protocols: ['semantest-hub.v1', `semantest-hub.token.${token}`] });
  assert.deepEqual(withToken, { opened: true, created: 'FORBIDDEN' });
  await page.close();
});

test("a paired extension's service worker with an events token does not become the owner through the cookie", async () => {
  const { token } = await owner.request('client.create', { name: 'extension', scopes: ['events'], origin: EXT_ORIGIN });
  const seen = await recordUpgrade(sw);
  const attached = carriesSession(seen);
  console.log(`OBSERVED extension service worker (host_permissions http://127.0.0.1/*) -> ws://127.0.0.1:<other port>: Origin ${seen.origin}, session cookie ${attached ? 'attached' : 'not attached'}`);
  assert.equal(seen.origin, EXT_ORIGIN);

  const hubWs = `ws://127.0.0.1:${hub.port}/ws`;
  const cookieOnly = await sw.evaluate(tryWebSocket, { url: hubWs });
  assert.equal(cookieOnly.opened, false, `the cookie alone opened the hub: ${JSON.stringify(cookieOnly)}`);
  const withToken = await sw.evaluate(tryWebSocket, { url: hubWs, protocols: ['semantest-hub.v1', `semantest-hub.token.${token}`] });
  assert.deepEqual(withToken, { opened: true, created: 'FORBIDDEN' });
});

test('Sign out ends the session and deletes the cookie', async () => {
  const sessionCookie = async () => (await context.cookies(`http://127.0.0.1:${hub.port}/`)).find((c) => c.name === 'semantest_session');
  const before = await sessionCookie();
  assert.ok(before?.value, 'signed in');
  await dashboard.getByRole('button', { name: 'Sign out', exact: true }).click();
  await dashboard.locator('#signed-out').waitFor({ state: 'visible', timeout: 15_000 });
  assert.match(await dashboard.locator('#conn-status').innerText(), /Signed out/);
  assert.equal(await sessionCookie(), undefined, 'the cookie is deleted');
  // The old value no longer signs anyone in, even from the dashboard's own origin.
  const replay = await new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1', port: hub.port, path: '/session/check', method: 'POST',
      headers: { Origin: `http://127.0.0.1:${hub.port}`, Cookie: `semantest_session=${before.value}` },
    }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', () => resolve(0));
    req.end();
  });
  assert.equal(replay, 401);
  await dashboard.reload();
  await dashboard.locator('#signed-out').waitFor({ state: 'visible', timeout: 15_000 });
});

test('Sign out everywhere in Settings ends every session, in every tab', async () => {
  // Two sessions: each page signs in through its own link (the second replaces the
  // profile's cookie; the first page's socket still runs on the first session).
  const first = await context.newPage();
  await first.goto(await signInUrl(hub.dataDir));
  await waitConnected(first);
  const second = await context.newPage();
  await second.goto(`${await signInUrl(hub.dataDir)}#/settings`);
  await waitConnected(second);
  await second.getByRole('button', { name: 'Sign out everywhere' }).click();
  for (const page of [second, first]) {
    await page.locator('#signed-out').waitFor({ state: 'visible', timeout: 20_000 });
  }
  const cookies = (await context.cookies(`http://127.0.0.1:${hub.port}/`)).filter((c) => c.name === 'semantest_session');
  assert.deepEqual(cookies, [], 'the cookie is deleted');
  // The owner token's connection is no session and carries on.
  const status = await owner.request('hub.status', {});
  assert.equal(status.product, 'semantest-hub');
  await first.close();
  await second.close();
});
