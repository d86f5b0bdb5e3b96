// <hub-workers project-id="…">: the coordinator, seen from the dashboard. It renders a
// TaskBoard (../task-store.js), which holds the state and talks to the hub:
//
// - Workers: every client and agent worker, live; offline client workers stay listed.
// - Task board of one project, chosen with a picker (#/workers/<project id>), drawn by
//   BoardView (task-board.js): a column per state, Show more, Cancel with a confirmation.
// - The summary line (coordination.status), "Batch finished", report-file notices in plain
//   words, and the number of built-in agent workers (project.configure) with inline errors.
// - New tasks: one from a form, or a JSON batch, in the project shown (task-create.js).
// - #/workers/<project id>/task/<task id> (an approval's "task <title>" link) scrolls to
//   that task's card, focuses and highlights it once it is on the board.

import { h, replace } from '../dom.js';
import { number, time } from '../format.js';
import { rpc, store, listen } from '../store.js';
import { TaskBoard, STATES, notices, noticeText, workerKindText } from '../task-store.js';
import { BoardView } from './task-board.js';
import { TaskCreate } from './task-create.js';

class WorkersView extends HTMLElement {
  static get observedAttributes() { return ['project-id']; }

  attributeChangedCallback(name, _old, value) {
    if (this.abort && value) this.board.select(value);
  }

  connectedCallback() {
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.board = new TaskBoard();
    this.agentDirty = false;
    this.build();
    this.boardView = new BoardView(this.board, {
      el: this.boardEl,
      connected: () => rpc.state === 'connected',
      onCancelled: (id) => {
        this.renderAll();
        (this.boardView.cardEl(id) ?? this.querySelector('#tasks-h'))?.focus();
      },
    });
    listen(this.board, 'change', (ev) => this.onChange(ev.detail), signal);
    listen(notices, 'change', () => this.renderNotices(), signal);
    listen(store, 'projects', () => this.onProjects(), signal);
    listen(rpc, 'state', () => this.queueRender(), signal);
    window.addEventListener('hashchange', () => this.showTaskFromHash(), { signal });
    this.board.start(signal);
    this.onProjects();
    this.renderAll();
  }

  disconnectedCallback() {
    this.abort.abort();
    this.abort = null;
    cancelAnimationFrame(this.raf);
    this.raf = 0;
  }

