// <hub-clients> (#/clients): who may talk to the hub. It renders a ClientsStore
// (../clients-store.js), which holds the state and talks to the hub:
//
// - Pairing requests: each with its code (to compare with the one the extension shows),
//   name, origin, address and time left; Approve with the scopes ticked (events by
//   default) or Deny. A request's controls are built once and kept while it is pending,
//   so ticked boxes and focus survive live updates and the countdown.
// - Paired clients: name, origin, scopes, created, last used, live connections, and
//   Revoke after an in-page confirmation.
// - Live connections, each with its LOCAL or PUBLIC badge.

import { h, replace } from '../dom.js';
import { ago, dateTime, number } from '../format.js';
import { rpc, store, listen } from '../store.js';
import { ClientsStore, SCOPES, DEFAULT_SCOPES } from '../clients-store.js';
import './token-create.js';

/** Whether focus fell to the page (its element was removed) rather than on a control. */
const isLost = (active) => !active || active === document.body;

/** "1:05" for 65,000 ms. */
export function timeLeft(ms) {
  const s = Math.ceil(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

class ClientsView extends HTMLElement {
  connectedCallback() {
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.clients = new ClientsStore();
    /** request id → its element and controls */
    this.requestEls = new Map();
    /** the paired client whose Revoke asks for confirmation */
    this.confirming = null;
    /** client id → Revoke's error text */
    this.revokeErrors = new Map();
    this.build();
    listen(this.clients, 'change', () => this.queueRender(), signal);
    listen(rpc, 'state', () => this.queueRender(), signal);
    this.clients.start(signal);
    // The countdown, and "connected … ago", tick while the panel is open.
    this.timer = setInterval(() => this.tick(), 1000);
    this.render();
  }

  disconnectedCallback() {
    this.abort.abort();
    this.abort = null;
    clearInterval(this.timer);
    cancelAnimationFrame(this.raf);
    this.raf = 0;
  }

  build() {
    this.msgEl = h('p', { class: 'inline-msg', role: 'status' });
    this.requestsMsg = h('p', { class: 'inline-msg', role: 'status' });
    this.requestsEl = h('div');
    this.clientsMsg = h('p', { class: 'inline-msg', role: 'status' });
    // Wide tables scroll sideways; the region takes focus so the keyboard can scroll it.
    this.clientsEl = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'paired-h' });
    this.connsMsg = h('p', { class: 'inline-msg', role: 'status' });
    this.connsEl = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'live-h' });
    replace(this,
      h('header', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Clients'),
        h('p', { class: 'muted' }, 'Extensions and programs that may use this hub. Each paired client holds its own token, limited to the scopes you grant; revoking it disconnects it at once.')),
      this.msgEl,
      h('section', { class: 'card', 'aria-labelledby': 'pairing-h' },
        h('h2', { id: 'pairing-h', tabindex: '-1' }, 'Pairing requests'),
        this.requestsMsg,
        this.requestsEl),
      h('section', { class: 'card', 'aria-labelledby': 'create-token-h' },
        h('h2', { id: 'create-token-h', tabindex: '-1' }, 'Create a token'),
        h('hub-token-create')),
      h('section', { class: 'card', 'aria-labelledby': 'paired-h' },
        h('h2', { id: 'paired-h', tabindex: '-1' }, 'Paired clients'),
        this.clientsMsg,
        this.clientsEl),
      h('section', { class: 'card', 'aria-labelledby': 'live-h' },
        h('h2', { id: 'live-h', tabindex: '-1' }, 'Live connections'),
        this.connsMsg,
        this.connsEl));
  }

  queueRender() {
    if (this.raf || !this.abort) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      if (this.abort) this.render();
    });
  }

  render() {
    this.msgEl.textContent = this.clients.message;
    this.renderRequests();
    this.renderClients();
    this.renderConnections();
  }

  tick() {
    const now = Date.now();
    for (const r of this.clients.pending(now)) this.requestEls.get(r.id)?.showTime(r.msLeft);
    if (now - (this.lastSlowTick ?? 0) >= 30_000) {
      this.lastSlowTick = now;
      this.renderConnections();
    }
  }

  // ---- pairing requests ----

  renderRequests() {
    const c = this.clients;
    this.requestsMsg.textContent = c.errors.requests;
    if (!c.loaded.requests) {
      this.requestEls.clear();
      replace(this.requestsEl, c.errors.requests ? null : h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    const pending = c.pending();
    const ids = new Set(pending.map((r) => r.id));
    for (const id of this.requestEls.keys()) if (!ids.has(id)) this.requestEls.delete(id);
    if (!pending.length) {
      replace(this.requestsEl, h('p', { class: 'muted empty' },
        'No pairing requests. When an extension asks to pair, it shows up here with a 6-digit code: approve it only if the extension shows the same code.'));
      return;
    }
    const connected = rpc.state === 'connected';
    const items = pending.map((r) => {
      let item = this.requestEls.get(r.id);
      if (!item) {
        item = this.requestItem(r);
        this.requestEls.set(r.id, item);
      }
      item.showTime(r.msLeft);
      item.setEnabled(connected);
      return item.el;
    });
    // Keep the list element (and so the focus inside it) when only the items change.
    let list = this.requestsEl.querySelector('ul.pair-list');
    if (!list) {
      list = h('ul', { class: 'pair-list' });
      replace(this.requestsEl, list);
    }
    items.forEach((el, i) => {
      if (list.children[i] !== el) list.insertBefore(el, list.children[i] ?? null);
    });
    while (list.children.length > items.length) list.lastElementChild.remove();
  }

  /** The element of one pending request, with its scope choice, Approve and Deny. */
  requestItem(r) {
    const base = `pair-${r.id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const boxes = SCOPES.map((s) => h('input', {
      type: 'checkbox', id: `${base}-${s.id.replace(/[^a-z]/g, '-')}`, name: 'scopes', value: s.id,
      checked: DEFAULT_SCOPES.includes(s.id),
    }));
    const scopes = h('fieldset', { class: 'scopes' },
      h('legend', {}, `Scopes to grant ${r.name || 'this client'}`),
      SCOPES.map((s, i) => h('div', { class: 'scope' },
        boxes[i],
        h('label', { for: boxes[i].id }, h('span', { class: 'mono' }, s.id), ` — ${s.text}`))));
    const left = h('dd', { dataset: { field: 'time-left' } });
    const asked = h('dd', { title: dateTime(r.created_at) });
    const error = h('p', { class: 'field-error', role: 'alert' });
    const approve = h('button', { type: 'button', class: 'primary', dataset: { action: 'approve' } }, 'Approve');
    const deny = h('button', { type: 'button', class: 'danger', dataset: { action: 'deny' } }, 'Deny');
    const label = r.name || 'this client';
    approve.setAttribute('aria-label', `Approve ${label}`);
    deny.setAttribute('aria-label', `Deny ${label}`);
    const el = h('li', { class: 'pair-request', dataset: { requestId: r.id }, 'aria-labelledby': `${base}-h` },
      h('h3', { id: `${base}-h` }, r.name || 'Unnamed client'),
      h('dl', { class: 'kv pair-meta' },
        h('div', {}, h('dt', {}, 'Code'), h('dd', { class: 'pair-code mono', dataset: { field: 'code' } }, r.code)),
        h('div', {}, h('dt', {}, 'Origin'), h('dd', { class: 'mono', dataset: { field: 'origin' } }, r.origin || '—')),
        h('div', {}, h('dt', {}, 'Address'), h('dd', { class: 'mono', dataset: { field: 'address' } }, r.address || '—')),
        h('div', {}, h('dt', {}, 'Asked'), asked),
        h('div', {}, h('dt', {}, 'Time left'), left)),
      scopes,
      error,
      h('div', { class: 'pair-actions' }, approve, deny));
    let expired = false;
    let busy = false;
    let enabled = true;
    const sync = () => {
      approve.disabled = busy || expired || !enabled;
      deny.disabled = busy || !enabled;
    };
    const run = async (action) => {
      busy = true;
      sync();
      error.textContent = '';
      const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
      const text = action === 'approve' ? await this.clients.approve(r.id, chosen) : await this.clients.deny(r.id);
      busy = false;
      sync();
      if (text) {
        error.textContent = text;
        (action === 'approve' && text.startsWith('Choose') ? boxes[0] : el.querySelector(`[data-action="${action}"]`))?.focus();
        return;
      }
      // Move focus only if it was on this request (now gone) or fell to the page: the
      // reply can arrive after the user has moved on to another control.
      const stayed = el.contains(document.activeElement) || (!el.isConnected && isLost(document.activeElement));
      this.render();
      if (stayed) this.querySelector('#pairing-h')?.focus();
    };
    approve.addEventListener('click', () => run('approve'));
    deny.addEventListener('click', () => run('deny'));
    return {
      el,
      showTime(ms) {
        expired = ms <= 0;
        left.textContent = expired ? 'expired' : timeLeft(ms);
        asked.textContent = ago(r.created_at);
        el.classList.toggle('expired', expired);
        sync();
      },
      setEnabled(on) {
        enabled = on;
        sync();
      },
    };
  }

  // ---- paired clients ----

  renderClients() {
    const c = this.clients;
    this.clientsMsg.textContent = c.errors.clients;
    if (!c.loaded.clients) {
      replace(this.clientsEl, c.errors.clients ? null : h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    const paired = c.paired();
    if (this.confirming && !c.clients.has(this.confirming)) this.confirming = null;
    if (!paired.length) {
      replace(this.clientsEl, h('p', { class: 'muted empty' },
        'No paired clients. An extension appears here once you approve its pairing request; ',
        h('code', {}, 'semantest-hub token create'), ' makes a token by hand.'));
      return;
    }
    const focus = this.focusedAction(this.clientsEl);
    const connected = rpc.state === 'connected';
    const cols = ['Name', 'Origin', 'Scopes', 'Created', 'Last used', 'Connected', 'Actions'];
    replace(this.clientsEl, h('table', { class: 'clients' },
      h('caption', { class: 'visually-hidden' }, `${paired.length} paired clients`),
      h('thead', {}, h('tr', {}, cols.map((x) => h('th', { scope: 'col', class: x === 'Connected' ? 'num' : null }, x)))),
      h('tbody', {}, paired.map((p) => h('tr', { dataset: { clientId: p.id } },
        h('th', { scope: 'row' }, p.name || '—', p.kind ? h('span', { class: 'muted' }, ` (${p.kind})`) : null),
        h('td', { class: 'mono' }, p.origin || 'any'),
        h('td', { dataset: { field: 'scopes' } }, (p.scopes ?? []).length
          ? (p.scopes ?? []).map((s) => h('span', { class: 'badge scope-badge' }, s))
          : h('span', { class: 'muted' }, 'none')),
        h('td', { title: dateTime(p.created_at) }, p.created_at ? ago(p.created_at) : '—'),
        h('td', { title: p.last_used_at ? dateTime(p.last_used_at) : null },
          p.last_used_at ? ago(p.last_used_at) : h('span', { class: 'muted' }, 'never'),
          p.last_addr ? h('span', { class: 'muted mono' }, ` from ${p.last_addr}`) : null),
        h('td', { class: 'num', dataset: { field: 'connected' } }, number(p.connected ?? 0)),
        h('td', { class: 'actions' }, this.revokeControls(p, connected)))))));
    if (focus) (this.clientsEl.querySelector(`[data-client-id="${CSS.escape(focus.id)}"] [data-action="${focus.action}"]`) ?? this.querySelector('#paired-h'))?.focus();
  }

  revokeControls(p, connected) {
    const error = this.revokeErrors.get(p.id);
    const name = p.name || p.id;
    const controls = this.confirming === p.id
      ? h('div', { class: 'confirm', role: 'group', 'aria-label': `Confirm revoking ${name}` },
        h('span', {}, `Revoke ${name}? Its token stops working and its connections close now.`),
        h('button', { type: 'button', class: 'danger', dataset: { action: 'confirm-revoke' }, disabled: !connected, onclick: () => this.revoke(p) }, 'Revoke client'),
        h('button', { type: 'button', dataset: { action: 'keep' }, onclick: () => this.keep(p) }, 'Keep'))
      : h('button', {
        type: 'button', class: 'subtle', dataset: { action: 'revoke' }, disabled: !connected,
        'aria-label': `Revoke ${name}`, onclick: () => this.askRevoke(p),
      }, 'Revoke');
    return [controls, error ? h('p', { class: 'field-error', role: 'alert' }, error) : null];
  }

  askRevoke(p) {
    this.confirming = p.id;
    this.revokeErrors.delete(p.id);
    this.renderClients();
    this.focusIn(p.id, 'keep');
  }

  keep(p) {
    this.confirming = null;
    this.renderClients();
    this.focusIn(p.id, 'revoke');
  }

  async revoke(p) {
    const text = await this.clients.revoke(p.id);
    this.confirming = null;
    if (text) this.revokeErrors.set(p.id, text);
    const row = this.clientsEl.querySelector(`[data-client-id="${CSS.escape(p.id)}"]`);
    const stayed = row ? row.contains(document.activeElement) : isLost(document.activeElement);
    this.render();
    if (!stayed) return;
    if (text && this.focusIn(p.id, 'revoke')) return;
    this.querySelector('#paired-h')?.focus();
  }

  focusIn(clientId, action) {
    const el = this.clientsEl.querySelector(`[data-client-id="${CSS.escape(clientId)}"] [data-action="${action}"]`);
    el?.focus();
    return Boolean(el);
  }

  /** The focused action button in `root`, to focus it again after a re-render. */
  focusedAction(root) {
    const el = document.activeElement;
    if (!el || !root.contains(el) || !el.dataset.action) return null;
    const row = el.closest('[data-client-id]');
    return row ? { id: row.dataset.clientId, action: el.dataset.action } : null;
  }

  // ---- live connections ----

  renderConnections() {
    const c = this.clients;
    this.connsMsg.textContent = c.errors.connections;
    if (!c.loaded.connections) {
      replace(this.connsEl, c.errors.connections ? null : h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    const me = store.hello?.connection_id;
    const live = c.live();
    if (!live.length) {
      replace(this.connsEl, h('p', { class: 'muted empty' }, 'No clients connected.'));
      return;
    }
    const names = new Map([...c.clients.values()].map((p) => [p.id, p.name]));
    const cols = ['Where', 'Role', 'Name', 'Client', 'Origin', 'Address', 'Connected'];
    replace(this.connsEl, h('table', { class: 'connections' },
      h('caption', { class: 'visually-hidden' }, `${live.length} live connections`),
      h('thead', {}, h('tr', {}, cols.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, live.map((x) => h('tr', { dataset: { connectionId: String(x.id) } },
        h('td', {}, h('span', { class: `badge where-${String(x.badge).toLowerCase()}`, dataset: { badge: x.badge } }, x.badge ?? '?')),
        h('td', {}, x.role ?? '—'),
        h('th', { scope: 'row' }, x.name || '—', x.id === me ? h('span', { class: 'muted' }, ' (this window)') : null),
        h('td', {}, x.client_id ? names.get(x.client_id) ?? x.client_id : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'mono' }, x.origin || '—'),
        h('td', { class: 'mono' }, x.remote_addr || '—'),
        h('td', { title: dateTime(x.connected_at) }, ago(x.connected_at)))))));
  }
}

customElements.define('hub-clients', ClientsView);
