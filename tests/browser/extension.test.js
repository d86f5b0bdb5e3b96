// The reference extension (extension/) in Debian's Chromium, headless, against real hubs:
// a local one, and a public-mode one on another loopback port with TLS from a certificate
// made here (trusted with --ignore-certificate-errors-spki-list). Scenarios 1–7 of the
// extension work, each asserting what the popup shows, plus a hostile web page, and the
// figures (median of 5) printed at the end and written to
// target/test-artifacts/extension-figures.json.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, CHROMIUM, waitFor, tempDir, screenshot } from './helpers.js';
import { startHub, stopHub, makeCert, ownerConnection, wsClass, sdkFetch } from '../../clients/js/test/helpers.js';
import { HubClient, memoryStorage, STORAGE_KEYS } from '../../clients/js/src/index.js';
import { buildExtension } from '../../extension/build.mjs';

/** A fixed public key pins the extension id (Chrome derives the id from `key`). */
const KEY = 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA50KauTtcAZ67IxqRxeoYcmDv02wZGzqi7aZeDbnT4h2UnZVFlRnpqwd6lG++wfBsjBDuOzUdK1TjdwFmo7UcfEXBmcreZmdY8jRG6Vqbob9u8eEpMfZaYqtHrAEDv7QILjQKvhK42sA3xrgc+ZK4gZHXRvZJE1Vnrrs/TiNE3RhUExz6mMY3TK2aY9yFRADtIqwfXg3juW9ZMkjTrv3jFCBnVy6amQFgP3L5pqop5Qm0ARJftIdJMbJ9h5Gvb5cOu4OXrewJgLDmp7LU6hXa0B7TbTqm2ItT+uJA1SRtEsGZSSRmXNwItxDonKBVfW1wxlcGhiZxWGl07OrbI0yo2QIDAQAB';
const EXT_ID = 'gicphdoffnhcbkipgfnlgmgnelkbhhlg';
const ORIGIN = `chrome-extension://${EXT_ID}`;
const BACKOFF = { initialMs: 250, maxMs: 1000 };

let tls;
let local;
let pub;
let foreign;
let impostor;
let extDir;
let profile;
let context;
let sw;
let popup;
const figures = { cold_start_to_local_ms: [], local_gone_to_public_ms: [], local_back_to_local_ms: [], round_trip_local_ms: [], round_trip_public_ms: [] };

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };
const shot = (name) => screenshot(popup, `extension-${name}`);

async function recordingServer(handler) {
  const seen = [];
  const s = http.createServer((req, res) => { seen.push({ url: req.url, headers: req.headers }); handler(req, res); });
  s.on('upgrade', (req, sock) => { seen.push({ url: req.url, headers: req.headers, upgrade: true }); sock.destroy(); });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  return { port: s.address().port, seen, close: () => new Promise((r) => { s.closeAllConnections?.(); s.close(r); }) };
}

function startLocal(opts = {}) { return startHub({ allowedOrigins: [ORIGIN], ...opts }); }
function startPublic(opts = {}) { return startHub({ allowedOrigins: [ORIGIN], publicTls: tls, ...opts }); }

async function launch() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--disable-extensions'],
    viewport: { width: 360, height: 640 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      `--disable-extensions-except=${extDir}`, `--load-extension=${extDir}`,
      `--ignore-certificate-errors-spki-list=${tls.spki}`,
      '--host-resolver-rules=MAP evil.test 127.0.0.1',
    ],
  });
  sw = context.serviceWorkers().find((w) => w.url().startsWith(ORIGIN)) ?? await context.waitForEvent('serviceworker', { predicate: (w) => w.url().startsWith(ORIGIN), timeout: 15_000 });
}

async function openPopup() {
  popup = await context.newPage();
  await popup.goto(`${ORIGIN}/popup.html`);
}

