// The Clients panel's state: pending pairing requests, paired clients (their tokens), and
// the live connections with their LOCAL/PUBLIC badge. `<hub-clients>`
// (components/clients-view.js) only renders it.
//
// A ClientsStore lives as long as the view that owns it: start(signal) loads pairing.list,
// client.list and hub.connections (again after every reconnect) and follows
// pairing.requested, pairing.resolved, client.changed and hub.connection until the signal
// aborts. Every change is announced with a "change" event. Notifications that arrive
// while a list loads are replayed on its result, so none is lost to the race.
//
// All of client.* and pairing.* need the owner or the `admin` scope (docs/protocol.md);
// the dashboard's cookie is the owner.

import { rpc as pageRpc, store as pageStore, listen, errorText } from './store.js';

/** Token scopes, in the order the panel offers them, with what each allows. */
export const SCOPES = [
  { id: 'events', text: 'publish and subscribe to events' },
  { id: 'projects:read', text: 'see projects, their output and the connections' },
  { id: 'agents', text: 'create projects and run or stop agents' },
  { id: 'tasks', text: 'queue and work on tasks' },
  { id: 'admin', text: 'manage the hub, its settings and other clients' },
];
/** What a paired extension gets unless the user widens it. */
export const DEFAULT_SCOPES = ['events'];

/** Plain words for a failed client.* or pairing.* request. */
export function clientErrorText(err) {
  switch (err?.kind) {
    case 'PAIRING_NOT_FOUND': return 'This request is no longer pending: it was answered elsewhere or has expired.';
    case 'PAIRING_EXPIRED': return 'This request expired. Ask the extension to pair again.';
    case 'PAIRING_DENIED': return 'This request was denied.';
    case 'CLIENT_NOT_FOUND': return 'The hub no longer has this client.';
    case 'FORBIDDEN': return 'This dashboard session may not manage clients.';
    case 'METHOD_NOT_FOUND': return 'This hub does not support client tokens and pairing; update it.';
    case 'INVALID_PARAMS': return `The hub did not accept this: ${err.message}.`;
    default: return errorText(err);
  }
}

export class ClientsStore extends EventTarget {
  /** @param {{rpc?: import('./rpc.js').RpcClient, store?: any}} [deps] */
  constructor({ rpc = pageRpc, store = pageStore } = {}) {
    super();
    this.rpc = rpc;
    this.store = store;
    /** @type {Map<string, any>} request id → pairing request */
    this.requests = new Map();
    /** @type {Map<string, any>} client id → paired client */
    this.clients = new Map();
    /** @type {Map<number|string, any>} connection id → hub.connections entry */
    this.connections = new Map();
    /** whether each list has loaded at least once */
    this.loaded = { requests: false, clients: false, connections: false };
    /** why a list could not load, in plain words ('' when it loaded) */
    this.errors = { requests: '', clients: '', connections: '' };
    /** the latest outcome of an action, for the panel's status line */
    this.message = '';
    /** per list: notifications received while it loads, replayed on its result */
    this.buffers = { requests: null, clients: null, connections: null };
  }

  /** Follows the hub until `signal` aborts. */
  start(signal) {
    this.signal = signal;
    const on = (method, list, fn) => {
      const off = this.rpc.on(method, (p) => {
        this.buffers[list]?.push(p);
        fn(p);
        this.changed();
      });
      signal.addEventListener('abort', off, { once: true });
    };
    on('pairing.requested', 'requests', (p) => this.onRequested(p));
    on('pairing.resolved', 'requests', (p) => this.onResolved(p));
    on('client.changed', 'clients', (p) => this.onClientChanged(p));
    on('hub.connection', 'connections', (p) => {
      this.onConnection(p);
      // A paired client's count of live connections changes with its connections, which
      // client.changed does not announce: reload the list, at most once a second.
      if (p?.event === 'opened' || p?.event === 'closed') this.refreshClientsSoon();
    });
    listen(this.store, 'session', () => this.load(), signal);
    signal.addEventListener('abort', () => clearTimeout(this.refreshTimer), { once: true });
    if (this.rpc.state === 'connected') this.load();
  }

