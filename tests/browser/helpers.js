// Helpers for the dashboard's browser tests: start a real hub on a free port with the fake
// agent CLI, get a one-time sign-in link, drive Debian's Chromium through playwright-core,
// wait with deadlines, and check screenshots are not blank.

import { spawn, execFile } from 'node:child_process';
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

/** Prints a figure the lead can quote: `FIGURE name=value unit`. */
export function figure(name, value, unit) {
  console.log(`FIGURE ${name}=${value} ${unit}`);
}
