// The SDK's pure parts: the challenge proof against an independent HMAC, endpoint naming,
// pattern matching and the backoff curve.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { challengeProof, endpointOf, matches, backoffDelay, memoryStorage } from '../src/index.js';

test('challenge proof v2 equals HMAC-SHA256(SHA-256(token), "semantest-signature:v2\\n" nonce \\n client \\n endpoint)', async () => {
  const token = 'ab'.repeat(32);
  const msg = { nonce: 'n0nce', client: 'cl_0123456789ab', endpoint: '127.0.0.1:3003' };
  const key = crypto.createHash('sha256').update(token).digest();
  const expected = crypto.createHmac('sha256', key).update(`semantest-signature:v2\n${msg.nonce}\n${msg.client}\n${msg.endpoint}`).digest('hex');
  assert.equal(await challengeProof(token, msg), expected);
  assert.notEqual(await challengeProof(token, { ...msg, endpoint: '127.0.0.1:3004' }), expected);
});

test('endpoint always names the port, IPv6 keeps brackets', () => {
  assert.equal(endpointOf(new URL('http://127.0.0.1:3003/x')), '127.0.0.1:3003');
  assert.equal(endpointOf(new URL('https://hub.example.com/')), 'hub.example.com:443');
  assert.equal(endpointOf(new URL('http://[::1]:3005/')), '[::1]:3005');
});

test('patterns: exact, prefix wildcard (not the prefix itself), everything', () => {
  assert.ok(matches('probe.click', 'probe.click'));
  assert.ok(!matches('probe.click', 'probe.clicks'));
  assert.ok(matches('probe.*', 'probe.x'));
  assert.ok(matches('probe.*', 'probe.x.y'));
  assert.ok(!matches('probe.*', 'probe'));
  assert.ok(!matches('probe.*', 'probes.x'));
  assert.ok(matches('*', 'anything.at.all'));
});

test('backoff doubles up to the cap, with jitter in [ceiling/2, ceiling]', () => {
  const b = { initialMs: 100, maxMs: 1000 };
  assert.equal(backoffDelay(0, b, () => 1), 100);
  assert.equal(backoffDelay(0, b, () => 0), 50);
  assert.equal(backoffDelay(3, b, () => 1), 800);
  assert.equal(backoffDelay(4, b, () => 1), 1000);
  assert.equal(backoffDelay(40, b, () => 0), 500);
});

test('memory storage returns copies', async () => {
  const s = memoryStorage();
  const v = { a: [1] };
  await s.set('k', v);
  v.a.push(2);
  assert.deepEqual(await s.get('k'), { a: [1] });
  await s.remove('k');
  assert.equal(await s.get('k'), undefined);
});
