// <hub-project project-id="…">: one project's live agent output, its pending approvals
// (<hub-approvals>), its approval policy (<hub-policy>), a prompt box that stays usable while the agent works (agent.send as
// queue, steer or interrupt) with the queued follow-ups below it (<hub-follow-ups>), and
// the Run / Interrupt / Kill / New session actions.
//
// The log is a window onto the project's message log (ordered by `seq`):
// - it opens on the latest PAGE lines (messages.list with before_seq), then subscribes with
//   after_seq = the last seq it has, so the hub sends what came in between and then lives;
// - at most MAX_ROWS rows stay in the DOM: while the view follows the tail the oldest rows
//   are dropped, and scrolling up loads them again (messages.list with before_seq);
// - when the reader is scrolled up and the window is full, new lines are counted instead of
//   rendered ("detached"), and scrolling down or "Jump to latest" loads them;
// - after a reconnect it resubscribes with after_seq = the last seq received, and drops
//   any line whose seq it already has, so there is no gap and no duplicate.

import { h, replace } from '../dom.js';
import { number, shortId, dateTime } from '../format.js';
import { renderOutput } from '../render-output.js';
import { rpc, store, approvals, listen, onNotify, errorText } from '../store.js';
import './approvals-panel.js';
import './follow-ups.js';
import './project-runs.js';
import './policy-editor.js';

/** The agents a project can run (project.configure {agent}). */
const AGENTS = [
  { id: 'claude', label: 'Claude Code' },
  { id: 'codex', label: 'Codex' },
  { id: 'gemini', label: 'Gemini' },
];

/** The ways a message reaches an agent that is working (agent.send's `mode`). */
const SEND_MODES = [
  { mode: 'queue', label: 'Queue', hint: 'its own turn after this one' },
  { mode: 'steer', label: 'Steer', hint: 'folded into the running turn' },
  { mode: 'interrupt', label: 'Interrupt', hint: 'stop the turn and do this instead' },
];

/** Lines fetched per history page. */
const PAGE = 200;
/** Most rows kept in the DOM. */
export const MAX_ROWS = 1500;
/** Most rows built per animation frame while output floods in. */
const FRAME_ROWS = 150;
/** Distance from an edge (px) that counts as "at" it. */
const EDGE_PX = 48;

class ProjectView extends HTMLElement {
  connectedCallback() {
    this.projectId = this.getAttribute('project-id');
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.resetWindow();
    this.build();

    listen(store, 'projects', (ev) => {
      if (!ev.detail.id || ev.detail.id === this.projectId) this.renderHeader();
    }, signal);
    listen(store, 'session', () => this.subscribe(), signal);
    onNotify('project.output', (o) => this.onOutput(o), signal);
    listen(rpc, 'state', (ev) => this.renderConn(ev.detail.state), signal);
    this.renderHeader();
    this.renderConn(rpc.state);
    if (rpc.state === 'connected') this.subscribe();
  }

  disconnectedCallback() {
    this.abort.abort();
    cancelAnimationFrame(this.raf);
    if (rpc.state === 'connected') {
      rpc.request('project.unsubscribe', { project_id: this.projectId }).catch(() => {});
    }
  }

  resetWindow() {
    /** highest seq received (rendered or counted); the resubscribe point */
    this.lastSeq = 0;
    /** seqs of the first and last rendered rows (null when empty) */
    this.firstRendered = null;
    this.lastRendered = null;
    this.hasOlder = false;
    this.detached = false;
    this.newWhileDetached = 0;
    this.queue = [];
    this.raf = 0;
    this.loadingOlder = null;
    this.loadingNewer = null;
    this.initialised = false;
    this.ctx = { toolNames: new Map() };
  }

