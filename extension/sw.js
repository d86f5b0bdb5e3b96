// The extension's service worker: the only place that talks to the hub (content scripts
// would trigger Chrome's Local Network Access prompt). It owns one HubClient, mirrors the
// mode on the toolbar badge, answers the popup, and runs the demo event round trip.
//
// The demo's Ping goes through the hub with nothing but this extension: the hub never
// delivers an event back to the connection that sent it, so a second, small client (the
// ping responder) follows the main one to whichever hub it uses, subscribes to
// `demo.ping`, and answers with `demo.pong`. A Ping is then a real `event.request`:
// routed by the hub to a subscriber on another connection, answered by correlation id,
// and timed from the popup's click to the answer.
//
// With a token holding the `agents` scope it also follows the hub's pending approvals
// (the agents' tool calls waiting for a person): their count replaces the mode on the
// badge while any wait, and the popup answers them. Without the scope the hub answers
// `agent.approvals.list` with FORBIDDEN and none of this shows.

import { HubClient, memoryStorage, STORAGE_KEYS } from './sdk/index.js';
import { loadSettings, saveSettings, SETTINGS_KEY } from './settings.js';

const BADGE = {
  LOCAL: { text: 'LOC', color: '#1a7f37' },
  PUBLIC: { text: 'PUB', color: '#0969da' },
  OFFLINE: { text: 'OFF', color: '#6e7781' },
  PAIRING: { text: 'PAIR', color: '#bf8700' },
};
const DEMO_TYPE = 'demo.message';
const PING_TYPE = 'demo.ping';
const PONG_TYPE = 'demo.pong';
const PING_TIMEOUT_MS = 3000;
/** How long a Ping waits for the responder to join the hub the main client just reached. */
const RESPONDER_WAIT_MS = 10_000;
const MAX_EVENTS = 20;

let hub = null;
let starting = null;
/** The ping responder: `{key, client, ready}`, following the main client's hub. */
let responder = null;
const popups = new Set();
const demo = { received: [], lastPing: null, pairingMessage: null };
/**
 * The pending approvals: `available` is true once the hub listed them (the token holds
 * `agents`), false when it refused (FORBIDDEN), null while unknown (offline).
 */
const agents = { available: null, approvals: [], message: null };
/** The badge colour while approvals wait. */
const APPROVALS_COLOR = '#cf222e';

/** What the popup needs of an approval. */
function approvalView(a) {
  const input = a.input ?? {};
  const what = ['command', 'file_path', 'url', 'path', 'pattern'].map((k) => input[k]).find((v) => typeof v === 'string') ?? null;
  return { id: a.id, projectId: a.project_id, tool: a.tool_name, what, description: a.description ?? null, askedAt: a.asked_at };
}

function view() {
  return {
    state: hub?.state ?? null,
    demo,
    agents: { available: agents.available, message: agents.message, approvals: agents.approvals.map(approvalView) },
  };
}

/** Lists the pending approvals again (after every connect): the hub only announces changes. */
async function refreshApprovals(client) {
  try {
    const list = await client.approvals();
    if (hub !== client) return;
    agents.available = true;
    agents.approvals = list;
  } catch (err) {
    if (hub !== client) return;
    agents.available = err.kind === 'FORBIDDEN' ? false : null;
    agents.approvals = [];
  }
  paintBadge();
  broadcast();
}

function broadcast() {
  const v = view();
  for (const port of popups) port.postMessage(v);
}

let painting = Promise.resolve();

/**
 * Shows the current client's mode on the toolbar badge. `chrome.action` calls complete
 * asynchronously, so paints are chained, and each one reads the mode when its turn comes:
 * whatever order states arrive in, the last paint shows the latest mode, never an older
 * one that finished late.
 */
function paintBadge() {
  painting = painting.then(async () => {
    const mode = hub?.state?.mode ?? 'OFFLINE';
    const waiting = hub?.state?.connected && agents.available ? agents.approvals.length : 0;
    const b = waiting
      ? { text: waiting > 99 ? '99+' : String(waiting), color: APPROVALS_COLOR }
      : BADGE[mode] ?? BADGE.OFFLINE;
    const title = waiting
      ? `Semantest Hub: ${mode}, ${waiting} ${waiting === 1 ? 'approval' : 'approvals'} waiting`
      : `Semantest Hub: ${mode}`;
    await Promise.all([
      chrome.action.setBadgeText({ text: b.text }),
      chrome.action.setBadgeBackgroundColor({ color: b.color }),
      chrome.action.setTitle({ title }),
    ]);
  }).catch((err) => console.warn('badge not painted', err));
}

