// <hub-project-runs project-id="…">: below a project's live output, its runs and a search
// in its stored output.
//
// - Runs (project.runs): newest first, each with its status, when it started, how long it
//   took, what it cost and its prompt; reloaded when the project's state changes or a run
//   starts or ends (an isolated run does not change the project's state), "Show older
//   runs" pages back. A run that worked in a git worktree of its own (agent.run
//   {isolation: "worktree"}) has the worktree's branch, diff, Merge and Discard in a row
//   below it (<hub-run-worktree>, worktree-view.js), once per worktree: below its newest
//   run.
// - Search (messages.list with q): the stored lines that hold every word typed, oldest
//   first, the first 50, each drawn as in the live log.

import { h, replace } from '../dom.js';
import { dateTime, duration, usd, shortId } from '../format.js';
import { renderOutput } from '../render-output.js';
import { rpc, store, listen, onNotify, errorText } from '../store.js';
import './worktree-view.js';

/** Runs per page. */
const RUNS_PAGE = 20;
/** Matching lines shown at most. */
export const SEARCH_LIMIT = 50;

class ProjectRuns extends HTMLElement {
  connectedCallback() {
    this.projectId = this.getAttribute('project-id');
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.runs = [];
    this.hasMore = false;
    this.build();
    onNotify('project.state', (p) => {
      if (p?.project_id === this.projectId) this.reloadSoon();
    }, signal);
    onNotify('project.output', (o) => {
      if (o?.project_id === this.projectId && (o.kind === 'run_started' || o.kind === 'run_finished')) this.reloadSoon();
    }, signal);
    listen(store, 'session', () => this.load(), signal);
    if (rpc.state === 'connected') this.load();
  }

  disconnectedCallback() {
    this.abort.abort();
    clearTimeout(this.timer);
  }

  build() {
    this.runsMsg = h('p', { class: 'inline-msg', role: 'status' });
    this.runsEl = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'runs-h' });
    this.moreBtn = h('button', { type: 'button', class: 'link', hidden: true, onclick: () => this.load({ older: true }) }, 'Show older runs');
    this.query = h('input', { id: 'search-q', type: 'search', autocomplete: 'off', maxlength: '256', placeholder: 'words to find, e.g. error parser' });
    this.searchMsg = h('p', { class: 'inline-msg', role: 'status' });
    this.results = h('div', { class: 'search-results' });
    replace(this,
      h('section', { class: 'card', 'aria-labelledby': 'runs-h' },
        h('h2', { id: 'runs-h', tabindex: '-1' }, 'Runs'),
        this.runsMsg, this.runsEl, this.moreBtn),
      h('section', { class: 'card', 'aria-labelledby': 'search-h' },
        h('h2', { id: 'search-h', tabindex: '-1' }, 'Search the output'),
        h('form', { role: 'search', class: 'event-filter', onsubmit: (ev) => { ev.preventDefault(); this.search(); } },
          h('label', { for: 'search-q' }, 'Find'), this.query,
          h('button', { type: 'submit' }, 'Search')),
        this.searchMsg, this.results));
  }

  reloadSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 200);
  }

  /** Loads the newest page of runs, or with `older` the page after the last one shown. */
  async load({ older = false } = {}) {
    const params = { project_id: this.projectId, limit: RUNS_PAGE };
    if (older && this.runs.length) params.before = this.runs[this.runs.length - 1].id;
    try {
      const res = await rpc.request('project.runs', params);
      if (this.abort.signal.aborted) return;
      this.runs = older ? [...this.runs, ...res.runs] : res.runs;
      this.hasMore = res.has_more;
      this.runsMsg.textContent = '';
    } catch (err) {
      this.runsMsg.textContent = `Cannot list the runs: ${errorText(err)}`;
    }
    this.renderRuns();
  }

  renderRuns() {
    this.moreBtn.hidden = !this.hasMore;
    if (!this.runs.length) {
      replace(this.runsEl, h('p', { class: 'muted empty' }, 'No runs yet.'));
      return;
    }
    const cols = ['Status', 'Started', 'Duration', 'Cost', 'Prompt'];
    const shown = new Set();
    replace(this.runsEl, h('table', { class: 'runs' },
      h('caption', { class: 'visually-hidden' }, `${this.runs.length} runs, newest first`),
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', class: c === 'Duration' || c === 'Cost' ? 'num' : null }, c)))),
      h('tbody', {}, this.runs.flatMap((r) => [h('tr', { dataset: { runId: r.id, status: r.status } },
        h('td', {}, h('span', { class: `badge state-${r.status}`, title: r.reason ?? null }, r.status.replace('_', ' ')),
          r.reason ? h('span', { class: 'muted run-reason' }, ` ${r.reason}`) : null),
        h('td', { title: `run ${r.id}` }, dateTime(r.started_at), h('span', { class: 'muted mono' }, ` ${shortId(r.id)}`)),
        h('td', { class: 'num' }, r.duration_ms === null ? 'running' : duration(r.duration_ms)),
        h('td', { class: 'num' }, usd(r.cost_usd)),
        h('td', { class: 'run-prompt', title: r.prompt }, r.prompt.length > 120 || r.prompt_truncated ? `${r.prompt.slice(0, 120)}…` : r.prompt)),
      this.worktreeRow(r, shown)]))));
  }

  /** The row below `r` with its worktree, for the newest run of each worktree only. */
  worktreeRow(r, shown) {
    if (!r.worktree || shown.has(r.worktree)) return null;
    shown.add(r.worktree);
    const dataset = { runId: r.worktree };
    if (r.status !== 'running') dataset.runEnded = '';
    return h('tr', { class: 'run-worktree', dataset: { worktreeOf: r.id } },
      h('td', { colspan: '5' }, h('hub-run-worktree', { dataset })));
  }

  async search() {
    const q = this.query.value.trim();
    if (!q) {
      this.searchMsg.textContent = 'Type a word to find.';
      replace(this.results);
      return;
    }
    this.searchMsg.textContent = 'Searching…';
    try {
      const res = await rpc.request('messages.list', { project_id: this.projectId, q, limit: SEARCH_LIMIT });
      if (this.abort.signal.aborted) return;
      const n = res.messages.length;
      this.searchMsg.textContent = n
        ? `${n}${res.has_more ? '+' : ''} line${n === 1 ? '' : 's'} hold ${q}${res.has_more ? ` (the first ${SEARCH_LIMIT})` : ''}.`
        : `No stored line holds ${q}.`;
      const ctx = { toolNames: new Map() };
      replace(this.results, res.messages.map((o) => renderOutput(o, ctx)));
    } catch (err) {
      this.searchMsg.textContent = `Cannot search: ${errorText(err)}`;
    }
  }
}

customElements.define('hub-project-runs', ProjectRuns);
