// The agents' pending approvals and queued follow-ups, kept current for the page's life
// (docs/agents.md). One instance serves every view: the top bar's badge counts its
// approvals, the project page's panels list and answer them.
//
// Approvals: agent.approvals.list on every (re)connect, then agent.approval_requested and
// agent.approval_resolved. Notifications that arrive while the list loads are replayed
// on its result, so an approval resolved meanwhile never comes back.
// Follow-ups: agent.queue.list per project a view asks for (`watchQueue`), then
// agent.queue_changed.
//
// Events: `change` (detail: {approvals: true} or {queue: project id}) and `resolved`
// (detail: the agent.approval_resolved params), for views that say what happened.

/** Decisions of agent.approvals.answer (the Agent Client Protocol's option kinds). */
export const DECISIONS = ['allow_once', 'allow_always', 'reject_once', 'reject_always'];

export class ApprovalsStore extends EventTarget {
  /** @param {{rpc: import('./rpc.js').RpcClient}} deps */
  constructor({ rpc }) {
    super();
    this.rpc = rpc;
    /** @type {Map<string, any>} approval id → ApprovalView, in the order asked */
    this.approvals = new Map();
    /** approval id → resolution, for the answers that came from elsewhere */
    this.resolved = new Map();
    /** whether agent.approvals.list succeeded on this connection */
    this.loaded = false;
    /** plain-words reason the list could not be loaded, or '' */
    this.error = '';
    /** @type {Map<string, any[]>} project id → its queued follow-ups, oldest first */
    this.queues = new Map();
    /** project id → number of views watching its queue */
    this.watched = new Map();
    this.pending = null; // notifications seen while a list loads
    this.queuePending = new Map();
  }

  /** Loads and follows until `signal` aborts. */
  start(signal) {
    const offs = [
      this.rpc.on('agent.approval_requested', (p) => this.onRequested(p)),
      this.rpc.on('agent.approval_resolved', (p) => this.onResolved(p)),
      this.rpc.on('agent.queue_changed', (p) => this.onQueueChanged(p)),
    ];
    const onState = (ev) => {
      if (ev.detail.state === 'connected') this.reload();
      else this.loaded = false;
    };
    this.rpc.addEventListener('state', onState);
    signal.addEventListener('abort', () => {
      offs.forEach((off) => off());
      this.rpc.removeEventListener('state', onState);
    }, { once: true });
    if (this.rpc.state === 'connected') this.reload();
  }

  /** Pending approvals, oldest first; of one project when `projectId` is given. */
  list(projectId) {
    const all = [...this.approvals.values()];
    return projectId ? all.filter((a) => a.project_id === projectId) : all;
  }

  /** Number of pending approvals (of one project when given). */
  count(projectId) {
    return projectId ? this.list(projectId).length : this.approvals.size;
  }

  async reload() {
    this.pending = [];
    const waiting = [...this.watched.keys()];
    try {
      const res = await this.rpc.request('agent.approvals.list', {});
      const map = new Map(res.approvals.map((a) => [a.id, a]));
      for (const [kind, p] of this.pending) {
        if (kind === 'requested') map.set(p.approval.id, p.approval);
        else map.delete(p.approval_id);
      }
      this.approvals = map;
      this.loaded = true;
      this.error = '';
    } catch (err) {
      this.error = err.kind === 'METHOD_NOT_FOUND' ? 'This hub does not support approvals.' : (err.message || String(err));
    } finally {
      this.pending = null;
    }
    this.emit({ approvals: true });
    await Promise.all(waiting.map((id) => this.loadQueue(id)));
  }

  onRequested(p) {
    const a = p?.approval;
    if (!a?.id) return;
    if (this.pending) this.pending.push(['requested', p]);
    this.approvals.set(a.id, a);
    this.emit({ approvals: true });
  }

