// <hub-settings>: the hub's configuration, read-only, with where each value comes from
// (hub.config), desktop-only settings when the dashboard runs inside the app window, and
// Sign out everywhere.

import { h, replace, kv } from '../dom.js';
import { rpc, listen, store, errorText } from '../store.js';
import { desktopShell } from '../desktop.js';

const SOURCE_TEXT = {
  default: 'built-in default',
  file: 'config file',
  env: 'environment variable',
  flag: 'command-line flag',
};

class SettingsView extends HTMLElement {
  connectedCallback() {
    this.abort = new AbortController();
    this.values = null;
    this.msg = h('p', { class: 'inline-msg', role: 'status' });
    this.tableEl = h('div', { class: 'table-wrap' });
    this.desktopEl = h('div');
    replace(this,
      h('header', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Settings')),
      this.desktopEl,
      this.renderSessions(),
      h('section', { 'aria-labelledby': 'cfg-h' },
        h('h2', { id: 'cfg-h' }, 'Hub configuration'),
        h('p', { class: 'muted' }, 'Read-only. Change a value in the config file, an environment variable or a command-line flag, then restart the hub.'),
        this.msg,
        this.tableEl));
    listen(store, 'session', () => this.load(), this.abort.signal);
    this.renderDesktop();
    if (rpc.state === 'connected') this.load();
    else this.render();
  }

  disconnectedCallback() {
    this.abort.abort();
  }

  async load() {
    try {
      const res = await rpc.request('hub.config');
      this.values = res.values ?? [];
      this.files = res;
      this.msg.textContent = '';
    } catch (err) {
      this.msg.textContent = `Could not read the configuration: ${errorText(err)}`;
    }
    this.render();
  }

  render() {
    if (!this.values) {
      replace(this.tableEl, h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    const values = [...this.values].sort((a, b) => a.key.localeCompare(b.key));
    const f = this.files ?? {};
    const places = [['Config file', f.config_file === null ? 'none (built-in defaults)' : f.config_file], ['Data', f.data_dir], ['Logs', f.log_dir]]
      .filter(([, v]) => v !== undefined);
    replace(this.tableEl,
      places.length ? h('dl', { class: 'kv places' }, places.map(([k, v]) => kv(k, h('span', { class: 'mono' }, v)))) : null,
      durability(values),
      h('table', { class: 'config' },
      h('thead', {}, h('tr', {}, ['Setting', 'Value', 'Source'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, values.map((v) => h('tr', { dataset: { key: v.key } },
        h('th', { scope: 'row', class: 'mono' }, v.key),
        h('td', { class: 'mono' }, display(v.value)),
        h('td', {}, h('span', { class: `badge src-${v.source}`, title: SOURCE_TEXT[v.source] ?? '' }, v.source)))))));
  }

  /**
   * Sign out everywhere: ends every dashboard sign-in (every browser and the app window),
   * this one included. Over HTTP, since this page's own connection is among those closed.
   */
  renderSessions() {
    const status = h('p', { class: 'inline-msg', role: 'status' });
    const button = h('button', { id: 'sign-out-everywhere', type: 'button', class: 'danger' }, 'Sign out everywhere');
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const res = await fetch('/session/sign-out-everywhere', { method: 'POST', credentials: 'same-origin', cache: 'no-store' });
        if (!res.ok) throw new Error(`the hub answered ${res.status}`);
        rpc.signedOut('signed out everywhere');
      } catch (err) {
        status.textContent = `Could not sign out: ${err?.message ?? err}`;
      } finally {
        button.disabled = false;
      }
    });
    return h('section', { class: 'card', 'aria-labelledby': 'sessions-h' },
      h('h2', { id: 'sessions-h' }, 'Sign-in'),
      h('p', { class: 'muted' }, 'Ends the dashboard sign-in in every browser and in the app window, this one included. Each must open a new sign-in link from the tray or from semantest-hub dashboard.'),
      h('p', {}, button),
      status);
  }

  /** Desktop-only settings; shown only in the app window (see desktop.js). */
  renderDesktop() {
    const shell = desktopShell();
    if (!shell) {
      this.desktopEl.hidden = true;
      return;
    }
    const toggle = h('input', { id: 'start-at-login', type: 'checkbox', role: 'switch', disabled: true });
    const status = h('p', { class: 'inline-msg', role: 'status' });
    toggle.addEventListener('change', async () => {
      toggle.disabled = true;
      try {
        toggle.checked = await shell.setStartAtLogin(toggle.checked);
        status.textContent = toggle.checked ? 'The hub will start when you log in.' : 'The hub will not start at login.';
      } catch (err) {
        toggle.checked = !toggle.checked;
        status.textContent = `Could not change this: ${err?.message ?? err}`;
      } finally {
        toggle.disabled = false;
      }
    });
    shell.getStartAtLogin().then((on) => {
      toggle.checked = on;
      toggle.disabled = false;
    }, (err) => {
      status.textContent = `Could not read this setting: ${err?.message ?? err}`;
    });
    replace(this.desktopEl, h('section', { class: 'card', 'aria-labelledby': 'desk-h' },
      h('h2', { id: 'desk-h' }, 'This computer'),
      h('div', { class: 'switch-row' }, toggle, h('label', { for: 'start-at-login' }, 'Start at login')),
      status));
  }
}

/**
 * What an acknowledged write survives, from storage.lose_acknowledged_writes_on_power_cut
 * (docs/reliability.md): said in words, since the setting trades safety for speed.
 */
function durability(values) {
  const setting = values.find((v) => v.key === 'storage.lose_acknowledged_writes_on_power_cut');
  if (!setting) return null;
  const risky = setting.value === true;
  return h('p', { class: risky ? 'inline-msg warn' : 'muted', dataset: { durability: risky ? 'process_crash' : 'power_cut' } },
    risky
      ? 'Durability: writes are acknowledged before they reach the disk; a power cut or a system crash may lose the last ones (storage.lose_acknowledged_writes_on_power_cut).'
      : 'Durability: every write is on disk before it is acknowledged, so it survives a power cut.');
}

function display(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v || '""';
  return JSON.stringify(v);
}

customElements.define('hub-settings', SettingsView);
