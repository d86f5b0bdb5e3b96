// Subscriptions against a real hub: a pattern is checked with the hub's own rule when
// subscribe() is called (so a bad one never joins the resubscription of later
// connections), and a pattern the hub refuses at resubscription costs only itself: the
// others still receive events after the reconnect.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HubClient, HubError, memoryStorage, patternProblem, STORAGE_KEYS } from '../src/index.js';
import { startHub, stopHub, waitFor, waitMode, wsClass, sdkFetch, ownerConnection, EXT_ORIGIN } from './helpers.js';

let hub;

before(async () => { hub = await startHub(); });
after(async () => { await stopHub(hub); });

function client(extra = {}) {
  return new HubClient({
    ports: [hub.port],
    storage: memoryStorage({ [STORAGE_KEYS.localToken]: { token: hub.token, clientId: 'owner' } }),
    WebSocket: wsClass({ origin: EXT_ORIGIN }),
    fetch: sdkFetch({ origin: EXT_ORIGIN }),
    backoff: { initialMs: 100, maxMs: 500 },
    ...extra,
  });
}

const GOOD = ['a', '*', 'a.*', 'probe.click', 'a-b_c.d9.*', 'x'.repeat(128), `${'y'.repeat(126)}.*`];
const BAD = ['', 'Bad.*', 'a.*.b', 'probe*', '*.click', 'a..b', '.a', 'a.', 'a.**', 'a b', 'é', 'x'.repeat(129), `${'y'.repeat(127)}.*`, 'a/b'];

test('the local pattern rule is the hub\'s: every case gets the same answer from patternProblem and from event.subscribe', async () => {
  const owner = await ownerConnection(hub);
  try {
    for (const p of [...GOOD, ...BAD]) {
      const hubSays = await owner.call('event.subscribe', { types: [p] }).then(() => 'ok', (e) => e.kind);
      assert.equal(patternProblem(p) === null ? 'ok' : 'INVALID_EVENT_TYPE', hubSays, JSON.stringify(p));
    }
    for (const p of [42, null, undefined, ['a']]) assert.notEqual(patternProblem(p), null, JSON.stringify(p));
  } finally {
    owner.close();
  }
});

test('a bad pattern is refused at subscribe(), offline too, and the good ones of the same client receive events once connected', async () => {
  const a = client();
  const b = client();
  const got = [];
  try {
    // b is not started: before this check, 'Bad.*' was kept and sent with the others on
    // connect, and the hub refused the whole batch.
    await b.subscribe('good.*', (e) => got.push(e.type));
    for (const p of BAD) {
      await assert.rejects(b.subscribe(p, () => {}), (e) => e instanceof HubError && e.kind === 'INVALID_EVENT_TYPE' && e.code === -32041 && e.data.type === p && /not an event type pattern/.test(e.message), JSON.stringify(p));
    }
    await assert.rejects(b.subscribe(42, () => {}), (e) => e.kind === 'INVALID_EVENT_TYPE');
    await b.subscribe('exact.one', (e) => got.push(e.type));
    await Promise.all([a.start(), b.start()]);
    await Promise.all([waitMode(a, 'LOCAL'), waitMode(b, 'LOCAL')]);
    assert.deepEqual(b.state.refused, []);
    assert.equal((await a.publish('good.x', {})).delivered, 1);
    assert.equal((await a.publish('exact.one', {})).delivered, 1);
    await waitFor(() => got.length === 2, { message: 'both events at b' });
    assert.deepEqual(got, ['good.x', 'exact.one']);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('the hub refuses one pattern at resubscription (a lower max_subscriptions after a restart): the others still receive events', async () => {
  const a = client();
  const b = client();
  const got = [];
  const refusals = [];
  b.on('subscriptionerror', (r) => refusals.push(r));
  await Promise.all([a.start(), b.start()]);
  try {
    await Promise.all([waitMode(a, 'LOCAL'), waitMode(b, 'LOCAL')]);
    for (const p of ['one.*', 'two.*', 'three.*']) await b.subscribe(p, (e) => got.push(e.type));
    for (const t of ['one.x', 'two.x', 'three.x']) assert.equal((await a.publish(t, {})).delivered, 1, t);
    await waitFor(() => got.length === 3, { message: 'three events before the restart' });

    // The same hub comes back allowing two patterns per connection: the batch of three is
    // refused as a whole (TOO_MANY_SUBSCRIPTIONS), so each pattern is sent on its own.
    const { port, dataDir } = hub;
    await stopHub(hub);
    hub = await startHub({ port, dataDir, env: { SEMANTEST_HUB_LIMITS__MAX_SUBSCRIPTIONS: '2' } });
    await Promise.all([waitMode(a, 'LOCAL', 20_000), waitMode(b, 'LOCAL', 20_000)]);
    got.length = 0;
    assert.equal((await a.publish('one.y', {})).delivered, 1);
    assert.equal((await a.publish('three.y', {})).delivered, 0);
    assert.equal((await a.publish('two.y', {})).delivered, 1);
    await waitFor(() => got.length === 2, { message: 'one.y and two.y at b after the reconnect' });
    assert.deepEqual(got, ['one.y', 'two.y']);
    // The refusal is reported, and three.* is kept for the next connection.
    assert.equal(refusals.length, 1, JSON.stringify(refusals));
    assert.equal(refusals[0].pattern, 'three.*');
    assert.equal(refusals[0].error.kind, 'TOO_MANY_SUBSCRIPTIONS');
    assert.deepEqual(b.state.refused.map((r) => [r.pattern, r.kind]), [['three.*', 'TOO_MANY_SUBSCRIPTIONS']]);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    const { port, dataDir } = hub;
    await stopHub(hub);
    hub = await startHub({ port, dataDir });
  }
});
