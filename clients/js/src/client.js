// HubClient: finds the desktop hub, falls back to the public hub, keeps one connection,
// queues publishes while disconnected and replays them in order, resubscribes, keeps the
// connection (and an MV3 service worker) alive, and reports its state.

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
   * Listens to `state`, `event`, `queuefull`, `untrusted`, `dropped` or `error`. Returns a
   * function that removes the listener.
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
      this.#cred = { local: normaliseCredential(local), public: normaliseCredential(pub) ?? normaliseCredential(this.#o.publicToken) };
      const lo = this.#o.localOnly ?? localOnly ?? false;
      if (Array.isArray(queue)) {
        for (const q of queue) this.#queue.push({ ...q, sentOn: null, resolve: null, reject: null });
      }
      this.#update({ localOnly: !!lo, paired: { local: !!this.#cred.local, public: !!this.#cred.public } });
    })();
    return this.#loaded;
  }

  #cred = { local: null, public: null };

  /** Starts discovery and keeps connecting until `stop()`. Safe to call again. */
  async start() {
    await this.#load();
    if (this.#running) return;
    this.#running = true;
    this.#cycleAttempt = 0;
    await this.#cycle();
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
    let target = await this.#tryLocal();
    if (!target && !this.#state.localOnly && !this.#active) target = await this.#tryPublic();
    if (!this.#running) { target?.conn.close(1000, 'bye'); return; }
    if (target) {
      await this.#adopt(target);
      return;
    }
    if (this.#active) return; // still on the public hub; the local probe timer keeps going
    this.#update({ latencyMs: null, hub: null });
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
    for (const t of trusted) {
      const target = await this.#open('local', t, cred).catch((err) => { this.#note(err); return null; });
      if (target) return target;
    }
    return null;
  }

  async #tryPublic() {
    const cred = this.#cred.public;
    const urls = this.#o.publicUrls;
    if (!cred || urls.length === 0) return null;
    // Every URL once per round, starting where the last connection was (or after it, when
    // it closed): an unreachable or closing instance costs one probe, not the round.
    for (let i = 0; i < urls.length; i++) {
      const index = (this.#publicNext + i) % urls.length;
      const base = urls[index];
      const r = await probe(base, { credential: cred, timeoutMs: this.#o.probeTimeoutMs, fetch: this.#fetch });
      if (r.status === 'untrusted') { this.#emit('untrusted', { base, reason: r.reason }); continue; }
      if (r.status !== 'trusted') continue;
      const target = await this.#open('public', r, cred).catch((err) => { this.#note(err); return null; });
      if (target) {
        target.publicIndex = index;
        this.#publicNext = index;
        return target;
      }
    }
    return null;
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
      target.hello = await conn.call('hub.hello', { role: this.#o.role, name: this.#o.name }, this.#o.callTimeoutMs);
      target.latencyMs = Math.round((performance.now() - t0) * 10) / 10;
    } catch (err) {
      conn.close(1000, 'bye');
      throw err;
    }
    if (this.#subs.size) {
      // A refused subscription (e.g. FORBIDDEN without the events scope) must not cost the
      // connection: report it and carry on.
      await conn.call('event.subscribe', { types: [...this.#subs.keys()] }, this.#o.callTimeoutMs).catch((err) => this.#note(err));
    }
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
    };
    return target;
  }

  async #adopt(target) {
    const old = this.#active;
    this.#active = target;
    this.#cycleAttempt = 0;
    clearTimeout(this.#cycleTimer);
    clearInterval(this.#keepaliveTimer);
    this.#keepaliveTimer = setInterval(() => this.#keepalive(target), this.#o.keepaliveMs);
    this.#update({ latencyMs: target.latencyMs, hub: target.hub, lastError: null });
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
      const target = await this.#tryLocal();
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
    if (method !== 'event' || this.#active?.conn !== conn || !params) return;
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

  /** Resolves with the active connection, waiting up to `timeoutMs` for one. */
  #whenConnected(timeoutMs) {
    if (this.#active) return Promise.resolve(this.#active);
    if (!this.#running) return Promise.reject(new HubError(CLIENT_KINDS.OFFLINE, 'the client is not started'));
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
    const t = await this.#whenConnected(timeoutMs);
    return t.conn.call(method, params, timeoutMs);
  }

  /**
   * Publishes an event. Always goes through the ordered outgoing queue: sent at once when
   * connected, kept (and stored) while disconnected, and sent again after a reconnect until
   * the hub confirms it. Resolves with the hub's `{delivered, seq}`.
   * @throws {HubError} `QUEUE_FULL` when `queueLimit` items wait; {RpcError} e.g. `INVALID_EVENT_TYPE`
   */
  publish(type, payload = null, { correlationId } = {}) {
    if (this.#queue.length >= this.#o.queueLimit) {
      this.#emit('queuefull', { limit: this.#o.queueLimit, type });
      return Promise.reject(new HubError(CLIENT_KINDS.QUEUE_FULL, `the outgoing queue holds ${this.#o.queueLimit} events; ${type} was not queued`, { data: { kind: CLIENT_KINDS.QUEUE_FULL, limit: this.#o.queueLimit } }));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ key: randomKey(), type, payload, correlationId: correlationId ?? null, sentOn: null, resolve, reject });
      this.#persistQueue();
      this.#update({});
      this.#pump();
    });
  }

  #persistQueue() {
    if (!this.#o.persistQueue) return;
    const rows = this.#queue.map(({ key, type, payload, correlationId }) => ({ key, type, payload, correlationId }));
    this.#storage.set(STORAGE_KEYS.queue, rows).catch((err) => this.#emit('error', err));
  }

  /** Sends the queue head, one at a time, so the hub sees the events in publish order. */
  async #pump() {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length && this.#active) {
        const item = this.#queue[0];
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
            this.#queue.shift();
            this.#persistQueue();
            this.#update({});
            item.reject?.(err);
            continue;
          }
          // The connection died or stopped answering: keep the item for the next connection.
          // (The close handler has already cleared or replaced the active connection.)
          if (err.kind === CLIENT_KINDS.REQUEST_TIMEOUT) t.conn.close(4000, 'publish timeout');
          if (this.#active === t) break;
          continue;
        }
        this.#queue.shift();
        this.#persistQueue();
        this.#update({});
        item.resolve?.(result);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /**
   * Subscribes `handler` to `pattern` (`a.b`, `a.*` or `*`). Resubscribed automatically on
   * every new connection. Resolves with a function that unsubscribes.
   * @throws {RpcError} `INVALID_EVENT_TYPE`, `TOO_MANY_SUBSCRIPTIONS`, `FORBIDDEN`
   */
  async subscribe(pattern, handler) {
    if (typeof handler !== 'function') throw new TypeError('subscribe: handler must be a function');
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
