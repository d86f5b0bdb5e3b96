// Smoke test of the dashboard in Firefox (WebDriver BiDi) and WebKitGTK (WebKitWebDriver
// with MiniBrowser, the engine of the Tauri window on Linux), against a real hub.
//
// Not part of `node --test tests/browser/`: it needs extra Debian packages.
//   apt-get install -y firefox-esr webkit2gtk-driver xvfb
//   xvfb-run -a node --experimental-websocket tests/browser/cross-browser.mjs [firefox|webkit]...
// (Node 22+ needs no --experimental-websocket.) Exits non-zero if a browser fails.
//
// Each browser: signs in through a one-time link, waits for "Connected", adds a project
// with the form, runs the fake agent's "success" scenario, and checks the tool call and the
// result line with its cost render; then saves target/test-artifacts/<browser>-project.png.
// Then the Clients panel: a pairing request (POST /pair from Node with an extension
// Origin) shows up with its code, Approve with projects:read ticked gives the claimer a
// token with those scopes, and the client is listed; target/test-artifacts/<browser>-clients.png.

import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startHub, stopHub, signInUrl, tempDir, waitFor, decodePng, imageStats, postJson, ARTIFACTS } from './helpers.js';

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER || '/usr/bin/WebKitWebDriver';
const MINIBROWSER = process.env.MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';

/** WebKitGTK through the classic WebDriver HTTP protocol. */
async function webkit() {
  const port = 4400 + Math.floor(Math.random() * 500);
  const proc = spawn(WEBKIT_DRIVER, [`--port=${port}`], { stdio: 'ignore' });
  const base = `http://127.0.0.1:${port}`;
  const call = async (method, url, body) => {
    const res = await fetch(`${base}${url}`, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    const j = await res.json();
    if (!res.ok) throw new Error(`${method} ${url}: ${JSON.stringify(j.value)}`);
    return j.value;
  };
  await waitFor(async () => (await fetch(`${base}/status`)).ok, { timeout: 10_000, message: 'WebKitWebDriver' });
  const s = await call('POST', '/session', {
    capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] } } },
  });
  const sid = s.sessionId;
  return {
    name: 'webkit',
    navigate: (url) => call('POST', `/session/${sid}/url`, { url }),
    eval: (fn, ...args) => call('POST', `/session/${sid}/execute/sync`, { script: `return (${fn}).apply(null, arguments)`, args }),
    screenshot: async () => Buffer.from(await call('GET', `/session/${sid}/screenshot`), 'base64'),
    close: async () => {
      await call('DELETE', `/session/${sid}`).catch(() => {});
      proc.kill();
    },
  };
}

/** Firefox through WebDriver BiDi on its remote-debugging WebSocket. */
async function firefox() {
  if (typeof WebSocket !== 'function') throw new Error('run with node --experimental-websocket (or Node 22+)');
  const profile = await tempDir('ff-profile-');
  const port = 9300 + Math.floor(Math.random() * 500);
  const proc = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', profile, `--remote-debugging-port=${port}`, 'about:blank'], { stdio: 'ignore' });
  const ws = await waitFor(() => new Promise((resolve) => {
    const w = new WebSocket(`ws://127.0.0.1:${port}/session`);
    w.onopen = () => resolve(w);
    w.onerror = () => resolve(null);
  }), { timeout: 20_000, interval: 300, message: 'Firefox remote agent' });
  let id = 0;
  const waiting = new Map();
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.id !== undefined && waiting.has(m.id)) {
      waiting.get(m.id)(m);
      waiting.delete(m.id);
    }
  };
  const call = (method, params) => new Promise((resolve, reject) => {
    const i = ++id;
    waiting.set(i, (m) => (m.type === 'error' ? reject(new Error(`${method}: ${m.error} ${m.message}`)) : resolve(m.result)));
    ws.send(JSON.stringify({ id: i, method, params }));
  });
  await call('session.new', { capabilities: {} });
  const tree = await call('browsingContext.getTree', {});
  const context = tree.contexts[0].context;
  return {
    name: 'firefox',
    navigate: (url) => call('browsingContext.navigate', { context, url, wait: 'complete' }),
    eval: async (fn, ...args) => {
      const r = await call('script.callFunction', {
        functionDeclaration: String(fn), target: { context }, awaitPromise: true,
        arguments: args.map((a) => ({ type: 'string', value: String(a) })),
      });
      if (r.type === 'exception') throw new Error(r.exceptionDetails.text);
      return r.result.value;
    },
    screenshot: async () => Buffer.from((await call('browsingContext.captureScreenshot', { context })).data, 'base64'),
    close: async () => {
      await call('session.end', {}).catch(() => {});
      ws.close();
      proc.kill();
    },
  };
}

