// <hub-overview>: the hub's status, its health (GET /health) and live counts (hub.stats).

import { h, replace, kv } from '../dom.js';
import { bytes, percent, uptime, number } from '../format.js';
import { rpc, store, listen } from '../store.js';

/** How often /health is read again while the overview is open. */
const HEALTH_EVERY_MS = 30_000;

class OverviewView extends HTMLElement {
  connectedCallback() {
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.health = null;
    this.healthError = '';
    this.countsEl = h('div', { class: 'stat-grid' });
    this.hubEl = h('dl', { class: 'kv' });
    this.healthEl = h('dl', { class: 'kv' });
    this.agentEl = h('dl', { class: 'kv' });
    this.healthMsg = h('p', { class: 'inline-msg' });
    this.liveEl = h('p', { class: 'hint muted live-note' });
    replace(this,
      h('header', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Overview')),
      h('section', { 'aria-label': 'Counts' }, this.countsEl),
      h('div', { class: 'cards' },
        h('section', { class: 'card', 'aria-labelledby': 'ov-hub' }, h('h2', { id: 'ov-hub' }, 'Hub'), this.hubEl),
        h('section', { class: 'card', 'aria-labelledby': 'ov-health' }, h('h2', { id: 'ov-health' }, 'Health'), this.healthEl, this.healthMsg, this.liveEl),
        h('section', { class: 'card', 'aria-labelledby': 'ov-agent' }, h('h2', { id: 'ov-agent' }, 'Agent CLI'), this.agentEl)));

    listen(store, 'status', () => this.render(), signal);
    listen(store, 'session', () => this.loadHealth(), signal);
    listen(rpc, 'state', () => this.render(), signal);
    this.tick = setInterval(() => this.renderUptime(), 1000);
    this.healthTimer = setInterval(() => this.loadHealth(), HEALTH_EVERY_MS);
    this.loadHealth();
    this.render();
  }

  disconnectedCallback() {
    this.abort.abort();
    clearInterval(this.tick);
    clearInterval(this.healthTimer);
  }

  async loadHealth() {
    try {
      const res = await fetch('/health', { cache: 'no-store', credentials: 'same-origin', signal: this.abort.signal });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.health = await res.json();
      this.healthError = '';
    } catch (err) {
      if (this.abort.signal.aborted) return;
      this.healthError = `Could not read /health (${err.message}).`;
    }
    this.render();
  }

  render() {
    const s = store.status;
    const st = store.stats;
    const hl = this.health;
    const connected = rpc.state === 'connected';
    const counts = [
      ['Projects', s?.projects ?? hl?.projects, 'projects'],
      ['Clients', s?.connections ?? hl?.connections, 'connections'],
      ['Running agents', s?.running_agents ?? hl?.running_agents, 'running_agents'],
    ];
    replace(this.countsEl, counts.map(([label, value, key]) =>
      h('div', { class: 'stat', dataset: { stat: key } },
        h('span', { class: 'stat-value' }, number(value)),
        h('span', { class: 'stat-label' }, label))));

    this.uptimeDd = h('dd', { dataset: { field: 'uptime' } }, uptime(store.uptime() ?? hl?.uptime_s));
    replace(this.hubEl,
      kv('Status', h('span', { class: `badge ${connected ? 'ok' : 'warn'}` }, connected ? 'running' : rpc.state.replace('-', ' '))),
      kv('Product', s?.product ?? '—'),
      kv('Version', s?.version ?? hl?.version ?? '—'),
      kv('Port', s?.port ?? location.port),
      h('dt', {}, 'Uptime'), this.uptimeDd,
      kv('Mode', s?.mode ?? '—'),
      kv('Secret store', s?.secret_store ?? hl?.secret_store ?? '—'),
      kv('Instance', h('span', { class: 'mono' }, s?.instance_id ?? '—')));

    const cpu = st?.cpu_percent ?? hl?.cpu_percent;
    const memUsed = st?.memory_used_bytes ?? hl?.memory?.used_bytes;
    const memTotal = st?.memory_total_bytes ?? hl?.memory?.total_bytes;
    const rss = st?.process_rss_bytes ?? hl?.memory?.process_rss_bytes;
    const disk = hl?.disk;
    replace(this.healthEl,
      kv('Status', hl ? h('span', { class: `badge ${hl.status === 'ok' ? 'ok' : 'warn'}` }, hl.status) : '—'),
      kv('CPU', percent(cpu)),
      kv('Memory', memUsed !== undefined ? `${bytes(memUsed)} of ${bytes(memTotal)}` : '—'),
      kv('Hub process', rss !== undefined ? bytes(rss) : '—'),
      kv('Disk free', disk ? `${bytes(disk.available_bytes)} of ${bytes(disk.total_bytes)}` : '—'));
    this.healthMsg.textContent = this.healthError;
    this.liveEl.textContent = store.statsAt
      ? `CPU and memory live from the hub, last at ${store.statsAt.toLocaleTimeString(undefined, { hour12: false })}.`
      : 'Figures from /health; live updates start with the hub\'s next report.';
    this.liveEl.dataset.updates = String(store.statsCount ?? 0);

    const clis = s?.agent_clis ?? hl?.agent_clis ?? { claude: s?.agent_cli ?? hl?.agent_cli };
    const names = { claude: 'Claude Code CLI', codex: 'Codex CLI', gemini: 'Gemini CLI' };
    const settings = { claude: 'agent.cli_path', codex: 'agent.codex.cli_path', gemini: 'agent.gemini.cli_path' };
    const rows = [];
    for (const agent of ['claude', 'codex', 'gemini']) {
      if (!(agent in clis)) continue;
      const cli = clis[agent];
      rows.push(
        kv(names[agent], cli
          ? h('span', { class: `badge ${cli.found ? 'ok' : agent === 'claude' ? 'err' : 'warn'}` },
            cli.state === 'probing' ? 'probing' : cli.found ? 'found' : 'not found')
          : '—'),
        kv('Path', h('span', { class: 'mono' }, cli?.path ?? '—')),
        kv('Version', cli?.version ?? '—'));
    }
    replace(this.agentEl, ...rows);
    const missing = Object.entries(clis).filter(([, cli]) => cli && !cli.found).map(([agent]) => agent);
    if (missing.includes('claude')) {
      this.agentEl.append(h('dd', { class: 'hint wide' },
        'Install Claude Code, or set agent.cli_path in the hub\'s config, then restart the hub.'));
    }
    const optional = missing.filter((agent) => agent !== 'claude');
    if (optional.length) {
      this.agentEl.append(h('dd', { class: 'hint wide muted' },
        `Optional: install ${optional.map((a) => names[a]).join(' or ')} (or set `
        + `${optional.map((a) => settings[a]).join(' / ')}) to let a project run it.`));
    }
  }

  renderUptime() {
    if (this.uptimeDd) this.uptimeDd.textContent = uptime(store.uptime() ?? this.health?.uptime_s);
  }
}

customElements.define('hub-overview', OverviewView);
