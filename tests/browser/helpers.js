// Helpers for the dashboard's browser tests: start a real hub on a free port with the fake
// agent CLI, get a one-time sign-in link, drive Debian's Chromium through playwright-core,
// wait with deadlines, and check screenshots are not blank.

import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import { promisify } from 'node:util';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../..');
/** The hub binary under test (SEMANTEST_HUB_BIN overrides, e.g. for a release build). */
export const HUB_BIN = process.env.SEMANTEST_HUB_BIN || path.join(REPO, 'target/debug/semantest-hub');
export const FAKE_CLAUDE = path.join(REPO, 'tests/fixtures/fake-claude');
export const ARTIFACTS = path.join(REPO, 'target/test-artifacts');
export const AXE_PATH = path.join(HERE, 'node_modules/axe-core/axe.min.js');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/**
 * Polls `fn` until it returns a truthy value, and returns that value. Throws `message`
 * (plus the last error) after `timeout` ms.
 */
export async function waitFor(fn, { timeout = 10_000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${lastErr ? `: ${lastErr.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** A fresh temporary directory. */
export async function tempDir(prefix = 'hub-ui-') {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

function assertHubBinary() {
  if (!fs.existsSync(HUB_BIN)) {
    throw new Error(`hub binary not found at ${HUB_BIN}: run \`cargo build\` first (or set SEMANTEST_HUB_BIN)`);
  }
}

/**
 * Starts `semantest-hub serve` and waits until it listens (server.json names its pid) and
 * answers /health.
 * @returns {Promise<{url: string, port: number, pid: number, dataDir: string, proc: import('node:child_process').ChildProcess, log: () => string}>}
 */
export async function startHub({ dataDir, port = 0, env = {} } = {}) {
  assertHubBinary();
  dataDir ??= await tempDir('hub-data-');
  const args = ['serve', '--port', String(port), '--data-dir', dataDir, '--secret-store', 'file'];
  const proc = spawn(HUB_BIN, args, {
    env: { ...process.env, SEMANTEST_HUB_AGENT__CLI_PATH: FAKE_CLAUDE, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (d) => { output = (output + d).slice(-20_000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const log = () => output;

  const serverJson = path.join(dataDir, 'server.json');
  const info = await waitFor(() => {
    if (exited) throw new Error(`hub exited early (${JSON.stringify(exited)}):\n${output}`);
    try {
      const j = JSON.parse(fs.readFileSync(serverJson, 'utf8'));
      return j.pid === proc.pid ? j : null;
    } catch {
      return null;
    }
  }, { timeout: 30_000, message: `${serverJson} from the hub (pid ${proc.pid})` }).catch((err) => {
    proc.kill('SIGKILL');
    throw new Error(`${err.message}\nhub output:\n${output}`);
  });
  const url = String(info.url).replace(/\/$/, '');
  await waitFor(async () => (await fetch(`${url}/health`)).ok, { timeout: 10_000, message: `${url}/health` });
  return { url, port: info.port, pid: proc.pid, dataDir, proc, log, exited: () => exited };
}

/** Stops a hub with `signal` and waits for it to exit (SIGKILL after `timeout`). */
export async function stopHub(hub, { signal = 'SIGTERM', timeout = 15_000 } = {}) {
  if (!hub || hub.exited()) return hub?.exited();
  const done = new Promise((resolve) => hub.proc.once('exit', (code, sig) => resolve({ code, signal: sig })));
  hub.proc.kill(signal);
  const t = setTimeout(() => hub.proc.kill('SIGKILL'), timeout);
  const res = await done;
  clearTimeout(t);
  return res;
}

/** A one-time sign-in link from `semantest-hub dashboard --print`. */
export async function signInUrl(dataDir) {
  assertHubBinary();
  const { stdout } = await execFileP(HUB_BIN, ['dashboard', '--print', '--data-dir', dataDir], {
    timeout: 15_000,
    env: { ...process.env, SEMANTEST_HUB_AGENT__CLI_PATH: FAKE_CLAUDE },
  });
  const m = /https?:\/\/\S+\/login\?code=\S+/.exec(stdout);
  if (!m) throw new Error(`no sign-in link in \`dashboard --print\` output: ${JSON.stringify(stdout)}`);
  return m[0];
}

/** Launches Debian's Chromium, headless, with a fresh profile. */
export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * A browser context signed in to the hub through a fresh one-time link, with a page on the
 * dashboard showing "Connected". Console errors about the CSP are collected in
 * `cspErrors`, page errors in `pageErrors`.
 */
export async function signedInPage(browser, hub, { contextOptions = {}, storageState } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...contextOptions, ...(storageState ? { storageState } : {}) });
  const page = await context.newPage();
  const watch = watchPage(page);
  if (storageState) {
    await page.goto(`${hub.url}/`);
  } else {
    const link = await signInUrl(hub.dataDir);
    await page.goto(link);
  }
  await waitConnected(page);
  return { context, page, ...watch };
}

/** Records CSP violations and uncaught page errors. */
export function watchPage(page) {
  const cspErrors = [];
  const pageErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content.Security.Policy/i.test(msg.text())) cspErrors.push(msg.text());
  });
  page.on('pageerror', (err) => pageErrors.push(String(err?.stack ?? err)));
  return { cspErrors, pageErrors };
}