/**
 * Points the ping responder at the hub the main client uses now: a new responder when the
 * hub changed, none while the main client has no hub (offline, or local only with the
 * desktop hub gone, so no public connection stays open).
 */
function followWithResponder(st, settings) {
  const key = st.hub ? `${st.hub.kind} ${st.hub.base}` : null;
  if (key === (responder?.key ?? null)) return;
  const old = responder;
  responder = null;
  old?.client?.stop();
  if (!key) return;
  const base = new URL(st.hub.base);
  const entry = { key, client: null, ready: null };
  entry.ready = (async () => {
    const tokens = await chrome.storage.local.get([STORAGE_KEYS.localToken, STORAGE_KEYS.publicToken]);
    const local = st.hub.kind === 'local';
    const client = new HubClient({
      name: 'Semantest reference extension (ping responder)',
      role: 'extension',
      host: base.hostname,
      ports: local ? [Number(base.port)] : [],
      publicUrls: local ? [] : [st.hub.base],
      localOnly: local,
      token: tokens[STORAGE_KEYS.localToken],
      publicToken: tokens[STORAGE_KEYS.publicToken],
      // Its own memory: nothing of the main client's stored state (queue, local only).
      storage: memoryStorage(),
      persistQueue: false,
      backoff: settings.backoff,
      keepaliveMs: settings.keepaliveMs,
    });
    entry.client = client;
    if (responder !== entry) return { connected: false, message: 'replaced' };
    await client.subscribe(PING_TYPE, (ev) => {
      if (ev.correlationId) ev.reply({ pong: true, at: ev.payload?.at ?? null }, PONG_TYPE).catch(() => {});
    });
    const status = await client.start();
    if (responder !== entry) { client.stop(); return { connected: false, message: 'replaced' }; }
    return status;
  })();
  responder = entry;
  self.responder = entry; // for debugging and the tests, from the service worker's console
}

async function createClient() {
  const s = await loadSettings();
  const client = new HubClient({
    name: 'Semantest reference extension',
    role: 'extension',
    ports: s.ports,
    publicUrls: s.publicUrls,
    localOnly: s.localOnly,
    backoff: s.backoff,
    keepaliveMs: s.keepaliveMs,
  });
  let lastMode = null;
  let lastConnection = null;
  client.on('state', (st) => {
    // A client being replaced (restart) or not yet installed says nothing about the
    // extension's mode; ensureStarted paints the new one once it is in place.
    if (hub !== client) return;
    if (st.mode !== lastMode) { lastMode = st.mode; demo.lastPing = null; } // a ping result belongs to its connection
    const connection = st.connected ? `${st.hub?.instanceId} ${st.hub?.connectionId}` : null;
    if (connection !== lastConnection) {
      lastConnection = connection;
      agents.approvals = [];
      agents.available = null;
      if (connection) refreshApprovals(client);
    }
    followWithResponder(st, s);
    paintBadge();
    broadcast();
  });
  await client.subscribe(`${DEMO_TYPE.split('.')[0]}.*`, (ev) => {
    if (ev.correlationId) return; // request and answer traffic shows as the ping result instead
    demo.received.unshift({ type: ev.type, payload: ev.payload, from: ev.from, ts: ev.ts });
    demo.received.length = Math.min(demo.received.length, MAX_EVENTS);
    broadcast();
  });
  client.on('approvalrequested', (a) => {
    if (hub !== client || agents.approvals.some((x) => x.id === a.id)) return;
    agents.available = true;
    agents.approvals.push(a);
    paintBadge();
    broadcast();
  });
  client.on('approvalresolved', (r) => {
    if (hub !== client) return;
    agents.approvals = agents.approvals.filter((a) => a.id !== r.approval_id);
    paintBadge();
    broadcast();
  });
  // Answer demo.echo requests from other clients, so they see a round trip through the hub.
  await client.subscribe('demo.echo', (ev) => { if (ev.correlationId) ev.reply(ev.payload, 'demo.echo.reply').catch(() => {}); });
  return client;
}

