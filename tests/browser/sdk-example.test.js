// The SDK README's example as an MV3 service worker in Debian's Chromium, headless: the
// extension is built from the README's code block itself (clients/js/examples/build.mjs),
// finds a real hub on the default port range, has no token so it pairs, and the test
// approves the pairing as the user would (owner token over the hub's RPC). Then a node
// client sees the example's demo.hello and gets an answer to demo.ping.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, waitFor, tempDir } from './helpers.js';
import { startHubInRange, stopHub, ownerConnection } from '../../clients/js/test/helpers.js';
import { HubClient, memoryStorage, STORAGE_KEYS } from '../../clients/js/src/index.js';
import { buildMv3Example } from '../../clients/js/examples/build.mjs';
import WebSocket from '../../clients/js/node_modules/ws/wrapper.mjs';

let hub;
let context;

before(async () => {
  hub = await startHubInRange();
});

after(async () => {
  await context?.close().catch(() => {});
  await stopHub(hub);
});

test('the README example runs as written in an MV3 service worker: pairs on approval, publishes, answers a request', async () => {
  const owner = await ownerConnection(hub);
  const other = new HubClient({ ports: [hub.port], storage: memoryStorage({ [STORAGE_KEYS.localToken]: hub.token }), WebSocket, name: 'example test' });
  try {
    const hellos = [];
    await other.subscribe('demo.hello', (e) => hellos.push(e));
    assert.equal((await other.start()).connected, true);

    const extDir = buildMv3Example(path.join(await tempDir('sdk-example-'), 'extension'));
    context = await chromium.launchPersistentContext(await tempDir('sdk-example-profile-'), {
      executablePath: CHROMIUM,
      headless: true,
      ignoreDefaultArgs: ['--disable-extensions'],
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', `--disable-extensions-except=${extDir}`, `--load-extension=${extDir}`],
    });
    const sw = context.serviceWorkers().find((w) => w.url().startsWith('chrome-extension://'))
      ?? await context.waitForEvent('serviceworker', { predicate: (w) => w.url().startsWith('chrome-extension://'), timeout: 15_000 });
    const origin = sw.url().split('/').slice(0, 3).join('/'); // chrome-extension://<id> (URL.origin is "null" for it)
    const logs = [];
    sw.on('console', (m) => logs.push(m.text()));
    const logged = (re, message) => waitFor(() => logs.map((l) => re.exec(l)).find(Boolean), { timeout: 20_000, message: `${message} (service worker console: ${JSON.stringify(logs)})` });

    // No token: start() says NOT_PAIRED and the example pairs (logging the code the
    // desktop app shows, possibly before this test could listen); the user approves.
    const req = await waitFor(async () => (await owner.call('pairing.list')).requests.find((r) => r.origin === origin), { timeout: 20_000, message: 'the example\'s pairing request' });
    assert.equal(req.name, 'My extension');
    assert.match(req.code, /^\d{6}$/);
    await owner.call('pairing.approve', { request_id: req.id, scopes: ['events'] });

    await waitFor(() => hellos.length === 1, { timeout: 20_000, message: 'demo.hello from the service worker' });
    assert.deepEqual(hellos[0].payload, { hi: 1 });
    const reply = await other.request('demo.ping', { n: 1 }, { timeoutMs: 10_000 });
    assert.deepEqual(reply.payload, { pong: { n: 1 } });
    await logged(/^demo\.hello reached 1 other client\(s\)$/, 'the publish result');
    await other.publish('demo.note', { from: 'test' });
    await logged(/^got demo\.note \{"from":"test"\} from conn-\d+$/, 'the other client\'s event');
    assert.ok(!logs.some((l) => /got demo\.hello|NOT_PAIRED:|NO_HUB:|Error/.test(l)), JSON.stringify(logs));
    const { clients } = await owner.call('client.list');
    assert.ok(clients.some((c) => c.origin === origin && c.connected >= 1), JSON.stringify(clients));
  } finally {
    await other.stop();
    owner.close();
  }
});