async function scenario(b, hub) {
  const ok = (what) => console.log(`ok ${b.name}: ${what}`);
  await b.navigate(await signInUrl(hub.dataDir));
  await waitFor(async () => (await b.eval(() => document.querySelector('#conn-status')?.className ?? '')).includes('conn-connected'),
    { timeout: 20_000, message: `${b.name}: Connected` });
  ok('signed in and connected');
  const dir = await tempDir(`proj-${b.name}-`);
  await b.navigate(`${hub.url}/#/projects`);
  await waitFor(() => b.eval(() => !!document.querySelector('#project-path')), { message: 'projects form' });
  await b.eval((d) => {
    const input = document.querySelector('#project-path');
    input.value = d;
    input.dispatchEvent(new Event('input', { bubbles: true }));
    document.querySelector('.add-form button[type=submit]').click();
  }, dir);
  const id = await waitFor(() => b.eval((d) => [...document.querySelectorAll('tr[data-project-id]')].find((r) => r.textContent.includes(d))?.dataset.projectId ?? null, dir),
    { timeout: 10_000, message: `${b.name}: project row` });
  ok('added a project');
  await waitFor(() => b.eval(() => !document.querySelector('.add-form button[type=submit]').disabled), { message: 'Add enabled again' });
  await b.eval(() => {
    const input = document.querySelector('#project-path');
    input.value = 'relative/path';
    document.querySelector('.add-form button[type=submit]').click();
  });
  await waitFor(() => b.eval(() => /absolute/i.test(document.querySelector('#project-path-error')?.textContent ?? '')), { message: `${b.name}: inline error` });
  ok('inline error for a relative path');
  await b.navigate(`${hub.url}/#/projects/${id}`);
  await waitFor(() => b.eval(() => !!document.querySelector('hub-project .badge[data-state="idle"]')), { message: `${b.name}: project view` });
  await b.eval(() => {
    document.querySelector('#prompt-input').value = 'success';
    document.querySelector('.prompt-form button[type=submit]').click();
  });
  const cost = await waitFor(() => b.eval(() => document.querySelector('hub-project .result .f-cost')?.textContent ?? null), { timeout: 20_000, message: `${b.name}: result line` });
  if (cost !== '$0.0123') throw new Error(`${b.name}: cost ${cost}`);
  const tool = await b.eval(() => document.querySelector('hub-project details.tool summary')?.textContent ?? '');
  if (!/Write/.test(tool)) throw new Error(`${b.name}: tool block ${JSON.stringify(tool)}`);
  await b.eval(() => { for (const d of document.querySelectorAll('hub-project details')) d.open = true; });
  ok('agent output with the tool call and the cost');
  await fs.mkdir(ARTIFACTS, { recursive: true });
  const png = await b.screenshot();
  const file = path.join(ARTIFACTS, `${b.name}-project.png`);
  await fs.writeFile(file, png);
  const stats = imageStats(decodePng(png));
  if (stats.distinctColours < 8 || stats.nonBackgroundFraction < 0.01) throw new Error(`${file} looks blank ${JSON.stringify(stats)}`);
  ok(`screenshot ${file}`);
  await clientsScenario(b, hub);
}

/** The Clients panel: a pairing request, approved with a scope ticked. */
async function clientsScenario(b, hub) {
  const ok = (what) => console.log(`ok ${b.name}: ${what}`);
  const origin = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop';
  await b.navigate(`${hub.url}/#clients`);
  await waitFor(() => b.eval(() => /No pairing requests/.test(document.querySelector('hub-clients')?.textContent ?? '')),
    { timeout: 10_000, message: `${b.name}: the Clients panel` });
  const asked = await postJson(hub, '/pair', { name: `Cross ${b.name}` }, { origin });
  if (asked.status !== 201) throw new Error(`POST /pair: ${asked.status} ${JSON.stringify(asked.body)}`);
  const pairing = asked.body;
  const code = await waitFor(() => b.eval((id) => document.querySelector(`li.pair-request[data-request-id="${id}"] [data-field="code"]`)?.textContent ?? null, pairing.request_id),
    { timeout: 10_000, message: `${b.name}: the request in the panel` });
  if (code !== pairing.code) throw new Error(`${b.name}: code ${code}, expected ${pairing.code}`);
  ok('a pairing request shows up live with its code');
  await fs.mkdir(ARTIFACTS, { recursive: true });
  await fs.writeFile(path.join(ARTIFACTS, `${b.name}-clients.png`), await b.screenshot());
  await b.eval((id) => {
    const el = document.querySelector(`li.pair-request[data-request-id="${id}"]`);
    el.querySelector('input[value="projects:read"]').click();
    el.querySelector('[data-action="approve"]').click();
  }, pairing.request_id);
  const res = await waitFor(async () => {
    const r = await postJson(hub, `/pair/${pairing.request_id}`, { claim: pairing.claim }, { origin });
    return r.status === 202 ? null : r;
  }, { timeout: 10_000, interval: 200, message: `${b.name}: the claim answered` });
  if (res.status !== 200 || [...res.body.scopes].sort().join() !== 'events,projects:read') {
    throw new Error(`${b.name}: claim ${res.status} ${JSON.stringify(res.body)}`);
  }
  await waitFor(() => b.eval((id) => !!document.querySelector(`hub-clients tr[data-client-id="${id}"]`), res.body.client_id),
    { timeout: 10_000, message: `${b.name}: the paired client listed` });
  ok('Approve with a ticked scope: the claimer got its token; the client is listed');
}

const which = process.argv.slice(2).length ? process.argv.slice(2) : ['firefox', 'webkit'];
let failed = 0;
const hub = await startHub();
try {
  for (const name of which) {
    let b;
    try {
      b = await (name === 'firefox' ? firefox() : webkit());
      await scenario(b, hub);
    } catch (err) {
      failed++;
      console.log(`not ok ${name}: ${err.stack ?? err}`);
    } finally {
      await b?.close();
    }
  }
} finally {
  await stopHub(hub);
}
console.log(`${which.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