const swState = () => sw.evaluate(() => self.hub?.state ?? null);
async function waitSwMode(mode, timeout = 20_000) {
  return waitFor(async () => { const s = await swState(); return s?.mode === mode ? s : null; }, { timeout, interval: 20, message: `service worker mode ${mode}` });
}
async function waitPopupMode(mode, timeout = 20_000) {
  await popup.locator(`#mode[data-mode="${mode}"]`).waitFor({ timeout });
  assert.equal(await popup.locator('#mode').textContent(), mode);
}
const badgeText = () => sw.evaluate(() => chrome.action.getBadgeText({}));
/** The toolbar badge shows `text`: `chrome.action` updates land asynchronously, so the
 * popup may show the new mode a moment before the badge does. */
async function expectBadge(text) {
  try {
    await waitFor(async () => (await badgeText()) === text, { timeout: 5_000, message: `badge ${text}` });
  } catch (err) {
    // Say what the badge and the worker show instead, to tell a late badge from a mode
    // that moved on.
    const s = await swState();
    throw new Error(`${err.message}: the badge shows ${JSON.stringify(await badgeText())}, the service worker is ${s?.mode} (last error ${JSON.stringify(s?.lastError ?? null)})`);
  }
  assert.equal(await badgeText(), text);
}
const cmd = (c, extra = {}) => popup.evaluate(([c, extra]) => chrome.runtime.sendMessage({ cmd: c, ...extra }), [c, extra]);

/** A node client of the same SDK, subscribed to answer demo.ping on whichever hub it reaches. */
async function responder(hub) {
  const c = new HubClient({
    ports: hub.publicTls ? [] : [hub.port],
    publicUrls: hub.publicTls ? [hub.base] : [],
    storage: memoryStorage({ [hub.publicTls ? STORAGE_KEYS.publicToken : STORAGE_KEYS.localToken]: { token: hub.token, clientId: 'owner' } }),
    WebSocket: wsClass({ ca: tls.pem }),
    fetch: sdkFetch({ ca: tls.pem }),
    backoff: { initialMs: 50, maxMs: 100 },
    role: 'script',
    name: 'extension test responder',
  });
  await c.subscribe('demo.ping', (e) => e.reply({ pong: true }, 'demo.pong'));
  await c.start();
  return c;
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  tls = await makeCert(await tempDir('ext-cert-'));
  [local, pub] = await Promise.all([startLocal(), startPublic()]);
  foreign = await recordingServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ service: 'not-semantest', protocol: 1, ws_path: '/ws' })));
  impostor = await recordingServer(async (req, res) => {
    // Copies the signature and relays the challenge to the real hub.
    if (!req.url.startsWith('/semantest-signature')) { res.writeHead(404).end(); return; }
    try {
      const body = await (await fetch(`${local.base}${req.url}`)).json();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    } catch {
      res.writeHead(502).end(); // the real hub is down
    }
  });
  extDir = buildExtension(path.join(await tempDir('ext-build-'), 'extension'), { key: KEY, host_permissions: ['https://127.0.0.1/*'] });
  profile = await tempDir('ext-profile-');
  await launch();
  await sw.evaluate(async (seed) => { await chrome.storage.local.set(seed); }, {
    settings: { ports: [foreign.port, impostor.port, local.port], publicUrls: [pub.base], backoff: BACKOFF },
    [STORAGE_KEYS.localToken]: { token: local.token, clientId: 'owner' },
    [STORAGE_KEYS.publicToken]: { token: pub.token, clientId: 'owner' },
  });
  await openPopup();
});

after(async () => {
  await context?.close().catch(() => {});
  await Promise.all([stopHub(local), stopHub(pub)]);
  await foreign?.close();
  await impostor?.close();
  const summary = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, { median: median(v), samples: v }]));
  fs.writeFileSync(path.join(ARTIFACTS, 'extension-figures.json'), `${JSON.stringify(summary, null, 2)}\n`);
  console.log('extension figures (ms, median of 5):', JSON.stringify(Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, v.median]))));
});