  onResolved(p) {
    if (!p?.approval_id) return;
    if (this.pending) this.pending.push(['resolved', p]);
    this.resolved.set(p.approval_id, p.resolution);
    if (this.resolved.size > 200) this.resolved.delete(this.resolved.keys().next().value);
    const had = this.approvals.delete(p.approval_id);
    this.dispatchEvent(new CustomEvent('resolved', { detail: p }));
    if (had) this.emit({ approvals: true });
  }

  /**
   * Answers an approval (agent.approvals.answer). `answer` is {decision, updated_input?,
   * message?, interrupt?, scope?}. Resolves with the resolution; rejects with the RpcError
   * (APPROVAL_RESOLVED: someone else answered first, `err.data.resolution` says how).
   */
  async answer(approvalId, answer) {
    const res = await this.rpc.request('agent.approvals.answer', { approval_id: approvalId, ...answer });
    if (this.approvals.delete(approvalId)) this.emit({ approvals: true });
    return res.resolution;
  }

  // ---- follow-ups ----

  /** Keeps a project's queue loaded until `signal` aborts. */
  watchQueue(projectId, signal) {
    this.watched.set(projectId, (this.watched.get(projectId) ?? 0) + 1);
    signal.addEventListener('abort', () => {
      const n = (this.watched.get(projectId) ?? 1) - 1;
      if (n > 0) this.watched.set(projectId, n);
      else {
        this.watched.delete(projectId);
        this.queues.delete(projectId);
      }
    }, { once: true });
    if (this.rpc.state === 'connected') this.loadQueue(projectId);
  }

  /** The project's queued follow-ups, oldest first. */
  queue(projectId) {
    return this.queues.get(projectId) ?? [];
  }

  async loadQueue(projectId) {
    const seen = [];
    this.queuePending.set(projectId, seen);
    try {
      const res = await this.rpc.request('agent.queue.list', { project_id: projectId });
      if (!this.watched.has(projectId)) return;
      this.queues.set(projectId, res.messages);
      for (const m of seen) this.putQueued(m);
    } catch {
      // The view shows what it has; the next reconnect reloads.
    } finally {
      if (this.queuePending.get(projectId) === seen) this.queuePending.delete(projectId);
    }
    this.emit({ queue: projectId });
  }

  onQueueChanged(p) {
    const m = p?.message;
    if (!m?.project_id || !this.watched.has(m.project_id)) return;
    this.queuePending.get(m.project_id)?.push(m);
    this.putQueued(m);
    this.emit({ queue: m.project_id });
  }

  /** Puts a follow-up in its project's queue while `queued`, takes it out otherwise. */
  putQueued(m) {
    const list = (this.queues.get(m.project_id) ?? []).filter((x) => x.id !== m.id);
    if (m.state === 'queued') {
      list.push(m);
      list.sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)) || a.id.localeCompare(b.id));
    }
    this.queues.set(m.project_id, list);
  }

  /** agent.send: `mode` is queue, steer or interrupt. Resolves with its result. */
  async send(projectId, text, mode) {
    const res = await this.rpc.request('agent.send', { project_id: projectId, text, mode });
    if (res.delivery === 'queued' && res.message && this.watched.has(projectId)) {
      this.putQueued(res.message);
      this.emit({ queue: projectId });
    }
    return res;
  }

  /** agent.queue.update. */
  async updateQueued(id, text) {
    const res = await this.rpc.request('agent.queue.update', { id, text });
    this.putQueued(res.message);
    this.emit({ queue: res.message.project_id });
    return res.message;
  }

  /** agent.queue.cancel. */
  async cancelQueued(id) {
    const res = await this.rpc.request('agent.queue.cancel', { id });
    this.putQueued(res.message);
    this.emit({ queue: res.message.project_id });
    return res.message;
  }

  /** agent.interrupt. */
  interrupt(projectId) {
    return this.rpc.request('agent.interrupt', { project_id: projectId });
  }

  emit(detail) {
    this.dispatchEvent(new CustomEvent('change', { detail }));
  }
}
