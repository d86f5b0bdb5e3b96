// <hub-follow-ups project-id="…">: the project's queued follow-ups (docs/agents.md#follow-ups),
// oldest first, each editable and cancellable until the agent takes it. The prompt box of
// the project page adds to this queue while the agent works (agent.send, mode `queue`).
// An item is built once and kept while it is queued, so an edit in progress survives
// live updates.

import { h, replace } from '../dom.js';
import { time } from '../format.js';
import { approvals, listen, errorText } from '../store.js';

class FollowUps extends HTMLElement {
  connectedCallback() {
    this.projectId = this.getAttribute('project-id');
    this.abort = new AbortController();
    const signal = this.abort.signal;
    /** @type {Map<string, {el: HTMLElement, text: HTMLElement, m: any}>} */
    this.items = new Map();
    this.className = 'follow-ups';
    this.heading = h('h2', { id: `queue-h-${this.projectId}` }, 'Queued follow-ups');
    this.list = h('ol', { class: 'queue-list' });
    this.msg = h('p', { class: 'inline-msg', role: 'status' });
    this.setAttribute('role', 'region');
    this.setAttribute('aria-labelledby', this.heading.id);
    replace(this, this.heading, this.list, this.msg);
    listen(approvals, 'change', (ev) => { if (ev.detail.queue === this.projectId) this.render(); }, signal);
    approvals.watchQueue(this.projectId, signal);
    this.render();
  }

  disconnectedCallback() {
    this.abort.abort();
  }

  render() {
    const queue = approvals.queue(this.projectId);
    const ids = new Set(queue.map((m) => m.id));
    for (const [id, it] of this.items) {
      if (!ids.has(id)) {
        const hadFocus = it.el.contains(document.activeElement);
        it.el.remove();
        this.items.delete(id);
        if (hadFocus) (this.list.querySelector('button') ?? document.getElementById('prompt-input'))?.focus();
      }
    }
    for (const m of queue) {
      const it = this.items.get(m.id);
      if (it) {
        it.m = m;
        it.text.textContent = m.text;
        this.list.append(it.el); // keeps the queue's order
      } else {
        const built = this.buildItem(m);
        this.items.set(m.id, built);
        this.list.append(built.el);
      }
    }
    this.hidden = queue.length === 0;
    this.heading.textContent = `Queued follow-ups (${queue.length})`;
    this.dataset.count = String(queue.length);
  }

  buildItem(m) {
    const text = h('p', { class: 'queue-text' }, m.text);
    const err = h('p', { class: 'field-error', role: 'alert' });
    const editor = h('textarea', { rows: '2', 'aria-label': 'Edit the follow-up' });
    const saveBtn = h('button', { type: 'button', class: 'primary', onclick: () => save() }, 'Save');
    const closeBtn = h('button', { type: 'button', onclick: () => close() }, 'Keep as it was');
    const editBox = h('div', { class: 'queue-edit', hidden: true }, editor, h('div', { class: 'toolbar' }, saveBtn, closeBtn));
    const editBtn = h('button', { type: 'button', onclick: () => open() }, 'Edit');
    const cancelBtn = h('button', { type: 'button', class: 'danger', onclick: () => cancel() }, 'Cancel');
    const el = h('li', { class: 'queue-item', dataset: { messageId: m.id } },
      text,
      h('p', { class: 'hint muted' }, `Queued ${time(m.created_at)}`),
      h('div', { class: 'toolbar' }, editBtn, cancelBtn),
      editBox, err);
    const item = { el, text, m };
    const open = () => {
      editor.value = item.m.text;
      editBox.hidden = false;
      text.hidden = true;
      editor.focus();
    };
    const close = () => {
      editBox.hidden = true;
      text.hidden = false;
      editBtn.focus();
    };
    const gone = (e) => {
      if (e.kind === 'MESSAGE_NOT_QUEUED') {
        this.msg.textContent = `That follow-up was already ${e.data?.state ?? 'taken'}.`;
        return true;
      }
      err.textContent = errorText(e);
      return false;
    };
    const save = async () => {
      const value = editor.value.trim();
      if (!value) {
        err.textContent = 'A follow-up cannot be empty; cancel it instead.';
        return;
      }
      err.textContent = '';
      saveBtn.disabled = true;
      try {
        await approvals.updateQueued(item.m.id, value);
        close();
      } catch (e) {
        if (gone(e)) approvals.loadQueue(this.projectId);
      } finally {
        saveBtn.disabled = false;
      }
    };
    const cancel = async () => {
      err.textContent = '';
      cancelBtn.disabled = true;
      try {
        await approvals.cancelQueued(item.m.id);
        this.msg.textContent = 'Follow-up cancelled.';
      } catch (e) {
        if (gone(e)) approvals.loadQueue(this.projectId);
        cancelBtn.disabled = false;
      }
    };
    editor.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        save();
      } else if (ev.key === 'Escape') {
        ev.preventDefault();
        close();
      }
    });
    return item;
  }
}

customElements.define('hub-follow-ups', FollowUps);
