// <hub-connections>: every client connected to the hub, with a LOCAL or PUBLIC badge.
// Loads hub.connections, then follows hub.connection notifications (opened/closed/updated).

import { h, replace } from '../dom.js';
import { dateTime, ago, number } from '../format.js';
import { rpc, store, listen, onNotify, errorText } from '../store.js';

class ConnectionsView extends HTMLElement {
  connectedCallback() {
    this.abort = new AbortController();
    const signal = this.abort.signal;
    /** @type {Map<string, any>} */
    this.conns = new Map();
    this.loaded = false;
    this.tableEl = h('div', { class: 'table-wrap' });
    this.msg = h('p', { class: 'inline-msg', role: 'status' });
    replace(this,
      h('header', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Connections'),
        h('p', { class: 'muted' }, 'Clients connected to this hub right now. LOCAL clients run on this machine; PUBLIC ones reach the hub from elsewhere.')),
      this.msg,
      this.tableEl);
    onNotify('hub.connection', (p) => this.onEvent(p), signal);
    listen(store, 'session', () => this.load(), signal);
    this.timer = setInterval(() => this.render(), 30_000); // keep "since" fresh
    if (rpc.state === 'connected') this.load();
    else this.render();
  }

  disconnectedCallback() {
    this.abort.abort();
    clearInterval(this.timer);
  }

  async load() {
    try {
      const res = await rpc.request('hub.connections');
      this.conns = new Map(res.connections.map((c) => [c.id, c]));
      this.loaded = true;
      this.msg.textContent = '';
    } catch (err) {
      this.msg.textContent = `Could not list connections: ${errorText(err)}`;
    }
    this.render();
  }

  onEvent(p) {
    const c = p?.connection;
    if (!c?.id) return;
    if (p.event === 'closed') this.conns.delete(c.id);
    else this.conns.set(c.id, { ...this.conns.get(c.id), ...c });
    this.render();
  }

  render() {
    if (!this.loaded) {
      replace(this.tableEl, h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    const me = store.hello?.connection_id;
    const conns = [...this.conns.values()].sort((a, b) => String(a.connected_at).localeCompare(String(b.connected_at)));
    if (!conns.length) {
      replace(this.tableEl, h('p', { class: 'muted empty' }, 'No clients connected.'));
      return;
    }
    const cols = ['Where', 'Role', 'Name', 'Origin', 'Address', 'Connected', 'In', 'Out'];
    replace(this.tableEl, h('table', { class: 'connections' },
      h('caption', { class: 'visually-hidden' }, `${conns.length} connected clients`),
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', class: c === 'In' || c === 'Out' ? 'num' : null }, c)))),
      h('tbody', {}, conns.map((c) => h('tr', { dataset: { connectionId: c.id } },
        h('td', {}, h('span', { class: `badge where-${String(c.badge).toLowerCase()}`, dataset: { badge: c.badge } }, c.badge ?? '?')),
        h('td', {}, c.role ?? '—'),
        h('th', { scope: 'row' }, c.name || '—', c.id === me ? h('span', { class: 'muted' }, ' (this window)') : null),
        h('td', { class: 'mono' }, c.origin || '—'),
        h('td', { class: 'mono' }, c.remote_addr || '—'),
        h('td', { title: dateTime(c.connected_at) }, ago(c.connected_at)),
        h('td', { class: 'num' }, number(c.messages_in)),
        h('td', { class: 'num' }, number(c.messages_out)))))));
  }
}

customElements.define('hub-connections', ConnectionsView);