export async function waitConnected(page, timeout = 15_000) {
  await page.locator('#conn-status.conn-connected').waitFor({ timeout });
}

/** Sends one JSON-RPC request from inside the page on a fresh WebSocket (same cookie). */
export async function rpcInPage(page, method, params) {
  return page.evaluate(async ({ method, params }) => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, ['semantest-hub.v1']);
    const replies = new Map();
    const waiters = new Map();
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.id === undefined) return;
      if (waiters.has(m.id)) waiters.get(m.id)(m);
      else replies.set(m.id, m);
    };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error('websocket failed'));
    });
    const call = (id, method, params) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${method} timed out`)), 10_000);
      waiters.set(id, (m) => { clearTimeout(t); resolve(m); });
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
    await call(1, 'hub.hello', { role: 'script', name: 'browser-test' });
    const res = await call(2, method, params);
    ws.close();
    if (res.error) throw new Error(`${method}: ${res.error.message} (${res.error.data?.kind})`);
    return res.result;
  }, { method, params });
}

/** Creates a project through the UI's Projects view and returns its id. */
export async function addProjectViaUi(page, hub, dir, name) {
  await page.goto(`${hub.url}/#/projects`);
  await waitConnected(page);
  await page.getByLabel('Folder path').fill(dir);
  if (name) await page.getByLabel(/^Name/).fill(name);
  await page.getByRole('button', { name: 'Add project' }).click();
  const row = page.locator('tr[data-project-id]', { hasText: dir });
  await row.waitFor({ timeout: 10_000 });
  return row.getAttribute('data-project-id');
}

/** Opens the project view and waits for it to be subscribed and ready. */
export async function openProject(page, hub, id) {
  await page.goto(`${hub.url}/#/projects/${encodeURIComponent(id)}`);
  await waitConnected(page);
  await page.locator('hub-project .project-meta .badge[data-state]').waitFor({ timeout: 10_000 });
}

/** The seqs of the rendered output rows, in DOM order. */
export async function renderedSeqs(page) {
  return page.$$eval('hub-project .log-rows > .row', (rows) => rows.map((r) => Number(r.dataset.seq)));
}

/** Asserts seqs are strictly increasing by one: no gap and no duplicate. */
export function contiguity(seqs) {
  const dups = seqs.filter((s, i) => seqs.indexOf(s) !== i);
  const gaps = [];
  for (let i = 1; i < seqs.length; i++) if (seqs[i] !== seqs[i - 1] + 1) gaps.push([seqs[i - 1], seqs[i]]);
  return { dups, gaps };
}

// ---- JSON-RPC clients from Node ----

/** The owner token, from `semantest-hub token` (the tests' hubs use the file store). */
export async function hubToken(dataDir) {
  assertHubBinary();
  const { stdout } = await execFileP(HUB_BIN, ['token', '--data-dir', dataDir, '--secret-store', 'file'], {
    timeout: 15_000,
    env: { ...process.env, SEMANTEST_HUB_AGENT__CLI_PATH: FAKE_CLAUDE },
  });
  const m = /\b[0-9a-f]{64}\b/.exec(stdout);
  if (!m) throw new Error(`no token in \`semantest-hub token\` output: ${JSON.stringify(stdout)}`);
  return m[0];
}

/**
 * A JSON-RPC client over a WebSocket from Node, for acting as a coordinator or a worker.
 * Node 20 has no global WebSocket without a flag, so this is a small RFC 6455 client on
 * `node:http` (text frames, fragments, ping/pong, close; client frames masked). It
 * authenticates with `Authorization: Bearer <token>` and says `hub.hello` with `role`.
 */