  build() {
    this.heading = h('h1', { tabindex: '-1' }, 'Project');
    this.pathEl = h('p', { class: 'path mono' });
    this.stateEl = h('span', { class: 'badge' });
    this.sessionEl = h('span', { class: 'muted' });
    this.interruptBtn = h('button', { type: 'button', onclick: () => this.interrupt() }, 'Interrupt');
    this.killBtn = h('button', { type: 'button', class: 'danger', onclick: () => this.kill() }, 'Kill');
    this.newSessionBtn = h('button', { type: 'button', onclick: () => this.newSession() }, 'New session');
    this.actionMsg = h('p', { class: 'inline-msg', role: 'status' });
    // The project's agent and model (project.configure): every run starts that agent.
    this.agentSelect = h('select', { id: 'project-agent', name: 'agent' },
      AGENTS.map((a) => h('option', { value: a.id }, a.label)));
    this.modelInput = h('input', {
      id: 'project-model', name: 'model', type: 'text', maxlength: '200', autocomplete: 'off',
      placeholder: 'the agent\'s default', spellcheck: 'false',
    });
    this.agentSaveBtn = h('button', { type: 'submit' }, 'Save');
    this.agentMsg = h('span', { class: 'inline-msg', role: 'status' });
    this.agentForm = h('form', {
      class: 'agent-form',
      'aria-label': 'Agent of this project',
      onsubmit: (ev) => { ev.preventDefault(); this.saveAgent(); },
    },
    h('label', { for: 'project-agent' }, 'Agent '), this.agentSelect, ' ',
    h('label', { for: 'project-model' }, 'Model '), this.modelInput, ' ',
    this.agentSaveBtn, ' ', this.agentMsg);

    this.olderBtn = h('button', { type: 'button', class: 'link', onclick: () => this.loadOlder() }, 'Load earlier output');
    this.olderBar = h('div', { class: 'log-edge top', hidden: true }, this.olderBtn);
    this.list = h('div', { class: 'log-rows' });
    this.emptyEl = h('p', { class: 'muted empty' }, 'No output yet. Run a prompt below.');
    this.log = h('div', {
      class: 'log', role: 'log', 'aria-live': 'off', 'aria-label': 'Agent output', tabindex: '0',
    }, this.olderBar, this.emptyEl, this.list);
    this.log.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.jumpBtn = h('button', { type: 'button', class: 'jump', hidden: true, onclick: () => this.jumpToLatest() }, 'Jump to latest');
    this.announce = h('p', { class: 'visually-hidden', role: 'status', 'aria-live': 'polite' });

    this.prompt = h('textarea', {
      id: 'prompt-input', name: 'prompt', rows: '3', required: true,
      placeholder: 'Ask the agent to do something in this project…', 'aria-describedby': 'prompt-hint prompt-error',
    });
    this.prompt.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.runBtn = h('button', { type: 'submit', class: 'primary' }, 'Run');
    this.modeInputs = SEND_MODES.map((m) => h('input', {
      type: 'radio', name: 'send-mode', id: `send-mode-${m.mode}`, value: m.mode, checked: m.mode === 'queue',
    }));
    this.modeBox = h('fieldset', { class: 'send-modes', hidden: true },
      h('legend', {}, 'While the agent works, send as'),
      SEND_MODES.map((m, i) => h('span', { class: 'send-mode' },
        this.modeInputs[i], h('label', { for: `send-mode-${m.mode}` }, m.label, h('span', { class: 'muted' }, ` (${m.hint})`)))));
    this.promptError = h('p', { id: 'prompt-error', class: 'field-error', role: 'alert' });
    this.form = h('form', { class: 'prompt-form', onsubmit: (ev) => { ev.preventDefault(); this.run(); } },
      h('label', { for: 'prompt-input' }, 'Prompt'),
      h('div', { class: 'prompt-row' }, this.prompt, this.runBtn),
      this.modeBox,
      h('p', { id: 'prompt-hint', class: 'hint muted' }, 'Ctrl+Enter runs it.'),
      this.promptError);
    this.approvalsPanel = h('hub-approvals', { 'project-id': this.projectId });
    this.followUps = h('hub-follow-ups', { 'project-id': this.projectId });

    replace(this,
      h('header', { class: 'view-head project-head' },
        h('p', { class: 'crumbs' }, h('a', { href: '#/projects' }, 'Projects'), ' /'),
        this.heading,
        this.pathEl,
        h('div', { class: 'project-bar' },
          h('div', { class: 'project-meta' }, this.stateEl, this.sessionEl),
          h('div', { class: 'toolbar' }, this.interruptBtn, this.killBtn, this.newSessionBtn)),
        this.agentForm,
        h('hub-policy', { 'project-id': this.projectId }),
        this.actionMsg),
      this.approvalsPanel,
      h('div', { class: 'log-wrap' }, this.log, this.jumpBtn),
      this.announce,
      this.form,
      this.followUps,
      h('hub-project-runs', { 'project-id': this.projectId }));
  }

