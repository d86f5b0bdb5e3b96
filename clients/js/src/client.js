// HubClient: finds the desktop hub, falls back to the public hub, keeps one connection,
// queues publishes while disconnected and replays them in order, resubscribes, keeps the
// connection (and an MV3 service worker) alive, and reports its state. Every failure
// reaches the caller as a HubError with a kind, or as the status `start()` resolves with.

import { HubError, RpcError, CLIENT_KINDS } from './errors.js';
import { Connection } from './connection.js';
import { DEFAULT_PORTS, PROBE_TIMEOUT_MS, localBases, probe, probeAll, wsUrlOf } from './discovery.js';
import { runPairing } from './pairing.js';
import { defaultStorage } from './storage.js';

/** Connection modes, as the badge shows them. */
export const Mode = Object.freeze({ LOCAL: 'LOCAL', PUBLIC: 'PUBLIC', OFFLINE: 'OFFLINE', PAIRING: 'PAIRING' });

/** Storage keys the client uses. */
export const STORAGE_KEYS = Object.freeze({
  localToken: 'semantest.token.local',
  publicToken: 'semantest.token.public',
  localOnly: 'semantest.localOnly',
  queue: 'semantest.queue',
});

/**
 * The signature capability of a hub that deduplicates `event.publish` by
 * `idempotency_key`; with it, a publish resent after a lost response is delivered once.
 */
export const IDEMPOTENCY_CAPABILITY = 'events.idempotency';

const DEFAULTS = {
  ports: DEFAULT_PORTS,
  host: '127.0.0.1',
  publicUrls: [],
  localOnly: undefined,
  probeTimeoutMs: PROBE_TIMEOUT_MS,
  keepaliveMs: 20_000,
  callTimeoutMs: 10_000,
  queueLimit: 1000,
  queueTimeoutMs: 3_600_000,
  backoff: { initialMs: 1000, maxMs: 30_000 },
  role: 'extension',
  name: 'Semantest client',
  persistQueue: true,
};

