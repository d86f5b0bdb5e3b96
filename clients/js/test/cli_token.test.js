// A token from the command line in the SDK, in Node, as the README says: the real
// `semantest-hub token create` prints a client token (and names its id on stderr), the SDK
// connects with `{token, clientId}`, publishes, and another client receives the event.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { HubClient, memoryStorage } from '../src/index.js';
import { startHub, stopHub, waitFor, wsClass, sdkFetch, ownerConnection, HUB_BIN } from './helpers.js';

const execFileP = promisify(execFile);

let hub;
let owner;

before(async () => {
  hub = await startHub();
  owner = await ownerConnection(hub);
});

after(async () => {
  owner?.close();
  await stopHub(hub);
});

test('semantest-hub token create hands the SDK a token it connects and publishes with', async () => {
  const { stdout, stderr } = await execFileP(HUB_BIN, [
    '--data-dir', hub.dataDir, '--secret-store', 'file',
    'token', 'create', '--name', 'node-script', '--scope', 'events',
  ], { timeout: 30_000 });
  const token = stdout.trim();
  assert.match(token, /^[0-9a-f]{64}$/, stdout);
  const clientId = /\bcl_[0-9a-f]{12}\b/.exec(stderr)?.[0];
  assert.ok(clientId, `token create names the client on stderr: ${stderr}`);

  await owner.call('event.subscribe', { types: ['cli.*'] });
  const sdk = new HubClient({
    name: 'node script',
    ports: [hub.port],
    token: { token, clientId },
    storage: memoryStorage(),
    // A script in Node: no Origin header.
    WebSocket: wsClass(),
    fetch: sdkFetch(),
    backoff: { initialMs: 100, maxMs: 500 },
  });
  try {
    const started = await sdk.start();
    assert.equal(started.connected, true, JSON.stringify(started));
    const sent = await sdk.publish('cli.hello', { from: 'node' });
    assert.equal(typeof sent, 'object', JSON.stringify(sent));
    const heard = await waitFor(
      () => owner.notes.find((n) => n.method === 'event' && n.params.type === 'cli.hello'),
      { timeout: 15_000, message: 'the event at the other client' },
    );
    assert.deepEqual(heard.params.payload, { from: 'node' });
  } finally {
    await sdk.stop();
  }
  // The client token is the one `token list` shows as used.
  const { stdout: listed } = await execFileP(HUB_BIN, [
    '--data-dir', hub.dataDir, '--secret-store', 'file', 'token', 'list', '--json',
  ], { timeout: 30_000 });
  const mine = JSON.parse(listed).clients.find((c) => c.id === clientId);
  assert.ok(mine?.last_used_at, listed);
});
