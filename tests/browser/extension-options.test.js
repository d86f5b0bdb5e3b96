// The reference extension (extension/) with nothing else: its Ping answered through the
// hub by its own ping responder, on the desktop hub and on a public one, and its options
// page (options.html), driven with the keyboard, whose settings the service worker uses
// at once. Debian's Chromium, headless, against a real local hub and a real public-mode
// hub with TLS; no other client of the hub takes part.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, AXE_PATH, CHROMIUM, waitFor, tempDir, screenshot } from './helpers.js';
import { startHub, stopHub, makeCert, ownerConnection } from '../../clients/js/test/helpers.js';
import { STORAGE_KEYS } from '../../clients/js/src/index.js';
import { buildExtension } from '../../extension/build.mjs';

/** The same pinned key as extension.test.js: Chrome derives the id from it. */
const KEY = 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA50KauTtcAZ67IxqRxeoYcmDv02wZGzqi7aZeDbnT4h2UnZVFlRnpqwd6lG++wfBsjBDuOzUdK1TjdwFmo7UcfEXBmcreZmdY8jRG6Vqbob9u8eEpMfZaYqtHrAEDv7QILjQKvhK42sA3xrgc+ZK4gZHXRvZJE1Vnrrs/TiNE3RhUExz6mMY3TK2aY9yFRADtIqwfXg3juW9ZMkjTrv3jFCBnVy6amQFgP3L5pqop5Qm0ARJftIdJMbJ9h5Gvb5cOu4OXrewJgLDmp7LU6hXa0B7TbTqm2ItT+uJA1SRtEsGZSSRmXNwItxDonKBVfW1wxlcGhiZxWGl07OrbI0yo2QIDAQAB';
const EXT_ID = 'gicphdoffnhcbkipgfnlgmgnelkbhhlg';
const ORIGIN = `chrome-extension://${EXT_ID}`;
const BACKOFF = { initialMs: 250, maxMs: 1000 };

let tls;
/** A server on a port of the probed range that counts the extension's probes: each
 * discovery round probes it once. */
let prober;
let local;
let pub;
let context;
let sw;
let popup;

const swState = () => sw.evaluate(() => self.hub?.state ?? null);
async function waitSwMode(mode, timeout = 20_000) {
  return waitFor(async () => { const s = await swState(); return s?.mode === mode ? s : null; }, { timeout, interval: 20, message: `service worker mode ${mode}` });
}
const cmd = (c, extra = {}) => popup.evaluate(([c, extra]) => chrome.runtime.sendMessage({ cmd: c, ...extra }), [c, extra]);
/** The connection id of the hub's `from` (`conn-<id>`, `@<instance>` in a cluster). */
const fromOf = (connectionId) => new RegExp(`^conn-${connectionId}(@.*)?$`);

/** axe-core's serious and critical findings. Evaluated through the DevTools protocol: the
 * extension's CSP (script-src 'self') refuses an injected script tag. */
async function axeSerious(page) {
  await page.evaluate(fs.readFileSync(AXE_PATH, 'utf8'));
  const violations = await page.evaluate(async () => (await axe.run(document, { resultTypes: ['violations'] })).violations
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) })));
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
const storedSettings = () => sw.evaluate(async () => (await chrome.storage.local.get('settings')).settings ?? {});

/** The extension's open WebSocket connections on `hub`, as the hub lists them. */
async function extensionConnections(hub) {
  const owner = await ownerConnection(hub);
  try {
    const { connections } = await owner.call('hub.connections');
    return connections.filter((c) => c.origin === ORIGIN);
  } finally {
    owner.close();
  }
}

/** Pings from the popup until it is answered (the responder joins a moment after the
 * main client) and returns the answer, or the last failure. */