export async function connectRpc(hub, { token, role = 'script', name = 'node-test', origin, timeout = 10_000 } = {}) {
  const url = new URL(hub.url);
  const key = crypto.randomBytes(16).toString('base64');
  const socket = await new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname, port: url.port, path: '/ws', method: 'GET',
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Protocol': 'semantest-hub.v1', Authorization: `Bearer ${token}`,
        ...(origin ? { Origin: origin } : {}),
      },
    });
    const t = setTimeout(() => { req.destroy(); reject(new Error('WebSocket upgrade timed out')); }, timeout);
    req.on('upgrade', (res, sock, head) => {
      clearTimeout(t);
      const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      if (res.headers['sec-websocket-accept'] !== accept) {
        sock.destroy();
        reject(new Error('bad Sec-WebSocket-Accept'));
        return;
      }
      if (head?.length) sock.unshift(head);
      resolve(sock);
    });
    req.on('response', (res) => {
      clearTimeout(t);
      res.resume();
      const err = new Error(`WebSocket upgrade refused: HTTP ${res.statusCode}`);
      err.status = res.statusCode;
      reject(err);
    });
    req.on('error', (err) => { clearTimeout(t); reject(err); });
    req.end();
  });
  const client = new RpcNode(socket);
  await client.request('hub.hello', { role, name });
  return client;
}

/**
 * POSTs JSON to the hub from Node with an `Origin` of our choosing (as an extension's
 * service worker sends it). Resolves with {status, body} (body parsed when it is JSON).
 */
export function postJson(hub, path, body, { origin, timeout = 10_000 } = {}) {
  const url = new URL(path, hub.url);
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, ...(origin ? { Origin: origin } : {}) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: parsed });
      });
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`POST ${path} timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

class RpcNode {
  constructor(socket) {
    this.socket = socket;
    this.nextId = 1;
    this.pending = new Map();
    /** every notification received, in order: {method, params} */
    this.notes = [];
    this.waiters = new Set();
    this.closed = false;
    this.buf = Buffer.alloc(0);
    this.fragments = [];
    socket.setNoDelay(true);
    socket.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); });
    const gone = () => {
      if (this.closed) return;
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new Error('connection closed'));
      this.pending.clear();
    };
    socket.on('close', gone);
    socket.on('error', gone);
  }

  parse() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const op = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const maskKey = masked ? b.subarray(off, off + 4) : null;
      if (masked) off += 4;
      if (b.length < off + len) return;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (maskKey) for (let i = 0; i < payload.length; i++) payload[i] ^= maskKey[i % 4];
      this.buf = b.subarray(off + len);
      if (op === 0x9) this.frame(0xa, payload);
      else if (op === 0x8) {
        // RFC 6455 §5.5.1: the body starts with the close code; none means 1005.
        this.closeCode ??= payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        if (!this.closed) this.frame(0x8, payload.subarray(0, 2));
        this.socket.end();
      } else if (op === 0x1 || op === 0x0) {
        this.fragments.push(payload);
        if (fin) {
          payload = Buffer.concat(this.fragments);
          this.fragments = [];
          this.receive(payload.toString('utf8'));
        }
      }
    }
  }

  frame(op, payload) {
    if (this.socket.destroyed) return;
    const mask = crypto.randomBytes(4);
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | op, 0x80 | len])
      : len < 65536 ? Buffer.from([0x80 | op, 0x80 | 126, len >> 8, len & 0xff])
        : Buffer.concat([Buffer.from([0x80 | op, 0x80 | 127]), (() => { const x = Buffer.alloc(8); x.writeBigUInt64BE(BigInt(len)); return x; })()]);
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
    this.socket.write(Buffer.concat([head, mask, body]));
  }

  receive(text) {
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (m.method && m.id === undefined) {
      this.notes.push({ method: m.method, params: m.params });
      for (const w of [...this.waiters]) w();
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.error) {
      const err = new Error(`${p.method}: ${m.error.message} (${m.error.data?.kind})`);
      err.kind = m.error.data?.kind;
      p.reject(err);
    } else {
      p.resolve(m.result);
    }
  }

  /** Sends a request; resolves with its result, rejects with an Error whose `kind` is the error kind. */
  request(method, params, { timeout = 10_000 } = {}) {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`${method} timed out`)); }, timeout);
      this.pending.set(id, { resolve, reject, timer, method });
      this.frame(0x1, Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method, params })));
    });
  }

  /**
   * Waits for a notification `method` matching `pred`, among those received from index
   * `from` on (default: the first unread by an earlier `next`). Returns its params.
   */
  next(method, pred = () => true, { timeout = 10_000, from } = {}) {
    this.cursor ??= {};
    const start = from ?? this.cursor[method] ?? 0;
    const find = () => {
      for (let i = start; i < this.notes.length; i++) {
        const n = this.notes[i];
        if (n.method === method && pred(n.params)) {
          this.cursor[method] = i + 1;
          return n;
        }
      }
      return null;
    };
    const hit = find();
    if (hit) return Promise.resolve(hit.params);
    return new Promise((resolve, reject) => {
      const waiter = () => {
        const n = find();
        if (!n) return;
        this.waiters.delete(waiter);
        clearTimeout(timer);
        resolve(n.params);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeout} ms waiting for ${method}`));
      }, timeout);
      this.waiters.add(waiter);
    });
  }

  /** Closes the connection (close frame, then the socket) and waits until it is gone. */
  async close({ timeout = 5_000 } = {}) {
    if (this.socket.destroyed) return;
    const gone = new Promise((resolve) => this.socket.once('close', resolve));
    this.frame(0x8, Buffer.from([0x03, 0xe8]));
    this.closed = true;
    const t = setTimeout(() => this.socket.destroy(), timeout);
    await gone;
    clearTimeout(t);
  }
}

