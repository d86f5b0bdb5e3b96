// <hub-usage>: what the agents cost, from agent.usage: a bar chart of US dollars per
// local day (plain SVG), then the same days, the projects and the recent runs as tables
// with their tokens. A range (7, 30, 90 days or all time) and a project narrow it down.
// Reloads when a run ends (project.state leaving "running") and after a reconnect.

import { h, replace } from '../dom.js';
import { number, usd, dateTime, shortId } from '../format.js';
import { rpc, store, listen, onNotify, errorText } from '../store.js';

/** Runs listed at most; agent.usage returns up to 1000. */
const MAX_RUNS = 25;
const RANGES = [
  { value: '7', label: 'Last 7 days' },
  { value: '30', label: 'Last 30 days' },
  { value: '90', label: 'Last 90 days' },
  { value: 'all', label: 'All time' },
];

/** YYYY-MM-DD of a local date. */
function dayKey(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local midnight `days - 1` days before today, as RFC 3339. */
function rangeStart(days) {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  d.setDate(d.getDate() - (days - 1));
  return d;
}

/**
 * Every day from `from` to today (local), with agent.usage's day rows filled in and
 * missing days as zero, so the chart's x axis is time.
 */
export function fillDays(rows, from) {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  let start = from;
  if (!start) {
    const first = rows[0]?.day;
    if (!first) return [];
    const [y, m, d] = first.split('-').map(Number);
    start = new Date(y, m - 1, d);
  }
  const out = [];
  const today = dayKey(new Date());
  for (let d = new Date(start); ; d.setDate(d.getDate() + 1)) {
    const key = dayKey(d);
    out.push(byDay.get(key) ?? { day: key, usd: 0, turns: 0, runs: 0, input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_creation_tokens: 0 });
    if (key >= today || out.length > 3660) break;
  }
  return out;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** The bar chart: one bar per day, its height the day's cost; each bar has a tooltip. */
function chart(days) {
  const width = 720, height = 200, left = 56, bottom = 24, top = 10;
  const max = Math.max(...days.map((d) => d.usd), 0);
  const scale = max > 0 ? (height - bottom - top) / max : 0;
  const slot = (width - left) / Math.max(days.length, 1);
  const bar = Math.max(1, Math.min(28, slot * 0.7));
  const total = days.reduce((sum, d) => sum + d.usd, 0);
  const label = `Cost per day from ${days[0]?.day ?? '—'} to ${days.at(-1)?.day ?? '—'}: ${usd(total)} in all, ${usd(max)} on the costliest day.`;
  const every = Math.ceil(days.length / 8);
  return s('svg', { class: 'usage-chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'xMinYMin meet' },
    s('line', { class: 'axis', x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
    s('text', { class: 'tick', x: left - 6, y: top + 4, 'text-anchor': 'end' }, usd(max)),
    s('text', { class: 'tick', x: left - 6, y: height - bottom, 'text-anchor': 'end' }, usd(0)),
    days.map((d, i) => {
      const x = left + i * slot + (slot - bar) / 2;
      const hgt = d.usd * scale;
      return s('g', { class: 'day', 'data-day': d.day, 'data-usd': d.usd },
        s('rect', { class: 'bar', x, y: height - bottom - hgt, width: bar, height: Math.max(hgt, d.usd > 0 ? 1 : 0) },
          s('title', {}, `${d.day}: ${usd(d.usd)} · ${number(d.turns)} turns · ${number(d.input_tokens + d.output_tokens)} tokens`)),
        i % every === 0 ? s('text', { class: 'tick', x: x + bar / 2, y: height - 6, 'text-anchor': 'middle' }, d.day.slice(5)) : null);
    }));
}

/** A cost, marked when part of it is the hub's estimate from its price table. */
function cost(r) {
  if (!(r.estimated_usd > 0)) return usd(r.usd);
  return h('span', { title: `${usd(r.estimated_usd)} of it estimated from the hub's price table (agent.prices)` },
    usd(r.usd), h('span', { class: 'muted' }, ' (est.)'));
}

function figures(r) {
  return [
    h('td', { class: 'num f-usd' }, cost(r)),
    h('td', { class: 'num' }, number(r.input_tokens)),
    h('td', { class: 'num' }, number(r.output_tokens)),
    h('td', { class: 'num' }, number(r.cache_read_tokens)),
    h('td', { class: 'num' }, number(r.cache_creation_tokens)),
    h('td', { class: 'num' }, number(r.turns)),
  ];
}

const FIGURE_COLS = ['Cost', 'Input', 'Output', 'Cache read', 'Cache write', 'Turns'];

function table(cls, caption, keyCols, rows, key) {
  return h('div', { class: 'table-wrap' }, h('table', { class: `usage ${cls}` },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, [...keyCols, ...FIGURE_COLS].map((c) =>
      h('th', { scope: 'col', class: keyCols.includes(c) ? null : 'num' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, key(r), figures(r))))));
}

class UsageView extends HTMLElement {
  connectedCallback() {
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.range = h('select', { id: 'usage-range', name: 'range', onchange: () => this.load() },
      RANGES.map((r) => h('option', { value: r.value, selected: r.value === '30' }, r.label)));
    this.project = h('select', { id: 'usage-project', name: 'project', onchange: () => this.load() });
    this.msg = h('p', { class: 'inline-msg', role: 'status' });
    this.summary = h('p', { class: 'usage-total', 'aria-live': 'polite' });
    this.body = h('div', { class: 'usage-body' });
    replace(this,
      h('header', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Usage'),
        h('p', { class: 'muted' }, 'What the agents cost, in US dollars as Claude Code reports it, and their tokens. Days are local days; a deleted project\'s usage is kept.')),
      h('div', { class: 'board-bar usage-bar' },
        h('div', { class: 'field' }, h('label', { for: 'usage-range' }, 'Range'), this.range),
        h('div', { class: 'field' }, h('label', { for: 'usage-project' }, 'Project'), this.project)),
      this.msg, this.summary, this.body);
    this.fillProjects();
    listen(store, 'projects', () => this.fillProjects(), signal);
    listen(store, 'session', () => this.load(), signal);
    onNotify('project.state', (p) => { if (p?.state && p.state !== 'running') this.load(); }, signal);
    if (rpc.state === 'connected') this.load();
  }

  disconnectedCallback() {
    this.abort.abort();
  }

  fillProjects() {
    const current = this.project.value;
    const projects = [...store.projects.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    replace(this.project, h('option', { value: '' }, 'All projects'),
      projects.map((p) => h('option', { value: p.id, selected: p.id === current }, p.name)));
    if (current && !store.projects.has(current)) this.project.value = '';
  }

  async load() {
    const seq = (this.seq = (this.seq ?? 0) + 1);
    const days = this.range.value === 'all' ? null : Number(this.range.value);
    const from = days ? rangeStart(days) : null;
    const base = {
      project_id: this.project.value || null,
      since: from ? from.toISOString() : null,
      utc_offset_minutes: -new Date().getTimezoneOffset(),
    };
    try {
      const [byDay, byProject, byRun] = await Promise.all(['day', 'project', 'run'].map((group_by) =>
        rpc.request('agent.usage', { ...base, group_by })));
      if (seq !== this.seq) return; // a newer load is under way
      this.msg.textContent = '';
      this.render(fillDays(byDay.rows, from), byDay.total, byProject.rows, byRun.rows);
    } catch (err) {
      if (seq !== this.seq) return;
      this.msg.textContent = `Could not load usage: ${errorText(err)}`;
    }
  }

  render(days, total, projects, runs) {
    this.dataset.loaded = 'true';
    replace(this.summary,
      h('strong', { class: 'f-total' }, cost(total)), ` · ${number(total.turns)} turns in ${number(total.runs)} runs · `,
      `${number(total.input_tokens)} input, ${number(total.output_tokens)} output, ${number(total.cache_read_tokens)} cache-read and ${number(total.cache_creation_tokens)} cache-write tokens`);
    if (!total.turns) {
      replace(this.body, h('p', { class: 'muted empty' }, 'No agent usage in this range yet.'));
      return;
    }
    const projectName = (r) => h('th', { scope: 'row' },
      r.project_deleted ? [r.project_name || shortId(r.project_id), h('span', { class: 'muted' }, ' (deleted)')]
        : h('a', { href: `#/projects/${encodeURIComponent(r.project_id)}` }, r.project_name || shortId(r.project_id)));
    replace(this.body,
      h('section', { 'aria-labelledby': 'usage-chart-h' },
        h('h2', { id: 'usage-chart-h' }, 'Cost per day'), chart(days)),
      table('by-day', 'Per day', ['Day'], [...days].reverse().filter((d) => d.turns), (r) => h('th', { scope: 'row' }, r.day)),
      table('by-project', 'Per project', ['Project'], projects, projectName),
      table('by-run', `Recent runs${runs.length > MAX_RUNS ? ` (the last ${MAX_RUNS})` : ''}`, ['Run', 'Project', 'Model', 'Last turn'],
        runs.slice(0, MAX_RUNS), (r) => [
          h('th', { scope: 'row', class: 'mono', title: r.run_id }, shortId(r.run_id)),
          h('td', {}, r.project_name || shortId(r.project_id), r.project_deleted ? ' (deleted)' : ''),
          h('td', { class: 'mono' }, r.model ?? '—'),
          h('td', { title: r.last_at }, dateTime(r.last_at)),
        ]));
  }
}

customElements.define('hub-usage', UsageView);
