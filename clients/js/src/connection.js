// One WebSocket to one hub: the handshake with the token subprotocol, JSON-RPC 2.0 calls
// matched to responses by id, notifications handed to a callback.

import { HubError, RpcError, CLIENT_KINDS } from './errors.js';

/** The protocol subprotocol (docs/protocol.md, "Subprotocol"). */
export const SUBPROTOCOL = 'semantest-hub.v1';
/** Prefix of the subprotocol entry carrying the token. */
export const TOKEN_PREFIX = 'semantest-hub.token.';

export class Connection {
  #ws;
  #nextId = 1;
  #pending = new Map();
  #closed = false;

  /**
   * @param {{url: string, token: string, WebSocket: any, onNotification: (method: string, params: any) => void,
   *          onClose: (info: {code: number, reason: string}) => void}} opts
   */
  constructor({ url, token, WebSocket, onNotification, onClose }) {
    this.url = url;
    this.onNotification = onNotification;
    this.onClose = onClose;
    this.#ws = new WebSocket(url, [SUBPROTOCOL, `${TOKEN_PREFIX}${token}`]);
  }

  /** Resolves once the handshake completed with the `semantest-hub.v1` subprotocol. */
  open(timeoutMs = 5000) {
    const ws = this.#ws;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { fail(new HubError(CLIENT_KINDS.OFFLINE, `no WebSocket handshake with ${this.url} within ${timeoutMs} ms`)); }, timeoutMs);
      const fail = (err) => {
        clearTimeout(timer);
        this.#shutdown(1006, err.message);
        try { ws.close(); } catch { /* already closed */ }
        reject(err);
      };
      ws.addEventListener('open', () => {
        clearTimeout(timer);
        if (ws.protocol !== SUBPROTOCOL) {
          fail(new HubError(CLIENT_KINDS.PROTOCOL, `${this.url} answered with subprotocol ${JSON.stringify(ws.protocol)}`));
          return;
        }
        resolve(this);
      });
      ws.addEventListener('error', () => fail(new HubError(CLIENT_KINDS.OFFLINE, `WebSocket to ${this.url} failed (a refused token or an unreachable hub)`)));
      ws.addEventListener('close', (ev) => {
        clearTimeout(timer);
        reject(new HubError(CLIENT_KINDS.OFFLINE, `WebSocket to ${this.url} closed (${ev.code})`));
        this.#shutdown(ev.code, ev.reason);
      });
      ws.addEventListener('message', (ev) => this.#onMessage(ev.data));
    });
  }

  get closed() { return this.#closed; }
  get pendingCount() { return this.#pending.size; }

  #onMessage(data) {
    let msg;
    try { msg = JSON.parse(typeof data === 'string' ? data : String(data)); } catch { return; }
    if (msg && msg.id !== undefined && msg.id !== null && (msg.result !== undefined || msg.error !== undefined)) {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new RpcError(msg.error, p.method));
      else p.resolve(msg.result);
    } else if (msg && typeof msg.method === 'string' && msg.id === undefined) {
      try { this.onNotification(msg.method, msg.params); } catch { /* a handler's bug must not break the connection */ }
    }
  }

  /**
   * Sends a request and resolves with its `result`.
   * @throws {RpcError} the hub's error; {HubError} `REQUEST_TIMEOUT` or `CONNECTION_CLOSED`
   */
  call(method, params = {}, timeoutMs = 10_000) {
    if (this.#closed) return Promise.reject(new HubError(CLIENT_KINDS.CONNECTION_CLOSED, `${method}: the connection is closed`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new HubError(CLIENT_KINDS.REQUEST_TIMEOUT, `${method}: no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer, method });
      try {
        this.#ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(new HubError(CLIENT_KINDS.CONNECTION_CLOSED, `${method}: ${err?.message ?? err}`));
      }
    });
  }

  /** Closes the socket (RFC 6455 code; 1000 normal, 4000–4999 private use). */
  close(code = 1000, reason = 'bye') {
    try { this.#ws.close(code, reason); } catch { /* already closing */ }
    this.#shutdown(code, reason);
  }

  #shutdown(code, reason) {
    if (this.#closed) return;
    this.#closed = true;
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new HubError(CLIENT_KINDS.CONNECTION_CLOSED, `${p.method}: the connection closed before the response (${code})`));
    }
    this.#pending.clear();
    try { this.onClose({ code, reason }); } catch { /* ignore */ }
  }
}
