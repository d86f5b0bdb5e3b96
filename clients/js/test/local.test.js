// The SDK against a real local hub: discovery among foreign servers and impostors, the
// challenge before the token, calls and typed errors, events, the offline queue with
// replay, resubscription, and pairing approved and denied through the hub.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { HubClient, memoryStorage, probe, STORAGE_KEYS, RpcError, HubError } from '../src/index.js';
import { startHub, stopHub, waitFor, waitMode, nextEvent, wsClass, sdkFetch, ownerConnection, freePort, EXT_ORIGIN, recordingWsClass, fixture, shape } from './helpers.js';

let hub;
let foreign;
let impostors = [];

/** An HTTP server on a free port; `handler(req, res)`; records every request. */
async function server(handler) {
  const seen = [];
  const s = http.createServer((req, res) => { seen.push({ url: req.url, headers: req.headers }); handler(req, res); });
  s.on('upgrade', (req, sock) => { seen.push({ url: req.url, headers: req.headers, upgrade: true }); sock.destroy(); });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  return { port: s.address().port, seen, close: () => new Promise((r) => { s.closeAllConnections?.(); s.close(r); }) };
}

/** Relays /semantest-signature (query and all) to the real hub; `rewrite` swaps in its own endpoint. */
function relay(rewrite) {
  return async (req, res) => {
    if (!req.url.startsWith('/semantest-signature')) { res.writeHead(404).end(); return; }
    let body;
    try {
      body = await (await fetch(`${hub.base}${req.url}`)).json();
    } catch {
      res.writeHead(502).end(); // the real hub is down
      return;
    }
    if (rewrite && body.challenge) body.challenge.endpoint = `127.0.0.1:${req.socket.localPort}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
}

function client(extra = {}) {
  return new HubClient({
    ports: [foreign.port, ...impostors.map((i) => i.port), hub.port],
    storage: extra.storage ?? memoryStorage({ [STORAGE_KEYS.localToken]: { token: hub.token, clientId: 'owner' } }),
    WebSocket: wsClass({ origin: EXT_ORIGIN }),
    fetch: sdkFetch({ origin: EXT_ORIGIN }),
    backoff: { initialMs: 100, maxMs: 500 },
    name: 'sdk test',
    ...extra,
  });
}

before(async () => {
  hub = await startHub();
  foreign = await server((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ service: 'something-else', protocol: 1 })));
  impostors = [await server(relay(false)), await server(relay(true))];
});

after(async () => {
  await stopHub(hub);
  await foreign?.close();
  for (const i of impostors) await i.close();
});

test('discovery: only the real hub is trusted; foreign answers are ignored; relays fail the challenge', async () => {
  const cred = { token: hub.token, clientId: 'owner' };
  assert.equal((await probe(`http://127.0.0.1:${foreign.port}`, { credential: cred })).status, 'foreign');
  const [verbatim, rewriting] = impostors;
  const v = await probe(`http://127.0.0.1:${verbatim.port}`, { credential: cred });
  assert.equal(v.status, 'untrusted', JSON.stringify(v));
  assert.match(v.reason, /endpoint/);
  const rw = await probe(`http://127.0.0.1:${rewriting.port}`, { credential: cred });
  assert.equal(rw.status, 'untrusted', JSON.stringify(rw));
  assert.match(rw.reason, /proof/);
  const real = await probe(hub.base, { credential: cred });
  assert.equal(real.status, 'trusted', JSON.stringify(real));
  assert.equal(real.endpoint, `127.0.0.1:${hub.port}`);
  const closed = await probe(`http://127.0.0.1:${await freePort()}`, { credential: cred });
  assert.equal(closed.status, 'none');
});

test('connects LOCAL to the real hub, never sends the token to an impostor, reports identity and latency', async () => {
  const frames = [];
  const c = client({ keepaliveMs: 100, WebSocket: recordingWsClass(frames, { origin: EXT_ORIGIN }) });
  const untrusted = [];
  c.on('untrusted', (u) => untrusted.push(u.base));
  await c.start();
  try {
    const s = await waitMode(c, 'LOCAL');
    assert.equal(s.hub.endpoint, `127.0.0.1:${hub.port}`);
    assert.ok(s.hub.instanceId);
    assert.equal(typeof s.latencyMs, 'number');
    assert.equal(untrusted.length, 2);
    for (const srv of [foreign, ...impostors]) {
      for (const r of srv.seen) {
        assert.ok(!r.upgrade, 'no WebSocket upgrade to a non-hub');
        assert.ok(!JSON.stringify(r).includes(hub.token), 'the token never reaches a non-hub');
      }
    }
    // The keepalive: hub.status every keepaliveMs, its round trip as latencyMs.
    await waitFor(() => frames.filter((f) => f.dir === 'out' && f.msg.method === 'hub.status').length >= 3, { message: 'three keepalives' });
    assert.equal(typeof c.state.latencyMs, 'number');
    const status = await c.call('hub.status');
    assert.equal(status.protocol, 1);
    await assert.rejects(c.call('no.such.method'), (e) => e instanceof RpcError && e.kind === 'METHOD_NOT_FOUND' && e.code === -32601);
    await assert.rejects(c.publish('Bad Type!', {}), (e) => e instanceof RpcError && e.kind === 'INVALID_EVENT_TYPE');
  } finally {
    await c.stop();
  }
});