test('1. local hub running → LOCAL, on the toolbar badge too', async () => {
  await waitPopupMode('LOCAL');
  await popup.locator('#latency', { hasText: /\d+ ms/ }).waitFor({ timeout: 25_000 });
  assert.match(await popup.locator('#hub').textContent(), new RegExp(`Desktop hub at 127\\.0\\.0\\.1:${local.port}`));
  await expectBadge('LOC');
  // The demo round trip: another client's demo.message shows in the popup, and the
  // popup's own goes to that client.
  const other = await responder(local);
  try {
    const got = [];
    await other.subscribe('demo.message', (e) => got.push(e.payload.text));
    await waitFor(() => other.state.mode === 'LOCAL', { message: 'the other client' });
    await other.publish('demo.message', { text: 'hello from node' });
    await popup.locator('#events li', { hasText: 'demo.message: hello from node' }).waitFor({ timeout: 5000 });
    await popup.locator('#text').fill('hello from the popup');
    await popup.locator('#send').click();
    await waitFor(() => got.includes('hello from the popup'), { message: 'the popup\'s event at the other client' });
  } finally {
    await other.stop();
  }
  await shot('local');
});

test('4. something else answering on a port of the range → ignored', async () => {
  const s = await swState();
  assert.equal(s.hub.endpoint, `127.0.0.1:${local.port}`);
  assert.ok(foreign.seen.length >= 1, 'the foreign server was probed');
  assert.ok(foreign.seen.every((r) => !r.upgrade && !JSON.stringify(r).includes(local.token)));
});

test('5. an impostor relaying challenges to the real hub → not trusted, never gets the token', async () => {
  const s = await swState();
  assert.ok(s.untrusted.some((u) => u.base === `http://127.0.0.1:${impostor.port}`), JSON.stringify(s.untrusted));
  assert.ok(impostor.seen.length >= 1, 'the impostor was probed');
  for (const r of impostor.seen) {
    assert.ok(!r.upgrade, 'no WebSocket to the impostor');
    assert.ok(!JSON.stringify(r).includes(local.token), 'no token to the impostor');
  }
  assert.equal(await popup.locator('#mode').textContent(), 'LOCAL');
});

test('2 and 3, with figures. local stopped → PUBLIC with no error shown; local started → LOCAL at the next retry', async () => {
  // The pings are answered by the extension's own ping responder: no other client.
  const localPort = local.port;
  const localDir = local.dataDir;
  for (let i = 0; i < 5; i++) {
    const rt = await cmd('ping');
    assert.ok(rt.demo.lastPing?.ok, JSON.stringify(rt.demo.lastPing));
    assert.equal(rt.demo.lastPing.mode, 'LOCAL');
    figures.round_trip_local_ms.push(rt.demo.lastPing.ms);

    const t0 = performance.now();
    await stopHub(local);
    await waitPopupMode('PUBLIC');
    figures.local_gone_to_public_ms.push(Math.round(performance.now() - t0));
    await expectBadge('PUB');
    assert.ok(await popup.locator('#message').isHidden(), 'no error shown');
    assert.equal((await swState()).lastError, null, 'a clean hub shutdown is not an error');
    assert.match(await popup.locator('#hub').textContent(), new RegExp(`Public hub at 127\\.0\\.0\\.1:${pub.port}`));
    const rp = await cmd('ping');
    assert.ok(rp.demo.lastPing?.ok, JSON.stringify(rp.demo.lastPing));
    assert.equal(rp.demo.lastPing.mode, 'PUBLIC');
    figures.round_trip_public_ms.push(rp.demo.lastPing.ms);
    if (i === 0) await shot('public');

    local = await startLocal({ port: localPort, dataDir: localDir });
    await waitPopupMode('LOCAL', BACKOFF.maxMs + 10_000);
    figures.local_back_to_local_ms.push(Math.round(performance.now() - local.readyAt));
    await expectBadge('LOC');
  }
});

