// <hub-token-create>: a form on the Clients panel that creates a client token by hand
// (client.create): a name, the scopes to grant and, for a browser client, the one Origin
// it may use. The token is shown once, with Copy; the hub keeps only its hash, so it
// cannot be shown again. The new client then appears under Paired clients
// (client.changed).

import { h, replace } from '../dom.js';
import { rpc, listen } from '../store.js';
import { SCOPES, DEFAULT_SCOPES, clientErrorText } from '../clients-store.js';

class TokenCreate extends HTMLElement {
  connectedCallback() {
    this.abort = new AbortController();
    this.build();
    listen(rpc, 'state', () => this.sync(), this.abort.signal);
    this.sync();
  }

  disconnectedCallback() {
    this.abort.abort();
  }

  build() {
    this.nameInput = h('input', { id: 'token-name', name: 'name', required: true, maxlength: '100', autocomplete: 'off', placeholder: 'ci-runner' });
    this.originInput = h('input', { id: 'token-origin', name: 'origin', autocomplete: 'off', placeholder: 'chrome-extension://… (optional)' });
    this.boxes = SCOPES.map((s) => h('input', {
      type: 'checkbox', id: `token-scope-${s.id.replace(/[^a-z]/g, '-')}`, name: 'scopes', value: s.id,
      checked: DEFAULT_SCOPES.includes(s.id),
    }));
    this.error = h('p', { class: 'field-error', role: 'alert' });
    this.submit = h('button', { type: 'submit', class: 'primary' }, 'Create token');
    this.result = h('div', { class: 'token-result', role: 'status' });
    this.form = h('form', { class: 'token-create', novalidate: true, onsubmit: (ev) => { ev.preventDefault(); this.create(); } },
      h('div', { class: 'field' }, h('label', { for: 'token-name' }, 'Name'), this.nameInput),
      h('fieldset', { class: 'scopes' }, h('legend', {}, 'Scopes'),
        SCOPES.map((s, i) => h('div', { class: 'scope' }, this.boxes[i],
          h('label', { for: this.boxes[i].id }, h('span', { class: 'mono' }, s.id), ` — ${s.text}`)))),
      h('div', { class: 'field' }, h('label', { for: 'token-origin' }, 'Origin'), this.originInput,
        h('p', { class: 'muted' }, 'For a browser client: the token then works only from this exact origin. Leave empty for a program.')),
      this.error,
      h('div', {}, this.submit));
    replace(this, this.form, this.result);
  }

  sync() {
    this.submit.disabled = this.busy || rpc.state !== 'connected';
  }

  async create() {
    this.error.textContent = '';
    const name = this.nameInput.value.trim();
    const scopes = this.boxes.filter((b) => b.checked).map((b) => b.value);
    const origin = this.originInput.value.trim();
    if (!name) {
      this.error.textContent = 'Give the token a name.';
      this.nameInput.focus();
      return;
    }
    if (!scopes.length) {
      this.error.textContent = 'Choose at least one scope.';
      this.boxes[0].focus();
      return;
    }
    this.busy = true;
    this.sync();
    try {
      const params = { name, scopes };
      if (origin) params.origin = origin;
      const res = await rpc.request('client.create', params);
      this.showToken(res.client, res.token);
      this.form.reset();
      this.boxes.forEach((b) => { b.checked = DEFAULT_SCOPES.includes(b.value); });
    } catch (err) {
      this.error.textContent = clientErrorText(err);
      this.nameInput.focus();
    } finally {
      this.busy = false;
      this.sync();
    }
  }

  /** Shows the new token once, with Copy and Done (which forgets it). */
  showToken(client, token) {
    const value = h('input', { class: 'mono token-value', readonly: true, value: token, 'aria-label': `Token of ${client?.name ?? 'the new client'}`, size: '66' });
    const copied = h('span', { class: 'muted', role: 'status' });
    const copy = h('button', {
      type: 'button', dataset: { action: 'copy-token' },
      onclick: async () => {
        value.select();
        try {
          await navigator.clipboard.writeText(token);
          copied.textContent = 'Copied.';
        } catch {
          copied.textContent = 'Select the token and copy it (Ctrl+C).';
        }
      },
    }, 'Copy');
    const done = h('button', { type: 'button', class: 'subtle', onclick: () => { replace(this.result); this.nameInput.focus(); } }, 'Done');
    replace(this.result,
      h('p', {}, `Created ${client?.name ?? 'the client'} (${client?.id ?? ''}) with ${(client?.scopes ?? []).join(', ')}. `,
        h('strong', {}, 'Copy the token now: it is shown only this once.')),
      h('div', { class: 'token-row' }, value, copy, done, copied));
    value.focus();
    value.select();
  }
}

customElements.define('hub-token-create', TokenCreate);