// ---- screenshots ----

/** Saves a screenshot to target/test-artifacts/<name>.png and checks it is not blank. */
export async function screenshot(page, name) {
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  const buf = await page.screenshot({ path: file, fullPage: false });
  const stats = imageStats(decodePng(buf));
  if (stats.distinctColours < 8 || stats.nonBackgroundFraction < 0.01) {
    throw new Error(`screenshot ${file} looks blank: ${JSON.stringify(stats)}`);
  }
  return { file, stats };
}

/** Decodes an 8-bit, non-interlaced RGB/RGBA/grey PNG (what Chromium writes). */
export function decodePng(buf) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!buf.subarray(0, 8).equals(sig)) throw new Error('not a PNG');
  let off = 8;
  let width = 0, height = 0, depth = 0, colourType = 0, interlace = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      depth = data[8];
      colourType = data[9];
      interlace = data[12];
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
    off += 12 + len;
  }
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colourType];
  if (depth !== 8 || !channels || interlace) throw new Error(`unsupported PNG (depth ${depth}, colour type ${colourType}, interlace ${interlace})`);
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = out.subarray(y * stride, (y + 1) * stride);
    const prev = y ? out.subarray((y - 1) * stride, y * stride) : null;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? cur[x - channels] : 0;
      const b = prev ? prev[x] : 0;
      const c = prev && x >= channels ? prev[x - channels] : 0;
      let v = line[x];
      switch (filter) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) >> 1; break;
        case 4: {
          const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
          v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default: throw new Error(`bad PNG filter ${filter}`);
      }
      cur[x] = v & 0xff;
    }
  }
  return { width, height, channels, data: out };
}

/** Distinct colours (sampled) and the share of pixels that differ from the most common one. */
export function imageStats({ width, height, channels, data }) {
  const counts = new Map();
  let n = 0;
  const step = Math.max(1, Math.floor((width * height) / 200_000));
  for (let i = 0; i < width * height; i += step) {
    const o = i * channels;
    const key = channels >= 3 ? (data[o] << 16) | (data[o + 1] << 8) | data[o + 2] : data[o];
    counts.set(key, (counts.get(key) ?? 0) + 1);
    n++;
  }
  const top = Math.max(...counts.values());
  return { width, height, distinctColours: counts.size, nonBackgroundFraction: Number(((n - top) / n).toFixed(4)) };
}

/** Runs axe-core on the page; returns violations with impact serious or critical. */
export async function axeSerious(page, context = 'main') {
  await page.addScriptTag({ path: AXE_PATH });
  const result = await page.evaluate(async (ctx) => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    void ctx;
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  }, context);
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Prints a figure for reports to quote: `FIGURE name=value unit`. */
export function figure(name, value, unit) {
  console.log(`FIGURE ${name}=${value} ${unit}`);
}
