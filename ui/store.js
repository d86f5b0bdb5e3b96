// The dashboard's shared state: one RPC client for the page, the hub's status and the list
// of projects, kept current from notifications. Views read it and listen to its events:
//   "session"  the connection said hello (detail: hello result), after every (re)connect
//   "status"   hub.status or hub.stats changed store.status / store.stats
//   "projects" a project was added, removed or changed (detail: {id} or {} for all)

import { RpcClient, defaultWsUrl } from './rpc.js';
import { ApprovalsStore } from './approvals-store.js';

export const rpc = new RpcClient({
  url: defaultWsUrl(),
  protocols: ['semantest-hub.v1'],
  hello: { method: 'hub.hello', params: { role: 'dashboard', name: 'Dashboard' } },
});

class Store extends EventTarget {
  constructor(client) {
    super();
    this.rpc = client;
    /** hub.hello result of the current connection */
    this.hello = null;
    /** hub.status result, updated by hub.stats */
    this.status = null;
    /** latest hub.stats params, and when they arrived (performance.now()) */
    this.stats = null;
    /** when status.uptime_s was last set (performance.now()), to tick the uptime locally */
    this.uptimeAt = 0;
    /** @type {Map<string, any>} project id → Project */
    this.projects = new Map();
    this.projectsLoaded = false;

    client.addEventListener('state', (ev) => {
      if (ev.detail.state !== 'connected') return;
      this.hello = ev.detail.hello;
      this.emit('session', this.hello);
      this.refresh().catch(() => { /* the status area shows connection problems */ });
    });
    client.on('hub.stats', (p) => {
      this.stats = p;
      this.statsCount = (this.statsCount ?? 0) + 1;
      this.statsAt = new Date();
      if (this.status) {
        for (const k of ['uptime_s', 'connections', 'projects', 'running_agents']) {
          if (p[k] !== undefined) this.status[k] = p[k];
        }
      }
      this.uptimeAt = performance.now();
      this.emit('status', {});
    });
    client.on('project.created', (p) => p?.project && this.putProject(p.project));
    client.on('project.deleted', (p) => {
      if (this.projects.delete(p.project_id)) this.emit('projects', { id: p.project_id, deleted: true });
    });
    client.on('hub.connection', (p) => {
      if (!this.status || typeof this.status.connections !== 'number') return;
      if (p?.event === 'opened') this.status.connections += 1;
      else if (p?.event === 'closed') this.status.connections = Math.max(0, this.status.connections - 1);
      else return;
      this.emit('status', {});
    });
    // Keep the overview's counts current between hub.stats notifications.
    this.addEventListener('projects', () => {
      if (!this.status || !this.projectsLoaded) return;
      const all = [...this.projects.values()];
      this.status.projects = all.length;
      this.status.running_agents = all.filter((p) => p.state === 'running').length;
      this.emit('status', {});
    });
    client.on('project.state', (p) => {
      const proj = this.projects.get(p.project_id);
      if (!proj) return;
      const run = p.state === 'running'
        ? (proj.run?.id === p.run_id && proj.run) || { id: p.run_id ?? null, started_at: new Date().toISOString() }
        : null;
      this.putProject({ ...proj, state: p.state, session_id: p.session_id ?? null, run, reason: p.reason ?? null });
    });
  }

  /** Reloads hub.status and project.list. */
  async refresh() {
    const [status, list] = await Promise.all([
      this.rpc.request('hub.status'),
      this.rpc.request('project.list'),
    ]);
    this.status = status;
    this.uptimeAt = performance.now();
    this.emit('status', {});
    this.projects = new Map(list.projects.map((p) => [p.id, p]));
    this.projectsLoaded = true;
    this.emit('projects', {});
  }

  /** Current uptime in seconds, ticking between hub.stats updates. */
  uptime() {
    if (!this.status || typeof this.status.uptime_s !== 'number') return null;
    const live = this.rpc.state === 'connected' ? (performance.now() - this.uptimeAt) / 1000 : 0;
    return this.status.uptime_s + live;
  }

  putProject(p) {
    this.projects.set(p.id, p);
    this.emit('projects', { id: p.id });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

export const store = new Store(rpc);

/** The agents' pending approvals and queued follow-ups (app.js starts it for the page's life). */
export const approvals = new ApprovalsStore({ rpc });

/** Subscribes to a store event until `signal` aborts. */
export function listen(target, type, fn, signal) {
  target.addEventListener(type, fn, { signal });
}

/** Registers an RPC notification listener until `signal` aborts. */
export function onNotify(method, fn, signal) {
  const off = rpc.on(method, fn);
  signal.addEventListener('abort', off, { once: true });
}

/** Plain-words message for a failed request. */
export function errorText(err) {
  if (!err) return '';
  switch (err.kind) {
    case 'DISCONNECTED': return 'Not connected to the hub. It will be retried when the connection is back.';
    case 'TIMEOUT': return 'The hub did not answer in time.';
    case 'UNAUTHORIZED': return 'Signed out.';
    case 'PROJECT_NOT_FOUND': return 'This project no longer exists.';
    case 'PROJECT_BUSY': return 'An agent is already running in this project. Wait for it to finish or kill it.';
    case 'NOT_RUNNING': return 'No agent is running in this project.';
    case 'RATE_LIMITED': return 'Too many requests; try again in a moment.';
    case 'TOO_LARGE': return 'That is too large for the hub to accept.';
    case 'LIMIT_REACHED': return `A limit was reached: ${err.message}`;
    case 'APPROVAL_NOT_FOUND': return 'That approval is no longer known to the hub.';
    case 'MESSAGE_NOT_QUEUED': return 'That follow-up is no longer queued.';
    default: return err.message || 'Something went wrong.';
  }
}