  get project() {
    return store.projects.get(this.projectId) ?? null;
  }

  renderHeader() {
    const p = this.project;
    if (!p) {
      if (store.projectsLoaded) {
        this.heading.textContent = 'Project not found';
        this.pathEl.textContent = 'It may have been removed.';
        this.stateEl.hidden = true;
      }
      this.syncButtons();
      return;
    }
    document.title = `${p.name} · Semantest Hub`;
    this.heading.textContent = p.name;
    this.pathEl.textContent = p.path;
    this.stateEl.hidden = false;
    this.stateEl.className = `badge state-${p.state}`;
    this.stateEl.textContent = p.state;
    this.stateEl.dataset.state = p.state;
    const agent = p.agent ?? 'claude';
    if (document.activeElement !== this.agentSelect && !this.agentDirty) {
      this.agentSelect.value = agent;
      this.modelInput.value = p.model ?? '';
    }
    this.sessionEl.textContent = p.session_id
      ? ` · ${AGENTS.find((a) => a.id === agent)?.label ?? agent} session ${shortId(p.session_id, 13)}`
      : ' · no session yet: the next run starts one';
    this.sessionEl.title = p.session_id ?? '';
    if (p.run?.started_at) this.sessionEl.append(` · running since ${dateTime(p.run.started_at)}`);
    if (p.reason && (p.state === 'failed' || p.state === 'killed')) this.sessionEl.append(` · ${p.reason}`);
    if (this.stopping && p.state !== 'running') {
      this.stopping = false;
      this.actionMsg.textContent = '';
    }
    this.syncButtons();
  }

  syncButtons() {
    const p = this.project;
    const connected = rpc.state === 'connected';
    const running = p?.state === 'running';
    this.killBtn.disabled = !connected || !running;
    this.interruptBtn.disabled = !connected || !running;
    this.newSessionBtn.disabled = !connected || !p || running;
    this.agentSaveBtn.disabled = !connected || !p;
    // The prompt box stays usable while the agent works: it sends a follow-up then.
    this.runBtn.disabled = !connected || !p || this.sending;
    this.runBtn.textContent = running ? 'Send' : 'Run';
    this.modeBox.hidden = !running;
    this.form.querySelector('#prompt-hint').textContent = running
      ? 'Ctrl+Enter sends it to the agent at work.'
      : 'Ctrl+Enter runs it.';
  }

  renderConn() {
    this.syncButtons();
  }

  // ---- subscription and history ----

  async subscribe() {
    const id = this.projectId;
    try {
      if (!this.initialised) {
        const p = await rpc.request('project.get', { project_id: id });
        store.putProject(p);
        if (p.last_seq > 0) {
          const res = await rpc.request('messages.list', { project_id: id, before_seq: p.last_seq + 1, limit: PAGE });
          this.hasOlder = !!res.has_more;
          this.appendRows(res.messages);
          this.scrollToBottom();
        }
        this.initialised = true;
      } else {
        const p = await rpc.request('project.get', { project_id: id });
        store.putProject(p);
      }
      await rpc.request('project.subscribe', { project_id: id, after_seq: this.lastSeq });
      this.updateEdges();
      this.fillIfShort();
    } catch (err) {
      if (err.kind === 'PROJECT_NOT_FOUND') {
        store.projects.delete(id);
        store.projectsLoaded = true;
        this.renderHeader();
      } else if (err.kind !== 'DISCONNECTED' && err.kind !== 'UNAUTHORIZED') {
        this.actionMsg.textContent = `Could not load the output: ${errorText(err)}`;
      }
    }
  }

