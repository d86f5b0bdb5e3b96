// The task board's state: workers, the tasks of one project, the coordinator's counts, and
// the actions on them. `<hub-workers>` (components/workers-view.js) only renders it.
//
// A TaskBoard lives as long as the view that owns it: start(signal) subscribes to the
// notifications below until the signal aborts. It announces every change with a "change"
// event (detail: {reset: true} when it switched to another project), which views batch
// into one render per frame.
//
// - Workers: every client and agent worker (worker.list on start and after each
//   reconnect, then worker.status). Client workers that disconnect stay listed as offline
//   until the next reload (at most MAX_OFFLINE of them).
// - Tasks of the chosen project: loaded with task.list (paged), then kept current from
//   task.completed, task.requeued, task.failed, task.cancelled and worker.status (a worker
//   that starts working names its task: that task is running). Notifications that arrive
//   while task.list runs are replayed on its result. The hub announces no new tasks, so
//   when coordination.status counts differ from the board's, the board reloads (150 ms
//   doubling to MAX_RELOAD_WAIT while they still differ).
// - Page-lifetime state, whichever view is open: report-file notices (task.report_invalid,
//   task.report_unknown; `notices`), the last finished batch per project
//   (project.completed; `batchDone`) and the names of workers seen (`workerNames`).
// Tasks are kept without their prompt and context (`slim`).

import { rpc as pageRpc, store as pageStore, listen, errorText } from './store.js';

export const STATES = ['pending', 'running', 'completed', 'failed', 'cancelled'];
export const FINAL = new Set(['completed', 'failed', 'cancelled']);
/** task.list page size, and the most tasks the board loads for one project. */
const LIST_PAGE = 1000;
const MAX_TASKS = 20_000;
/** Report-file notices, offline workers and remembered worker names kept. */
const MAX_NOTICES = 50;
const MAX_OFFLINE = 50;
const MAX_NAMES = 1000;
/** Longest wait (ms) between reloads while the board's counts differ from the hub's. */
const MAX_RELOAD_WAIT = 5_000;
/** localStorage key of the last project shown. */
const LAST_PROJECT = 'semantest-hub.workers.project';

// ---- page-lifetime state ----

/** Report-file notices, newest first: {kind: 'invalid'|'unknown', project_id, task_id, path, reason, at}. */
export const notices = Object.assign(new EventTarget(), {
  /** @type {any[]} */
  list: [],
  add(kind, p) {
    if (!p || typeof p !== 'object') return;
    this.list.unshift({ kind, project_id: p.project_id, task_id: p.task_id, path: p.path, reason: p.reason, at: new Date() });
    if (this.list.length > MAX_NOTICES) this.list.length = MAX_NOTICES;
    this.dispatchEvent(new Event('change'));
  },
  clear() {
    this.list.length = 0;
    this.dispatchEvent(new Event('change'));
  },
});
pageRpc.on('task.report_invalid', (p) => notices.add('invalid', p));
pageRpc.on('task.report_unknown', (p) => notices.add('unknown', p));

/** project id → project.completed params of its last finished batch. */
export const batchDone = new Map();
pageRpc.on('project.completed', (p) => { if (p?.project_id) batchDone.set(p.project_id, p); });

/**
 * The workers seen since the page loaded ({name, kind, via, agent}), so tasks keep saying
 * who worked on them after a worker leaves.
 */
const workerNames = new Map();
function rememberName(w) {
  const old = workerNames.get(w.id);
  workerNames.delete(w.id);
  workerNames.set(w.id, { name: w.name, kind: w.kind ?? old?.kind, via: w.via ?? old?.via ?? null, agent: w.agent ?? old?.agent ?? null });
  if (workerNames.size > MAX_NAMES) workerNames.delete(workerNames.keys().next().value);
}

/** Longest report text a card keeps, in characters. */
const MAX_REPORT = 4000;

/** A report as the card shows it: indented JSON text (never markup), cut at MAX_REPORT. */
export function reportText(report) {
  if (report === null || report === undefined) return null;
  let text;
  try { text = JSON.stringify(report, null, 2); } catch { return null; }
  return text.length > MAX_REPORT ? `${text.slice(0, MAX_REPORT)}\n…` : text;
}