  /** The board changed; another project means a fresh board and a new address. */
  onChange({ reset } = {}) {
    if (reset) {
      this.boardView.reset();
      this.agentDirty = false;
      this.setAgentError('');
      const id = this.board.projectId;
      this.projectSelect.value = id ?? '';
      // The address names the project shown (without a history entry per pick).
      const hash = id ? `#/workers/${encodeURIComponent(id)}` : null;
      // (A task named after the project, #/workers/<id>/task/<task id>, stays in it.)
      if (hash && location.hash.startsWith('#/workers') && location.hash !== hash
        && !location.hash.startsWith(`${hash}/task/`)) history.replaceState(null, '', hash);
      this.renderAll();
      return;
    }
    this.queueRender();
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
    this.create = new TaskCreate(this.board, {
      connected: () => rpc.state === 'connected',
      onCreated: () => this.queueRender(),
    });
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
        this.create.el,
        this.summaryEl,
        this.doneEl,
        this.noticesEl,
        this.boardMsgEl,
        this.boardEl));
  }

  // ---- projects ----

  onProjects() {
    const projects = this.board.projects();
    const sig = JSON.stringify([store.projectsLoaded, projects.map((p) => [p.id, p.name])]);
    if (sig === this.optionsSig) return;
    this.optionsSig = sig;
    replace(this.projectSelect, projects.map((p) => h('option', { value: p.id }, p.name)));
    this.board.syncProjects(this.getAttribute('project-id'));
    if (!store.projectsLoaded && this.board.projectId) {
      this.projectSelect.append(h('option', { value: this.board.projectId }, 'Loading…'));
    }
    if (store.projectsLoaded && !projects.length) this.projectSelect.append(h('option', { value: '' }, 'No projects'));
    this.projectSelect.value = this.board.projectId ?? '';
    this.queueRender();
  }

  /** The user picked a project: show it and put it in the address. */
  pick(id) {
    if (!id) return;
    this.setAttribute('project-id', id);
    this.board.select(id);
  }

  // ---- built-in agent workers ----

  setAgentError(text) {
    this.agentError.textContent = text;
    if (text) this.agentInput.setAttribute('aria-invalid', 'true');
    else this.agentInput.removeAttribute('aria-invalid');
  }

  async configure() {
    if (!this.board.projectId) return;
    const raw = this.agentInput.value.trim();
    const valid = /^\d+$/.test(raw);
    this.setAgentError('');
    if (valid) this.agentBtn.disabled = true;
    const error = await this.board.configure(raw);
    this.agentBtn.disabled = rpc.state !== 'connected';
    if (error) {
      this.setAgentError(error);
      this.agentInput.focus();
      return;
    }
    this.agentDirty = false;
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

  renderWorkers() {
    const b = this.board;
    this.workersMsgEl.textContent = b.workersMsg;
    if (!b.workersLoaded) {
      replace(this.workersEl, h('p', { class: 'muted' }, b.workersMsg ? '' : 'Loading…'));
      return;
    }
    const order = { working: 0, idle: 1, offline: 2 };
    const workers = [...b.workers.values()].sort((x, y) =>
      (order[x.status] ?? 3) - (order[y.status] ?? 3) || x.kind.localeCompare(y.kind) || x.name.localeCompare(y.name) || x.id.localeCompare(y.id));
    if (!workers.length) {
      replace(this.workersEl, h('p', { class: 'muted empty' }, 'No workers. A program becomes one with worker.register; built-in agent workers are set per project below.'));
      return;
    }
    replace(this.workersEl, h('table', { class: 'workers' },
      h('caption', { class: 'visually-hidden' }, `${workers.length} workers`),
      h('thead', {}, h('tr', {}, ['Name', 'Kind', 'Status', 'Capabilities', 'Current task'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, workers.map((w) => {
        const task = w.task_id ? b.tasks.get(w.task_id) : null;
        return h('tr', { dataset: { workerId: w.id, status: w.status } },
          h('th', { scope: 'row' }, w.name || '—'),
          h('td', { class: 'worker-kind' }, w.kind === 'agent' ? `agent · ${b.projectName(w.project_id)}` : workerKindText(w)),
          h('td', {}, h('span', { class: `badge w-${w.status}`, dataset: { status: w.status } }, w.status)),
          h('td', {}, w.capabilities?.length ? w.capabilities.join(', ') : h('span', { class: 'muted' }, 'any type')),
          h('td', { class: 'current-task' }, w.task_id
            ? [h('span', { class: 'mono' }, w.task_id), task ? ` ${task.title}` : null]
            : h('span', { class: 'muted' }, '—')));
      }))));
  }

  renderControls() {
    const pid = this.board.projectId;
    this.projectSelect.disabled = !store.projects.size;
    const agents = this.board.agentWorkers();
    const working = agents.filter((w) => w.status === 'working').length;
    this.agentInput.disabled = !pid;
    this.agentBtn.disabled = !pid || rpc.state !== 'connected';
    this.create.update();
    if (!this.agentDirty && document.activeElement !== this.agentInput) {
      this.agentInput.value = this.board.workersLoaded && pid ? String(agents.length) : '';
    }
    this.agentHint.textContent = pid
      ? `Now ${agents.length} (${working} working). Each runs Claude Code on one task at a time, in this project's folder; 0 stops them.`
      : '';
  }

  renderBoard() {
    const b = this.board;
    this.boardMsgEl.textContent = b.boardMsg;
    if (!b.projectId || !b.tasksLoaded) {
      this.summaryEl.textContent = '';
      this.doneEl.textContent = '';
      const empty = !b.projectId && store.projectsLoaded;
      replace(this.boardEl, empty
        ? h('p', { class: 'muted empty' }, 'No projects yet. ', h('a', { href: '#/projects' }, 'Add one in Projects'), ', then queue tasks in it.')
        : h('p', { class: 'muted' }, b.projectId && b.boardMsg ? '' : 'Loading…'));
      return;
    }
    const c = b.status ?? { ...b.counts(), total: b.tasks.size };
    const total = c.total ?? STATES.reduce((n, s) => n + (c[s] ?? 0), 0);
    this.summaryEl.dataset.total = String(total);
    for (const s of STATES) this.summaryEl.dataset[s] = String(c[s] ?? 0);
    this.summaryEl.textContent = `${number(total)} task${total === 1 ? '' : 's'}: ${STATES.map((s) => `${number(c[s] ?? 0)} ${s}`).join(', ')}.`
      + (b.truncated ? ` The board shows the first ${number(b.tasks.size)}.` : '');
    const done = b.batchMessage();
    const text = done ? `Batch finished: ${done}.` : '';
    if (this.doneEl.textContent !== text) this.doneEl.textContent = text;
    if (!b.tasks.size) {
      this.boardView.cards.clear();
      replace(this.boardEl, h('p', { class: 'muted empty' }, 'No tasks in this project yet. A coordinator queues them with task.create.'));
      return;
    }
    this.boardView.render();
    this.showTaskFromHash();
  }

  /** Scrolls to, focuses and highlights the task the address names, once, when its card is shown. */
  showTaskFromHash() {
    const m = /^#\/workers\/[^/]+\/task\/([^/?#]+)/.exec(location.hash);
    if (!m) {
      this.shownTask = null;
      return;
    }
    const id = decodeURIComponent(m[1]);
    const card = this.boardView.cardEl(id);
    if (!card || this.shownTask === id) return;
    this.shownTask = id;
    for (const old of this.boardEl.querySelectorAll('.task-highlight')) old.classList.remove('task-highlight');
    card.classList.add('task-highlight');
    // After the router has moved the focus to the view's heading.
    queueMicrotask(() => {
      card.scrollIntoView({ block: 'center' });
      card.focus();
    });
  }

  renderNotices() {
    if (!notices.list.length) {
      this.noticesEl.replaceChildren();
      return;
    }
    replace(this.noticesEl, h('section', { class: 'card notices', 'aria-labelledby': 'notices-h' },
      h('div', { class: 'notices-head' },
        h('h3', { id: 'notices-h' }, 'Report file notices'),
        h('button', { type: 'button', class: 'subtle', onclick: () => { notices.clear(); this.querySelector('#tasks-h')?.focus(); } }, 'Clear notices')),
      h('ul', { class: 'notice-list' }, notices.list.map((n) =>
        h('li', { class: `notice notice-${n.kind}`, dataset: { kind: n.kind, taskId: n.task_id ?? '' } },
          h('span', { class: 'muted' }, time(n.at.toISOString())), ' ',
          h('strong', {}, n.kind === 'invalid' ? 'Unusable report. ' : 'Report for an unknown task. '), noticeText(n))))));
  }
}

customElements.define('hub-workers', WorkersView);
