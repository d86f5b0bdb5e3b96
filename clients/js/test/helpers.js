// Helpers for the SDK's tests: real hubs (the built `semantest-hub serve`, a local one and a
// public-mode one with TLS from a certificate made here), a TLS-trusting fetch and
// WebSocket for node, an owner connection for approving pairings, and bounded waits.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const execFileP = promisify(execFile);
export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../../..');
export const HUB_BIN = process.env.SEMANTEST_HUB_BIN || path.join(REPO, 'target/debug/semantest-hub');
/** The binary of the public-mode hubs (SEMANTEST_HUB_PUBLIC_BIN overrides; default the same). */
export const PUBLIC_HUB_BIN = process.env.SEMANTEST_HUB_PUBLIC_BIN || HUB_BIN;
/** The hub's golden fixtures (SEMANTEST_HUB_FIXTURES overrides). */
export const FIXTURES = process.env.SEMANTEST_HUB_FIXTURES || path.join(REPO, 'tests/fixtures');
/** An extension origin for requests that must come from one (POST /pair). */
export const EXT_ORIGIN = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop';

/** Polls `fn` until truthy (bounded by `timeout` ms). */
export async function waitFor(fn, { timeout = 10_000, interval = 25, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (err) { lastErr = err; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}${lastErr ? `: ${lastErr.message}` : ''}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Resolves with the first value of `emitter.on(name)` that passes `pred`, within `timeout`. */
export function nextEvent(client, name, pred = () => true, timeout = 15_000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { off(); reject(new Error(`no ${name} event within ${timeout} ms (state ${JSON.stringify(client.state)})`)); }, timeout);
    const off = client.on(name, (v) => { if (pred(v)) { clearTimeout(t); off(); resolve(v); } });
  });
}

/** Waits until `client.state.mode === mode`. */
export async function waitMode(client, mode, timeout = 15_000) {
  if (client.state.mode === mode) return client.state;
  return nextEvent(client, 'state', (s) => s.mode === mode, timeout);
}

export const tempDir = (prefix) => fsp.mkdtemp(path.join(os.tmpdir(), prefix));

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** A self-signed certificate for localhost and 127.0.0.1, made with openssl. */
export async function makeCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  await execFileP('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { timeout: 20_000 });
  const spki = (await execFileP('sh', ['-c', `openssl x509 -in '${cert}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`])).stdout.trim();
  return { cert, key, pem: await fsp.readFile(cert, 'utf8'), spki };
}

/**
 * Starts `semantest-hub serve`. `publicTls` ({cert, key}) starts it in public mode with TLS
 * on 127.0.0.1. Resolves once /semantest-signature answers.
 */