  onOutput(o) {
    if (!o || o.project_id !== this.projectId || typeof o.seq !== 'number') return;
    if (o.seq <= this.lastSeq) return; // already have it
    this.lastSeq = o.seq;
    if (o.stream === 'hub') this.onHubEvent(o);
    if (this.detached) {
      this.newWhileDetached += 1;
      this.updateEdges();
      return;
    }
    this.queue.push(o);
    if (!this.raf) this.raf = requestAnimationFrame(() => this.flush());
  }

  onHubEvent(o) {
    if (o.kind === 'run_started') this.announce.textContent = 'Run started.';
    if (o.kind === 'turn_ended' && this.actionMsg.textContent === 'Interrupting the turn…') this.actionMsg.textContent = '';
    if (o.kind === 'run_finished') {
      this.announce.textContent = `Run ${String(o.event?.status ?? 'finished').replace('_', ' ')}.`;
      // The state notification normally says this too; a fresh read makes sure.
      rpc.request('project.get', { project_id: this.projectId }).then((p) => store.putProject(p), () => {});
    }
  }

  flush() {
    this.raf = 0;
    if (!this.queue.length || this.detached) {
      this.queue = [];
      return;
    }
    const stick = this.atBottom();
    let batch;
    if (stick && this.queue.length > MAX_ROWS) {
      // Following the tail of a flood: rows older than the last MAX_ROWS would be dropped
      // right after being built, so skip them (scrolling up loads them from the hub).
      const skip = this.queue.length - MAX_ROWS;
      this.list.replaceChildren();
      this.firstRendered = null;
      this.lastRendered = this.queue[skip - 1].seq;
      this.hasOlder = true;
      this.queue = this.queue.slice(skip);
    }
    // Render a bounded slice per frame so a flood never blocks input for long.
    batch = this.queue.splice(0, FRAME_ROWS);
    if (this.queue.length) this.raf = requestAnimationFrame(() => this.flush());
    this.appendRows(batch);
    const over = this.list.childElementCount - MAX_ROWS;
    if (over > 0) {
      if (stick) this.trimTop(over);
      else this.trimBottom(over);
    }
    if (stick) this.scrollToBottom();
    this.updateEdges();
  }

  /** Appends rows newer than the last rendered one; returns how many. */
  appendRows(messages) {
    const frag = document.createDocumentFragment();
    let n = 0;
    for (const m of messages) {
      if (this.lastRendered !== null && m.seq <= this.lastRendered) continue;
      frag.append(renderOutput(m, this.ctx));
      this.lastRendered = m.seq;
      if (this.firstRendered === null) this.firstRendered = m.seq;
      if (m.seq > this.lastSeq) this.lastSeq = m.seq;
      n++;
    }
    this.list.append(frag);
    this.emptyEl.hidden = this.list.childElementCount > 0;
    return n;
  }

  /** Prepends rows older than the first rendered one; returns how many. */
  prependRows(messages) {
    const frag = document.createDocumentFragment();
    let n = 0;
    let first = null;
    for (const m of messages) {
      if (this.firstRendered !== null && m.seq >= this.firstRendered) break;
      frag.append(renderOutput(m, this.ctx));
      first ??= m.seq;
      n++;
    }
    if (!n) return 0;
    this.list.prepend(frag);
    this.firstRendered = first;
    if (this.lastRendered === null) this.lastRendered = messages[n - 1].seq;
    this.emptyEl.hidden = true;
    return n;
  }

  trimTop(n) {
    for (let i = 0; i < n && this.list.firstElementChild; i++) this.list.firstElementChild.remove();
    this.firstRendered = Number(this.list.firstElementChild?.dataset.seq ?? null) || null;
    this.hasOlder = true;
  }

  trimBottom(n) {
    for (let i = 0; i < n && this.list.lastElementChild; i++) this.list.lastElementChild.remove();
    this.lastRendered = Number(this.list.lastElementChild?.dataset.seq ?? null) || null;
    if (this.lastRendered === null || this.lastRendered < this.lastSeq) {
      this.detached = true;
      this.newWhileDetached = this.lastSeq - (this.lastRendered ?? 0);
    }
  }

