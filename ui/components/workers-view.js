// <hub-workers project-id="…">: the coordinator, seen from the dashboard.
//
// - Workers: every client and agent worker (worker.list on load and after each reconnect,
//   then worker.status). Client workers that disconnect stay listed as offline until the
//   next reload (at most MAX_OFFLINE of them).
// - Task board of one project, chosen with a picker (#/workers/<project id>): a column per
//   state (pending, running, completed, failed, cancelled), at most PAGE cards each until
//   "Show more". Loaded with task.list (paged), then kept current from task.completed,
//   task.requeued, task.failed, task.cancelled and worker.status (a worker that starts
//   working names its task: that task is running). The hub announces no new tasks, so
//   when coordination.status counts differ from the board's, the board reloads.
// - Report-file notices (task.report_invalid, task.report_unknown) in plain words.
// - Cancel per pending or running task (task.cancel) with an in-page confirmation, and the
//   number of built-in agent workers (project.configure).

import { h, replace } from '../dom.js';
import { number, shortId, time } from '../format.js';
import { rpc, store, listen, onNotify, errorText } from '../store.js';

export const STATES = ['pending', 'running', 'completed', 'failed', 'cancelled'];
const FINAL = new Set(['completed', 'failed', 'cancelled']);
const STATE_TEXT = { pending: 'Pending', running: 'Running', completed: 'Completed', failed: 'Failed', cancelled: 'Cancelled' };
const SOURCE_TEXT = { worker: 'a worker', report: 'a report file', agent: 'an agent run' };
/** Cards rendered per column before "Show more". */
export const PAGE = 50;
/** task.list page size, and the most tasks the board loads for one project. */
const LIST_PAGE = 1000;
const MAX_TASKS = 20_000;
/** Report-file notices and offline workers kept. */
const MAX_NOTICES = 50;
const MAX_OFFLINE = 50;
/** Longest wait (ms) between reloads while the board's counts differ from the hub's. */
const MAX_RELOAD_WAIT = 5_000;
const LAST_PROJECT = 'semantest-hub.workers.project';

// ---- report-file notices: kept for the page's life, whichever view is open ----

const notices = [];
const noticeEvents = new EventTarget();
function addNotice(kind, p) {
  if (!p || typeof p !== 'object') return;
  notices.unshift({ kind, project_id: p.project_id, task_id: p.task_id, path: p.path, reason: p.reason, at: new Date() });
  if (notices.length > MAX_NOTICES) notices.length = MAX_NOTICES;
  noticeEvents.dispatchEvent(new Event('change'));
}
rpc.on('task.report_invalid', (p) => addNotice('invalid', p));
rpc.on('task.report_unknown', (p) => addNotice('unknown', p));

/** project id → project.completed message of its last finished batch. */
const batchDone = new Map();
rpc.on('project.completed', (p) => { if (p?.project_id) batchDone.set(p.project_id, p); });

/** Names of the workers seen since the page loaded, so tasks keep them after a worker leaves. */
const workerNames = new Map();
const MAX_NAMES = 1000;
function rememberName(w) {
  workerNames.delete(w.id);
  workerNames.set(w.id, w.name);
  if (workerNames.size > MAX_NAMES) workerNames.delete(workerNames.keys().next().value);
}

function projectName(id) {
  return store.projects.get(id)?.name ?? 'an unknown project';
}

/** Plain words for a report-file notice. */
export function noticeText(n) {
  const where = projectName(n.project_id);
  if (n.kind === 'invalid') {
    return `The report file ${n.path} for task ${n.task_id} in ${where} can't be used: ${n.reason}. The task is unchanged; fix the file and the hub reads it again.`;
  }
  return `The report file ${n.path} names task ${n.task_id}, which is not a task of ${where}. The hub ignored it.`;
}

/** Plain words for project.configure's errors. */
function configureErrorText(err) {
  switch (err?.kind) {
    case 'INVALID_PARAMS': return `The hub did not accept this: ${err.message}.`;
    case 'AGENT_UNAVAILABLE': return 'The Claude Code CLI was not found, so the hub can\'t start agent workers. Install it, or set agent.cli_path in the hub\'s config, then restart the hub.';
    default: return errorText(err);
  }
}