test('publish, subscribe with wildcards, and request/reply between two clients', async () => {
  const a = client();
  const b = client();
  await Promise.all([a.start(), b.start()]);
  try {
    await Promise.all([waitMode(a, 'LOCAL'), waitMode(b, 'LOCAL')]);
    const got = [];
    await b.subscribe('demo.*', (e) => got.push(e));
    await b.subscribe('echo', (e) => e.reply({ echoed: e.payload }));
    const r = await a.publish('demo.hello', { n: 1 });
    assert.equal(r.delivered, 1);
    await waitFor(() => got.length === 1, { message: 'demo.hello at b' });
    assert.deepEqual(got[0].payload, { n: 1 });
    assert.equal(got[0].type, 'demo.hello');
    assert.match(got[0].from, /^conn-/);
    const reply = await a.request('echo', { x: 42 }, { timeoutMs: 3000 });
    assert.deepEqual(reply.payload, { echoed: { x: 42 } });
    await assert.rejects(a.request('nobody.listens', {}, { timeoutMs: 200 }), (e) => e instanceof RpcError && e.kind === 'TIMEOUT');
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('connectionEvents: a client that asks sees others open, say hello and close; one that does not ask sees none', async () => {
  const watcher = client({ connectionEvents: true, name: 'watcher' });
  const quiet = client({ name: 'quiet' });
  const seen = [];
  const quietSeen = [];
  watcher.on('connection', (c) => seen.push(c));
  quiet.on('connection', (c) => quietSeen.push(c));
  await Promise.all([watcher.start(), quiet.start()]);
  try {
    await Promise.all([waitMode(watcher, 'LOCAL'), waitMode(quiet, 'LOCAL')]);
    assert.equal(watcher.hub.connectionEvents, true);
    assert.equal(quiet.hub.connectionEvents, false);
    const other = client({ name: 'newcomer', role: 'script' });
    await other.start();
    await waitMode(other, 'LOCAL');
    const id = other.hub.connectionId;
    await waitFor(() => seen.some((c) => c.event === 'updated' && c.connection.id === id && c.connection.name === 'newcomer'), { message: 'the newcomer\'s hub.hello at the watcher' });
    assert.ok(seen.some((c) => c.event === 'opened' && c.connection.id === id), 'its opening came first');
    await other.stop();
    await waitFor(() => seen.some((c) => c.event === 'closed' && c.connection.id === id), { message: 'the newcomer closing at the watcher' });
    // The quiet client was connected all along and got nothing, while the watcher got every change.
    assert.deepEqual(quietSeen, []);
  } finally {
    await Promise.all([watcher.stop(), quiet.stop()]);
  }
});

test('golden frames: what the SDK sends and reads matches tests/fixtures/events byte for byte (ids and hub-made values aside)', async () => {
  const framesA = [];
  const framesB = [];
  const a = client({ WebSocket: recordingWsClass(framesA, { origin: EXT_ORIGIN }) });
  const b = client({ WebSocket: recordingWsClass(framesB, { origin: EXT_ORIGIN }) });
  await Promise.all([a.start(), b.start()]);
  const out = (frames, method) => frames.filter((f) => f.dir === 'out' && f.msg.method === method).map((f) => f.msg);
  const answerTo = (frames, id) => frames.find((f) => f.dir === 'in' && f.msg.id === id)?.msg;
  const noId = ({ id, ...rest }) => rest;
  // This hub lists events.idempotency, so every publish carries a fresh key (an id like any other).
  const keys = new Set();
  const noKey = ({ id, params: { idempotency_key: key, ...params }, ...rest }) => {
    assert.equal(typeof key, 'string', 'event.publish carries an idempotency_key');
    assert.ok(key.length >= 1 && key.length <= 128, key);
    assert.ok(!keys.has(key), `idempotency_key ${key} reused`);
    keys.add(key);
    return { ...rest, params };
  };
  try {
    await Promise.all([waitMode(a, 'LOCAL'), waitMode(b, 'LOCAL')]);
    const seen = [];
    await b.subscribe('probe.*', (e) => seen.push(e));
    await b.subscribe('page.loaded', () => {});
    await b.subscribe('*', () => {});
    const subs = out(framesB, 'event.subscribe');
    assert.deepEqual(subs.flatMap((m) => m.params.types), fixture('events/subscribe.json').params.types);
    assert.deepEqual(shape(noId(answerTo(framesB, subs[2].id))), shape(noId(fixture('events/subscribe-result.json'))));
    assert.equal(answerTo(framesB, subs[2].id).result.total, 3);

    const pub = fixture('events/publish.json');
    await a.publish(pub.params.type, pub.params.payload);
    assert.deepEqual(noKey(out(framesA, 'event.publish')[0]), noId(pub));
    assert.deepEqual(shape(noId(answerTo(framesA, out(framesA, 'event.publish')[0].id))), shape(noId(fixture('events/publish-result.json'))));
    await waitFor(() => seen.length === 1, { message: 'probe.click at b' });
    const note = framesB.find((f) => f.dir === 'in' && f.msg.method === 'event').msg;
    assert.deepEqual(shape(note), shape(fixture('events/event.json')));
    assert.deepEqual(note.params.payload, pub.params.payload);
    assert.equal(seen[0].seq, note.params.seq);
    assert.equal(seen[0].from, note.params.from);

    const req = fixture('events/request.json');
    await b.subscribe(req.params.type, (e) => e.reply(fixture('events/answer-publish.json').params.payload, 'page.answer'));
    const reply = await a.request(req.params.type, req.params.payload, { timeoutMs: req.params.timeout_ms });
    assert.deepEqual(noId(out(framesA, 'event.request')[0]), noId(req));
    const reqEvent = framesB.find((f) => f.dir === 'in' && f.msg.method === 'event' && f.msg.params.type === 'page.query').msg;
    assert.deepEqual(shape(reqEvent), shape(fixture('events/request-event.json')));
    const answer = out(framesB, 'event.publish').at(-1);
    const golden = fixture('events/answer-publish.json');
    assert.deepEqual(noKey(answer), { ...noId(golden), params: { ...golden.params, correlation_id: reqEvent.params.correlation_id } });
    const result = answerTo(framesA, out(framesA, 'event.request')[0].id);
    assert.deepEqual(shape(noId(result)), shape(noId(fixture('events/request-result.json'))));
    assert.equal(reply.correlationId, reqEvent.params.correlation_id);
    assert.deepEqual(reply.payload, golden.params.payload);

    const bad = fixture('events/error-invalid-type.json').error;
    // The SDK checks a pattern before sending it and refuses it as the hub would.
    const before = out(framesB, 'event.subscribe').length;
    await assert.rejects(b.subscribe(bad.data.type, () => {}), (e) => e instanceof HubError && e.kind === bad.data.kind && e.code === bad.code && e.data.type === bad.data.type);
    assert.equal(out(framesB, 'event.subscribe').length, before, 'a bad pattern is not sent');
    const timeout = fixture('events/error-timeout.json').error;
    await assert.rejects(a.request('nobody.answers', {}, { timeoutMs: 100 }), (e) => e.kind === timeout.data.kind && e.code === timeout.code && e.data.timeout_ms === 100);

    const unsub = await b.subscribe('x.only', () => {});
    await unsub();
    const u = out(framesB, 'event.unsubscribe')[0];
    assert.deepEqual(shape(noId(u)), shape(noId(fixture('events/unsubscribe.json'))));
    assert.deepEqual(shape(noId(answerTo(framesB, u.id))), shape(noId(fixture('events/unsubscribe-result.json'))));
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('hub down: publishes queue (bounded, with an event), then replay in order exactly once after the restart; subscriptions come back', async () => {
  const a = client({ queueLimit: 20 });
  const b = client();
  await Promise.all([a.start(), b.start()]);
  const got = [];
  try {
    await Promise.all([waitMode(a, 'LOCAL'), waitMode(b, 'LOCAL')]);
    await b.subscribe('outage.*', (e) => got.push(e.payload.n));
    await a.publish('outage.before', { n: 0 });
    await waitFor(() => got.length === 1, { message: 'the event before the outage' });
    const port = hub.port;
    const dataDir = hub.dataDir;
    await stopHub(hub);
    await Promise.all([waitMode(a, 'OFFLINE'), waitMode(b, 'OFFLINE')]);
    await a.stop(); // hold the replay until b is back, so b is there to count
    const sent = [];
    for (let n = 1; n <= 20; n++) sent.push(a.publish('outage.during', { n }));
    const full = nextEvent(a, 'queuefull');
    await assert.rejects(a.publish('outage.during', { n: 21 }), (e) => e instanceof HubError && e.kind === 'QUEUE_FULL');
    assert.equal((await full).limit, 20);
    assert.equal(a.state.queued, 20);
    hub = await startHub({ port, dataDir });
    await waitMode(b, 'LOCAL', 20_000);
    await waitFor(async () => (await b.call('hub.status')) && true);
    await a.start();
    await waitMode(a, 'LOCAL');
    const results = await Promise.all(sent);
    assert.ok(results.every((r) => r.delivered === 1), JSON.stringify(results));
    await waitFor(() => got.length >= 21, { message: '21 events at b' });
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive right behind
    assert.deepEqual(got, Array.from({ length: 21 }, (_, i) => i));
    assert.equal(a.state.queued, 0);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('the queue survives the client itself: a new client on the same storage (a restarted service worker) sends it, once', async () => {
  const storage = memoryStorage({ [STORAGE_KEYS.localToken]: { token: hub.token, clientId: 'owner' } });
  const b = client();
  await b.start();
  const got = [];
  try {
    await waitMode(b, 'LOCAL');
    await b.subscribe('kept.*', (e) => got.push(e.payload.n));
    const a = client({ storage, ports: [await freePort()] }); // nothing answers: offline
    await a.start();
    for (let n = 1; n <= 3; n++) a.publish('kept.item', { n }).catch(() => {});
    await waitFor(async () => (await storage.get(STORAGE_KEYS.queue))?.length === 3, { message: 'queue stored' });
    await a.stop();
    const a2 = client({ storage });
    await a2.start();
    await waitMode(a2, 'LOCAL');
    await waitFor(() => a2.state.queued === 0, { message: 'stored queue sent' });
    await waitFor(() => got.length >= 3, { message: 'three kept events' });
    await b.call('hub.status'); // a duplicate would be here by now
    assert.deepEqual(got, [1, 2, 3]);
    assert.deepEqual(await storage.get(STORAGE_KEYS.queue), []);
    await a2.stop();
  } finally {
    await b.stop();
  }
});

test('pairing: approved through the hub stores the token and connects; denied is a PAIRING_DENIED error', async () => {
  const owner = await ownerConnection(hub);
  try {
    const storage = memoryStorage();
    const c = client({ storage, ports: [hub.port] });
    await c.start();
    assert.equal(c.state.mode, 'OFFLINE');
    assert.equal(c.state.paired.local, false);
    let shown;
    const paired = c.pair({ name: 'sdk pairing test', onCode: (i) => { shown = i; } });
    paired.catch(() => {}); // awaited below; a failure before then must not go unhandled
    await waitFor(() => shown, { message: 'the pairing code' });
    assert.match(shown.code, /^\d{6}$/);
    assert.equal(c.state.mode, 'PAIRING');
    const { requests } = await owner.call('pairing.list');
    const req = requests.find((r) => r.code === shown.code);
    assert.ok(req, JSON.stringify(requests));
    assert.equal(req.origin, EXT_ORIGIN);
    await owner.call('pairing.approve', { request_id: req.id, scopes: ['events'] });
    const res = await paired;
    assert.match(res.clientId, /^cl_[0-9a-f]{12}$/);
    assert.deepEqual(res.scopes, ['events']);
    assert.equal((await storage.get(STORAGE_KEYS.localToken)).clientId, res.clientId);
    await waitMode(c, 'LOCAL');
    await assert.rejects(c.call('project.list'), (e) => e.kind === 'FORBIDDEN');
    await c.stop();

    // With the signature-copying impostors on the range, pairing refuses to guess.
    const e = client({ storage: memoryStorage() });
    await assert.rejects(e.pair({ name: 'ambiguous' }), (err) => err.kind === 'AMBIGUOUS_HUB' && err.data.bases.length === 3);
    for (const i of impostors) assert.ok(i.seen.every((r) => !r.url.startsWith('/pair')), 'no pairing request to an impostor');

    const d = client({ storage: memoryStorage(), ports: [hub.port] });
    let code;
    const denied = d.pair({ name: 'to be denied', onCode: (i) => { code = i.code; } });
    denied.catch(() => {});
    await waitFor(() => code, { message: 'second code' });
    const r2 = (await owner.call('pairing.list')).requests.find((r) => r.code === code);
    await owner.call('pairing.deny', { request_id: r2.id });
    await assert.rejects(denied, (e) => e.kind === 'PAIRING_DENIED' && /denied/.test(e.message));
    assert.equal(d.state.pairing, null);
    assert.equal(d.state.lastError.kind, 'PAIRING_DENIED');
  } finally {
    owner.close();
  }
});