  async loadOlder() {
    if (this.loadingOlder || !this.hasOlder || this.firstRendered === null) return this.loadingOlder;
    const before = this.firstRendered;
    this.loadingOlder = (async () => {
      try {
        const res = await rpc.request('messages.list', { project_id: this.projectId, before_seq: before, limit: PAGE });
        if (this.firstRendered !== before) return;
        const oldHeight = this.log.scrollHeight;
        const oldTop = this.log.scrollTop;
        const added = this.prependRows(res.messages);
        this.hasOlder = !!res.has_more && added > 0;
        this.log.scrollTop = oldTop + (this.log.scrollHeight - oldHeight);
        const over = this.list.childElementCount - MAX_ROWS;
        if (over > 0) this.trimBottom(over);
      } catch (err) {
        this.actionMsg.textContent = `Could not load earlier output: ${errorText(err)}`;
      } finally {
        this.loadingOlder = null;
        this.updateEdges();
      }
    })();
    return this.loadingOlder;
  }

  /** Loads rows after the last rendered one until caught up with the live stream. */
  async loadNewer() {
    if (this.loadingNewer || !this.detached) return this.loadingNewer;
    this.loadingNewer = (async () => {
      try {
        while (this.lastRendered !== null && this.lastRendered < this.lastSeq) {
          const after = this.lastRendered;
          const res = await rpc.request('messages.list', { project_id: this.projectId, after_seq: after, limit: PAGE });
          if (this.lastRendered !== after) return;
          const oldTop = this.log.scrollTop;
          if (!this.appendRows(res.messages)) break;
          const over = this.list.childElementCount - MAX_ROWS;
          if (over > 0) {
            const before = this.log.scrollHeight;
            this.trimTop(over);
            this.log.scrollTop = oldTop - (before - this.log.scrollHeight);
          }
          if (!res.has_more) break;
          if (!this.atBottom()) break; // the reader stopped scrolling down
        }
        if (this.lastRendered === null || this.lastRendered >= this.lastSeq) {
          this.detached = false;
          this.newWhileDetached = 0;
        } else {
          this.newWhileDetached = this.lastSeq - this.lastRendered;
        }
      } catch (err) {
        this.actionMsg.textContent = `Could not load newer output: ${errorText(err)}`;
      } finally {
        this.loadingNewer = null;
        this.updateEdges();
      }
    })();
    return this.loadingNewer;
  }

  /** Drops the window and shows the latest lines, following the tail again. */
  async jumpToLatest() {
    if (!this.detached) {
      this.scrollToBottom();
      this.updateEdges();
      return;
    }
    const target = this.lastSeq;
    try {
      const res = await rpc.request('messages.list', { project_id: this.projectId, before_seq: target + 1, limit: PAGE });
      this.list.replaceChildren();
      this.firstRendered = this.lastRendered = null;
      this.hasOlder = !!res.has_more;
      this.appendRows(res.messages);
      // Lines that came in while we waited:
      while (this.lastRendered !== null && this.lastRendered < this.lastSeq) {
        const more = await rpc.request('messages.list', { project_id: this.projectId, after_seq: this.lastRendered, limit: PAGE });
        if (!this.appendRows(more.messages)) break;
        const over = this.list.childElementCount - MAX_ROWS;
        if (over > 0) this.trimTop(over);
      }
      this.detached = false;
      this.newWhileDetached = 0;
      this.scrollToBottom();
      this.log.focus({ preventScroll: true });
    } catch (err) {
      this.actionMsg.textContent = `Could not load the latest output: ${errorText(err)}`;
    }
    this.updateEdges();
  }

  onScroll() {
    if (this.log.scrollTop < 300 && this.hasOlder && !this.loadingOlder) this.loadOlder();
    if (this.detached && this.atBottom(600) && !this.loadingNewer) this.loadNewer();
    this.updateEdges();
  }

  /** Loads more history while the log is too short to scroll (scroll events never fire). */
  async fillIfShort() {
    for (let i = 0; i < 10 && this.hasOlder && this.log.scrollHeight <= this.log.clientHeight + 300; i++) {
      await this.loadOlder();
      this.scrollToBottom();
    }
  }