export async function startHub({ dataDir, port = 0, publicTls = null, env = {}, allowedOrigins = [EXT_ORIGIN] } = {}) {
  const bin = publicTls ? PUBLIC_HUB_BIN : HUB_BIN;
  if (!fs.existsSync(bin)) throw new Error(`hub binary not found at ${bin}: run \`cargo build\` first`);
  dataDir ??= await tempDir('sdk-hub-');
  const args = ['serve', '--data-dir', dataDir, '--secret-store', 'file'];
  // Public mode's --bind carries the port; the Host allowlist names 127.0.0.1 (any port),
  // the IP literal the clients contact, so the challenge's endpoint is unambiguous.
  if (publicTls) args.push('--public', '--bind', `127.0.0.1:${port}`, '--tls-cert', publicTls.cert, '--tls-key', publicTls.key);
  else args.push('--port', String(port));
  const origins = JSON.stringify(allowedOrigins);
  const modeEnv = publicTls ? { SEMANTEST_HUB_PUBLIC__ALLOWED_ORIGINS: origins, SEMANTEST_HUB_PUBLIC__HOSTS: '["127.0.0.1"]' } : {};
  const proc = spawn(bin, args, { env: { ...process.env, SEMANTEST_HUB_ALLOWED_ORIGINS: origins, ...modeEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d) => { output = (output + d).slice(-20_000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const info = await waitFor(() => {
    if (exited) throw new Error(`hub exited early (${JSON.stringify(exited)}):\n${output}`);
    try { const j = JSON.parse(fs.readFileSync(path.join(dataDir, 'server.json'), 'utf8')); return j.pid === proc.pid ? j : null; } catch { return null; }
  }, { timeout: 30_000, message: 'server.json' }).catch((err) => { proc.kill('SIGKILL'); throw new Error(`${err.message}\n${output}`); });
  const readyAt = performance.now(); // server.json written: the hub listens
  const scheme = publicTls ? 'https' : 'http';
  const base = `${scheme}://127.0.0.1:${info.port}`;
  const hub = { base, port: info.port, readyAt, dataDir, proc, log: () => output, exited: () => exited, publicTls };
  const { stdout } = await execFileP(bin, ['token', '--data-dir', dataDir, '--secret-store', 'file'], { timeout: 15_000 });
  const m = /\b[0-9a-f]{64}\b/.exec(stdout);
  if (!m) throw new Error(`no token in \`semantest-hub token\` output: ${JSON.stringify(stdout)}`);
  hub.token = m[0];
  return hub;
}

/** The desktop hub's port range (docs/protocol.md, "Finding the hub"). */
export const HUB_RANGE = [3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010, 3011, 3012];

/** Whether nothing listens on 127.0.0.1:`port` right now. */
function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * Starts a local hub on the first free port of 3003–3012, where a client with the default
 * `ports` finds it (for code that runs as a user would write it, e.g. the README example).
 * @throws {Error} when every port of the range is taken
 */
export async function startHubInRange(opts = {}) {
  const errors = [];
  for (const port of HUB_RANGE) {
    if (!(await portFree(port))) continue;
    try {
      return await startHub({ ...opts, port });
    } catch (err) {
      errors.push(`${port}: ${err.message.split('\n')[0]}`); // taken in the meantime
    }
  }
  throw new Error(`no free port in 3003–3012 for a hub${errors.length ? ` (${errors.join('; ')})` : ''}`);
}

/** Stops a hub (SIGTERM, then SIGKILL after `timeout`) and waits for it to exit. */
export async function stopHub(hub, { timeout = 10_000 } = {}) {
  if (!hub || hub.exited()) return;
  const done = new Promise((resolve) => hub.proc.once('exit', resolve));
  hub.proc.kill('SIGTERM');
  const t = setTimeout(() => hub.proc.kill('SIGKILL'), timeout);
  await done;
  clearTimeout(t);
}

/** A WebSocket class for the SDK that trusts `ca` and sends `origin` (when given). */
export function wsClass({ ca, origin } = {}) {
  return class extends WebSocket {
    constructor(url, protocols) { super(url, protocols, { ...(ca ? { ca } : {}), ...(origin ? { origin } : {}) }); }
  };
}

/**
 * Like `wsClass`, and records every frame each socket sends and receives (parsed JSON) in
 * `frames` as `{dir: "out" | "in", msg}`.
 */
export function recordingWsClass(frames, opts = {}) {
  const Base = wsClass(opts);
  return class extends Base {
    constructor(url, protocols) {
      super(url, protocols);
      this.on('message', (d) => { try { frames.push({ dir: 'in', msg: JSON.parse(String(d)) }); } catch { /* not JSON */ } });
    }
    send(data, ...rest) {
      try { frames.push({ dir: 'out', msg: JSON.parse(data) }); } catch { /* not JSON */ }
      return super.send(data, ...rest);
    }
  };
}

/** One fixture of the hub's golden tests, `tests/fixtures/<name>`, parsed. */
export function fixture(name) {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, name), 'utf8'));
}

/** The members of a JSON value with each leaf replaced by its JSON type (an array by its first element's), to compare shapes. */
export function shape(v) {
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : [];
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape(v[k])]));
  return v === null ? 'null' : typeof v;
}

/**
 * A fetch for the SDK: global fetch for http:, node:https with `ca` for https:; adds
 * `Origin: origin` to POSTs when given, as a browser extension's fetch does.
 */
export function sdkFetch({ ca, origin } = {}) {
  return async (url, init = {}) => {
    const headers = { ...(init.headers ?? {}) };
    if (origin && init.method === 'POST') headers.origin = origin;
    const u = new URL(url);
    if (u.protocol === 'http:') return fetch(url, { method: init.method, headers, body: init.body, signal: init.signal });
    return new Promise((resolve, reject) => {
      const req = https.request(u, { method: init.method ?? 'GET', headers, ca, signal: init.signal }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({
          ok: res.statusCode >= 200 && res.statusCode < 300,
          status: res.statusCode,
          json: async () => JSON.parse(body),
          text: async () => body,
        }));
      });
      req.on('error', reject);
      if (init.body) req.write(init.body);
      req.end();
    });
  };
}

/** A raw JSON-RPC connection with the owner token (for approving pairings etc). */
export async function ownerConnection(hub) {
  const ws = new WebSocket(hub.base.replace(/^http/, 'ws') + '/ws', ['semantest-hub.v1'], {
    headers: { authorization: `Bearer ${hub.token}` },
    ...(hub.publicTls ? { ca: fs.readFileSync(hub.publicTls.cert) } : {}),
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  let id = 0;
  const pending = new Map();
  const notes = [];
  ws.on('message', (d) => {
    const m = JSON.parse(String(d));
    if (m.id != null && pending.has(m.id)) { const p = pending.get(m.id); pending.delete(m.id); m.error ? p.reject(Object.assign(new Error(m.error.message), { kind: m.error.data?.kind })) : p.resolve(m.result); } else if (m.method) notes.push(m);
  });
  const call = (method, params = {}) => new Promise((resolve, reject) => {
    const i = ++id;
    const t = setTimeout(() => { pending.delete(i); reject(new Error(`${method}: no response`)); }, 10_000);
    pending.set(i, { resolve: (v) => { clearTimeout(t); resolve(v); }, reject: (e) => { clearTimeout(t); reject(e); } });
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: i, method, params }));
  });
  return { call, notes, close: () => ws.close() };
}
