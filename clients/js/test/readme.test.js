// The README's example, taken from the README itself (never a copy), run by Node as a
// user would run it: `SEMANTEST_HUB_TOKEN=$(semantest-hub token) node example.mjs`, with
// the package resolved by name, against a real hub on the default port range. A second
// client sees its demo.hello, gets an answer to demo.ping, and its own event shows in
// the example's output. (tests/browser/sdk-example.test.js runs the same block as an MV3
// service worker.)

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import WebSocket from 'ws';
import { HubClient, memoryStorage, STORAGE_KEYS } from '../src/index.js';
import { readmeExample, SPECIFIER } from '../examples/build.mjs';
import { startHubInRange, stopHub, tempDir, waitFor, HERE } from './helpers.js';

let hub;
let child;

after(async () => {
  child?.kill('SIGKILL');
  await stopHub(hub);
});

test('the README example runs as written in Node against a real hub', async () => {
  hub = await startHubInRange();
  const dir = await tempDir('sdk-readme-');
  // The package by its name, as an installed dependency.
  const pkg = path.join(dir, 'node_modules', ...SPECIFIER.split('/'));
  await fsp.mkdir(path.dirname(pkg), { recursive: true });
  await fsp.symlink(path.resolve(HERE, '..'), pkg, 'dir');
  const script = path.join(dir, 'example.mjs');
  await fsp.writeFile(script, readmeExample());

  const other = new HubClient({ ports: [hub.port], storage: memoryStorage({ [STORAGE_KEYS.localToken]: hub.token }), WebSocket, name: 'readme test' });
  const hellos = [];
  await other.subscribe('demo.hello', (e) => hellos.push(e));
  assert.equal((await other.start()).connected, true);

  // Node 22 has a global WebSocket; Node 20 needs the flag the README names.
  const flags = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket'] : [];
  let out = '';
  child = spawn(process.execPath, [...flags, script], { cwd: dir, env: { ...process.env, SEMANTEST_HUB_TOKEN: hub.token }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  try {
    const seen = (re, message) => waitFor(() => { if (exited) throw new Error(`the example exited ${JSON.stringify(exited)}`); return re.test(out); }, { timeout: 20_000, message: `${message} (output so far:\n${out})` });
    await seen(/hub: LOCAL/, 'the example connected LOCAL');
    await seen(/demo\.hello reached 1 other client\(s\)/, 'the example\'s publish result');
    await waitFor(() => hellos.length === 1, { message: 'demo.hello at the other client' });
    assert.deepEqual(hellos[0].payload, { hi: 1 });
    const reply = await other.request('demo.ping', { n: 1 }, { timeoutMs: 10_000 });
    assert.deepEqual(reply.payload, { pong: { n: 1 } });
    await other.publish('demo.note', { from: 'test' });
    await seen(/got demo\.note \{"from":"test"\} from conn-\d+/, 'the other client\'s event in the example\'s output');
    assert.doesNotMatch(out, /got demo\.hello/, 'the hub does not echo the example its own event');
    assert.doesNotMatch(out, /NOT_PAIRED|NO_HUB|Error/, out);
  } finally {
    await other.stop();
    child.kill('SIGTERM');
  }
});