  updateEdges() {
    this.olderBar.hidden = !this.hasOlder;
    this.olderBtn.disabled = !!this.loadingOlder;
    this.olderBtn.textContent = this.loadingOlder ? 'Loading earlier output…' : 'Load earlier output';
    const showJump = this.detached || (!this.atBottom() && this.list.childElementCount > 0);
    this.jumpBtn.hidden = !showJump;
    this.jumpBtn.textContent = this.detached && this.newWhileDetached > 0
      ? `Jump to latest (${number(this.newWhileDetached)} new)`
      : 'Jump to latest';
  }

  atBottom(px = EDGE_PX) {
    const l = this.log;
    return l.scrollHeight - l.scrollTop - l.clientHeight <= px;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  // ---- actions ----

  async run() {
    const prompt = this.prompt.value.trim();
    this.promptError.textContent = '';
    if (!prompt) {
      this.promptError.textContent = 'Type a prompt first.';
      this.prompt.focus();
      return;
    }
    this.sending = true;
    this.runBtn.disabled = true;
    // The box empties as the message leaves, like a chat's: what the user types while the
    // request is on its way is the next message and stays. A refused message comes back
    // into the box if it is still empty.
    this.prompt.value = '';
    try {
      if (this.project?.state === 'running') {
        const mode = this.modeInputs.find((i) => i.checked)?.value ?? 'queue';
        const res = await approvals.send(this.projectId, prompt, mode);
        this.announce.textContent = {
          queued: 'Follow-up queued.', steered: 'Sent to the running turn.', interrupting: 'Interrupting; this runs next.', started: 'Turn started.',
        }[res.delivery] ?? 'Sent.';
        return;
      }
      await rpc.request('agent.run', { project_id: this.projectId, prompt });
      // project.state says the same; reading it back keeps the buttons right if it is late.
      rpc.request('project.get', { project_id: this.projectId }).then((p) => store.putProject(p), () => {});
      if (this.detached) this.jumpToLatest();
      else this.scrollToBottom();
    } catch (err) {
      if (!this.prompt.value.trim()) this.prompt.value = prompt;
      this.promptError.textContent = errorText(err);
    } finally {
      this.sending = false;
      this.syncButtons();
    }
  }

  /** Stops the running turn (agent.interrupt); the session stays open. */
  async interrupt() {
    this.actionMsg.textContent = '';
    this.interruptBtn.disabled = true;
    try {
      await approvals.interrupt(this.projectId);
      this.actionMsg.textContent = 'Interrupting the turn…';
    } catch (err) {
      this.actionMsg.textContent = err.kind === 'NOT_RUNNING' ? 'No turn is running.' : errorText(err);
    } finally {
      this.syncButtons();
    }
  }

  async kill() {
    this.actionMsg.textContent = '';
    this.killBtn.disabled = true;
    try {
      await rpc.request('agent.kill', { project_id: this.projectId });
      if (this.project?.state === 'running') {
        this.stopping = true;
        this.actionMsg.textContent = 'Stopping the agent…';
      }
    } catch (err) {
      this.actionMsg.textContent = errorText(err);
    } finally {
      this.syncButtons();
    }
  }

  /** Sets the project's agent and model (project.configure). */
  async saveAgent() {
    const p = this.project;
    if (!p) return;
    this.agentMsg.textContent = '';
    this.agentDirty = true;
    try {
      const res = await rpc.request('project.configure', {
        project_id: this.projectId,
        agent: this.agentSelect.value,
        model: this.modelInput.value.trim(),
      });
      const current = this.project ?? p;
      store.putProject({
        ...current,
        agent: res.agent,
        model: res.model,
        session_id: current.sessions?.[res.agent] ?? null,
      });
      this.agentMsg.textContent = 'Saved: the next run starts this agent.';
    } catch (err) {
      this.agentMsg.textContent = errorText(err);
    } finally {
      this.agentDirty = false;
      this.renderHeader();
    }
  }

  async newSession() {
    this.actionMsg.textContent = '';
    try {
      const p = await rpc.request('agent.new_session', { project_id: this.projectId });
      store.putProject(p);
      this.actionMsg.textContent = 'The next run starts a new session.';
    } catch (err) {
      this.actionMsg.textContent = errorText(err);
    }
  }
}

customElements.define('hub-project', ProjectView);
