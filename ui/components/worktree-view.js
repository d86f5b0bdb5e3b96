// A git worktree's branch, diff and Merge / Discard, shared by the two places one shows:
//
// - <hub-task-worktree data-task-id>: an isolated task's, on its card (task.get,
//   task.merge, task.discard; docs/coordination.md, "Isolation");
// - <hub-run-worktree data-run-id>: the worktree an interactive run worked in
//   (agent.run {isolation: "worktree"}), on the project's runs (agent.run_worktree,
//   agent.run_merge, agent.run_discard; docs/protocol.md, "A run in a worktree of its
//   own").
//
// Each reads its worktree once it is on the page, and shows nothing when there is none.
// For a finished one: the branch, the files changed with lines added and removed, the
// unified diff behind a disclosure, and Merge and Discard (Discard asks for an in-page
// confirmation first). A refused merge says why and names the files (MERGE_CONFLICT,
// UNCOMMITTED_CHANGES); nothing changed then. `reload()` reads it again (a run's
// worktree changes when a follow-up ends).

import { h, replace } from '../dom.js';
import { number } from '../format.js';
import { rpc, errorText } from '../store.js';

const REFUSED = {
  MERGE_CONFLICT: 'Merge refused: it would conflict in',
  UNCOMMITTED_CHANGES: 'Merge refused: uncommitted changes in the checkout would be overwritten in',
};

/**
 * The shared view. A subclass says where its worktree comes from: `read()` resolves to the
 * worktree or null, `params()` names it for `methods.merge` and `methods.discard`, and
 * `owner` is the word its read error uses.
 */
export class WorktreeView extends HTMLElement {
  connectedCallback() {
    if (this.started) return;
    this.started = true;
    this.confirming = false;
    this.busy = false;
    this.error = null;
    this.load();
  }

  /** Reads the worktree again, unless an action is under way. */
  reload() {
    if (this.started && !this.busy) this.load();
  }

  async load() {
    try {
      this.worktree = await this.read();
    } catch (err) {
      this.worktree = null;
      this.error = `Cannot read the ${this.owner}'s worktree: ${errorText(err)}`;
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
        h('button', { type: 'button', class: 'danger', dataset: { action: 'confirm-discard' }, disabled: off, onclick: () => this.act(this.methods.discard) }, 'Discard'),
        h('button', { type: 'button', dataset: { action: 'keep-worktree' }, onclick: () => this.confirm(false) }, 'Keep'));
    }
    return h('div', { class: 'task-actions' },
      h('button', {
        type: 'button', dataset: { action: 'merge' }, disabled: off || !wt.base_branch,
        'aria-label': `Merge ${wt.branch} into ${wt.base_branch ?? 'its base branch'}`, onclick: () => this.act(this.methods.merge),
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
      await rpc.request(method, this.params());
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

/** <hub-task-worktree data-task-id>: an isolated task's worktree, on its card. */
export class TaskWorktree extends WorktreeView {
  get owner() { return 'task'; }
  get methods() { return { merge: 'task.merge', discard: 'task.discard' }; }
  params() { return { task_id: this.dataset.taskId }; }
  async read() {
    const task = await rpc.request('task.get', { task_id: this.dataset.taskId });
    return task.worktree ?? null;
  }
}

/** How often, and how many times, a run's worktree is read again while its diff is being
 * recorded (the run has ended, the hub is committing what it left). */
const RECORDING_RETRY_MS = 300;
const RECORDING_RETRIES = 100;

/**
 * <hub-run-worktree data-run-id data-run-ended>: the worktree an interactive run worked in.
 * With data-run-ended the run is over, so an `active` worktree is one whose diff the hub is
 * recording: it is read again shortly, until it is not.
 */
export class RunWorktree extends WorktreeView {
  get owner() { return 'run'; }
  get methods() { return { merge: 'agent.run_merge', discard: 'agent.run_discard' }; }
  params() { return { run_id: this.dataset.runId }; }
  async read() {
    const worktree = await rpc.request('agent.run_worktree', { run_id: this.dataset.runId });
    clearTimeout(this.retry);
    this.retries ??= 0;
    if (worktree?.state === 'active' && 'runEnded' in this.dataset && this.retries < RECORDING_RETRIES) {
      this.retries += 1;
      this.retry = setTimeout(() => { if (this.isConnected) this.reload(); }, RECORDING_RETRY_MS);
    }
    return worktree;
  }

  disconnectedCallback() {
    clearTimeout(this.retry);
  }
}

customElements.define('hub-task-worktree', TaskWorktree);
customElements.define('hub-run-worktree', RunWorktree);