test('the local-only toggle: with the desktop hub stopped the popup stays OFFLINE; off again → PUBLIC', async () => {
  const { port, dataDir } = local;
  await popup.locator('#local-only').check();
  await waitFor(async () => (await swState()).localOnly, { message: 'local only on' });
  await stopHub(local);
  await waitPopupMode('OFFLINE');
  await expectBadge('OFF');
  await shot('local-only');
  // Two more retry rounds (each probes the foreign server too), and still no fallback.
  const probes = foreign.seen.length;
  await waitFor(() => foreign.seen.length >= probes + 2, { timeout: 4 * BACKOFF.maxMs + 5000, message: 'two retry rounds' });
  assert.equal((await swState()).mode, 'OFFLINE');
  await popup.locator('#local-only').uncheck();
  await waitPopupMode('PUBLIC');
  assert.equal(await popup.locator('#local-only').isChecked(), false);
  local = await startLocal({ port, dataDir });
  await waitPopupMode('LOCAL', BACKOFF.maxMs + 10_000);
});

test('6. both down → OFFLINE; events sent meanwhile arrive after reconnecting, none lost, none twice', async () => {
  const { port, dataDir } = local;
  await Promise.all([stopHub(local), stopHub(pub)]);
  await waitPopupMode('OFFLINE');
  await expectBadge('OFF');
  assert.ok(await popup.locator('#message').isHidden(), 'no error shown');
  for (const text of ['six-1', 'six-2', 'six-3']) {
    await popup.locator('#text').fill(text);
    await popup.locator('#send').click();
  }
  await popup.locator('#queued', { hasText: '3 events waiting to be sent' }).waitFor({ timeout: 5000 });
  await shot('offline');
  // Hold the extension's reconnect until a subscriber is back to count the replay (the
  // same as the worker being woken by its alarm after the hub returned).
  await sw.evaluate(() => self.hub.stop());
  local = await startLocal({ port, dataDir });
  const got = [];
  const sub = await responder(local);
  await sub.subscribe('demo.message', (e) => got.push(e.payload.text));
  await waitFor(() => sub.state.mode === 'LOCAL', { message: 'subscriber connected' });
  await sw.evaluate(() => self.hub.start());
  await waitPopupMode('LOCAL');
  await waitFor(() => got.length >= 3, { message: 'three replayed events' });
  await waitFor(async () => (await popup.locator('#queued').textContent()) === '', { message: 'queue drained' });
  // A duplicate would follow right behind: a round trip through the hub flushes it.
  await sub.publish('demo.flush', {});
  await cmd('ping');
  assert.deepEqual(got, ['six-1', 'six-2', 'six-3']);
  await sub.stop();
  pub = await startPublic({ port: pub.port, dataDir: pub.dataDir });
});

test('figures: cold start to LOCAL (browser launch with a paired profile), median of 5', async () => {
  for (let i = 0; i < 5; i++) {
    await context.close();
    const t0 = performance.now();
    await launch();
    await waitSwMode('LOCAL');
    figures.cold_start_to_local_ms.push(Math.round(performance.now() - t0));
  }
  await openPopup();
  await waitPopupMode('LOCAL');
});