/**
 * How a worker reaches the hub, in plain words: a built-in agent worker, a chat over MCP
 * (and which, as it said), or a program on the WebSocket.
 */
export function workerKindText(w) {
  if (!w) return null;
  if (w.kind === 'agent') return 'built-in agent worker (Claude Code)';
  if (w.via === 'mcp') return `chat over MCP${w.agent ? ` (${w.agent})` : ''}`;
  return `WebSocket worker${w.agent ? ` (${w.agent})` : ''}`;
}

/** A task as the board keeps it: without its (possibly large) prompt and context. */
export function slim(t) {
  return {
    id: t.id, seq: t.seq, title: t.title, type: t.type ?? null, priority: t.priority ?? 0,
    state: t.state, worker_id: t.worker_id ?? null, attempts: t.attempts ?? 0,
    last_failure: t.failures?.at(-1) ?? null, completed_by: t.completed_by ?? null,
    summary: summaryOf(t.report), report: reportText(t.report),
    created: Date.parse(t.created_at) || null, updated: Date.parse(t.updated_at) || Date.now(), v: 0,
  };
}

function summaryOf(report) {
  const s = report && typeof report === 'object' ? report.summary : null;
  if (typeof s !== 'string') return null;
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

/** Plain words for project.configure's errors. */
function configureErrorText(err) {
  switch (err?.kind) {
    case 'INVALID_PARAMS': return `The hub did not accept this: ${err.message}.`;
    case 'AGENT_UNAVAILABLE': return 'The Claude Code CLI was not found, so the hub can\'t start agent workers. Install it, or set agent.cli_path in the hub\'s config, then restart the hub.';
    default: return errorText(err);
  }
}

function safeGet(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

function safeSet(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode */ }
}

export class TaskBoard extends EventTarget {
  /**
   * @param {{rpc?: import('./rpc.js').RpcClient, store?: any}} [deps] the page's client and
   *        store by default
   */
  constructor({ rpc = pageRpc, store = pageStore } = {}) {
    super();
    this.rpc = rpc;
    this.store = store;
    /** @type {Map<string, any>} worker id → worker (+ offlineAt for offline ones) */
    this.workers = new Map();
    this.workersLoaded = false;
    /** why worker.list failed, in plain words ('' when it did not) */
    this.workersMsg = '';
    this.workerBuffer = null;
    /** the project shown, or null when there is none */
    this.projectId = null;
    this.known = false;
    this.removed = false;
    this.reset();
  }

  /** Forgets the shown project's tasks (a new project, or none). */
  reset() {
    /** @type {Map<string, any>} task id → slim task */
    this.tasks = new Map();
    this.tasksLoaded = false;
    /** more tasks than MAX_TASKS: the board shows the first ones */
    this.truncated = false;
    /** the latest outcome or problem, in plain words, for the board's status line */
    this.boardMsg = '';
    /** coordination.status of the project */
    this.status = null;
    this.statusNotes = 0;
    /** task.list in flight: notifications that arrive meanwhile, replayed on its result */
    this.fetching = null;
    this.reloads = 0;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = 0;
  }

  /** Follows the hub until `signal` aborts. */
  start(signal) {
    this.signal = signal;
    const on = (method, fn) => {
      const off = this.rpc.on(method, fn);
      signal.addEventListener('abort', off, { once: true });
    };
    on('worker.status', (w) => this.onWorker(w));
    for (const m of ['task.completed', 'task.requeued', 'task.failed', 'task.cancelled']) {
      on(m, (p) => this.onTaskEvent(m, p));
    }
    on('coordination.status', (p) => this.onStatus(p));
    on('project.completed', (p) => { if (p?.project_id === this.projectId) this.changed(); });
    listen(this.store, 'session', () => this.load(), signal);
    signal.addEventListener('abort', () => clearTimeout(this.reloadTimer), { once: true });
    if (this.rpc.state === 'connected') this.loadWorkers();
  }

  get active() {
    return Boolean(this.signal && !this.signal.aborted);
  }

  changed(detail = {}) {
    if (this.active) this.dispatchEvent(new CustomEvent('change', { detail }));
  }

  // ---- projects ----

  /** The projects to pick from, by name. */
  projects() {
    return [...this.store.projects.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Keeps the shown project valid as the page's project list changes: `wanted` (the
   * address's project id) or the last choice, else the first project. Before the first
   * project.list, trusts `wanted`.
   */
  syncProjects(wanted) {
    if (!this.store.projectsLoaded) {
      const id = this.projectId || wanted || safeGet(LAST_PROJECT);
      if (id) this.select(id);
      return;
    }
    let id = this.projectId;
    if (!id || !this.store.projects.has(id)) {
      const want = wanted || safeGet(LAST_PROJECT);
      const next = want && this.store.projects.has(want) ? want : this.projects()[0]?.id ?? null;
      if (id && this.known && next !== id) this.removed = true;
      this.select(next);
      id = next;
    }
    this.known = Boolean(id);
  }

  /** Shows project `id` (null for none): forgets the old board and loads the new one. */
  select(id) {
    if (id === this.projectId) return;
    const removed = this.removed;
    this.removed = false;
    this.reset();
    if (removed) this.boardMsg = 'The project shown before was removed.';
    this.projectId = id;
    if (id) safeSet(LAST_PROJECT, id);
    if (this.active) this.loadTasks();
    this.changed({ reset: true });
  }

  projectName(id) {
    return this.store.projects.get(id)?.name ?? 'an unknown project';
  }

  // ---- loading ----

  load() {
    this.loadWorkers();
    this.loadTasks();
  }

  async loadWorkers() {
    if (this.workerBuffer) return;
    const buffer = this.workerBuffer = [];
    try {
      const res = await this.rpc.request('worker.list');
      this.workers = new Map((res.workers ?? []).map((w) => [w.id, w]));
      for (const w of buffer) this.putWorker(w);
      this.workersLoaded = true;
      this.workersMsg = '';
    } catch (err) {
      this.workersMsg = `Could not list the workers: ${errorText(err)}`;
    } finally {
      this.workerBuffer = null;
    }
    this.changed();
  }

  /** Loads every task of the project (paged), then replays what arrived meanwhile. */
  async loadTasks() {
    const pid = this.projectId;
    if (!pid || this.rpc.state !== 'connected') return;
    if (this.fetching) {
      this.fetching.again = true;
      return;
    }
    const fetching = this.fetching = { pid, buffer: [], again: false };
    try {
      const tasks = new Map();
      let after = 0;
      let more = true;
      while (more && tasks.size < MAX_TASKS) {
        const res = await this.rpc.request('task.list', { project_id: pid, after_seq: after, limit: LIST_PAGE });
        if (this.projectId !== pid) return;
        for (const t of res.tasks) tasks.set(t.id, slim(t));
        more = res.has_more && res.tasks.length > 0;
        if (res.tasks.length) after = res.tasks.at(-1).seq;
      }
      const marks = this.statusNotes;
      const status = await this.rpc.request('coordination.status', { project_id: pid });
      if (this.projectId !== pid) return;
      // A coordination.status notification that came while we asked is at least as new.
      if (this.statusNotes === marks) {
        this.status = status;
        this.putWorkers(status.workers);
      }
      for (const t of tasks.values()) {
        const old = this.tasks.get(t.id);
        if (old) t.v = old.v + 1;
      }
      this.tasks = tasks;
      this.truncated = more;
      this.tasksLoaded = true;
      for (const [kind, p] of fetching.buffer) {
        if (kind === 'worker') this.workerTask(p);
        else this.applyTask(kind, p);
      }
      if (this.boardMsg.startsWith('Could not load')) this.boardMsg = '';
    } catch (err) {
      if (this.projectId !== pid) return;
      this.boardMsg = err.kind === 'PROJECT_NOT_FOUND'
        ? 'This project no longer exists. Pick another one.'
        : `Could not load the tasks: ${errorText(err)}`;
    } finally {
      if (this.fetching === fetching) this.fetching = null;
    }
    if (this.projectId !== pid) return;
    if (fetching.again) this.loadTasks();
    else this.checkCounts();
    this.changed();
  }

  /**
   * Reloads when the board's counts differ from the hub's: new tasks (the hub announces
   * none) or a change without a notification. Waits longer after each reload in a row
   * that still disagrees (150 ms doubling to MAX_RELOAD_WAIT).
   */
  checkCounts() {
    if (!this.status || !this.tasksLoaded || this.fetching || this.truncated || !this.active) return;
    const c = this.counts();
    if (STATES.every((s) => c[s] === (this.status[s] ?? 0))) {
      this.reloads = 0;
      clearTimeout(this.reloadTimer);
      this.reloadTimer = 0;
      return;
    }
    if (this.reloadTimer) return;
    const wait = Math.min(MAX_RELOAD_WAIT, 150 * 2 ** this.reloads);
    this.reloads += 1;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = 0;
      if (this.active) this.loadTasks();
    }, wait);
  }

  /** Tasks per state, as the board holds them. */
  counts() {
    const c = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const t of this.tasks.values()) c[t.state] = (c[t.state] ?? 0) + 1;
    return c;
  }

  /** The tasks of each state, in the order their column shows them. */
  columns() {
    const groups = Object.fromEntries(STATES.map((s) => [s, []]));
    for (const t of this.tasks.values()) groups[t.state]?.push(t);
    groups.pending.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
    groups.running.sort((a, b) => a.seq - b.seq);
    for (const s of ['completed', 'failed', 'cancelled']) groups[s].sort((a, b) => b.updated - a.updated || b.seq - a.seq);
    return groups;
  }

  /** The shown project's finished-batch message, while nothing is pending or running. */
  batchMessage() {
    const done = batchDone.get(this.projectId);
    const c = this.status ?? this.counts();
    return done && (c.pending ?? 0) + (c.running ?? 0) === 0 ? done.message : null;
  }

  workerName(id) {
    return this.workers.get(id)?.name ?? workerNames.get(id)?.name ?? null;
  }

  /** What the board knows of worker `id` ({name, kind, via, agent}), or null. */
  workerInfo(id) {
    return this.workers.get(id) ?? workerNames.get(id) ?? (id?.startsWith('agent-') ? { kind: 'agent' } : null);
  }

  /**
   * Queues `tasks` in the shown project (task.create) and reloads the board, since the hub
   * announces no new tasks.
   * @returns {Promise<{created: string[], existing: string[]}>}
   * @throws the hub's error (INVALID_PARAMS, TOO_LARGE, TASK_EXISTS, ...)
   */
  async createTasks(tasks) {
    const res = await this.rpc.request('task.create', { project_id: this.projectId, tasks });
    batchDone.delete(this.projectId);
    this.loadTasks();
    return res;
  }

  /** The shown project's built-in agent workers that are not offline. */
  agentWorkers() {
    const pid = this.projectId;
    return [...this.workers.values()].filter((w) => w.kind === 'agent' && w.project_id === pid && w.status !== 'offline');
  }

  // ---- notifications ----

  onWorker(w) {
    if (!w?.id) return;
    if (this.workerBuffer) this.workerBuffer.push(w);
    this.fetching?.buffer.push(['worker', w]);
    this.putWorker(w);
    this.workerTask(w);
    this.changed();
  }

  /** A worker that starts working names its task: that task is running. */
  workerTask(w) {
    if (w.status === 'working' && w.task_id) {
      const t = this.tasks.get(w.task_id);
      if (t && t.state === 'pending') this.change(t, { state: 'running', worker_id: w.id });
    }
  }

  putWorker(w) {
    if (w.name) rememberName(w);
    const old = this.workers.get(w.id);
    const next = { ...old, ...w };
    if (w.status === 'offline') next.offlineAt = old?.offlineAt ?? Date.now();
    else delete next.offlineAt;
    this.workers.set(w.id, next);
    const offline = [...this.workers.values()].filter((x) => x.status === 'offline' && x.kind !== 'agent');
    if (offline.length > MAX_OFFLINE) {
      offline.sort((a, b) => a.offlineAt - b.offlineAt);
      for (const x of offline.slice(0, offline.length - MAX_OFFLINE)) this.workers.delete(x.id);
    }
  }

  putWorkers(list) {
    for (const w of list ?? []) this.putWorker(w);
  }

  onTaskEvent(method, p) {
    if (!p || p.project_id !== this.projectId) return;
    this.fetching?.buffer.push([method, p]);
    this.applyTask(method, p);
    this.changed();
  }

  applyTask(method, p) {
    const t = this.tasks.get(p.task_id);
    if (!t || FINAL.has(t.state)) return;
    switch (method) {
      case 'task.completed':
        this.change(t, { state: 'completed', worker_id: p.worker ?? t.worker_id, completed_by: p.source ?? null, summary: summaryOf(p.report), report: reportText(p.report) });
        break;
      case 'task.requeued':
        this.change(t, { state: 'pending', worker_id: null, attempts: p.attempts ?? t.attempts, last_failure: p.failures?.at(-1) ?? t.last_failure });
        break;
      case 'task.failed':
        this.change(t, { state: 'failed', worker_id: p.worker ?? t.worker_id, attempts: p.attempts ?? t.attempts, last_failure: p.failures?.at(-1) ?? t.last_failure });
        break;
      case 'task.cancelled':
        this.change(t, { state: 'cancelled', worker_id: p.worker ?? t.worker_id });
        break;
      default:
    }
  }

  /** Changes a task's fields; `v` counts changes, so views can reuse unchanged cards. */
  change(t, fields) {
    Object.assign(t, fields);
    t.updated = Date.now();
    t.v += 1;
  }

  onStatus(p) {
    if (!p || p.project_id !== this.projectId) return;
    this.statusNotes += 1;
    this.status = p;
    this.putWorkers(p.workers);
    if (p.pending + p.running > 0) batchDone.delete(p.project_id);
    this.checkCounts();
    this.changed();
  }

  // ---- actions ----

  /** task.cancel; the outcome goes to boardMsg. */
  async cancel(taskId) {
    try {
      const res = await this.rpc.request('task.cancel', { task_id: taskId });
      const cur = this.tasks.get(taskId);
      if (res.cancelled) {
        if (cur && !FINAL.has(cur.state)) this.change(cur, { state: 'cancelled' });
        this.boardMsg = `Cancelled task ${taskId}.`;
      } else {
        this.boardMsg = `Task ${taskId} had already finished (${res.state}).`;
      }
    } catch (err) {
      this.boardMsg = `Could not cancel task ${taskId}: ${err.kind === 'TASK_NOT_FOUND' ? 'the hub no longer has this task.' : errorText(err)}`;
    }
    this.changed();
  }

  /**
   * Sets the shown project's number of built-in agent workers (project.configure).
   * @returns {Promise<string>} '' on success (the outcome goes to boardMsg), else the
   *          error in plain words, for the form's field
   */
  async configure(raw) {
    const pid = this.projectId;
    if (!pid) return '';
    if (!/^\d+$/.test(raw)) return 'Enter a whole number: 0 stops the agent workers, 1 or more runs that many at once.';
    const n = Number(raw);
    try {
      const res = await this.rpc.request('project.configure', { project_id: pid, agent_workers: n });
      this.putWorkers(res.workers);
      this.boardMsg = n === 0
        ? 'Agent workers stopped: none takes new tasks; runs in progress finish their task.'
        : `${n} agent worker${n === 1 ? '' : 's'} now take${n === 1 ? 's' : ''} this project's tasks.`;
      return '';
    } catch (err) {
      return configureErrorText(err);
    } finally {
      this.changed();
    }
  }
}

/** Plain words for a report-file notice. */
export function noticeText(n, projectName = (id) => pageStore.projects.get(id)?.name ?? 'an unknown project') {
  const where = projectName(n.project_id);
  if (n.kind === 'invalid') {
    return `The report file ${n.path} for task ${n.task_id} in ${where} can't be used: ${n.reason}. The task is unchanged; fix the file and the hub reads it again.`;
  }
  return `The report file ${n.path} names task ${n.task_id}, which is not a task of ${where}. The hub ignored it.`;
}
