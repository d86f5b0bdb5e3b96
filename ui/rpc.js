// A small JSON-RPC 2.0 client over WebSocket, for the dashboard and any other page.
//
// - request(method, params) matches replies by id and rejects after a timeout;
// - on(method, fn) listens for server notifications;
// - the socket reconnects on its own with exponential backoff (0.5 s doubling to 10 s,
//   with jitter, so many tabs do not hammer a restarted hub in step);
// - a `state` event reports "connecting", "connected", "reconnecting", "signed-out" or
//   "stopped". "signed-out" is final until retry(): retrying a refused sign-in forever
//   helps no one.
//
// Browsers do not expose the HTTP status of a refused WebSocket upgrade, so when a
// handshake fails the client asks `authProbe()` (by default `POST /session/check` on the
// same hub) whether the hub refused us (401/403) or is simply not there.
//
// It uses only EventTarget, CustomEvent, setTimeout and a WebSocket constructor, so it runs
// in browsers and in Node (tests pass a fake WebSocket).

/** An error reply from the server, or a local failure (timeout, lost connection). */
export class RpcError extends Error {
  /**
   * @param {string} message
   * @param {{code?: number, kind?: string, data?: any, method?: string}} [info]
   */
  constructor(message, { code = 0, kind = 'INTERNAL', data = null, method = '' } = {}) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.kind = kind;
    this.data = data;
    this.method = method;
  }
}

/** Local error kinds (never sent by the server). */
export const TIMEOUT = 'TIMEOUT';
export const DISCONNECTED = 'DISCONNECTED';

/**
 * Delay before reconnect attempt `attempt` (0-based): min(max, initial * 2^attempt),
 * then "equal jitter": a random value in [d/2, d].
 * @param {number} attempt
 * @param {{initialMs?: number, maxMs?: number, random?: () => number}} [opts]
 */
export function backoffDelay(attempt, { initialMs = 500, maxMs = 10_000, random = Math.random } = {}) {
  const d = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(d / 2 + random() * (d / 2));
}

/** The dashboard's WebSocket URL for the current page. */
export function defaultWsUrl(loc = globalThis.location) {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
}

export class RpcClient extends EventTarget {
  /**
   * @param {object} opts
   * @param {string} opts.url                 ws:// or wss:// URL
   * @param {string[]} [opts.protocols]       WebSocket subprotocols
   * @param {{method: string, params: any}} [opts.hello]  sent first on every connection;
   *        its result is the `detail.hello` of the "connected" state
   * @param {number} [opts.requestTimeoutMs]  default timeout of a request
   * @param {number} [opts.initialBackoffMs]
   * @param {number} [opts.maxBackoffMs]
   * @param {() => Promise<'unauthorized'|'down'|'ok'>} [opts.authProbe]
   * @param {typeof WebSocket} [opts.WebSocket]
   * @param {() => number} [opts.random]
   */
  constructor(opts) {
    super();
    this.url = opts.url;
    this.protocols = opts.protocols ?? [];
    this.hello = opts.hello ?? null;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 15_000;
    this.initialBackoffMs = opts.initialBackoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.authProbe = opts.authProbe ?? (() => probeHttp(this.url));
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    this.random = opts.random ?? Math.random;

    /** @type {'idle'|'connecting'|'connected'|'reconnecting'|'signed-out'|'stopped'} */
    this.state = 'idle';
    /** The hello result of the current connection. */
    this.session = null;
    this.attempt = 0;
    this.nextId = 1;
    /** @type {Map<number|string, {resolve: Function, reject: Function, timer: any, method: string}>} */
    this.pending = new Map();
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    /** Callers of request() that wait for the connection to be ready. */
    this.waiters = new Set();
    this.ws = null;
    this.retryTimer = null;
  }

  /** Opens the connection (and keeps it open until stop()). */
  start() {
    if (this.state === 'idle' || this.state === 'stopped') this.connect();
  }