function randomKey() {
  return crypto.randomUUID ? crypto.randomUUID() : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The public URLs option as a list: one URL (say, a load balancer's) or a list of them,
 * each https:, duplicates dropped, order kept.
 * @throws {TypeError} a URL that does not parse or is not https:
 */
function publicUrlList(urls) {
  const list = typeof urls === 'string' ? [urls] : [...(urls ?? [])];
  for (const u of list) {
    const url = new URL(u);
    if (url.protocol !== 'https:') throw new TypeError(`public URL ${u} must be https:`);
  }
  return [...new Set(list)];
}

/** Longest event type or pattern, in bytes (the hub's `MAX_TYPE_LEN`). */
const MAX_TYPE_LEN = 128;
const TYPE_RULES = 'use 1 to 128 characters of [a-z0-9_.-] in dot-separated, non-empty segments, with * only as the whole last segment';
/** The JSON-RPC code of `INVALID_EVENT_TYPE` (docs/protocol.md, "Errors"). */
const INVALID_EVENT_TYPE_CODE = -32041;
/** Longest timer a host runs as asked (2^31 − 1 ms); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Why `pattern` is not a subscription pattern the hub accepts, or null when it is one.
 * The hub's rule (src/pubsub/broker.rs `parse_pattern`, docs/protocol.md "Types and
 * patterns"): `*`, or dot-separated non-empty segments of `[a-z0-9_-]`, optionally ending
 * in the segment `*`, 1 to 128 bytes in all.
 * @param {unknown} pattern
 * @returns {string | null}
 */
export function patternProblem(pattern) {
  if (typeof pattern !== 'string') return 'a pattern is a string';
  if (pattern.length === 0 || pattern.length > MAX_TYPE_LEN) return TYPE_RULES;
  if (pattern === '*') return null;
  const body = pattern.endsWith('.*') ? pattern.slice(0, -2) : pattern;
  if (body.split('.').some((seg) => !/^[a-z0-9_-]+$/.test(seg))) return TYPE_RULES;
  return null;
}

/** Whether an event `type` matches a subscription `pattern` (exact, `prefix.*`, or `*`). */
export function matches(pattern, type) {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return type.startsWith(pattern.slice(0, -1));
  return pattern === type;
}

/** The delay before retry `attempt` (0-based): capped exponential backoff with equal jitter, in ms. */
export function backoffDelay(attempt, { initialMs, maxMs }, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

function normaliseCredential(c) {
  if (!c) return null;
  if (typeof c === 'string') return { token: c, clientId: 'owner' };
  if (typeof c.token === 'string' && c.token) return { token: c.token, clientId: c.clientId ?? c.client_id ?? 'owner', scopes: c.scopes };
  return null;
}

/**
 * What one discovery round found, as `start()` resolves it: connected, or the kind and a
 * sentence saying why not.
 */
function roundStatus({ target, local, pub, running }) {
  if (target) {
    const where = target.kind === 'public' ? 'the public hub' : 'the desktop hub';
    return { connected: true, mode: target.hub.mode === 'public' ? Mode.PUBLIC : Mode.LOCAL, hub: { ...target.hub }, reason: null, message: `connected to ${where} at ${target.hub.endpoint}`, local, public: pub };
  }
  if (!running) return { connected: false, mode: Mode.OFFLINE, hub: null, reason: CLIENT_KINDS.STOPPED, message: 'the client was stopped', local, public: pub };
  // The most telling outcome wins: a hub that is there but cannot be used says more than
  // a port where nothing answers.
  const first = [local, pub].find((o) => o && o.kind !== CLIENT_KINDS.NO_HUB) ?? local ?? pub;
  const message = [local, pub].filter(Boolean).map((o) => o.message).join('; ');
  return { connected: false, mode: Mode.OFFLINE, hub: null, reason: first?.kind ?? CLIENT_KINDS.NO_HUB, message: `not connected: ${message}`, local, public: pub };
}

/** The hub's notifications to `agents` clients, and the client event each one becomes. */
const AGENT_NOTIFICATIONS = Object.freeze({
  'agent.approval_requested': 'approvalrequested',
  'agent.approval_resolved': 'approvalresolved',
  'agent.queue_changed': 'queuechanged',
});

/** The notification a connection opening, changing or closing sends (emitted as `connection`). */
const CONNECTION_NOTIFICATION = 'hub.connection';

/** Decisions of `agent.approvals.answer` (the Agent Client Protocol's option kinds). */
const DECISIONS = new Set(['allow_once', 'allow_always', 'reject_once', 'reject_always']);

export class HubClient {
  #o;
  #storage;
  #fetch;
  #WebSocket;
  #listeners = new Map();
  #subs = new Map();
  #queue = [];
  #active = null;
  #running = false;
  #cycling = null;
  #cycleTimer = null;
  #cycleAttempt = 0;
  #localTimer = null;
  #localAttempt = 0;
  /** Index in `publicUrls` to try first: the one connected last, or the one after it once it closed. */
  #publicNext = 0;
  #keepaliveTimer = null;
  #pumping = false;
  #waiters = new Set();
  #loaded = null;
  /** The status of the last discovery round (or the current connection). */
  #status = null;
  #state = {
    mode: Mode.OFFLINE,
    connected: false,
    latencyMs: null,
    hub: null,
    paired: { local: false, public: false },
    localOnly: false,
    queued: 0,
    pairing: null,
    lastError: null,
    refused: [],
    untrusted: [],
    localFound: null,
  };

  /**
   * @param {import('../types/index.d.ts').HubClientOptions} [options]
   */
  constructor(options = {}) {
    this.#o = { ...DEFAULTS, ...options, backoff: { ...DEFAULTS.backoff, ...options.backoff } };
    this.#o.publicUrls = publicUrlList(this.#o.publicUrls);
    this.#storage = options.storage ?? defaultStorage();
    this.#fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.#fetch || !this.#WebSocket) throw new TypeError('no fetch or WebSocket here; pass options.fetch and options.WebSocket');
  }

  // ---------- state and events ----------

  /** A snapshot of the state the UI shows. */
  get state() { return structuredClone(this.#state); }
  get mode() { return this.#state.mode; }
  get latencyMs() { return this.#state.latencyMs; }
  get hub() { return this.#state.hub ? { ...this.#state.hub } : null; }

  /**
   * Listens to `state`, `event`, `queuefull`, `untrusted`, `dropped`, `subscriptionerror`,
   * `error`, `connection` (with the `connectionEvents` option and `projects:read`), or
   * (with the `agents` scope) `approvalrequested`, `approvalresolved` and `queuechanged`.
   * Returns a function that removes the listener.
   */
  on(name, fn) {
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name).add(fn);
    return () => this.#listeners.get(name)?.delete(fn);
  }

  #emit(name, value) {
    for (const fn of this.#listeners.get(name) ?? []) {
      try { fn(value); } catch (err) { if (name !== 'error') this.#emit('error', err); }
    }
  }

  #update(patch) {
    Object.assign(this.#state, patch);
    const a = this.#active;
    this.#state.connected = !!a;
    this.#state.queued = this.#queue.length;
    this.#state.mode = a ? (a.hub.mode === 'public' ? Mode.PUBLIC : Mode.LOCAL)
      : this.#state.pairing ? Mode.PAIRING : Mode.OFFLINE;
    this.#emit('state', this.state);
  }

  // ---------- lifecycle ----------

  async #load() {
    this.#loaded ??= (async () => {
      const s = this.#storage;
      const [local, pub, localOnly, queue] = await Promise.all([
        s.get(STORAGE_KEYS.localToken), s.get(STORAGE_KEYS.publicToken), s.get(STORAGE_KEYS.localOnly),
        this.#o.persistQueue ? s.get(STORAGE_KEYS.queue) : undefined,
      ]);
      this.#cred = {
        local: normaliseCredential(local) ?? normaliseCredential(this.#o.token),
        public: normaliseCredential(pub) ?? normaliseCredential(this.#o.publicToken),
      };
      const lo = this.#o.localOnly ?? localOnly ?? false;
      if (Array.isArray(queue)) {
        for (const q of queue) {
          const item = { ...q, deadline: q.deadline ?? Date.now() + this.#o.queueTimeoutMs, sentOn: null, resolve: null, reject: null };
          this.#queue.push(item);
          this.#armDeadline(item);
        }
      }
      this.#update({ localOnly: !!lo, paired: { local: !!this.#cred.local, public: !!this.#cred.public } });
    })();
    return this.#loaded;
  }

  #cred = { local: null, public: null };

  /**
   * Starts discovery and keeps connecting until `stop()`. Safe to call again.
   *
   * Resolves, once the first round is over, with `{connected, mode, hub, reason, message,
   * local, public}`: `connected: true` with the hub (local, or public when no local hub
   * could be used: the fallback is not an error), or `connected: false` with `reason`, a
   * kind (`NOT_PAIRED`, `NO_HUB`, `UNTRUSTED_HUB`, `OFFLINE`, `STOPPED`, ...), and
   * `message`, a sentence saying why. `local` and `public` hold each side's own
   * `{kind, message}` (null when not tried). Not connected, the client keeps retrying
   * with backoff; it never rejects.
   */
  async start() {
    await this.#load();
    if (this.#running) {
      if (this.#cycling) await this.#cycling;
      return this.#currentStatus();
    }
    this.#running = true;
    this.#cycleAttempt = 0;
    await this.#cycle();
    return this.#currentStatus();
  }

  #currentStatus() {
    if (this.#active) return roundStatus({ target: this.#active, local: this.#status?.local ?? null, pub: this.#status?.public ?? null, running: true });
    return this.#status ?? roundStatus({ running: this.#running });
  }

  /** Closes the connection and stops every timer. Queued publishes stay queued (and stored). */
  async stop() {
    this.#running = false;
    clearTimeout(this.#cycleTimer);
    clearTimeout(this.#localTimer);
    clearInterval(this.#keepaliveTimer);
    const a = this.#active;
    this.#active = null;
    a?.conn.close(1000, 'bye');
    for (const w of this.#waiters) w.reject(new HubError(CLIENT_KINDS.STOPPED, 'the client was stopped'));
    this.#waiters.clear();
    for (const item of this.#queue) item.sentOn = null;
    this.#update({ latencyMs: null, hub: null });
  }

  /**
   * Runs one round of discovery now: the local hub first, then (unless local only) the
   * public URLs. Resolves when connected or when the round failed (then a retry is
   * scheduled with backoff). Concurrent calls share one round.
   */
  #cycle() {
    this.#cycling ??= this.#cycleOnce().finally(() => { this.#cycling = null; });
    return this.#cycling;
  }

  async #cycleOnce() {
    clearTimeout(this.#cycleTimer);
    if (!this.#running || this.#active?.kind === 'local') return;
    const local = await this.#tryLocal();
    let target = local.target;
    let pub = null;
    if (!target && !this.#active) {
      pub = this.#state.localOnly ? { target: null, outcome: { kind: CLIENT_KINDS.NO_HUB, message: 'the public fallback is off (local only)' } } : await this.#tryPublic();
    }
    if (pub?.target) target = pub.target;
    this.#status = roundStatus({ target, local: local.outcome, pub: pub?.outcome ?? null, running: this.#running });
    if (!this.#running) { target?.conn.close(1000, 'bye'); return; }
    if (target) {
      await this.#adopt(target);
      return;
    }
    if (this.#active) return; // still on the public hub; the local probe timer keeps going
    this.#update({ latencyMs: null, hub: null, lastError: { kind: this.#status.reason, message: this.#status.message } });
    const delay = backoffDelay(this.#cycleAttempt++, this.#o.backoff);
    this.#cycleTimer = setTimeout(() => this.#cycle(), delay);
  }

  async #tryLocal() {
    const bases = localBases(this.#o.ports, this.#o.host);
    const cred = this.#cred.local;
    const results = await probeAll(bases, { credential: cred, timeoutMs: this.#o.probeTimeoutMs, fetch: this.#fetch });
    const untrusted = results.filter((r) => r.status === 'untrusted').map(({ base, reason }) => ({ base, reason }));
    for (const u of untrusted) this.#emit('untrusted', u);
    this.#state.untrusted = untrusted;
    const seen = results.find((r) => r.status === 'found' || r.status === 'trusted' || r.status === 'untrusted');
    if ((seen?.base ?? null) !== this.#state.localFound) this.#update({ localFound: seen?.base ?? null });
    const trusted = results.filter((r) => r.status === 'trusted');
    let failed = null;
    for (const t of trusted) {
      const target = await this.#open('local', t, cred).catch((err) => { this.#note(err); failed ??= { base: t.base, err }; return null; });
      if (target) return { target, outcome: null };
    }
    const range = `${this.#o.host} port${bases.length === 1 ? '' : 's'} ${this.#o.ports.join(', ')}`;
    const found = results.find((r) => r.status === 'found');
    let outcome;
    if (failed) outcome = { kind: failed.err.kind ?? CLIENT_KINDS.OFFLINE, message: `the desktop hub at ${failed.base} did not take the connection: ${failed.err.message}` };
    else if (untrusted.length) outcome = { kind: CLIENT_KINDS.UNTRUSTED_HUB, message: `${untrusted[0].base} answers like the desktop hub but is not trusted: ${untrusted[0].reason}` };
    else if (found) outcome = { kind: CLIENT_KINDS.NOT_PAIRED, message: `a desktop hub answers at ${found.base}, but this client is not paired with it (call pair())` };
    else outcome = { kind: CLIENT_KINDS.NO_HUB, message: `no desktop hub answers on ${range}` };
    return { target: null, outcome };
  }

  async #tryPublic() {
    const cred = this.#cred.public;
    const urls = this.#o.publicUrls;
    if (urls.length === 0) return { target: null, outcome: { kind: CLIENT_KINDS.NO_HUB, message: 'no public URL is configured' } };
    if (!cred) return { target: null, outcome: { kind: CLIENT_KINDS.NOT_PAIRED, message: 'there is no token for the public hub (setPublicToken(), the publicToken option, or pair({target: "public"}))' } };
    let outcome = null;
    const worse = (o) => { if (!outcome || outcome.kind === CLIENT_KINDS.NO_HUB) outcome = o; };
    // Every URL once per round, starting where the last connection was (or after it, when
    // it closed): an unreachable or closing instance costs one probe, not the round.
    for (let i = 0; i < urls.length; i++) {
      const index = (this.#publicNext + i) % urls.length;
      const base = urls[index];
      const r = await probe(base, { credential: cred, timeoutMs: this.#o.probeTimeoutMs, fetch: this.#fetch });
      if (r.status === 'untrusted') {
        this.#emit('untrusted', { base, reason: r.reason });
        worse({ kind: CLIENT_KINDS.UNTRUSTED_HUB, message: `the public hub at ${base} is not trusted: ${r.reason}` });
        continue;
      }
      if (r.status !== 'trusted') {
        const o = { kind: CLIENT_KINDS.NO_HUB, message: `no public hub answers at ${base} (${r.reason})` };
        if (outcome?.kind === CLIENT_KINDS.NO_HUB) outcome.message += `; ${o.message.replace('no public hub answers at ', 'nor at ')}`;
        else worse(o);
        continue;
      }
      const target = await this.#open('public', r, cred).catch((err) => {
        this.#note(err);
        worse({ kind: err.kind ?? CLIENT_KINDS.OFFLINE, message: `the public hub at ${base} did not take the connection: ${err.message}` });
        return null;
      });
      if (target) {
        target.publicIndex = index;
        this.#publicNext = index;
        return { target, outcome: null };
      }
    }
    return { target: null, outcome };
  }

  #note(err) {
    this.#state.lastError = { kind: err?.kind ?? 'INTERNAL', message: String(err?.message ?? err) };
    this.#emit('error', err);
  }

  async #open(kind, probeResult, cred) {
    const target = { kind, base: probeResult.base, signature: probeResult.signature, endpoint: probeResult.endpoint };
    const conn = new Connection({
      url: wsUrlOf(probeResult.base, probeResult.signature),
      token: cred.token,
      WebSocket: this.#WebSocket,
      onNotification: (method, params) => this.#onNotification(conn, method, params),
      onClose: (info) => this.#onClose(conn, info),
    });
    target.conn = conn;
    try {
      await conn.open();
      const t0 = performance.now();
      const hello = { role: this.#o.role, name: this.#o.name };
      if (this.#o.connectionEvents !== undefined) hello.connection_events = this.#o.connectionEvents;
      target.hello = await conn.call('hub.hello', hello, this.#o.callTimeoutMs);
      target.latencyMs = Math.round((performance.now() - t0) * 10) / 10;
    } catch (err) {
      conn.close(1000, 'bye');
      throw err;
    }
    target.refused = this.#subs.size ? await this.#resubscribe(conn) : [];
    const hello = target.hello;
    const sig = probeResult.signature;
    target.hub = {
      kind,
      mode: sig.mode === 'public' ? 'public' : 'local',
      base: probeResult.base,
      endpoint: probeResult.endpoint,
      instanceId: hello?.server?.instance_id ?? sig.instance_id,
      version: hello?.server?.version ?? sig.version,
      product: hello?.server?.product ?? sig.product,
      capabilities: sig.capabilities ?? [],
      connectionId: hello?.connection_id ?? null,
      connectionEvents: hello?.connection_events === true,
    };
    return target;
  }

  /**
   * Sends every pattern again on a new connection: all in one `event.subscribe`, and when
   * the hub refuses that batch (it refuses a batch as a whole), one pattern at a time, so
   * that a pattern the hub now refuses (a scope taken away, a lower
   * `limits.max_subscriptions`) costs only itself, never the others or the connection.
   * Refused patterns stay subscribed here and are tried again on the next connection.
   * @returns {Promise<{pattern: string, kind: string, message: string}[]>} the refused ones
   */
  async #resubscribe(conn) {
    const patterns = [...this.#subs.keys()];
    try {
      await conn.call('event.subscribe', { types: patterns }, this.#o.callTimeoutMs);
      return [];
    } catch (err) {
      if (!(err instanceof RpcError)) { this.#note(err); return []; }
      if (patterns.length === 1) return [this.#refuse(patterns[0], err)];
    }
    const refused = [];
    for (const pattern of patterns) {
      if (!this.#subs.has(pattern)) continue;
      try {
        await conn.call('event.subscribe', { types: [pattern] }, this.#o.callTimeoutMs);
      } catch (err) {
        if (!(err instanceof RpcError)) { this.#note(err); break; }
        refused.push(this.#refuse(pattern, err));
      }
    }
    return refused;
  }

  #refuse(pattern, error) {
    this.#emit('subscriptionerror', { pattern, error });
    this.#note(error);
    return { pattern, kind: error.kind, message: error.message };
  }

  async #adopt(target) {
    const old = this.#active;
    this.#active = target;
    this.#cycleAttempt = 0;
    clearTimeout(this.#cycleTimer);
    clearInterval(this.#keepaliveTimer);
    this.#keepaliveTimer = setInterval(() => this.#keepalive(target), this.#o.keepaliveMs);
    this.#update({ latencyMs: target.latencyMs, hub: target.hub, lastError: null, refused: target.refused ?? [] });
    for (const w of this.#waiters) w.resolve(target);
    this.#waiters.clear();
    if (old) {
      // Make before break: the old connection finishes the publish in flight (bounded), then
      // closes; anything it did not confirm is sent again on the new one.
      const deadline = Date.now() + 2000;
      while (old.conn.pendingCount > 0 && !old.conn.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      old.conn.close(1000, 'switching hub');
    }
    if (target.kind === 'public') this.#scheduleLocalProbe(true);
    else clearTimeout(this.#localTimer);
    this.#pump();
  }

  #scheduleLocalProbe(reset = false) {
    clearTimeout(this.#localTimer);
    if (reset) this.#localAttempt = 0;
    if (!this.#running) return;
    const delay = backoffDelay(this.#localAttempt++, this.#o.backoff);
    this.#localTimer = setTimeout(async () => {
      if (!this.#running || this.#active?.kind !== 'public') return;
      if (this.#cycling) await this.#cycling;
      const { target } = await this.#tryLocal();
      if (target && this.#running) await this.#adopt(target);
      else { target?.conn.close(1000, 'bye'); this.#scheduleLocalProbe(); }
    }, delay);
  }

  async #keepalive(target) {
    if (this.#active !== target) return;
    const t0 = performance.now();
    try {
      await target.conn.call('hub.status', {}, this.#o.callTimeoutMs);
      if (this.#active === target) this.#update({ latencyMs: Math.round((performance.now() - t0) * 10) / 10 });
    } catch (err) {
      if (err.kind === CLIENT_KINDS.REQUEST_TIMEOUT) target.conn.close(4000, 'keepalive timeout');
    }
  }

  #onClose(conn, info) {
    for (const item of this.#queue) if (item.sentOn === conn) item.sentOn = null;
    if (this.#active?.conn !== conn) return;
    // Fail over: the next round starts with the public URL after the one that closed.
    if (this.#active.kind === 'public') this.#publicNext = (this.#active.publicIndex + 1) % this.#o.publicUrls.length;
    this.#active = null;
    clearInterval(this.#keepaliveTimer);
    clearTimeout(this.#localTimer);
    this.#state.lastError = info.code === 1000 || info.code === 1001 ? null : { kind: CLIENT_KINDS.CONNECTION_CLOSED, message: `connection closed (${info.code})` };
    this.#update({ latencyMs: null });
    if (this.#running) {
      this.#cycleAttempt = 0;
      this.#cycle();
    }
  }

  // ---------- incoming ----------

  #onNotification(conn, method, params) {
    if (this.#active?.conn !== conn || !params) return;
    const agentEvent = AGENT_NOTIFICATIONS[method];
    if (agentEvent) {
      this.#emit(agentEvent, method === 'agent.approval_requested' ? params.approval
        : method === 'agent.queue_changed' ? params.message : params);
      return;
    }
    if (method === CONNECTION_NOTIFICATION) {
      this.#emit('connection', { event: params.event, connection: params.connection });
      return;
    }
    if (method !== 'event') return;
    const ev = {
      type: params.type,
      payload: params.payload,
      correlationId: params.correlation_id ?? null,
      from: params.from,
      seq: params.seq,
      ts: params.ts,
      dropped: params.dropped ?? 0,
      reply: (payload, type = `${params.type}.reply`) => this.publish(type, payload, { correlationId: params.correlation_id }),
    };
    if (ev.dropped) this.#emit('dropped', { count: ev.dropped, type: ev.type });
    this.#emit('event', ev);
    const called = new Set();
    for (const [pattern, handlers] of this.#subs) {
      if (!matches(pattern, ev.type)) continue;
      for (const h of handlers) {
        if (called.has(h)) continue;
        called.add(h);
        try { h(ev); } catch (err) { this.#emit('error', err); }
      }
    }
  }

  // ---------- outgoing ----------

  /**
   * A `NOT_PAIRED` error when this client holds no token for any hub it may use (so
   * nothing could ever be sent), else null.
   */
  #unpaired() {
    if (this.#cred.local) return null;
    if (this.#cred.public && this.#o.publicUrls.length && !this.#state.localOnly) return null;
    const why = this.#cred.public && this.#o.publicUrls.length ? 'only a public token, and local only is on'
      : this.#cred.public ? 'only a public token, and no public URL is configured' : 'no token';
    return new HubError(CLIENT_KINDS.NOT_PAIRED, `this client is not paired with a hub (${why}): call pair(), or pass the token option (local) or publicToken with publicUrls`);
  }

  /** Resolves with the active connection, waiting up to `timeoutMs` for one. */
  #whenConnected(timeoutMs) {
    if (this.#active) return Promise.resolve(this.#active);
    const unpaired = this.#unpaired();
    if (unpaired) return Promise.reject(unpaired);
    if (!this.#running) return Promise.reject(new HubError(CLIENT_KINDS.OFFLINE, 'the client is not started (call start())'));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (t) => { clearTimeout(timer); resolve(t); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => { this.#waiters.delete(w); reject(new HubError(CLIENT_KINDS.OFFLINE, `no hub connection within ${timeoutMs} ms`)); }, timeoutMs);
      this.#waiters.add(w);
    });
  }

  /**
   * Calls any JSON-RPC method the token's scopes allow, on the current connection (waiting
   * up to `timeoutMs` for one). Not queued and not retried: a call cut off by a lost
   * connection rejects with `CONNECTION_CLOSED`.
   */
  async call(method, params = {}, { timeoutMs = this.#o.callTimeoutMs } = {}) {
    await this.#load();
    const t = await this.#whenConnected(timeoutMs);
    return t.conn.call(method, params, timeoutMs);
  }

  // ---------- agents: approvals and follow-ups (scope `agents`) ----------

  /**
   * The tool calls waiting for a person, oldest first (`agent.approvals.list`); of one
   * project when `projectId` is given. Not kept by the client: after a reconnect (a
   * `state` with `connected: true`) list again, then follow `approvalrequested` and
   * `approvalresolved`.
   * @returns {Promise<any[]>} ApprovalView objects
   */
  async approvals({ projectId } = {}) {
    const res = await this.call('agent.approvals.list', projectId ? { project_id: projectId } : {});
    return res.approvals;
  }

  /**
   * Answers an approval (`agent.approvals.answer`). `answer.decision` is `allow_once`,
   * `allow_always`, `reject_once` or `reject_always`; `updatedInput` (allow: the input
   * the tool runs with instead), `message` (reject: what the agent reads), `interrupt`
   * (reject: also end the turn), `scope` (`*_always`: `session` or `project`). The first
   * answer wins: a later one rejects with `APPROVAL_RESOLVED` (`err.data.resolution` says
   * how it ended); an unknown id with `APPROVAL_NOT_FOUND`.
   * @returns {Promise<{approval: any, resolution: any}>}
   */
  async answerApproval(approvalId, { decision, updatedInput, message, interrupt, scope } = {}) {
    if (typeof approvalId !== 'string' || !approvalId) throw new TypeError('answerApproval: approvalId must be a non-empty string');
    if (!DECISIONS.has(decision)) throw new TypeError(`answerApproval: decision must be one of ${[...DECISIONS].join(', ')}`);
    const params = { approval_id: approvalId, decision };
    if (updatedInput !== undefined) params.updated_input = updatedInput;
    if (message !== undefined) params.message = message;
    if (interrupt !== undefined) params.interrupt = interrupt;
    if (scope !== undefined) params.scope = scope;
    return this.call('agent.approvals.answer', params);
  }

  /** Allows a tool call: once, with `updatedInput`, or `always` for the `session` or `project`. */
  allow(approvalId, { updatedInput, always } = {}) {
    return this.answerApproval(approvalId, { decision: always ? 'allow_always' : 'allow_once', updatedInput, scope: always || undefined });
  }

  /** Denies a tool call, with a `message` for the agent; `interrupt` also ends the turn; `always` remembers it. */
  deny(approvalId, { message, interrupt, always } = {}) {
    return this.answerApproval(approvalId, { decision: always ? 'reject_always' : 'reject_once', message, interrupt, scope: always || undefined });
  }

  /**
   * Sends a follow-up to a project's agent (`agent.send`): `mode` `queue` (default: its
   * own turn after the running one), `steer` (into the running turn) or `interrupt` (stop
   * the turn, run this next). With no turn running it starts one.
   * @returns {Promise<{run_id: string, delivery: 'started' | 'queued' | 'steered' | 'interrupting', message?: any}>}
   */
  sendToAgent(projectId, text, { mode = 'queue' } = {}) {
    return this.call('agent.send', { project_id: projectId, text, mode });
  }

  /** A project's queued follow-ups, oldest first (`agent.queue.list`). */
  async followUps(projectId) {
    const res = await this.call('agent.queue.list', { project_id: projectId });
    return res.messages;
  }

  /** Edits a queued follow-up (`agent.queue.update`); `MESSAGE_NOT_QUEUED` once delivered or cancelled. */
  async updateFollowUp(id, text) {
    return (await this.call('agent.queue.update', { id, text })).message;
  }

  /** Cancels a queued follow-up (`agent.queue.cancel`); `MESSAGE_NOT_QUEUED` once delivered or cancelled. */
  async cancelFollowUp(id) {
    return (await this.call('agent.queue.cancel', { id })).message;
  }

  /** Stops a project's running turn (`agent.interrupt`); `NOT_RUNNING` when none runs. */
  interrupt(projectId) {
    return this.call('agent.interrupt', { project_id: projectId });
  }

  /**
   * Publishes an event. Always goes through the ordered outgoing queue: sent at once when
   * connected, kept (and stored) while disconnected, and sent again after a reconnect until
   * the hub confirms it. Resolves with the hub's `{delivered, seq}`.
   *
   * The queue is bounded: at most `queueLimit` events wait (default 1000), and each waits
   * at most `queueTimeoutMs` (default 1 h) to be sent. One on the wire when its time is up
   * finishes that round trip first (at most `callTimeoutMs`).
   * @throws {HubError} `NOT_PAIRED` when the client holds no token for any hub it may use
   *   (nothing could ever send it); `QUEUE_FULL` when `queueLimit` events wait;
   *   `QUEUE_TIMEOUT` when it waited `queueTimeoutMs` unsent (it is then dropped);
   *   {RpcError} e.g. `INVALID_EVENT_TYPE`
   */
  async publish(type, payload = null, { correlationId } = {}) {
    await this.#load();
    const unpaired = this.#unpaired();
    if (unpaired) throw unpaired;
    if (this.#queue.length >= this.#o.queueLimit) {
      this.#emit('queuefull', { limit: this.#o.queueLimit, type });
      throw new HubError(CLIENT_KINDS.QUEUE_FULL, `the outgoing queue holds ${this.#o.queueLimit} events; ${type} was not queued`, { data: { kind: CLIENT_KINDS.QUEUE_FULL, limit: this.#o.queueLimit } });
    }
    return new Promise((resolve, reject) => {
      const item = { key: randomKey(), type, payload, correlationId: correlationId ?? null, deadline: Date.now() + this.#o.queueTimeoutMs, sentOn: null, resolve, reject };
      this.#queue.push(item);
      this.#armDeadline(item);
      this.#persistQueue();
      this.#update({});
      this.#pump();
    });
  }

  /** Sets the timer that drops `item` once its `deadline` (ms since the epoch) is past. */
  #armDeadline(item) {
    const ms = item.deadline - Date.now();
    if (Number.isNaN(ms) || ms === Infinity) return;
    item.timer = setTimeout(() => this.#expire(item), Math.max(0, Math.min(ms, MAX_TIMER_MS)));
    // A deadline must not keep a Node process alive on its own.
    item.timer?.unref?.();
  }

  #expire(item) {
    if (!this.#queue.includes(item)) return;
    if (Date.now() < item.deadline) { this.#armDeadline(item); return; } // a deadline beyond one timer's reach
    if (item.sentOn) { item.expired = true; return; } // on the wire: its round trip decides
    this.#settle(item, null, this.#timeoutError(item));
  }

  #timeoutError(item) {
    return new HubError(CLIENT_KINDS.QUEUE_TIMEOUT, `${item.type} waited ${this.#o.queueTimeoutMs} ms (queueTimeoutMs) without reaching a hub and was dropped`, { data: { kind: CLIENT_KINDS.QUEUE_TIMEOUT, timeout_ms: this.#o.queueTimeoutMs } });
  }

  /** Takes `item` out of the queue and resolves or rejects its publish. */
  #settle(item, result, err) {
    clearTimeout(item.timer);
    const i = this.#queue.indexOf(item);
    if (i >= 0) this.#queue.splice(i, 1);
    this.#persistQueue();
    this.#update({});
    if (err) {
      if (item.reject) item.reject(err);
      else this.#emit('error', err); // restored from storage: nobody awaits it
    } else {
      item.resolve?.(result);
    }
  }

  #persistQueue() {
    if (!this.#o.persistQueue) return;
    const rows = this.#queue.map(({ key, type, payload, correlationId, deadline }) => ({ key, type, payload, correlationId, deadline: Number.isFinite(deadline) ? deadline : null }));
    this.#storage.set(STORAGE_KEYS.queue, rows).catch((err) => this.#emit('error', err));
  }

  /** Sends the queue head, one at a time, so the hub sees the events in publish order. */
  async #pump() {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length && this.#active) {
        const item = this.#queue[0];
        if (Date.now() >= item.deadline) { this.#settle(item, null, this.#timeoutError(item)); continue; }
        const t = this.#active;
        item.sentOn = t.conn;
        const params = { type: item.type, payload: item.payload };
        // Only a hub that deduplicates by key accepts it (event.publish refuses unknown fields).
        if (t.hub.capabilities.includes(IDEMPOTENCY_CAPABILITY)) params.idempotency_key = item.key;
        if (item.correlationId) params.correlation_id = item.correlationId;
        let result;
        try {
          result = await t.conn.call('event.publish', params, this.#o.callTimeoutMs);
        } catch (err) {
          item.sentOn = null;
          if (err instanceof RpcError && err.kind === 'RATE_LIMITED') { await new Promise((r) => setTimeout(r, 250)); continue; }
          if (err instanceof RpcError) {
            this.#settle(item, null, err);
            continue;
          }
          if (item.expired) { this.#settle(item, null, this.#timeoutError(item)); continue; }
          // The connection died or stopped answering: keep the item for the next connection.
          // (The close handler has already cleared or replaced the active connection.)
          if (err.kind === CLIENT_KINDS.REQUEST_TIMEOUT) t.conn.close(4000, 'publish timeout');
          if (this.#active === t) break;
          continue;
        }
        this.#settle(item, result, null);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /**
   * Subscribes `handler` to `pattern` (`a.b`, `a.*` or `*`). Resubscribed automatically on
   * every new connection, one refused pattern never taking the others down (see
   * `subscriptionerror`). Resolves with a function that unsubscribes.
   *
   * The pattern is checked here, with the hub's rule, connected or not, so a bad one never
   * reaches the resubscription of a later connection.
   * @throws {HubError} `INVALID_EVENT_TYPE` (code -32041, `data.type`, as the hub would
   *   answer); {RpcError} `TOO_MANY_SUBSCRIPTIONS`, `FORBIDDEN` from the hub when connected
   */
  async subscribe(pattern, handler) {
    if (typeof handler !== 'function') throw new TypeError('subscribe: handler must be a function');
    const problem = patternProblem(pattern);
    if (problem) {
      throw new HubError('INVALID_EVENT_TYPE', `event.subscribe: ${JSON.stringify(pattern)} is not an event type pattern: ${problem}`, { code: INVALID_EVENT_TYPE_CODE, data: { kind: 'INVALID_EVENT_TYPE', type: pattern } });
    }
    const isNew = !this.#subs.has(pattern);
    if (isNew) this.#subs.set(pattern, new Set());
    this.#subs.get(pattern).add(handler);
    const t = this.#active;
    if (isNew && t) {
      try {
        await t.conn.call('event.subscribe', { types: [pattern] }, this.#o.callTimeoutMs);
      } catch (err) {
        if (err instanceof RpcError) { this.#subs.delete(pattern); throw err; }
        // Connection lost: the next connection subscribes.
      }
    }
    return async () => {
      const set = this.#subs.get(pattern);
      if (!set?.delete(handler) || set.size) return;
      this.#subs.delete(pattern);
      await this.#active?.conn.call('event.unsubscribe', { types: [pattern] }, this.#o.callTimeoutMs).catch(() => {});
    };
  }

  /**
   * Sends an event that expects an answer (`event.request`) and resolves with the first
   * event published with the same correlation id.
   * @throws {RpcError} `TIMEOUT` (nobody answered in `timeoutMs`); {HubError} `OFFLINE`
   */
  async request(type, payload = null, { timeoutMs = 5000 } = {}) {
    await this.#load();
    const t = await this.#whenConnected(timeoutMs);
    const r = await t.conn.call('event.request', { type, payload, timeout_ms: timeoutMs }, timeoutMs + this.#o.callTimeoutMs);
    return { type: r.type, payload: r.payload, correlationId: r.correlation_id, from: r.from, seq: r.seq, ts: r.ts };
  }

  // ---------- settings and pairing ----------

  /** Turns "local only" on or off (stored). On: never connects to a public hub. */
  async setLocalOnly(on) {
    await this.#load();
    await this.#storage.set(STORAGE_KEYS.localOnly, !!on);
    this.#update({ localOnly: !!on });
    if (on && this.#active?.kind === 'public') this.#active.conn.close(1000, 'local only');
    else if (!on && !this.#active && this.#running) this.#cycle();
  }

  /** Stores the token for the public hub(s), e.g. one issued by `client.create` there. */
  async setPublicToken(credential) {
    await this.#load();
    const c = normaliseCredential(credential);
    if (c) await this.#storage.set(STORAGE_KEYS.publicToken, c);
    else await this.#storage.remove(STORAGE_KEYS.publicToken);
    this.#cred.public = c;
    this.#update({ paired: { ...this.#state.paired, public: !!c } });
    if (c && !this.#active && this.#running) this.#cycle();
  }

  /** Forgets a stored token (`"local"` or `"public"`). */
  async forget(which = 'local') {
    await this.#load();
    await this.#storage.remove(which === 'public' ? STORAGE_KEYS.publicToken : STORAGE_KEYS.localToken);
    this.#cred[which] = null;
    this.#update({ paired: { ...this.#state.paired, [which]: false } });
  }

  /**
   * Pairs with the desktop hub (or, with `target: "public"`, the first public URL that
   * answers, in order): asks
   * for a token, calls `onCode` with the 6-digit code the desktop app also shows, waits
   * for the approval, stores the token and connects. `base` picks one local hub (e.g.
   * `http://127.0.0.1:3004`) when several answer.
   * @throws {import('./errors.js').PairingError} `PAIRING_DENIED`, `PAIRING_EXPIRED`, ...; {HubError} `NO_HUB`, `AMBIGUOUS_HUB`
   */
  async pair({ name = this.#o.name, onCode, target = 'local', signal, base: baseOverride } = {}) {
    await this.#load();
    let base;
    if (target === 'public') {
      const urls = this.#o.publicUrls;
      if (!urls.length) throw new HubError(CLIENT_KINDS.NO_HUB, 'no public URL is configured');
      // The first public URL, in order, whose signature answers.
      const results = await probeAll(urls, { timeoutMs: this.#o.probeTimeoutMs, fetch: this.#fetch });
      base = results.find((r) => r.status === 'found')?.base;
      if (!base) {
        const err = new HubError(CLIENT_KINDS.NO_HUB, `no public hub answered (${urls.join(', ')})`);
        this.#update({ lastError: { kind: err.kind, message: err.message } });
        throw err;
      }
    } else {
      const results = await probeAll(localBases(this.#o.ports, this.#o.host), { timeoutMs: this.#o.probeTimeoutMs, fetch: this.#fetch });
      const found = results.filter((r) => r.status === 'found');
      // Before pairing there is no token to challenge with, so a program that copies the
      // signature (and relays /pair to the real hub) would look the same as the hub and
      // receive the token. Refuse to guess when more than one server claims to be a hub.
      if (found.length > 1 && !baseOverride) {
        const err = new HubError(CLIENT_KINDS.AMBIGUOUS_HUB, `more than one server on this computer claims to be the Semantest Hub (${found.map((r) => r.base).join(', ')}); stop the one you do not know, or pair with an explicit base`, { data: { kind: CLIENT_KINDS.AMBIGUOUS_HUB, bases: found.map((r) => r.base) } });
        this.#update({ lastError: { kind: err.kind, message: err.message } });
        throw err;
      }
      base = baseOverride ?? found[0]?.base;
      if (baseOverride && !found.some((r) => r.base === baseOverride)) base = null;
      if (!base) {
        const err = new HubError(CLIENT_KINDS.NO_HUB, 'no desktop hub answered on this machine; start the Semantest Hub app');
        this.#update({ lastError: { kind: err.kind, message: err.message } });
        throw err;
      }
    }
    this.#update({ pairing: { code: null, expiresAt: null, requestId: null, target }, lastError: null });
    try {
      const cred = await runPairing(base, {
        name,
        fetch: this.#fetch,
        signal,
        onCode: (info) => {
          this.#update({ pairing: { ...info, target } });
          onCode?.(info);
        },
      });
      const key = target === 'public' ? STORAGE_KEYS.publicToken : STORAGE_KEYS.localToken;
      await this.#storage.set(key, cred);
      this.#cred[target] = cred;
      this.#update({ pairing: null, paired: { ...this.#state.paired, [target]: true } });
      if (this.#running) {
        if (target === 'local' && this.#active?.kind === 'public') this.#scheduleLocalProbe(true);
        if (!this.#active) { this.#cycleAttempt = 0; await this.#cycle(); }
      }
      return { clientId: cred.clientId, scopes: cred.scopes };
    } catch (err) {
      this.#update({ pairing: null, lastError: { kind: err.kind ?? 'INTERNAL', message: String(err.message ?? err) } });
      throw err;
    }
  }
}
