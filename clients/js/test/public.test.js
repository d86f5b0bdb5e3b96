// The SDK with a local hub and a public-mode hub with TLS (certificate made here): falls
// back to PUBLIC when the local hub stops, returns to LOCAL when it starts again, stays
// OFFLINE in local-only mode, routes request/reply events over TLS, and fails over
// between the public URLs of a list.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { HubClient, memoryStorage, probe, STORAGE_KEYS } from '../src/index.js';
import { startHub, stopHub, tempDir, makeCert, waitMode, waitFor, wsClass, sdkFetch, freePort, ownerConnection, EXT_ORIGIN } from './helpers.js';

let local;
let pub;
let tls;

before(async () => {
  tls = await makeCert(await tempDir('sdk-cert-'));
  // Pairing is off on a public hub unless public.pairing turns it on; one test pairs here.
  [local, pub] = await Promise.all([startHub(), startHub({ publicTls: tls, env: { SEMANTEST_HUB_PUBLIC__PAIRING: 'true' } })]);
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

test('start() with no local hub but a public one: connected to PUBLIC, not an error; the local side says why it was not used', async () => {
  const port = await freePort();
  const a = client({ ports: [port] });
  try {
    const s = await a.start();
    assert.equal(s.connected, true, JSON.stringify(s));
    assert.equal(s.mode, 'PUBLIC');
    assert.equal(s.reason, null);
    assert.equal(s.hub.kind, 'public');
    assert.equal(s.local.kind, 'NO_HUB');
    assert.match(s.local.message, new RegExp(`port ${port}`));
    assert.equal(a.state.lastError, null);
  } finally {
    await a.stop();
  }
  // Without the public token the fallback has nothing to connect with: NOT_PAIRED.
  const b = client({ ports: [port], storage: memoryStorage() });
  try {
    const s = await b.start();
    assert.equal(s.connected, false);
    assert.equal(s.reason, 'NOT_PAIRED');
    assert.match(s.message, /no token for the public hub/);
  } finally {
    await b.stop();
  }
});

test('the WebSocket to a public (https:) hub is wss: on the origin that was verified', async () => {
  const urls = [];
  const Base = wsClass({ ca: tls.pem, origin: EXT_ORIGIN });
  const a = client({ ports: [await freePort()], WebSocket: class extends Base { constructor(url, protocols) { super(url, protocols); urls.push(url); } } });
  try {
    assert.equal((await a.start()).mode, 'PUBLIC');
    assert.deepEqual(urls, [`wss://127.0.0.1:${pub.port}/ws`]);
  } finally {
    await a.stop();
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

test('a list of public URLs: skips an unreachable one, fails over to the next when the connected one closes', async () => {
  // A second public instance with the same owner token, as instances of one cluster share
  // their tokens; a third URL where nothing listens.
  const dataDir = await tempDir('sdk-hub-');
  await fsp.mkdir(path.join(dataDir, 'secrets'), { mode: 0o700 });
  await fsp.writeFile(path.join(dataDir, 'secrets/owner-token'), pub.token, { mode: 0o600 });
  const pub2 = await startHub({ publicTls: tls, dataDir });
  assert.equal(pub2.token, pub.token);
  const nowhere = `https://127.0.0.1:${await freePort()}`;
  // The client's sockets, to cut one as a network failure would.
  const sockets = [];
  const Base = wsClass({ ca: tls.pem, origin: EXT_ORIGIN });
  const a = client({
    ports: [await freePort()],
    publicUrls: [nowhere, pub.base, pub2.base],
    WebSocket: class extends Base { constructor(...args) { super(...args); sockets.push(this); } },
  });
  const onHub = (base) => waitFor(() => a.state.mode === 'PUBLIC' && a.state.hub?.base === base, { message: `${base} (state ${JSON.stringify(a.state)})` });
  const cut = () => sockets.filter((s) => s.readyState === s.OPEN).forEach((s) => s.terminate());
  await a.start();
  try {
    await onHub(pub.base);
    assert.ok((await a.publish('note', { n: 1 })).seq >= 1);

    // The connection to a healthy instance drops: the next URL, not the same one again.
    cut();
    await onHub(pub2.base);
    assert.ok((await a.publish('note', { n: 2 })).seq >= 1);

    // The connected instance stops: round the list, past the unreachable URL, to the first.
    await stopHub(pub2);
    await onHub(pub.base);
    const published = a.publish('note', { n: 3 });
    assert.ok((await published).seq >= 1);
    assert.equal(a.state.lastError?.kind ?? null, null);
  } finally {
    await a.stop();
    await stopHub(pub2);
  }
});

test('one public URL is a list of one (for a load balancer); anything but https: is refused', () => {
  assert.doesNotThrow(() => client({ publicUrls: pub.base }));
  assert.throws(() => client({ publicUrls: ['http://127.0.0.1:1'] }), /must be https:/);
  assert.throws(() => client({ publicUrls: [pub.base, 'not a url'] }), TypeError);
});

test('pairing with the public hubs asks the first URL that answers', async () => {
  const owner = await ownerConnection(pub);
  try {
    const c = client({ ports: [await freePort()], publicUrls: [`https://127.0.0.1:${await freePort()}`, pub.base], storage: memoryStorage() });
    let code;
    const denied = c.pair({ name: 'public pairing', target: 'public', onCode: (i) => { code = i.code; } });
    denied.catch(() => {}); // awaited below
    await waitFor(() => code, { message: 'the pairing code' });
    const req = (await owner.call('pairing.list')).requests.find((r) => r.code === code);
    assert.ok(req, 'the request reached the reachable public hub');
    await owner.call('pairing.deny', { request_id: req.id });
    await assert.rejects(denied, (e) => e.kind === 'PAIRING_DENIED');

    const none = client({ publicUrls: [`https://127.0.0.1:${await freePort()}`], storage: memoryStorage() });
    await assert.rejects(none.pair({ name: 'nowhere', target: 'public' }), (e) => e.kind === 'NO_HUB');
  } finally {
    owner.close();
  }
});