/** Creates the client once and starts it; safe to call on every wake-up. */
function ensureStarted() {
  starting ??= (async () => {
    if (!hub) {
      hub = await createClient();
      followWithResponder(hub.state, await loadSettings());
    }
    self.hub = hub; // for debugging from the service worker's console
    paintBadge();
    await hub.start();
  })().finally(() => { starting = null; });
  return starting;
}

async function restart() {
  const old = hub;
  hub = null;
  followWithResponder({ hub: null });
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
  async localOnly({ value }) {
    // A setting like the others, so the options page shows it; applied here at once too.
    await saveSettings({ localOnly: !!value });
    await hub.setLocalOnly(!!value);
    return view();
  },
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
    try {
      // The responder joins the hub a moment after the main client; wait for it (bounded).
      const entry = responder;
      const status = entry ? await Promise.race([entry.ready, new Promise((r) => setTimeout(() => r(null), RESPONDER_WAIT_MS))]) : null;
      if (!status?.connected) throw Object.assign(new Error('no hub connection'), { kind: hub.state.hub ? 'RESPONDER_OFFLINE' : 'OFFLINE' });
      const t0 = performance.now();
      const r = await hub.request(PING_TYPE, { at: Date.now() }, { timeoutMs: PING_TIMEOUT_MS });
      demo.lastPing = {
        ok: true,
        ms: Math.round((performance.now() - t0) * 10) / 10,
        mode: hub.state.mode,
        type: r.type,
        from: r.from,
        sentFrom: hub.state.hub?.connectionId ?? null,
      };
    } catch (err) {
      demo.lastPing = {
        ok: false,
        kind: err.kind,
        text: err.kind === 'TIMEOUT' ? 'Nobody answered demo.ping.'
          : err.kind === 'RESPONDER_OFFLINE' ? 'The ping responder could not reach the hub.' : 'No hub connection.',
      };
    }
    broadcast();
    return view();
  },
  /** Answers an approval: `decision` allow_once or reject_once, with a `message` for a denial. */
  async answer({ approvalId, decision, message }) {
    agents.message = null;
    let gone = true;
    try {
      const answer = { decision };
      if (decision === 'reject_once' && typeof message === 'string' && message.trim()) answer.message = message.trim();
      const { resolution } = await hub.answerApproval(String(approvalId), answer);
      agents.message = { ok: true, text: resolution.outcome === 'allowed' ? 'Allowed.' : 'Denied.' };
    } catch (err) {
      agents.message = {
        ok: false,
        kind: err.kind,
        text: err.kind === 'APPROVAL_RESOLVED' ? `Already ${err.data?.resolution?.outcome ?? 'answered'} elsewhere.`
          : err.kind === 'APPROVAL_NOT_FOUND' ? 'The hub no longer knows this approval.'
            : err.kind === 'FORBIDDEN' ? 'This extension may not answer approvals (its token lacks the agents scope).'
              : `Not answered: ${err.message}`,
      };
      gone = err.kind === 'APPROVAL_RESOLVED' || err.kind === 'APPROVAL_NOT_FOUND';
    }
    if (gone) agents.approvals = agents.approvals.filter((a) => a.id !== approvalId);
    paintBadge();
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

// Settings take effect at once: "local only" alone is switched on the running client (a
// public connection closes at once); any other change starts a new client with them.
chrome.storage.onChanged.addListener((changes, area) => {
  const change = area === 'local' ? changes[SETTINGS_KEY] : null;
  if (!change) return;
  const { localOnly: before, ...restBefore } = change.oldValue ?? {};
  const { localOnly: after, ...restAfter } = change.newValue ?? {};
  if (hub && JSON.stringify(restBefore) === JSON.stringify(restAfter)) {
    if (!!before !== !!after) hub.setLocalOnly(!!after);
    return;
  }
  restart();
});

// An open WebSocket keeps the worker alive (Chrome 116+); while offline, the alarm wakes
// it so the retries continue.
chrome.alarms.create('semantest-wake', { periodInMinutes: 0.5 });
chrome.alarms.onAlarm.addListener(() => ensureStarted());
chrome.runtime.onStartup.addListener(() => ensureStarted());
chrome.runtime.onInstalled.addListener(() => ensureStarted());
ensureStarted();
