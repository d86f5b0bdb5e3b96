// Failures the caller sees: start() says whether it connected and why not, an unpaired
// client's publish, call and request reject with NOT_PAIRED at once, and queued publishes
// are bounded in number (QUEUE_FULL) and in time (QUEUE_TIMEOUT).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HubClient, HubError, memoryStorage, STORAGE_KEYS } from '../src/index.js';
import { startHub, stopHub, waitFor, waitMode, wsClass, sdkFetch, freePort, nextEvent, EXT_ORIGIN } from './helpers.js';

let hub;

before(async () => { hub = await startHub(); });
after(async () => { await stopHub(hub); });

function client(extra = {}) {
  return new HubClient({
    ports: [hub.port],
    storage: memoryStorage(),
    WebSocket: wsClass({ origin: EXT_ORIGIN }),
    fetch: sdkFetch({ origin: EXT_ORIGIN }),
    backoff: { initialMs: 100, maxMs: 500 },
    ...extra,
  });
}

test('start() with the token option: connected, LOCAL, no reason', async () => {
  const c = client({ token: hub.token });
  try {
    const s = await c.start();
    assert.equal(s.connected, true, JSON.stringify(s));
    assert.equal(s.mode, 'LOCAL');
    assert.equal(s.reason, null);
    assert.equal(s.hub.endpoint, `127.0.0.1:${hub.port}`);
    assert.match(s.message, /connected to the desktop hub/);
    assert.equal(c.state.paired.local, true);
    assert.deepEqual(await c.start(), { ...s, hub: c.state.hub }, 'start() again says the same');
    // A client token: {token, clientId}.
    const { token, client: { id: clientId } } = await c.call('client.create', { name: 'status test', scopes: ['events'] });
    const d = client({ token: { token, clientId } });
    try {
      assert.equal((await d.start()).connected, true);
      await assert.rejects(d.call('project.list'), (e) => e.kind === 'FORBIDDEN');
    } finally {
      await d.stop();
    }
  } finally {
    await c.stop();
  }
});

test('unpaired: start() says NOT_PAIRED with the hub it found; publish, call and request reject with NOT_PAIRED at once', async () => {
  const c = client();
  try {
    const s = await c.start();
    assert.equal(s.connected, false);
    assert.equal(s.mode, 'OFFLINE');
    assert.equal(s.reason, 'NOT_PAIRED');
    assert.match(s.message, new RegExp(`a desktop hub answers at http://127\\.0\\.0\\.1:${hub.port}, but this client is not paired with it`));
    assert.equal(c.state.lastError.kind, 'NOT_PAIRED');
    const notPaired = (e) => e instanceof HubError && e.kind === 'NOT_PAIRED' && /not paired/.test(e.message);
    await assert.rejects(c.publish('demo.hello', { hi: 1 }), notPaired);
    await assert.rejects(c.call('hub.status'), notPaired);
    await assert.rejects(c.request('demo.ping', {}), notPaired);
    assert.equal(c.state.queued, 0, 'nothing was queued');
    // A public token without a public URL is no pairing either.
    const p = client({ publicToken: hub.token });
    await assert.rejects(p.publish('demo.hello', {}), (e) => e.kind === 'NOT_PAIRED' && /no public URL/.test(e.message));
  } finally {
    await c.stop();
  }
});

test('start() names the reason: NO_HUB when nothing answers, UNTRUSTED_HUB when the hub does not know the token', async () => {
  const port = await freePort();
  const none = client({ ports: [port], token: hub.token });
  try {
    const s = await none.start();
    assert.equal(s.connected, false);
    assert.equal(s.reason, 'NO_HUB');
    assert.match(s.message, new RegExp(`no desktop hub answers on 127\\.0\\.0\\.1 port ${port}`));
    assert.match(s.message, /no public URL is configured/);
  } finally {
    await none.stop();
  }
  const wrong = client({ token: 'ab'.repeat(32) });
  try {
    const s = await wrong.start();
    assert.equal(s.reason, 'UNTRUSTED_HUB', JSON.stringify(s));
    assert.match(s.message, /not trusted: wrong challenge proof/);
    assert.equal(s.local.kind, 'UNTRUSTED_HUB');
  } finally {
    await wrong.stop();
  }
});

test('queued publishes are bounded in time: one that waits queueTimeoutMs unsent rejects with QUEUE_TIMEOUT and is never sent', async () => {
  const storage = memoryStorage({ [STORAGE_KEYS.localToken]: { token: hub.token, clientId: 'owner' } });
  const a = client({ storage, queueTimeoutMs: 300 });
  const b = client({ token: hub.token });
  const got = [];
  try {
    await b.start();
    await b.subscribe('late.*', (e) => got.push(e.payload.n));
    // a is not started: the publish waits in the queue until its deadline.
    await assert.rejects(a.publish('late.event', { n: 1 }), (e) => e instanceof HubError && e.kind === 'QUEUE_TIMEOUT' && e.data.timeout_ms === 300 && /waited 300 ms/.test(e.message));
    assert.equal(a.state.queued, 0);
    await waitFor(async () => (await storage.get(STORAGE_KEYS.queue))?.length === 0, { message: 'the stored queue emptied' });
    const s = await a.start();
    assert.equal(s.connected, true);
    assert.equal((await a.publish('late.event', { n: 2 })).delivered, 1);
    await waitFor(() => got.length >= 1, { message: 'the second event at b' });
    assert.deepEqual(got, [2], 'the expired event was never sent');
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('queued publishes are bounded in number: QUEUE_FULL beyond queueLimit, with a queuefull event', async () => {
  const a = client({ token: hub.token, queueLimit: 2 });
  const first = [a.publish('full.one', {}), a.publish('full.two', {})];
  for (const p of first) p.catch(() => {});
  const full = nextEvent(a, 'queuefull');
  await assert.rejects(a.publish('full.three', {}), (e) => e.kind === 'QUEUE_FULL' && e.data.limit === 2);
  assert.deepEqual(await full, { limit: 2, type: 'full.three' });
  await a.start();
  try {
    await waitMode(a, 'LOCAL');
    for (const r of await Promise.all(first)) assert.ok(r.seq >= 1);
  } finally {
    await a.stop();
  }
});