  /** Closes the connection for good and rejects what is pending. */
  stop() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState('stopped');
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      try { ws.close(1000, 'client stopped'); } catch { /* already closed */ }
    }
    this.failPending(new RpcError('client stopped', { kind: DISCONNECTED }));
    this.failWaiters(new RpcError('client stopped', { kind: DISCONNECTED }));
  }

  /** Reconnects now, e.g. after signed-out once the user signed in again. */
  retry() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    if (this.state !== 'connected' && this.state !== 'connecting') this.connect();
  }

  /**
   * Sends a request and resolves with its result. Waits for the connection if it is being
   * (re)established; the timeout covers the wait and the reply.
   * @param {string} method
   * @param {any} [params]
   * @param {{timeoutMs?: number}} [opts]
   */
  request(method, params, { timeoutMs = this.requestTimeoutMs } = {}) {
    const deadline = Date.now() + timeoutMs;
    if (this.state === 'connected') return this.send(method, params, timeoutMs);
    if (this.state === 'signed-out' || this.state === 'stopped' || this.state === 'idle') {
      return Promise.reject(new RpcError('not connected to the hub', { kind: DISCONNECTED, method }));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        ready: () => {
          clearTimeout(waiter.timer);
          this.waiters.delete(waiter);
          this.send(method, params, Math.max(1, deadline - Date.now())).then(resolve, reject);
        },
        fail: (err) => {
          clearTimeout(waiter.timer);
          this.waiters.delete(waiter);
          reject(err);
        },
        timer: setTimeout(() => waiter.fail(new RpcError(`${method} timed out waiting for the hub`, { kind: TIMEOUT, method })), timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Sends a notification (no reply). Dropped when not connected. */
  notify(method, params) {
    if (this.state !== 'connected') return false;
    return this.write({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) });
  }

  /**
   * Listens for the server notification `method` ("*" for all). Returns an unsubscribe function.
   * @param {string} method
   * @param {(params: any, method: string) => void} fn
   */
  on(method, fn) {
    let set = this.listeners.get(method);
    if (!set) this.listeners.set(method, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  // ---- internals ----

  send(method, params, timeoutMs, { internal = false } = {}) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError(`${method} timed out after ${Math.round(timeoutMs / 1000)} s`, { kind: TIMEOUT, method }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, method });
      const frame = { jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) };
      if (!this.write(frame, internal)) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new RpcError('not connected to the hub', { kind: DISCONNECTED, method }));
      }
    });
  }

  write(frame) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState(this.attempt === 0 && !this.session ? 'connecting' : 'reconnecting', { attempt: this.attempt });
    let ws;
    try {
      ws = new this.WebSocket(this.url, this.protocols);
    } catch (err) {
      this.scheduleReconnect(err);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = async () => {
      opened = true;
      let hello = null;
      if (this.hello) {
        try {
          hello = await this.send(this.hello.method, this.hello.params, this.requestTimeoutMs, { internal: true });
        } catch (err) {
          if (ws !== this.ws) return;
          if (err.kind === 'UNAUTHORIZED') return this.signedOut(err);
          // Could not say hello: start again on a fresh socket.
          detach(ws);
          try { ws.close(4000, 'hello failed'); } catch { /* ignore */ }
          this.ws = null;
          this.failPending(new RpcError('connection lost', { kind: DISCONNECTED }));
          this.scheduleReconnect(err);
          return;
        }
      }
      if (ws !== this.ws) return;
      this.attempt = 0;
      this.session = hello;
      this.setState('connected', { hello });
      for (const w of [...this.waiters]) w.ready();
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onerror = () => { /* a close event always follows */ };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      detach(ws);
      this.failPending(new RpcError('connection to the hub lost', { kind: DISCONNECTED }));
      if (this.state === 'stopped') return;
      if (ev.code === 4401 || ev.code === 4403) return this.signedOut(ev);
      if (!opened) {
        // The handshake failed: was it refused, or is the hub down?
        Promise.resolve()
          .then(() => this.authProbe())
          .catch(() => 'down')
          .then((verdict) => {
            if (this.state === 'stopped' || this.ws) return;
            if (verdict === 'unauthorized') this.signedOut(ev);
            else this.scheduleReconnect(ev);
          });
        return;
      }
      this.scheduleReconnect(ev);
    };
  }

  receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return; // not ours to answer: the server only sends JSON
    }
    const batch = Array.isArray(msg) ? msg : [msg];
    for (const m of batch) {
      if (!m || typeof m !== 'object') continue;
      if (m.method && m.id === undefined) {
        this.dispatch(m.method, m.params);
      } else if (m.id !== undefined && m.id !== null) {
        const p = this.pending.get(m.id);
        if (!p) continue;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.error) {
          const e = m.error;
          p.reject(new RpcError(e.message || 'request failed', {
            code: e.code, kind: e.data?.kind ?? codeKind(e.code), data: e.data ?? null, method: p.method,
          }));
        } else {
          p.resolve(m.result);
        }
      }
    }
  }

  dispatch(method, params) {
    for (const key of [method, '*']) {
      const set = this.listeners.get(key);
      if (!set) continue;
      for (const fn of [...set]) {
        try {
          fn(params, method);
        } catch (err) {
          // One broken listener must not stop the others.
          setTimeout(() => { throw err; });
        }
      }
    }
  }

  scheduleReconnect(reason) {
    if (this.state === 'stopped' || this.state === 'signed-out') return;
    const delayMs = backoffDelay(this.attempt, { initialMs: this.initialBackoffMs, maxMs: this.maxBackoffMs, random: this.random });
    this.attempt += 1;
    this.setState('reconnecting', { attempt: this.attempt, delayMs, retryAt: Date.now() + delayMs, reason: describe(reason) });
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  signedOut(reason) {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      try { ws.close(1000); } catch { /* ignore */ }
    }
    this.session = null;
    this.failPending(new RpcError('signed out', { kind: 'UNAUTHORIZED' }));
    this.failWaiters(new RpcError('signed out', { kind: 'UNAUTHORIZED' }));
    this.setState('signed-out', { reason: describe(reason) });
  }

  failPending(err) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new RpcError(err.message, { kind: err.kind, method: p.method }));
    }
  }

  failWaiters(err) {
    for (const w of [...this.waiters]) w.fail(err);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...detail } }));
  }
}

function detach(ws) {
  ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
}

function describe(reason) {
  if (!reason) return '';
  if (reason instanceof Error) return reason.message;
  if (typeof reason.code === 'number') return `closed (${reason.code}${reason.reason ? `: ${reason.reason}` : ''})`;
  return String(reason);
}

function codeKind(code) {
  switch (code) {
    case -32700: return 'PARSE_ERROR';
    case -32600: return 'INVALID_REQUEST';
    case -32601: return 'METHOD_NOT_FOUND';
    case -32602: return 'INVALID_PARAMS';
    default: return 'INTERNAL';
  }
}

/**
 * Default auth probe: `POST /session/check` on the hub of the WebSocket URL, which answers
 * 204 while our session cookie is live and 401 once it is not. A POST, because the hub
 * takes the cookie only with the dashboard's Origin, which a same-origin GET does not send.
 */
async function probeHttp(wsUrl) {
  if (typeof fetch !== 'function') return 'down';
  const url = new URL('/session/check', wsUrl.replace(/^ws/, 'http'));
  try {
    const res = await fetch(url, { method: 'POST', credentials: 'same-origin', cache: 'no-store', redirect: 'manual' });
    if (res.status === 401 || res.status === 403) return 'unauthorized';
    return 'ok';
  } catch {
    return 'down';
  }
}