async function pingAnswered() {
  let last;
  try {
    return await waitFor(async () => { last = (await cmd('ping')).demo.lastPing; return last?.ok ? last : null; }, { timeout: 20_000, interval: 200, message: 'an answered ping' });
  } catch (err) {
    throw new Error(`${err.message}; last: ${JSON.stringify(last)}`);
  }
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  tls = await makeCert(await tempDir('ext-opt-cert-'));
  const hits = { count: 0 };
  const server = http.createServer((req, res) => { hits.count++; res.writeHead(404).end(); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  prober = { port: server.address().port, hits, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
  [local, pub] = await Promise.all([startHub({ allowedOrigins: [ORIGIN] }), startHub({ allowedOrigins: [ORIGIN], publicTls: tls })]);
  const extDir = buildExtension(path.join(await tempDir('ext-opt-build-'), 'extension'), { key: KEY, host_permissions: ['https://127.0.0.1/*'] });
  context = await chromium.launchPersistentContext(await tempDir('ext-opt-profile-'), {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--disable-extensions'],
    viewport: { width: 640, height: 640 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      `--disable-extensions-except=${extDir}`, `--load-extension=${extDir}`,
      `--ignore-certificate-errors-spki-list=${tls.spki}`,
    ],
  });
  sw = context.serviceWorkers().find((w) => w.url().startsWith(ORIGIN)) ?? await context.waitForEvent('serviceworker', { predicate: (w) => w.url().startsWith(ORIGIN), timeout: 15_000 });
  // Paired with both hubs, but no public URL yet: the options page adds it.
  await sw.evaluate(async (seed) => { await chrome.storage.local.set(seed); }, {
    settings: { ports: [prober.port, local.port], backoff: BACKOFF },
    [STORAGE_KEYS.localToken]: { token: local.token, clientId: 'owner' },
    [STORAGE_KEYS.publicToken]: { token: pub.token, clientId: 'owner' },
  });
  popup = await context.newPage();
  await popup.goto(`${ORIGIN}/popup.html`);
});

after(async () => {
  await context?.close().catch(() => {});
  await Promise.all([stopHub(local), stopHub(pub)]);
  await prober?.close();
});

test('Ping with only the extension and the desktop hub: answered through the hub by the extension\'s own responder', async () => {
  const s = await waitSwMode('LOCAL');
  const ping = await pingAnswered();
  // The extension's two connections, and no other client's: the owner connection that
  // lists them is the test's own.
  await waitFor(async () => (await extensionConnections(local)).length === 2, { message: 'the main client and the ping responder at the hub' });
  assert.equal(ping.mode, 'LOCAL');
  assert.equal(ping.type, 'demo.pong');
  // Answered by another connection than the one that asked: the hub routed it.
  const responderId = await sw.evaluate(() => self.responder?.client?.hub?.connectionId ?? null);
  assert.ok(responderId, 'the responder is connected');
  assert.match(ping.from, fromOf(responderId));
  assert.equal(ping.sentFrom, s.hub.connectionId);
  assert.notEqual(responderId, s.hub.connectionId);
  await popup.locator('#ping').click();
  await popup.locator('#ping-result', { hasText: /Ping answered in [\d.]+ ms \(LOCAL\): demo\.pong from conn-\d+/ }).waitFor({ timeout: 10_000 });
});

test('options page: a bad public URL is refused with a message, and nothing is saved', async () => {
  const page = await context.newPage();
  try {
    await page.goto(`${ORIGIN}/options.html`);
    assert.equal(await page.getByLabel('Public hub URLs').inputValue(), '');
    assert.equal(await page.getByLabel('Local only').isChecked(), false);
    const before = await storedSettings();
    await page.getByLabel('Public hub URLs').fill('http://hub.example.com');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#public-urls-error', { hasText: 'does not start with https://' }).waitFor({ timeout: 5000 });
    assert.equal(await page.getByLabel('Public hub URLs').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'public-urls', 'focus goes to the field in error');
    assert.equal(await page.locator('#status').textContent(), '');
    await screenshot(page, 'extension-options-invalid');
    for (const bad of ['not a url', 'https://user:pw@hub.example.com', 'https://hub.example.com/?x=1']) {
      await page.getByLabel('Public hub URLs').fill(bad);
      await page.getByRole('button', { name: 'Save' }).click();
      await waitFor(async () => (await page.getByLabel('Public hub URLs').getAttribute('aria-invalid')) === 'true', { message: `${bad} refused` });
    }
    assert.deepEqual(await storedSettings(), before);
    assert.deepEqual(await axeSerious(page), [], 'axe on the options page');
  } finally {
    await page.close();
  }
});

test('options page: a public URL saved with the keyboard takes effect in the running worker (desktop hub gone → PUBLIC, Ping answered there)', async () => {
  const page = await context.newPage();
  try {
    await page.goto(`${ORIGIN}/options.html`);
    await page.getByLabel('Public hub URLs').focus();
    await page.keyboard.type(`${pub.base}/`);
    await page.keyboard.press('Tab'); // the help text is not focusable: the checkbox
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'local-only');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'save');
    await page.keyboard.press('Enter');
    await page.locator('#status', { hasText: 'Saved' }).waitFor({ timeout: 5000 });
    assert.match(await page.locator('#status').textContent(), /The extension uses these settings now\./);
    assert.equal(await page.getByLabel('Public hub URLs').inputValue(), pub.base, 'shown as saved, without the trailing slash');
    assert.deepEqual((await storedSettings()).publicUrls, [pub.base]);
    await screenshot(page, 'extension-options-saved');
  } finally {
    await page.close();
  }
  const { port, dataDir } = local;
  await stopHub(local);
  await waitSwMode('PUBLIC');
  const ping = await pingAnswered();
  assert.equal(ping.mode, 'PUBLIC');
  assert.match(ping.from, fromOf(await sw.evaluate(() => self.responder?.client?.hub?.connectionId ?? null)));
  assert.equal((await extensionConnections(pub)).length, 2, 'the main client and the responder on the public hub');
  local = await startHub({ allowedOrigins: [ORIGIN], port, dataDir });
  await waitSwMode('LOCAL', BACKOFF.maxMs + 15_000);
});

