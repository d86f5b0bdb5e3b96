// Unit tests of ui/rpc.js, the dashboard's JSON-RPC client, with a fake WebSocket.
// No hub or browser needed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RpcClient, RpcError, backoffDelay } from '../../ui/rpc.js';
import { waitFor } from './helpers.js';

/** A scripted stand-in for the browser's WebSocket. */
class FakeSocket {
  static instances = [];
  static behaviour = 'open'; // 'open' | 'refuse'
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.instances.push(this);
    setTimeout(() => {
      if (FakeSocket.behaviour === 'refuse') {
        this.readyState = 3;
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: '' });
      } else {
        this.readyState = 1;
        this.onopen?.({});
      }
    }, 1);
  }
  send(text) {
    const msg = JSON.parse(text);
    this.sent.push(msg);
    if (msg.method === 'hub.hello') this.reply(msg.id, { connection_id: `c${FakeSocket.instances.length}`, protocol: 1, server: { product: 'p', version: '1' } });
  }
  reply(id, result) {
    setTimeout(() => this.onmessage?.({ data: JSON.stringify({ jsonrpc: '2.0', id, result }) }), 1);
  }
  fail(id, code, message, kind) {
    setTimeout(() => this.onmessage?.({ data: JSON.stringify({ jsonrpc: '2.0', id, error: { code, message, data: { kind } } }) }), 1);
  }
  push(method, params) {
    this.onmessage?.({ data: JSON.stringify({ jsonrpc: '2.0', method, params }) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
  close() {
    this.readyState = 3;
  }
}

function client(opts = {}) {
  FakeSocket.instances = [];
  FakeSocket.behaviour = 'open';
  return new RpcClient({
    url: 'ws://127.0.0.1:1/ws',
    protocols: ['semantest-hub.v1'],
    hello: { method: 'hub.hello', params: { role: 'dashboard', name: 'Dashboard' } },
    WebSocket: FakeSocket,
    initialBackoffMs: 5,
    maxBackoffMs: 40,
    authProbe: async () => 'down',
    ...opts,
  });
}

const last = () => FakeSocket.instances.at(-1);
const states = (c) => {
  const seen = [];
  c.addEventListener('state', (ev) => seen.push(ev.detail.state));
  return seen;
};

test('backoff doubles from 0.5 s to 10 s with jitter in [d/2, d]', () => {
  const lo = (a) => backoffDelay(a, { random: () => 0 });
  const hi = (a) => backoffDelay(a, { random: () => 1 });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 10].map(hi), [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  assert.deepEqual([0, 1, 5].map(lo), [250, 500, 5000]);
});

test('says hello first, then matches replies to requests by id', async () => {
  const c = client();
  const seen = states(c);
  c.start();
  const p1 = c.request('hub.status');
  const p2 = c.request('project.list');
  await waitFor(() => last()?.sent.length >= 3, { message: 'requests sent' });
  const [hello, r1, r2] = last().sent;
  assert.equal(hello.method, 'hub.hello');
  assert.deepEqual(hello.params, { role: 'dashboard', name: 'Dashboard' });
  assert.deepEqual(last().protocols, ['semantest-hub.v1']);
  last().reply(r2.id, { projects: [] });
  last().reply(r1.id, { version: '1' });
  assert.deepEqual(await p1, { version: '1' });
  assert.deepEqual(await p2, { projects: [] });
  assert.equal(c.session.connection_id, 'c1');
  assert.deepEqual(seen, ['connecting', 'connected']);
  c.stop();
});

test('an error reply rejects with its kind and message', async () => {
  const c = client();
  c.start();
  const p = c.request('project.create', { path: 'rel' });
  await waitFor(() => last()?.sent.length >= 2, { message: 'request sent' });
  last().fail(last().sent[1].id, -32602, 'path must be absolute', 'INVALID_PATH');
  await assert.rejects(p, (err) => err instanceof RpcError && err.kind === 'INVALID_PATH' && err.message === 'path must be absolute' && err.code === -32602);
  c.stop();
});

test('a request with no reply times out', async () => {
  const c = client({ requestTimeoutMs: 30 });
  c.start();
  await waitFor(() => c.state === 'connected', { message: 'connected' });
  await assert.rejects(c.request('hub.status'), (err) => err.kind === 'TIMEOUT');
  c.stop();
});

test('notifications reach their listeners until unsubscribed', async () => {
  const c = client();
  c.start();
  await waitFor(() => c.state === 'connected', { message: 'connected' });
  const got = [];
  const off = c.on('project.output', (p) => got.push(p.seq));
  const all = [];
  c.on('*', (_p, m) => all.push(m));
  last().push('project.output', { seq: 1 });
  last().push('hub.stats', {});
  off();
  last().push('project.output', { seq: 2 });
  assert.deepEqual(got, [1]);
  assert.deepEqual(all, ['project.output', 'hub.stats', 'project.output']);
  c.stop();
});

test('a lost connection rejects pending requests, reconnects and says hello again', async () => {
  const c = client();
  const seen = states(c);
  c.start();
  await waitFor(() => c.state === 'connected', { message: 'connected' });
  const pending = c.request('hub.status');
  last().drop();
  await assert.rejects(pending, (err) => err.kind === 'DISCONNECTED');
  await waitFor(() => c.state === 'connected' && FakeSocket.instances.length === 2, { message: 'reconnected' });
  assert.equal(last().sent[0].method, 'hub.hello');
  assert.deepEqual(seen, ['connecting', 'connected', 'reconnecting', 'reconnecting', 'connected']);
  c.stop();
});

test('requests made while reconnecting wait for the connection', async () => {
  const c = client();
  c.start();
  await waitFor(() => c.state === 'connected', { message: 'connected' });
  FakeSocket.behaviour = 'refuse';
  last().drop();
  await waitFor(() => FakeSocket.instances.length >= 3, { message: 'two failed attempts' });
  const p = c.request('hub.status', undefined, { timeoutMs: 2000 });
  FakeSocket.behaviour = 'open';
  await waitFor(() => c.state === 'connected', { message: 'reconnected' });
  await waitFor(() => last().sent.length >= 2, { message: 'queued request sent' });
  last().reply(last().sent[1].id, { ok: true });
  assert.deepEqual(await p, { ok: true });
  c.stop();
});

test('backoff grows between failed attempts', async () => {
  const c = client({ random: () => 1 });
  const delays = [];
  c.addEventListener('state', (ev) => ev.detail.delayMs !== undefined && delays.push(ev.detail.delayMs));
  FakeSocket.behaviour = 'refuse';
  c.start();
  await waitFor(() => delays.length >= 5, { timeout: 5000, message: 'five retries' });
  c.stop();
  assert.deepEqual(delays.slice(0, 5), [5, 10, 20, 40, 40]);
});

test('a refused handshake with an unauthorized probe means signed out, with no retry', async () => {
  const c = client({ authProbe: async () => 'unauthorized' });
  FakeSocket.behaviour = 'refuse';
  const seen = states(c);
  c.start();
  await waitFor(() => c.state === 'signed-out', { message: 'signed-out' });
  const attempts = FakeSocket.instances.length;
  await new Promise((r) => setTimeout(r, 100)); // would be several retries at 5-40 ms
  assert.equal(FakeSocket.instances.length, attempts);
  assert.deepEqual(seen, ['connecting', 'signed-out']);
  await assert.rejects(c.request('hub.status'), (err) => err.kind === 'DISCONNECTED');
  // retry() tries again, e.g. after the user signed in in another tab.
  FakeSocket.behaviour = 'open';
  c.retry();
  await waitFor(() => c.state === 'connected', { message: 'connected after retry' });
  c.stop();
});

test('an UNAUTHORIZED hello means signed out', async () => {
  FakeSocket.instances = [];
  class NoHello extends FakeSocket {
    send(text) {
      const m = JSON.parse(text);
      this.sent.push(m);
      this.fail(m.id, -32000, 'unauthorized', 'UNAUTHORIZED');
    }
  }
  const c = client({ WebSocket: NoHello });
  c.start();
  await waitFor(() => c.state === 'signed-out', { message: 'signed-out' });
  c.stop();
});