test('7. pairing: denied → a clear message; approved → connected', async () => {
  const owner = await ownerConnection(local);
  try {
    await sw.evaluate(async (k) => { await chrome.storage.local.remove(k); }, STORAGE_KEYS.localToken);
    await sw.evaluate(async (ports) => {
      const { settings } = await chrome.storage.local.get('settings');
      await chrome.storage.local.set({ settings: { ...settings, ports, publicUrls: [] } });
    }, [local.port]);
    await waitPopupMode('OFFLINE');
    assert.equal(await popup.locator('#pairing').textContent(), 'Not paired');
    // Unpaired, a send is refused at once (NOT_PAIRED), not queued for ever, and says so.
    await popup.locator('#text').fill('unpaired');
    await popup.locator('#send').click();
    await popup.locator('#message', { hasText: 'Not sent: this extension is not paired with a hub yet.' }).waitFor({ timeout: 10_000 });
    assert.equal(await popup.locator('#queued').textContent(), '');

    const pairOnce = async () => {
      await popup.locator('#pair').click();
      await popup.locator('#code').waitFor({ state: 'visible', timeout: 10_000 });
      const code = (await popup.locator('#code').textContent()).replace(/\s/g, '');
      assert.match(code, /^\d{6}$/);
      const req = await waitFor(async () => (await owner.call('pairing.list')).requests.find((r) => r.code === code), { message: 'the request at the hub' });
      assert.equal(req.origin, ORIGIN);
      return req;
    };
    const denied = await pairOnce();
    await waitPopupMode('PAIRING');
    await shot('pairing');
    await owner.call('pairing.deny', { request_id: denied.id });
    await popup.locator('#message', { hasText: 'Pairing was denied in the desktop app.' }).waitFor({ timeout: 10_000 });
    assert.equal(await popup.locator('#hub').textContent(), 'Desktop hub found on this computer. Pair with it to connect.');
    await shot('pairing-denied');
    await waitPopupMode('OFFLINE');

    const approved = await pairOnce();
    await owner.call('pairing.approve', { request_id: approved.id, scopes: ['events'] });
    await waitPopupMode('LOCAL');
    await popup.locator('#pairing', { hasText: 'Paired with the desktop hub' }).waitFor({ timeout: 5000 });
    const stored = await sw.evaluate(async (k) => (await chrome.storage.local.get(k))[k], STORAGE_KEYS.localToken);
    assert.match(stored.clientId, /^cl_[0-9a-f]{12}$/);
    await shot('paired');
  } finally {
    owner.close();
  }
});

test('a hostile web page cannot open the hub WebSocket: no token, a stolen token, DNS rebinding', async () => {
  const page = await recordingServer((req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>evil</title>'));
  const tab = await context.newPage();
  try {
    const attempt = (url, protocols) => tab.evaluate(([url, protocols]) => new Promise((resolve) => {
      let ws;
      try { ws = new WebSocket(url, protocols); } catch (err) { resolve({ opened: false, threw: String(err) }); return; }
      const t = setTimeout(() => { ws.close(); resolve({ opened: false, timeout: true }); }, 5000);
      ws.onopen = () => { clearTimeout(t); ws.close(); resolve({ opened: true }); };
      ws.onclose = (e) => { clearTimeout(t); resolve({ opened: false, code: e.code }); };
    }), [url, protocols]);
    const stolen = ['semantest-hub.v1', `semantest-hub.token.${local.token}`];
    const results = {};
    await tab.goto(`http://127.0.0.1:${page.port}/`);
    results.noToken = await attempt(`ws://127.0.0.1:${local.port}/ws`, ['semantest-hub.v1']);
    results.stolenToken = await attempt(`ws://127.0.0.1:${local.port}/ws`, stolen);
    await tab.goto(`http://evil.test:${page.port}/`);
    results.rebindingStolen = await attempt(`ws://evil.test:${local.port}/ws`, stolen);
    results.crossOriginStolen = await attempt(`ws://127.0.0.1:${local.port}/ws`, stolen);
    for (const [name, r] of Object.entries(results)) assert.equal(r.opened, false, `${name}: ${JSON.stringify(r)}`);
    // The refusals come from the hub's checks, as the same handshakes from node show.
    const status = (headers) => new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: local.port, path: '/ws', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers } }, (res) => { res.resume(); resolve(res.statusCode); })
        .on('upgrade', (res, sock) => { sock.destroy(); resolve(101); }).on('error', reject);
    });
    const proto = stolen.join(', ');
    assert.equal(await status({ origin: `http://127.0.0.1:${page.port}`, 'sec-websocket-protocol': proto }), 403);
    assert.equal(await status({ host: `evil.test:${local.port}`, origin: `http://evil.test:${page.port}`, 'sec-websocket-protocol': proto }), 403);
    assert.equal(await status({ origin: `http://127.0.0.1:${page.port}`, 'sec-websocket-protocol': 'semantest-hub.v1' }), 403);
  } finally {
    await tab.close();
    await page.close();
  }
});
