// The task board of <hub-workers>: a column per task state, rendered from a TaskBoard
// (../task-store.js). At most PAGE cards per column until "Show more"; cards are reused
// while their task, its worker's name and the controls are unchanged; Cancel per pending
// or running task asks for an in-page confirmation first. Focus survives re-renders.
//
// What it keeps is the view's own: how many cards each column shows, which task asks for
// confirmation, and the card cache. reset() forgets them when another project is shown.

import { h, replace } from '../dom.js';
import { number, shortId, dateTime } from '../format.js';
import { STATES, FINAL, workerKindText } from '../task-store.js';
import './worktree-view.js';

/** Cards rendered per column before "Show more". */
export const PAGE = 50;
const STATE_TEXT = { pending: 'Pending', running: 'Running', completed: 'Completed', failed: 'Failed', cancelled: 'Cancelled' };
const SOURCE_TEXT = { worker: 'a worker', report: 'a report file', agent: 'an agent run' };

export class BoardView {
  /**
   * @param {import('../task-store.js').TaskBoard} board
   * @param {{el: HTMLElement, connected: () => boolean, onCancelled: (taskId: string) => void}} opts
   */
  constructor(board, { el, connected, onCancelled }) {
    this.board = board;
    this.el = el;
    this.connected = connected;
    this.onCancelled = onCancelled;
    this.reset();
  }

  reset() {
    this.limits = Object.fromEntries(STATES.map((s) => [s, PAGE]));
    this.confirming = null;
    /** task id → {key, el}: cards reused while unchanged */
    this.cards = new Map();
  }

  workerLabel(id) {
    return this.board.workerName(id) ?? shortId(id);
  }

  render() {
    const groups = this.board.columns();
    const focus = this.focusKey();
    const connected = this.connected();
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
            onclick: () => { this.limits[s] += PAGE; this.render(); },
          }, `Show ${number(Math.min(PAGE, hidden))} more (${number(hidden)} not shown)`)
          : null);
    });
    for (const id of this.cards.keys()) if (!used.has(id)) this.cards.delete(id);
    replace(this.el, cols);
    if (focus) this.restoreFocus(focus);
  }

  /** A task card, reused while the task, its worker's name and the controls are the same. */
  card(t, connected) {
    if (this.confirming === t.id && FINAL.has(t.state)) this.confirming = null;
    const worker = t.worker_id ?? t.last_failure?.worker_id ?? null;
    const info = worker ? this.board.workerInfo(worker) : null;
    const kindText = workerKindText(info);
    const workerLabel = worker ? `${this.workerLabel(worker)}${kindText ? `, ${kindText}` : ''}` : '';
    const confirming = this.confirming === t.id;
    const key = `${t.v}|${t.state}|${workerLabel}|${confirming}|${connected}`;
    const cached = this.cards.get(t.id);
    if (cached?.key === key) return cached.el;
    // The attempt under way or that ended the task: failed attempts so far, plus this one.
    const attempt = t.state === 'failed' || t.state === 'cancelled' ? t.attempts : t.attempts + 1;
    const meta = [
      ['Type', t.type ?? 'any'],
      ['Priority', number(t.priority)],
      ['Attempts', number(t.attempts)],
      ['Attempt', t.state === 'pending' ? `${number(attempt)} (waiting)` : number(attempt)],
      ['Worker', workerLabel || '—'],
      ['Created', t.created ? dateTime(new Date(t.created).toISOString()) : '—'],
      ['Updated', dateTime(new Date(t.updated).toISOString())],
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
      t.report
        ? h('details', { class: 'task-report' },
          h('summary', {}, 'Report'),
          // Text only: a report is the worker's JSON, never markup.
          h('pre', { class: 'mono', tabindex: '0', 'aria-label': `Report of task ${t.id}` }, t.report))
        : null,
      actions ? h('div', { class: 'task-actions' }, actions) : null,
      // An isolated task's branch, diff, Merge and Discard (nothing otherwise).
      FINAL.has(t.state) ? h('hub-task-worktree', { dataset: { taskId: t.id } }) : null);
    this.cards.set(t.id, { key, el });
    return el;
  }

  // ---- Cancel, with a confirmation ----

  askCancel(t) {
    this.confirming = t.id;
    this.render();
    this.cardEl(t.id)?.querySelector('[data-action="keep"]')?.focus();
  }

  keep(t) {
    this.confirming = null;
    this.render();
    this.cardEl(t.id)?.querySelector('[data-action="cancel"]')?.focus();
  }

  async cancel(t) {
    await this.board.cancel(t.id);
    this.confirming = null;
    this.onCancelled(t.id);
  }

  cardEl(taskId) {
    return this.el.querySelector(`[data-task-id="${CSS.escape(taskId)}"]`);
  }

  // ---- focus across re-renders ----

  /** What is focused in the board, to focus it again after a re-render. */
  focusKey() {
    const el = document.activeElement;
    if (!el || !this.el.contains(el)) return null;
    const card = el.closest('[data-task-id]');
    if (card) return { task: card.dataset.taskId, action: el.dataset.action ?? null };
    if (el.dataset.action === 'more') return { more: el.dataset.state };
    const col = el.closest('[data-state]');
    return col ? { col: col.dataset.state } : null;
  }

  restoreFocus(k) {
    const b = this.el;
    let el = null;
    if (k.task) {
      const card = this.cardEl(k.task);
      el = (k.action && card?.querySelector(`[data-action="${k.action}"]`)) || card;
    } else if (k.more) {
      el = b.querySelector(`[data-action="more"][data-state="${k.more}"]`) ?? b.querySelector(`#col-${k.more}-h`);
    } else if (k.col) {
      el = b.querySelector(`#col-${k.col}-h`);
    }
    (el ?? b.closest('hub-workers')?.querySelector('#tasks-h'))?.focus({ preventScroll: true });
  }
}
