// The extension's service worker: the only place that talks to the hub (content scripts
// would trigger Chrome's Local Network Access prompt). It owns one HubClient, mirrors the
// mode on the toolbar badge, answers the popup, and runs the demo event round trip.

import { HubClient } from './sdk/index.js';
import { loadSettings, SETTINGS_KEY } from './settings.js';

const BADGE = {
  LOCAL: { text: 'LOC', color: '#1a7f37' },
  PUBLIC: { text: 'PUB', color: '#0969da' },
  OFFLINE: { text: 'OFF', color: '#6e7781' },
  PAIRING: { text: 'PAIR', color: '#bf8700' },
};
const DEMO_TYPE = 'demo.message';
const MAX_EVENTS = 20;

let hub = null;
let starting = null;
const popups = new Set();
const demo = { received: [], lastPing: null, pairingMessage: null };

function view() {
  return { state: hub?.state ?? null, demo };
}

function broadcast() {
  const v = view();
  for (const port of popups) port.postMessage(v);
}

function paintBadge(mode) {
  const b = BADGE[mode] ?? BADGE.OFFLINE;
  chrome.action.setBadgeText({ text: b.text });
  chrome.action.setBadgeBackgroundColor({ color: b.color });
  chrome.action.setTitle({ title: `Semantest Hub: ${mode}` });
}

async function createClient() {
  const s = await loadSettings();
  const client = new HubClient({
    name: 'Semantest reference extension',
    role: 'extension',
    ports: s.ports,
    publicUrls: s.publicUrls,
    backoff: s.backoff,
    keepaliveMs: s.keepaliveMs,
  });
  let lastMode = null;
  client.on('state', (st) => {
    if (st.mode !== lastMode) { lastMode = st.mode; demo.lastPing = null; } // a ping result belongs to its connection
    paintBadge(st.mode);
    broadcast();
  });
  await client.subscribe(`${DEMO_TYPE.split('.')[0]}.*`, (ev) => {
    if (ev.correlationId) return; // request and answer traffic shows as the ping result instead
    demo.received.unshift({ type: ev.type, payload: ev.payload, from: ev.from, ts: ev.ts });
    demo.received.length = Math.min(demo.received.length, MAX_EVENTS);
    broadcast();
  });
  // Answer demo pings from other clients, so they see a round trip through the hub.
  await client.subscribe('demo.echo', (ev) => { if (ev.correlationId) ev.reply(ev.payload, 'demo.echo.reply').catch(() => {}); });
  return client;
}

/** Creates the client once and starts it; safe to call on every wake-up. */
function ensureStarted() {
  starting ??= (async () => {
    hub ??= await createClient();
    self.hub = hub; // for debugging from the service worker's console
    paintBadge(hub.state.mode);
    await hub.start();
  })().finally(() => { starting = null; });
  return starting;
}

async function restart() {
  const old = hub;
  hub = null;
  await old?.stop();
  await ensureStarted();
}

const commands = {
  state: async () => view(),
  async pair() {
    demo.pairingMessage = null;
    try {
      await hub.pair({ name: 'Semantest reference extension', onCode: () => broadcast() });
      demo.pairingMessage = { ok: true, text: 'Paired with the desktop hub.' };
    } catch (err) {
      const text = {
        PAIRING_DENIED: 'Pairing was denied in the desktop app.',
        PAIRING_EXPIRED: 'The pairing request expired. Try again and approve it within two minutes.',
        NO_HUB: 'The desktop hub is not running on this computer. Start Semantest Hub and try again.',
        AMBIGUOUS_HUB: 'More than one program on this computer claims to be the Semantest Hub, so pairing stopped. Quit the one you do not know and try again.',
        LIMIT_REACHED: 'Too many pairing requests are waiting. Wait a minute and try again.',
        RATE_LIMITED: 'Too many pairing requests. Wait a minute and try again.',
      }[err.kind] ?? `Pairing failed: ${err.message}`;
      demo.pairingMessage = { ok: false, kind: err.kind, text };
    }
    broadcast();
    return view();
  },
  async localOnly({ value }) { await hub.setLocalOnly(!!value); return view(); },
  async send({ text }) {
    // Not awaited: while offline the event waits in the queue and goes out on reconnect.
    // A publish that cannot be queued or waited too long says so in the popup.
    hub.publish(DEMO_TYPE, { text: String(text ?? ''), at: new Date().toISOString() }).catch((err) => {
      const why = {
        NOT_PAIRED: 'Not sent: this extension is not paired with a hub yet. Pair with the desktop hub first.',
        QUEUE_FULL: 'Not sent: too many events are waiting for the hub.',
        QUEUE_TIMEOUT: 'Not sent: no hub was reachable in time, so the event was dropped.',
      }[err.kind] ?? `Not sent: ${err.message}`;
      demo.pairingMessage = { ok: false, kind: err.kind, text: why };
      broadcast();
    });
    return view();
  },
  async ping() {
    const t0 = performance.now();
    try {
      const r = await hub.request('demo.ping', { at: Date.now() }, { timeoutMs: 3000 });
      demo.lastPing = { ok: true, ms: Math.round((performance.now() - t0) * 10) / 10, mode: hub.state.mode, from: r.from };
    } catch (err) {
      demo.lastPing = { ok: false, kind: err.kind, text: err.kind === 'TIMEOUT' ? 'Nobody answered demo.ping.' : 'No hub connection.' };
    }
    broadcast();
    return view();
  },
  async restart() { await restart(); return view(); },
};

chrome.runtime.onMessage.addListener((msg, _sender, sendResponse) => {
  const fn = commands[msg?.cmd];
  if (!fn) return false;
  ensureStarted().then(() => fn(msg)).then(sendResponse, (err) => sendResponse({ error: { kind: err.kind ?? 'INTERNAL', message: String(err.message ?? err) } }));
  return true;
});

chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== 'popup') return;
  popups.add(port);
  port.onDisconnect.addListener(() => popups.delete(port));
  ensureStarted().then(() => port.postMessage(view()));
});

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === 'local' && changes[SETTINGS_KEY]) restart();
});

// An open WebSocket keeps the worker alive (Chrome 116+); while offline, the alarm wakes
// it so the retries continue.
chrome.alarms.create('semantest-wake', { periodInMinutes: 0.5 });
chrome.alarms.onAlarm.addListener(() => ensureStarted());
chrome.runtime.onStartup.addListener(() => ensureStarted());
chrome.runtime.onInstalled.addListener(() => ensureStarted());
ensureStarted();
