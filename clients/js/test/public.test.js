// The SDK with a local hub and a public-mode hub with TLS (certificate made here): falls
// back to PUBLIC when the local hub stops, returns to LOCAL when it starts again, stays
// OFFLINE in local-only mode, and routes request/reply events over TLS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { HubClient, memoryStorage, probe, STORAGE_KEYS } from '../src/index.js';
import { startHub, stopHub, tempDir, makeCert, waitMode, waitFor, wsClass, sdkFetch, EXT_ORIGIN } from './helpers.js';

let local;
let pub;
let tls;

before(async () => {
  tls = await makeCert(await tempDir('sdk-cert-'));
  [local, pub] = await Promise.all([startHub(), startHub({ publicTls: tls })]);
});

after(async () => {
  await Promise.all([stopHub(local), stopHub(pub)]);
});

function client(extra = {}) {
  return new HubClient({
    ports: [local.port],
    publicUrls: [pub.base],
    storage: memoryStorage({
      [STORAGE_KEYS.localToken]: { token: local.token, clientId: 'owner' },
      [STORAGE_KEYS.publicToken]: { token: pub.token, clientId: 'owner' },
    }),
    WebSocket: wsClass({ ca: tls.pem, origin: EXT_ORIGIN }),
    fetch: sdkFetch({ ca: tls.pem, origin: EXT_ORIGIN }),
    backoff: { initialMs: 100, maxMs: 400 },
    ...extra,
  });
}

test('the public hub signs as mode "public" and proves the token over TLS', async () => {
  const r = await probe(pub.base, { credential: { token: pub.token, clientId: 'owner' }, fetch: sdkFetch({ ca: tls.pem }) });
  assert.equal(r.status, 'trusted', JSON.stringify(r));
  assert.equal(r.signature.mode, 'public');
  const wrong = await probe(pub.base, { credential: { token: local.token, clientId: 'owner' }, fetch: sdkFetch({ ca: tls.pem }) });
  assert.equal(wrong.status, 'untrusted');
});

test('LOCAL → PUBLIC when the local hub stops → LOCAL when it starts again; request/reply works in both', async () => {
  const a = client();
  const b = client();
  await Promise.all([a.start(), b.start()]);
  try {
    await Promise.all([waitMode(a, 'LOCAL'), waitMode(b, 'LOCAL')]);
    await b.subscribe('ping', (e) => e.reply({ pong: e.payload.n }));
    assert.deepEqual((await a.request('ping', { n: 1 })).payload, { pong: 1 });

    const { port, dataDir } = local;
    await stopHub(local);
    const sa = await waitMode(a, 'PUBLIC');
    await waitMode(b, 'PUBLIC');
    assert.equal(sa.hub.kind, 'public');
    assert.equal(sa.lastError, null, 'no error after a clean hub shutdown');
    assert.deepEqual((await a.request('ping', { n: 2 })).payload, { pong: 2 });

    local = await startHub({ port, dataDir });
    await Promise.all([waitMode(a, 'LOCAL', 10_000), waitMode(b, 'LOCAL', 10_000)]);
    assert.deepEqual((await a.request('ping', { n: 3 })).payload, { pong: 3 });
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('local only: no fallback; OFFLINE while the local hub is down', async () => {
  // A server on one more port of the range counts the retry rounds.
  let probes = 0;
  const counter = http.createServer((req, res) => { probes++; res.writeHead(404).end(); });
  await new Promise((r) => counter.listen(0, '127.0.0.1', r));
  const a = client({ localOnly: true, ports: [counter.address().port, local.port] });
  await a.start();
  try {
    await waitMode(a, 'LOCAL');
    const { port, dataDir } = local;
    await stopHub(local);
    const s = await waitMode(a, 'OFFLINE');
    assert.equal(s.localOnly, true);
    const before = probes;
    await waitFor(() => probes >= before + 3, { message: 'three retry rounds' });
    assert.equal(a.state.mode, 'OFFLINE');
    local = await startHub({ port, dataDir });
    await waitMode(a, 'LOCAL', 10_000);
  } finally {
    await a.stop();
    await new Promise((r) => counter.close(r));
  }
});
