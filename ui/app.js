// The dashboard's entry point: navigation, hash routing, and the connection status area.
//
// Routes: #/overview, #/projects, #/projects/<id>, #/workers, #/workers/<project id>,
// #/usage, #/connections, #/clients, #/events, #/settings (the leading slash is optional:
// #clients works too).

import { h, replace } from './dom.js';
import { rpc, store, approvals } from './store.js';
import './components/overview-view.js';
import './components/projects-view.js';
import './components/project-view.js';
import './components/workers-view.js';
import './components/connections-view.js';
import './components/clients-view.js';
import './components/events-view.js';
import './components/settings-view.js';
import './components/usage-view.js';

/**
 * The main navigation. Add a view by adding an entry here (and its custom element); an
 * entry with `ready: false` is neither listed nor routed.
 */
const VIEWS = [
  { path: 'overview', label: 'Overview', tag: 'hub-overview', ready: true },
  { path: 'projects', label: 'Projects', tag: 'hub-projects', ready: true },
  { path: 'workers', label: 'Workers & tasks', tag: 'hub-workers', ready: true },
  { path: 'usage', label: 'Usage', tag: 'hub-usage', ready: true },
  { path: 'connections', label: 'Connections', tag: 'hub-connections', ready: true },
  { path: 'clients', label: 'Clients', tag: 'hub-clients', ready: true },
  { path: 'events', label: 'Events', tag: 'hub-events', ready: true },
  { path: 'settings', label: 'Settings', tag: 'hub-settings', ready: true },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav-list');
const statusEl = document.getElementById('conn-status');
const signedOutEl = document.getElementById('signed-out');
const signOutBtn = document.getElementById('sign-out');
const approvalsBadge = document.getElementById('approvals-badge');

let current = '';

function buildNav() {
  replace(nav, VIEWS.filter((v) => v.ready).map((v) =>
    h('li', {}, h('a', { href: `#/${v.path}`, dataset: { view: v.path } }, v.label))));
}

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'projects' && parts[1]) return { view: 'projects', projectId: parts[1] };
  // The workers view keeps one element and shows the project named in the address.
  if (parts[0] === 'workers') return { view: 'workers', param: parts[1] ?? null };
  const view = VIEWS.find((v) => v.ready && v.path === parts[0]);
  return { view: view ? view.path : 'overview' };
}

function route() {
  const r = parseRoute();
  const key = r.projectId ? `projects/${r.projectId}` : r.view;
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.view === r.view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (key === current) {
    if (r.param) main.firstElementChild?.setAttribute('project-id', r.param);
    return;
  }
  const first = current === '';
  current = key;
  let el;
  if (r.projectId) {
    el = document.createElement('hub-project');
    el.setAttribute('project-id', r.projectId);
  } else {
    el = document.createElement(VIEWS.find((v) => v.path === r.view).tag);
    if (r.param) el.setAttribute('project-id', r.param);
    document.title = `${VIEWS.find((v) => v.path === r.view).label} · Semantest Hub`;
  }
  main.replaceChildren(el);
  main.dataset.view = r.projectId ? 'project' : r.view;
  // Move focus to the new view's heading so keyboard and screen reader users follow along
  // (not on the first load, where the browser's own focus order is expected).
  if (!first) el.querySelector('h1')?.focus();
}

/**
 * The top bar's badge, on every view: how many tool calls wait for an answer; it links to
 * the oldest one on its project's page.
 */
function renderApprovalsBadge() {
  const waiting = approvals.list();
  const n = waiting.length;
  approvalsBadge.hidden = n === 0;
  approvalsBadge.dataset.count = String(n);
  if (!n) return;
  const first = waiting[0];
  approvalsBadge.textContent = `${n} ${n === 1 ? 'approval' : 'approvals'} waiting`;
  approvalsBadge.href = `#/projects/${encodeURIComponent(first.project_id)}/approval/${encodeURIComponent(first.id)}`;
  const name = store.projects.get(first.project_id)?.name;
  approvalsBadge.title = `${first.tool_name}${name ? ` in ${name}` : ''} asks for permission`;
}

/** The status area: connected, connecting, reconnecting (with countdown) or signed out. */
let countdown = 0;
function renderState(detail) {
  clearInterval(countdown);
  const { state } = detail;
  document.body.dataset.conn = state;
  statusEl.className = `conn conn-${state}`;
  signedOutEl.hidden = state !== 'signed-out';
  signOutBtn.hidden = state !== 'connected';
  main.hidden = state === 'signed-out';
  switch (state) {
    case 'connected': {
      const v = detail.hello?.server?.version;
      replace(statusEl, h('span', { class: 'dot', 'aria-hidden': 'true' }), `Connected${v ? ` · v${v}` : ''}`);
      break;
    }
    case 'connecting':
      replace(statusEl, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Connecting…');
      break;
    case 'reconnecting': {
      // The countdown is hidden from screen readers: the live region would announce every tick.
      const count = h('span', { 'aria-hidden': 'true' });
      replace(statusEl, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Reconnecting…', count);
      if (detail.retryAt) {
        const tick = () => {
          const s = Math.ceil((detail.retryAt - Date.now()) / 1000);
          count.textContent = s > 0 ? ` (next try in ${s} s)` : '';
        };
        tick();
        countdown = setInterval(tick, 1000);
      }
      break;
    }
    case 'signed-out':
      replace(statusEl, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Signed out');
      break;
    default:
      replace(statusEl, state);
  }
}

/**
 * Signs this browser out: the hub ends the session (closing its connections) and deletes
 * the cookie. Only the dashboard's own page may (the hub checks the Origin).
 */
async function signOut() {
  signOutBtn.disabled = true;
  try {
    const res = await fetch('/session/sign-out', { method: 'POST', credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) throw new Error(`the hub answered ${res.status}`);
    rpc.signedOut('signed out');
  } catch (err) {
    replace(statusEl, h('span', { class: 'dot', 'aria-hidden': 'true' }), `Could not sign out: ${err?.message ?? err}`);
  } finally {
    signOutBtn.disabled = false;
  }
}

function init() {
  buildNav();
  document.getElementById('skip-link').addEventListener('click', (ev) => {
    ev.preventDefault();
    (main.querySelector('h1') ?? main).focus();
  });
  document.getElementById('retry-signin').addEventListener('click', () => rpc.retry());
  signOutBtn.addEventListener('click', () => signOut());
  window.addEventListener('hashchange', route);
  rpc.addEventListener('state', (ev) => renderState(ev.detail));
  approvals.addEventListener('change', (ev) => { if (ev.detail.approvals) renderApprovalsBadge(); });
  store.addEventListener('projects', () => renderApprovalsBadge());
  approvals.start(new AbortController().signal);
  route();
  rpc.start();
}

init();

// For debugging from the console and for the browser tests; nothing depends on it.
window.semantestHub = { rpc, store, approvals };