test('options page: local only, saved, closes the public connection at once and keeps the worker off public hubs', async () => {
  // On the public hub first, as in the previous test.
  const { port, dataDir } = local;
  await stopHub(local);
  await waitSwMode('PUBLIC');
  await waitFor(async () => (await extensionConnections(pub)).length === 2, { message: 'both connections on the public hub' });
  const page = await context.newPage();
  try {
    await page.goto(`${ORIGIN}/options.html`);
    assert.equal(await page.getByLabel('Public hub URLs').inputValue(), pub.base);
    await page.getByLabel('Local only').focus();
    await page.keyboard.press('Space');
    assert.equal(await page.getByLabel('Local only').isChecked(), true);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.locator('#status', { hasText: 'Saved' }).waitFor({ timeout: 5000 });
    assert.equal((await storedSettings()).localOnly, true);
  } finally {
    await page.close();
  }
  const s = await waitSwMode('OFFLINE');
  assert.equal(s.localOnly, true);
  await waitFor(async () => (await extensionConnections(pub)).length === 0, { message: 'no connection of the extension left on the public hub' });
  // Retry rounds go by without a fallback: still no public connection.
  const ping = (await cmd('ping')).demo.lastPing;
  assert.equal(ping.ok, false);
  await popup.locator('#local-only:checked').waitFor({ timeout: 5000 });
  const probes = prober.hits.count;
  await waitFor(() => prober.hits.count >= probes + 3, { timeout: 4 * BACKOFF.maxMs + 10_000, message: 'three more retry rounds' });
  assert.equal((await extensionConnections(pub)).length, 0);
  assert.equal((await swState()).mode, 'OFFLINE');
  // The desktop hub comes back: LOCAL again, the responder with it.
  local = await startHub({ allowedOrigins: [ORIGIN], port, dataDir });
  await waitSwMode('LOCAL', BACKOFF.maxMs + 15_000);
  assert.equal((await pingAnswered()).mode, 'LOCAL');
});
