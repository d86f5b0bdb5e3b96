// The WebSocket address comes from the origin the client verified, never from the
// signature's ws_path as a whole: the challenge proof does not cover ws_path, so a server
// that passes the challenge (or a proxy that rewrites the body) must not be able to point
// the client, and its token, at another host or port.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { HubClient, memoryStorage, probe, challengeProof, STORAGE_KEYS } from '../src/index.js';
import { wsUrlOf } from '../src/discovery.js';
import { waitFor, wsClass, sdkFetch, EXT_ORIGIN } from './helpers.js';

const TOKEN = 'c0'.repeat(32);
const CREDENTIAL = { token: TOKEN, clientId: 'owner' };

/** A listener that records every TCP connection made to it and the bytes it received. */
async function recorder() {
  const conns = [];
  const s = net.createServer((sock) => {
    const c = { data: '' };
    conns.push(c);
    sock.on('data', (d) => { c.data += d.toString('latin1'); });
    sock.on('error', () => {});
    setTimeout(() => sock.destroy(), 100);
  });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  return { port: s.address().port, conns, close: () => new Promise((r) => s.close(r)) };
}

/**
 * A fake hub: a signature that passes the challenge (it knows the token, as the real hub
 * or a body-rewriting proxy in front of it would) with the given `ws_path`; records every
 * request, and refuses WebSocket upgrades.
 */
async function fakeHub(wsPath) {
  const seen = [];
  const s = http.createServer(async (req, res) => {
    seen.push({ url: req.url });
    const url = new URL(req.url, 'http://x');
    if (url.pathname !== '/semantest-signature') { res.writeHead(404).end(); return; }
    const endpoint = `127.0.0.1:${req.socket.localPort}`;
    const nonce = url.searchParams.get('challenge');
    const client = url.searchParams.get('client');
    const body = {
      service: 'semantest', product: 'semantest-hub', version: '0.1.0', protocol: 1, mode: 'local',
      instance_id: 'fake', ws_path: wsPath, capabilities: [],
      challenge: nonce ? { nonce, client, endpoint, proof: await challengeProof(TOKEN, { nonce, client, endpoint }) } : null,
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  s.on('upgrade', (req, sock) => { seen.push({ url: req.url, upgrade: true }); sock.destroy(); });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  return { port: s.address().port, seen, close: () => new Promise((r) => { s.closeAllConnections?.(); s.close(r); }) };
}

for (const variant of ['//127.0.0.1:OTHER/ws', 'ws://127.0.0.1:OTHER/ws', '/\\127.0.0.1:OTHER/ws']) {
  test(`a signature whose ws_path is ${JSON.stringify(variant)} never gets a connection or the token to OTHER`, async () => {
    const other = await recorder();
    const wsPath = variant.replace('OTHER', String(other.port));
    const fake = await fakeHub(wsPath);
    const c = new HubClient({
      ports: [fake.port],
      storage: memoryStorage({ [STORAGE_KEYS.localToken]: CREDENTIAL }),
      WebSocket: wsClass({ origin: EXT_ORIGIN }),
      fetch: sdkFetch({ origin: EXT_ORIGIN }),
      backoff: { initialMs: 50, maxMs: 100 },
      probeTimeoutMs: 5000,
    });
    const untrusted = [];
    c.on('untrusted', (u) => untrusted.push(u));
    try {
      const status = await c.start();
      // Three discovery rounds: each one would have connected to OTHER before the next.
      await waitFor(() => fake.seen.filter((s) => s.url.startsWith('/semantest-signature')).length >= 4, { timeout: 20_000, message: 'three more discovery rounds' });
      assert.equal(other.conns.length, 0, `connections to OTHER: ${JSON.stringify(other.conns)}`);
      assert.ok(fake.seen.every((s) => !s.upgrade), 'no WebSocket to a hub whose ws_path is refused either');
      assert.ok(other.conns.every((x) => !x.data.includes(TOKEN)), 'the token never reached OTHER');
      const r = await probe(`http://127.0.0.1:${fake.port}`, { credential: CREDENTIAL, fetch: sdkFetch() });
      assert.equal(r.status, 'untrusted', JSON.stringify(r));
      assert.match(r.reason, /ws_path/);
      assert.equal(c.state.mode, 'OFFLINE');
      assert.equal(status.connected, false);
      assert.equal(status.reason, 'UNTRUSTED_HUB');
      assert.match(status.message, /ws_path/);
      assert.ok(untrusted.length >= 1 && untrusted.every((u) => /ws_path/.test(u.reason)), JSON.stringify(untrusted));
    } finally {
      await c.stop();
      await fake.close();
      await other.close();
    }
  });
}

test('the WebSocket URL keeps the verified origin: ws: for http:, wss: for https:, the path only from ws_path', () => {
  assert.equal(wsUrlOf('http://127.0.0.1:3003', { ws_path: '/ws' }), 'ws://127.0.0.1:3003/ws');
  assert.equal(wsUrlOf('http://127.0.0.1:3003', {}), 'ws://127.0.0.1:3003/ws');
  assert.equal(wsUrlOf('https://hub.example.com', { ws_path: '/ws' }), 'wss://hub.example.com/ws');
  assert.equal(wsUrlOf('https://hub.example.com:8443/ignored/path?q=1', { ws_path: '/hub/ws' }), 'wss://hub.example.com:8443/hub/ws');
  assert.equal(wsUrlOf('http://[::1]:3005', { ws_path: '/ws' }), 'ws://[::1]:3005/ws');
  for (const bad of ['//evil.example/ws', 'http://evil.example/ws', 'ws://evil.example/ws', 'wss://evil.example/ws',
    '/\\evil.example/ws', '\\\\evil.example\\ws', '/ws@evil.example', 'user@evil.example/ws', 'ws', '', '/ws?token=1',
    '/ws#x', '/w s', '/ws%2f%2fevil', 42, { path: '/ws' }, `/${'a'.repeat(256)}`]) {
    assert.throws(() => wsUrlOf('https://hub.example.com', { ws_path: bad }), (e) => e.kind === 'PROTOCOL' && /ws_path/.test(e.message), JSON.stringify(bad));
  }
  assert.throws(() => wsUrlOf('ftp://hub.example.com', { ws_path: '/ws' }), (e) => e.kind === 'PROTOCOL');
});