/** A task as the board keeps it: without its (possibly large) prompt and context. */
function slim(t) {
  return {
    id: t.id, seq: t.seq, title: t.title, type: t.type ?? null, priority: t.priority ?? 0,
    state: t.state, worker_id: t.worker_id ?? null, attempts: t.attempts ?? 0,
    last_failure: t.failures?.at(-1) ?? null, completed_by: t.completed_by ?? null,
    summary: summaryOf(t.report), updated: Date.parse(t.updated_at) || Date.now(), v: 0,
  };
}

function summaryOf(report) {
  const s = report && typeof report === 'object' ? report.summary : null;
  if (typeof s !== 'string') return null;
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

function byQueueOrder(a, b) { return b.priority - a.priority || a.seq - b.seq; }
function byRecent(a, b) { return b.updated - a.updated || b.seq - a.seq; }

class WorkersView extends HTMLElement {
  static get observedAttributes() { return ['project-id']; }

  attributeChangedCallback(name, _old, value) {
    if (this.abort && value) this.selectProject(value);
  }

  connectedCallback() {
    this.abort = new AbortController();
    const signal = this.abort.signal;
    /** @type {Map<string, any>} worker id → worker (+ offlineAt for offline ones) */
    this.workers = new Map();
    this.workersLoaded = false;
    this.workersMsg = '';
    this.workerBuffer = null;
    this.projectId = null;
    this.resetBoard();
    this.build();

    onNotify('worker.status', (w) => this.onWorker(w), signal);
    for (const m of ['task.completed', 'task.requeued', 'task.failed', 'task.cancelled']) {
      onNotify(m, (p) => this.onTaskEvent(m, p), signal);
    }
    onNotify('coordination.status', (p) => this.onStatus(p), signal);
    onNotify('project.completed', (p) => { if (p?.project_id === this.projectId) this.queueRender(); }, signal);
    listen(noticeEvents, 'change', () => this.renderNotices(), signal);
    listen(store, 'session', () => this.load(), signal);
    listen(store, 'projects', () => this.onProjects(), signal);
    listen(rpc, 'state', () => this.queueRender(), signal);
    this.onProjects();
    if (rpc.state === 'connected') this.loadWorkers();
    this.renderAll();
  }

  disconnectedCallback() {
    this.abort.abort();
    this.abort = null;
    clearTimeout(this.reloadTimer);
    cancelAnimationFrame(this.raf);
    this.raf = 0;
  }

  resetBoard() {
    /** @type {Map<string, any>} task id → slim task */
    this.tasks = new Map();
    this.tasksLoaded = false;
    this.truncated = false;
    this.boardMsg = '';
    /** coordination.status of the project */
    this.status = null;
    this.statusNotes = 0;
    this.limits = Object.fromEntries(STATES.map((s) => [s, PAGE]));
    this.confirming = null;
    /** task.list in flight: notifications that arrive meanwhile, replayed on its result */
    this.fetching = null;
    this.reloads = 0;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = 0;
    /** task id → {key, el}: cards reused while unchanged */
    this.cards = new Map();
  }

  build() {
    this.workersEl = h('div', { class: 'table-wrap' });
    this.workersMsgEl = h('p', { class: 'inline-msg', role: 'status' });
    this.projectSelect = h('select', { id: 'task-project', name: 'project', onchange: () => this.pick(this.projectSelect.value) });
    this.agentInput = h('input', {
      id: 'agent-workers', name: 'agent_workers', type: 'number', min: '0', step: '1', inputmode: 'numeric',
      autocomplete: 'off', 'aria-describedby': 'agent-workers-hint agent-workers-error',
    });
    this.agentInput.addEventListener('input', () => { this.agentDirty = true; this.setAgentError(''); });
    this.agentHint = h('p', { id: 'agent-workers-hint', class: 'hint muted' });
    this.agentError = h('p', { id: 'agent-workers-error', class: 'field-error', role: 'alert' });
    this.agentBtn = h('button', { type: 'submit' }, 'Set');
    this.agentForm = h('form', { class: 'agent-form', novalidate: true, onsubmit: (ev) => { ev.preventDefault(); this.configure(); } },
      h('div', { class: 'field' },
        h('label', { for: 'agent-workers' }, 'Built-in agent workers'),
        h('div', { class: 'inline-field' }, this.agentInput, this.agentBtn)),
      this.agentHint,
      this.agentError);
    this.summaryEl = h('p', { class: 'task-summary' });
    this.doneEl = h('p', { class: 'batch-done', role: 'status' });
    this.boardMsgEl = h('p', { class: 'inline-msg', role: 'status' });
    this.boardEl = h('div', { class: 'board' });
    this.noticesEl = h('div');
    replace(this,
      h('header', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Workers & tasks'),
        h('p', { class: 'muted' }, 'Workers connected to the hub, and the task queue of each project. Everything updates live.')),
      h('section', { class: 'card', 'aria-labelledby': 'workers-h' },
        h('h2', { id: 'workers-h' }, 'Workers'),
        this.workersMsgEl,
        this.workersEl),
      h('section', { 'aria-labelledby': 'tasks-h', class: 'tasks' },
        h('h2', { id: 'tasks-h', tabindex: '-1' }, 'Tasks'),
        h('div', { class: 'board-bar card' },
          h('div', { class: 'field' }, h('label', { for: 'task-project' }, 'Project'), this.projectSelect),
          this.agentForm),
        this.summaryEl,
        this.doneEl,
        this.noticesEl,
        this.boardMsgEl,
        this.boardEl));
  }

  // ---- projects ----

  onProjects() {
    const projects = [...store.projects.values()].sort((a, b) => a.name.localeCompare(b.name));
    const sig = JSON.stringify([store.projectsLoaded, projects.map((p) => [p.id, p.name])]);
    if (sig === this.optionsSig) return;
    this.optionsSig = sig;
    replace(this.projectSelect, projects.map((p) => h('option', { value: p.id }, p.name)));
    if (!store.projectsLoaded) {
      // Before the first project.list: trust the address (or the last choice).
      const wanted = this.projectId || this.getAttribute('project-id') || safeGet(LAST_PROJECT);
      if (wanted) {
        this.projectSelect.append(h('option', { value: wanted }, 'Loading…'));
        this.selectProject(wanted);
      }
    } else {
      let id = this.projectId;
      if (!id || !store.projects.has(id)) {
        const wanted = this.getAttribute('project-id') || safeGet(LAST_PROJECT);
        const next = wanted && store.projects.has(wanted) ? wanted : projects[0]?.id ?? null;
        if (id && this.known && next !== id) this.removedMsg = true;
        this.selectProject(next);
        id = next;
      }
      this.known = Boolean(id);
      if (!projects.length) this.projectSelect.append(h('option', { value: '' }, 'No projects'));
    }
    this.projectSelect.value = this.projectId ?? '';
    this.queueRender();
  }

  /** The user picked a project: show it and put it in the address. */
  pick(id) {
    if (!id) return;
    this.setAttribute('project-id', id);
    this.selectProject(id);
  }

  selectProject(id) {
    if (id === this.projectId) return;
    const removed = this.removedMsg;
    this.removedMsg = false;
    this.resetBoard();
    if (removed) this.boardMsg = 'The project shown before was removed.';
    this.projectId = id;
    this.agentDirty = false;
    this.setAgentError('');
    if (id) {
      safeSet(LAST_PROJECT, id);
      // The address names the project shown (without a history entry per pick).
      const hash = `#/workers/${encodeURIComponent(id)}`;
      if (this.isConnected && location.hash.startsWith('#/workers') && location.hash !== hash) history.replaceState(null, '', hash);
    }
    if (this.projectSelect) this.projectSelect.value = id ?? '';
    if (this.isConnected) {
      this.loadTasks();
      this.renderAll();
    }
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
      const res = await rpc.request('worker.list');
      this.workers = new Map((res.workers ?? []).map((w) => [w.id, w]));
      for (const w of buffer) this.putWorker(w);
      this.workersLoaded = true;
      this.workersMsg = '';
    } catch (err) {
      this.workersMsg = `Could not list the workers: ${errorText(err)}`;
    } finally {
      this.workerBuffer = null;
    }
    this.queueRender();
  }

  /** Loads every task of the project (paged), then replays what arrived meanwhile. */
  async loadTasks() {
    const pid = this.projectId;
    if (!pid || rpc.state !== 'connected') return;
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
        const res = await rpc.request('task.list', { project_id: pid, after_seq: after, limit: LIST_PAGE });
        if (this.projectId !== pid) return;
        for (const t of res.tasks) tasks.set(t.id, slim(t));
        more = res.has_more && res.tasks.length > 0;
        if (res.tasks.length) after = res.tasks.at(-1).seq;
      }
      const marks = this.statusNotes;
      const status = await rpc.request('coordination.status', { project_id: pid });
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
    this.queueRender();
  }

  /**
   * Reloads when the board's counts differ from the hub's: new tasks (the hub announces
   * none) or a change without a notification. Waits longer after each reload in a row
   * that still disagrees (150 ms doubling to MAX_RELOAD_WAIT).
   */
  checkCounts() {
    if (!this.status || !this.tasksLoaded || this.fetching || this.truncated) return;
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
      this.loadTasks();
    }, wait);
  }

  counts() {
    const c = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const t of this.tasks.values()) c[t.state] = (c[t.state] ?? 0) + 1;
    return c;
  }

  // ---- notifications ----

  onWorker(w) {
    if (!w?.id) return;
    if (this.workerBuffer) this.workerBuffer.push(w);
    this.fetching?.buffer.push(['worker', w]);
    this.applyWorker(w);
    this.queueRender();
  }

  applyWorker(w) {
    this.putWorker(w);
    this.workerTask(w);
  }

  /** A worker that starts working names its task: that task is running. */
  workerTask(w) {
    if (w.status === 'working' && w.task_id) {
      const t = this.tasks.get(w.task_id);
      if (t && t.state === 'pending') {
        this.change(t, { state: 'running', worker_id: w.id });
      }
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
    if (method === 'task.completed' || method === 'task.failed' || method === 'task.cancelled') {
      if (this.confirming === p.task_id) this.confirming = null;
    }
    this.queueRender();
  }

  applyTask(method, p) {
    const t = this.tasks.get(p.task_id);
    if (!t || FINAL.has(t.state)) return;
    switch (method) {
      case 'task.completed':
        this.change(t, { state: 'completed', worker_id: p.worker ?? t.worker_id, completed_by: p.source ?? null, summary: summaryOf(p.report) });
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
    this.queueRender();
  }

  // ---- actions ----

  askCancel(t) {
    this.confirming = t.id;
    this.renderBoard();
    this.boardEl.querySelector(`[data-task-id="${CSS.escape(t.id)}"] [data-action="keep"]`)?.focus();
  }

  keep(t) {
    this.confirming = null;
    this.renderBoard();
    this.boardEl.querySelector(`[data-task-id="${CSS.escape(t.id)}"] [data-action="cancel"]`)?.focus();
  }

  async cancel(t) {
    try {
      const res = await rpc.request('task.cancel', { task_id: t.id });
      this.confirming = null;
      const cur = this.tasks.get(t.id);
      if (res.cancelled) {
        if (cur && !FINAL.has(cur.state)) this.change(cur, { state: 'cancelled' });
        this.boardMsg = `Cancelled task ${t.id}.`;
      } else {
        this.boardMsg = `Task ${t.id} had already finished (${res.state}).`;
      }
    } catch (err) {
      this.confirming = null;
      this.boardMsg = `Could not cancel task ${t.id}: ${err.kind === 'TASK_NOT_FOUND' ? 'the hub no longer has this task.' : errorText(err)}`;
    }
    this.renderAll();
    const card = this.boardEl.querySelector(`[data-task-id="${CSS.escape(t.id)}"]`);
    (card ?? this.querySelector('#tasks-h'))?.focus();
  }

  setAgentError(text) {
    this.agentError.textContent = text;
    if (text) this.agentInput.setAttribute('aria-invalid', 'true');
    else this.agentInput.removeAttribute('aria-invalid');
  }

  async configure() {
    const pid = this.projectId;
    if (!pid) return;
    const raw = this.agentInput.value.trim();
    if (!/^\d+$/.test(raw)) {
      this.setAgentError('Enter a whole number: 0 stops the agent workers, 1 or more runs that many at once.');
      this.agentInput.focus();
      return;
    }
    const n = Number(raw);
    this.setAgentError('');
    this.agentBtn.disabled = true;
    try {
      const res = await rpc.request('project.configure', { project_id: pid, agent_workers: n });
      this.putWorkers(res.workers);
      this.agentDirty = false;
      this.boardMsg = n === 0
        ? 'Agent workers stopped: none takes new tasks; runs in progress finish their task.'
        : `${n} agent worker${n === 1 ? '' : 's'} now take${n === 1 ? 's' : ''} this project's tasks.`;
    } catch (err) {
      this.setAgentError(configureErrorText(err));
      this.agentInput.focus();
    } finally {
      this.agentBtn.disabled = rpc.state !== 'connected';
    }
    this.renderAll();
  }

  // ---- rendering ----

  queueRender() {
    if (this.raf || !this.abort) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      if (this.abort) this.renderAll();
    });
  }

  renderAll() {
    this.renderWorkers();
    this.renderControls();
    this.renderBoard();
    this.renderNotices();
  }

  workerName(id) {
    return this.workers.get(id)?.name ?? workerNames.get(id) ?? shortId(id);
  }

  renderWorkers() {
    this.workersMsgEl.textContent = this.workersMsg;
    if (!this.workersLoaded) {
      replace(this.workersEl, h('p', { class: 'muted' }, this.workersMsg ? '' : 'Loading…'));
      return;
    }
    const order = { working: 0, idle: 1, offline: 2 };
    const workers = [...this.workers.values()].sort((a, b) =>
      (order[a.status] ?? 3) - (order[b.status] ?? 3) || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    if (!workers.length) {
      replace(this.workersEl, h('p', { class: 'muted empty' }, 'No workers. A program becomes one with worker.register; built-in agent workers are set per project below.'));
      return;
    }
    replace(this.workersEl, h('table', { class: 'workers' },
      h('caption', { class: 'visually-hidden' }, `${workers.length} workers`),
      h('thead', {}, h('tr', {}, ['Name', 'Kind', 'Status', 'Capabilities', 'Current task'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, workers.map((w) => {
        const task = w.task_id ? this.tasks.get(w.task_id) : null;
        return h('tr', { dataset: { workerId: w.id, status: w.status } },
          h('th', { scope: 'row' }, w.name || '—'),
          h('td', {}, w.kind === 'agent' ? `agent · ${projectName(w.project_id)}` : 'client'),
          h('td', {}, h('span', { class: `badge w-${w.status}`, dataset: { status: w.status } }, w.status)),
          h('td', {}, w.capabilities?.length ? w.capabilities.join(', ') : h('span', { class: 'muted' }, 'any type')),
          h('td', { class: 'current-task' }, w.task_id
            ? [h('span', { class: 'mono' }, w.task_id), task ? ` ${task.title}` : null]
            : h('span', { class: 'muted' }, '—')));
      }))));
  }

  renderControls() {
    const connected = rpc.state === 'connected';
    const pid = this.projectId;
    this.projectSelect.disabled = !store.projects.size;
    const agents = [...this.workers.values()].filter((w) => w.kind === 'agent' && w.project_id === pid && w.status !== 'offline');
    const working = agents.filter((w) => w.status === 'working').length;
    this.agentInput.disabled = !pid;
    this.agentBtn.disabled = !pid || !connected;
    if (!this.agentDirty && document.activeElement !== this.agentInput) {
      this.agentInput.value = this.workersLoaded && pid ? String(agents.length) : '';
    }
    this.agentHint.textContent = pid
      ? `Now ${agents.length} (${working} working). Each runs Claude Code on one task at a time, in this project's folder; 0 stops them.`
      : '';
  }

  renderBoard() {
    this.boardMsgEl.textContent = this.boardMsg;
    const pid = this.projectId;
    if (!pid) {
      this.summaryEl.textContent = '';
      this.doneEl.textContent = '';
      replace(this.boardEl, store.projectsLoaded
        ? h('p', { class: 'muted empty' }, 'No projects yet. ', h('a', { href: '#/projects' }, 'Add one in Projects'), ', then queue tasks in it.')
        : h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    if (!this.tasksLoaded) {
      this.summaryEl.textContent = '';
      this.doneEl.textContent = '';
      replace(this.boardEl, h('p', { class: 'muted' }, this.boardMsg ? '' : 'Loading…'));
      return;
    }
    const local = this.counts();
    const c = this.status ?? { ...local, total: this.tasks.size };
    const total = c.total ?? STATES.reduce((n, s) => n + (c[s] ?? 0), 0);
    this.summaryEl.dataset.total = String(total);
    for (const s of STATES) this.summaryEl.dataset[s] = String(c[s] ?? 0);
    this.summaryEl.textContent = `${number(total)} task${total === 1 ? '' : 's'}: ${STATES.map((s) => `${number(c[s] ?? 0)} ${s}`).join(', ')}.`
      + (this.truncated ? ` The board shows the first ${number(this.tasks.size)}.` : '');
    const done = batchDone.get(pid);
    const text = done && (c.pending ?? 0) + (c.running ?? 0) === 0 ? `Batch finished: ${done.message}.` : '';
    if (this.doneEl.textContent !== text) this.doneEl.textContent = text;

    if (!this.tasks.size) {
      this.cards.clear();
      replace(this.boardEl, h('p', { class: 'muted empty' }, 'No tasks in this project yet. A coordinator queues them with task.create.'));
      return;
    }
    const groups = Object.fromEntries(STATES.map((s) => [s, []]));
    for (const t of this.tasks.values()) groups[t.state]?.push(t);
    groups.pending.sort(byQueueOrder);
    groups.running.sort((a, b) => a.seq - b.seq);
    for (const s of ['completed', 'failed', 'cancelled']) groups[s].sort(byRecent);

    const focus = this.focusKey();
    const connected = rpc.state === 'connected';
    const used = new Set();
    const cols = STATES.map((s) => {
      const list = groups[s];
      const shown = list.slice(0, this.limits[s]);
      const hidden = list.length - shown.length;
      return h('section', { class: `task-col col-${s}`, dataset: { state: s }, 'aria-labelledby': `col-${s}-h` },
        h('h3', { id: `col-${s}-h`, tabindex: '-1' }, STATE_TEXT[s], ' ',
          h('span', { class: 'col-count', dataset: { count: String(list.length) } }, number(list.length))),
        shown.length
          ? h('ol', { class: 'task-list' }, shown.map((t) => { used.add(t.id); return this.card(t, connected); }))
          : h('p', { class: 'muted col-empty' }, 'None'),
        hidden > 0
          ? h('button', {
            type: 'button', class: 'subtle show-more', dataset: { action: 'more', state: s },
            onclick: () => { this.limits[s] += PAGE; this.renderBoard(); },
          }, `Show ${number(Math.min(PAGE, hidden))} more (${number(hidden)} not shown)`)
          : null);
    });
    for (const id of this.cards.keys()) if (!used.has(id)) this.cards.delete(id);
    replace(this.boardEl, cols);
    if (focus) this.restoreFocus(focus);
  }

  /** A task card, reused while the task, its worker's name and the controls are the same. */
  card(t, connected) {
    const worker = t.worker_id ?? t.last_failure?.worker_id ?? null;
    const workerLabel = worker ? this.workerName(worker) : '';
    const confirming = this.confirming === t.id;
    const key = `${t.v}|${t.state}|${workerLabel}|${confirming}|${connected}`;
    const cached = this.cards.get(t.id);
    if (cached?.key === key) return cached.el;
    const meta = [
      ['Type', t.type ?? 'any'],
      ['Priority', number(t.priority)],
      ['Attempts', number(t.attempts)],
      ['Worker', workerLabel || '—'],
    ];
    let note = null;
    if (t.state === 'completed') {
      note = `Completed by ${SOURCE_TEXT[t.completed_by] ?? 'the hub'}${t.summary ? `: ${t.summary}` : '.'}`;
    } else if (t.last_failure && (t.state === 'failed' || t.state === 'pending' || t.state === 'running')) {
      note = `${t.state === 'failed' ? 'Failed' : 'Last failure'}: ${t.last_failure.reason}`;
    }
    let actions = null;
    if (t.state === 'pending' || t.state === 'running') {
      actions = confirming
        ? h('div', { class: 'confirm', role: 'group', 'aria-label': `Confirm cancelling task ${t.id}` },
          h('span', {}, t.state === 'running' ? `Cancel ${t.id}? Its worker is told to stop.` : `Cancel ${t.id}? It leaves the queue.`),
          h('button', { type: 'button', class: 'danger', dataset: { action: 'confirm-cancel' }, disabled: !connected, onclick: () => this.cancel(t) }, 'Cancel task'),
          h('button', { type: 'button', dataset: { action: 'keep' }, onclick: () => this.keep(t) }, 'Keep'))
        : h('button', {
          type: 'button', class: 'subtle', dataset: { action: 'cancel' }, disabled: !connected,
          'aria-label': `Cancel task ${t.id}`, onclick: () => this.askCancel(t),
        }, 'Cancel');
    }
    const el = h('li', { class: 'task', tabindex: '-1', dataset: { taskId: t.id, state: t.state } },
      h('div', { class: 'task-top' }, h('span', { class: 'mono task-id' }, t.id)),
      h('p', { class: 'task-title' }, t.title),
      h('dl', { class: 'task-meta' }, meta.map(([k, v]) => h('div', { dataset: { field: k.toLowerCase() } }, h('dt', {}, k), h('dd', {}, v)))),
      note ? h('p', { class: 'task-note' }, note) : null,
      actions ? h('div', { class: 'task-actions' }, actions) : null);
    this.cards.set(t.id, { key, el });
    return el;
  }

  /** What is focused in the board, to focus it again after a re-render. */
  focusKey() {
    const el = document.activeElement;
    if (!el || !this.boardEl.contains(el)) return null;
    const card = el.closest('[data-task-id]');
    if (card) return { task: card.dataset.taskId, action: el.dataset.action ?? null };
    if (el.dataset.action === 'more') return { more: el.dataset.state };
    const col = el.closest('[data-state]');
    return col ? { col: col.dataset.state } : null;
  }

  restoreFocus(k) {
    const b = this.boardEl;
    let el = null;
    if (k.task) {
      const card = b.querySelector(`[data-task-id="${CSS.escape(k.task)}"]`);
      el = (k.action && card?.querySelector(`[data-action="${k.action}"]`)) || card;
    } else if (k.more) {
      el = b.querySelector(`[data-action="more"][data-state="${k.more}"]`) ?? b.querySelector(`#col-${k.more}-h`);
    } else if (k.col) {
      el = b.querySelector(`#col-${k.col}-h`);
    }
    (el ?? this.querySelector('#tasks-h'))?.focus({ preventScroll: true });
  }

  renderNotices() {
    if (!notices.length) {
      this.noticesEl.replaceChildren();
      return;
    }
    replace(this.noticesEl, h('section', { class: 'card notices', 'aria-labelledby': 'notices-h' },
      h('div', { class: 'notices-head' },
        h('h3', { id: 'notices-h' }, 'Report file notices'),
        h('button', { type: 'button', class: 'subtle', onclick: () => { notices.length = 0; noticeEvents.dispatchEvent(new Event('change')); this.querySelector('#tasks-h')?.focus(); } }, 'Clear notices')),
      h('ul', { class: 'notice-list' }, notices.map((n) =>
        h('li', { class: `notice notice-${n.kind}`, dataset: { kind: n.kind, taskId: n.task_id ?? '' } },
          h('span', { class: 'muted' }, time(n.at.toISOString())), ' ',
          h('strong', {}, n.kind === 'invalid' ? 'Unusable report. ' : 'Report for an unknown task. '), noticeText(n))))));
  }
}

function safeGet(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

function safeSet(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode */ }
}

customElements.define('hub-workers', WorkersView);
