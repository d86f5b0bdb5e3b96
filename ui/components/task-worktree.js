// The git worktree of an isolated task, on its card: <hub-task-worktree data-task-id>.
// It reads the task (task.get) once it is on the page, and shows nothing for a task that
// did not run in a worktree. For a finished one: the branch, the files changed with lines
// added and removed, the unified diff behind a disclosure, and Merge and Discard (Discard
// asks for an in-page confirmation first). A refused merge says why and names the files
// (MERGE_CONFLICT, UNCOMMITTED_CHANGES); nothing changed then. docs/coordination.md,
// "Isolation".

import { h, replace } from '../dom.js';
import { number } from '../format.js';
import { rpc, errorText } from '../store.js';

const REFUSED = {
  MERGE_CONFLICT: 'Merge refused: it would conflict in',
  UNCOMMITTED_CHANGES: 'Merge refused: uncommitted changes in the checkout would be overwritten in',
};

export class TaskWorktree extends HTMLElement {
  connectedCallback() {
    if (this.started) return;
    this.started = true;
    this.confirming = false;
    this.busy = false;
    this.error = null;
    this.load();
  }

  get taskId() {
    return this.dataset.taskId;
  }

  async load() {
    try {
      const task = await rpc.request('task.get', { task_id: this.taskId });
      this.worktree = task.worktree ?? null;
    } catch (err) {
      this.worktree = null;
      this.error = `Cannot read the task's worktree: ${errorText(err)}`;
    }
    this.render();
  }

  render() {
    const wt = this.worktree;
    this.hidden = !wt && !this.error;
    if (!wt) {
      replace(this, this.error ? h('p', { class: 'worktree-error', role: 'alert' }, this.error) : null);
      return;
    }
    const into = wt.base_branch ?? 'a detached HEAD';
    const head = h('p', { class: 'worktree-head' },
      h('span', { class: 'mono', dataset: { field: 'branch' } }, wt.branch),
      ' ', {
        active: 'A run is working in it.',
        finished: `From ${into}.`,
        merged: `Merged into ${into}.`,
        discarded: 'Discarded.',
      }[wt.state] ?? '');
    replace(this, head, this.diffView(wt), this.actions(wt),
      this.error ? h('p', { class: 'worktree-error', role: 'alert' }, this.error) : null);
  }

  diffView(wt) {
    const diff = wt.diff;
    if (!diff || wt.state === 'merged' || wt.state === 'discarded') return null;
    const count = (n) => (n === null || n === undefined ? '–' : number(n));
    const files = diff.files.length;
    return h('details', { class: 'worktree-diff' },
      h('summary', {}, `${number(files)} ${files === 1 ? 'file' : 'files'} changed, +${number(diff.added)} −${number(diff.removed)}`),
      h('ul', { class: 'worktree-files' }, diff.files.map((f) => h('li', { dataset: { path: f.path } },
        h('span', { class: 'added' }, `+${count(f.added)}`), ' ',
        h('span', { class: 'removed' }, `−${count(f.removed)}`), ' ',
        h('span', { class: 'mono' }, f.path)))),
      diff.patch ? h('pre', { class: 'worktree-patch mono', tabindex: '0', 'aria-label': `Diff of ${wt.branch}` }, diff.patch) : null,
      diff.truncated ? h('p', { class: 'muted' }, 'The diff is cut at 256 KiB.') : null);
  }

  actions(wt) {
    if (wt.state !== 'finished') return null;
    const off = this.busy || rpc.state !== 'connected';
    if (this.confirming) {
      return h('div', { class: 'confirm task-actions', role: 'group', 'aria-label': `Confirm discarding ${wt.branch}` },
        h('span', {}, `Discard ${wt.branch}? Its changes are lost.`),
        h('button', { type: 'button', class: 'danger', dataset: { action: 'confirm-discard' }, disabled: off, onclick: () => this.act('task.discard') }, 'Discard'),
        h('button', { type: 'button', dataset: { action: 'keep-worktree' }, onclick: () => this.confirm(false) }, 'Keep'));
    }
    return h('div', { class: 'task-actions' },
      h('button', {
        type: 'button', dataset: { action: 'merge' }, disabled: off || !wt.base_branch,
        'aria-label': `Merge ${wt.branch} into ${wt.base_branch ?? 'its base branch'}`, onclick: () => this.act('task.merge'),
      }, wt.base_branch ? `Merge into ${wt.base_branch}` : 'Merge'),
      h('button', {
        type: 'button', class: 'subtle', dataset: { action: 'discard' }, disabled: off,
        'aria-label': `Discard ${wt.branch}`, onclick: () => this.confirm(true),
      }, 'Discard'));
  }

  confirm(on) {
    this.confirming = on;
    this.render();
    this.querySelector(on ? '[data-action="keep-worktree"]' : '[data-action="discard"]')?.focus();
  }

  async act(method) {
    this.busy = true;
    this.error = null;
    this.render();
    try {
      await rpc.request(method, { task_id: this.taskId });
      this.confirming = false;
    } catch (err) {
      const files = err?.data?.files;
      this.error = REFUSED[err?.kind] && Array.isArray(files)
        ? `${REFUSED[err.kind]} ${files.join(', ')}. Nothing changed.`
        : errorText(err);
    }
    this.busy = false;
    await this.load();
    this.querySelector('[role="alert"]')?.focus?.();
  }
}

customElements.define('hub-task-worktree', TaskWorktree);