  refreshClientsSoon() {
    if (this.refreshTimer || !this.loaded.clients) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = 0;
      if (this.active) this.loadList('clients', 'client.list', (res) => res.clients, (c) => c.id, (p) => this.onClientChanged(p));
    }, 1000);
  }

  get active() {
    return Boolean(this.signal && !this.signal.aborted);
  }

  changed() {
    if (this.active) this.dispatchEvent(new CustomEvent('change'));
  }

  load() {
    this.loadList('requests', 'pairing.list', (res) => res.requests, (r) => r.id, (p) => this.onPairingNote(p));
    this.loadList('clients', 'client.list', (res) => res.clients, (c) => c.id, (p) => this.onClientChanged(p));
    this.loadList('connections', 'hub.connections', (res) => res.connections, (c) => c.id, (p) => this.onConnection(p));
  }

  async loadList(list, method, items, key, replay) {
    if (this.buffers[list]) return;
    const buffer = this.buffers[list] = [];
    try {
      const res = await this.rpc.request(method, {});
      this[list] = new Map((items(res) ?? []).map((x) => [key(x), x]));
      for (const p of buffer) replay(p);
      this.loaded[list] = true;
      this.errors[list] = '';
    } catch (err) {
      this.errors[list] = clientErrorText(err);
    } finally {
      this.buffers[list] = null;
    }
    this.changed();
  }

  // ---- notifications ----

  /** Replays a buffered pairing notification (requested or resolved). */
  onPairingNote(p) {
    if (p?.request) this.onRequested(p);
    else this.onResolved(p);
  }

  onRequested(p) {
    const r = p?.request;
    if (!r?.id) return;
    this.requests.set(r.id, r);
  }

  onResolved(p) {
    if (!p?.request_id) return;
    const r = this.requests.get(p.request_id);
    if (!this.requests.delete(p.request_id)) return;
    const who = r?.name ? `The pairing request from ${r.name}` : 'A pairing request';
    this.message = {
      approved: `${who} was approved.`,
      denied: `${who} was denied.`,
      expired: `${who} expired before it was answered.`,
    }[p.outcome] ?? `${who} is no longer pending.`;
  }

  onClientChanged(p) {
    const c = p?.client;
    if (!c?.id) return;
    if (p.event === 'revoked') this.clients.delete(c.id);
    else this.clients.set(c.id, { ...this.clients.get(c.id), ...c });
  }

  onConnection(p) {
    const c = p?.connection;
    if (c?.id === undefined || c?.id === null) return;
    if (p.event === 'closed') this.connections.delete(c.id);
    else this.connections.set(c.id, { ...this.connections.get(c.id), ...c });
  }

  // ---- reading ----

  /** Pending requests, oldest first, each with `msLeft` until it expires (0 once expired). */
  pending(now = Date.now()) {
    return [...this.requests.values()]
      .map((r) => ({ ...r, msLeft: Math.max(0, (Date.parse(r.expires_at) || now) - now) }))
      .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
  }

  /** Paired clients, most recently used first, then by name. */
  paired() {
    return [...this.clients.values()].sort((a, b) =>
      String(b.last_used_at ?? '').localeCompare(String(a.last_used_at ?? '')) || String(a.name).localeCompare(String(b.name)));
  }

  /** Live connections, oldest first. */
  live() {
    return [...this.connections.values()].sort((a, b) => String(a.connected_at).localeCompare(String(b.connected_at)));
  }

  // ---- actions ----
  // Each returns '' when done (the outcome goes to `message`), else the error in plain
  // words for the control that asked.

  /** pairing.approve with `scopes` (at least one, from SCOPES). */
  async approve(requestId, scopes) {
    const known = new Set(SCOPES.map((s) => s.id));
    const chosen = [...new Set(scopes)].filter((s) => known.has(s));
    if (!chosen.length) return 'Choose at least one scope.';
    const r = this.requests.get(requestId);
    try {
      const res = await this.rpc.request('pairing.approve', { request_id: requestId, scopes: chosen });
      this.onResolved({ request_id: requestId, outcome: 'approved' });
      if (res?.client?.id) this.clients.set(res.client.id, { ...this.clients.get(res.client.id), ...res.client });
      this.message = `Approved ${r?.name ?? 'the request'} with ${chosen.join(', ')}. It receives its token now.`;
      return '';
    } catch (err) {
      return this.gone(requestId, err);
    } finally {
      this.changed();
    }
  }

  /** pairing.deny. */
  async deny(requestId) {
    const r = this.requests.get(requestId);
    try {
      await this.rpc.request('pairing.deny', { request_id: requestId });
      this.onResolved({ request_id: requestId, outcome: 'denied' });
      this.message = `Denied ${r?.name ?? 'the request'}. It gets no token.`;
      return '';
    } catch (err) {
      return this.gone(requestId, err);
    } finally {
      this.changed();
    }
  }

  /**
   * A failed approve or deny: a request the hub no longer has leaves the list, and the
   * panel's status line says why; any other error stays with the request's controls.
   */
  gone(requestId, err) {
    if (err.kind !== 'PAIRING_NOT_FOUND' && err.kind !== 'PAIRING_EXPIRED') return clientErrorText(err);
    this.requests.delete(requestId);
    this.message = clientErrorText(err);
    return '';
  }

  /** client.revoke: the token stops working and the client's connections close. */
  async revoke(clientId) {
    const c = this.clients.get(clientId);
    try {
      await this.rpc.request('client.revoke', { client_id: clientId });
      this.clients.delete(clientId);
      this.message = `Revoked ${c?.name ?? clientId}. Its connections were closed.`;
      return '';
    } catch (err) {
      if (err.kind === 'CLIENT_NOT_FOUND') this.clients.delete(clientId);
      return clientErrorText(err);
    } finally {
      this.changed();
    }
  }
}
