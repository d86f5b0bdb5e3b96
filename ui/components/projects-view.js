// <hub-projects>: the registered projects, a form to add one by absolute path, and removal
// with an in-page confirmation step.

import { h, replace } from '../dom.js';
import { dateTime, shortId, number } from '../format.js';
import { rpc, store, listen, errorText } from '../store.js';

/** Plain words for project.create's validation errors, keyed on error.data.kind. */
export function createErrorText(err) {
  switch (err?.kind) {
    case 'INVALID_PATH':
      return `This folder can't be added: ${err.message || 'the path is not valid'}. Give the absolute path of an existing folder, such as /home/you/code/app.`;
    case 'PROJECT_EXISTS':
      return 'This folder is already a project.';
    case 'PROJECT_NESTED':
      return `Projects can't be nested: this folder is inside another project, or contains one.${err.message ? ` (${err.message})` : ''}`;
    case 'LIMIT_REACHED':
      return 'The hub has reached its project limit. Remove a project first, or raise limits.max_projects in the hub\'s settings.';
    case 'INVALID_PARAMS':
      return `The hub did not accept this: ${err.message}`;
    default:
      return errorText(err);
  }
}

class ProjectsView extends HTMLElement {
  connectedCallback() {
    this.abort = new AbortController();
    /** id of the project whose removal is being confirmed */
    this.confirming = null;
    this.build();
    listen(store, 'projects', () => this.renderList(), this.abort.signal);
    listen(rpc, 'state', () => this.renderList(), this.abort.signal);
    this.renderList();
    // Line counts are not pushed: read them afresh each time the list is shown.
    if (rpc.state === 'connected') store.refresh().catch(() => {});
  }

  disconnectedCallback() {
    this.abort.abort();
  }

  build() {
    this.pathInput = h('input', {
      id: 'project-path', name: 'path', type: 'text', required: true, autocomplete: 'off', spellcheck: 'false',
      placeholder: '/home/you/code/my-app', 'aria-describedby': 'project-path-hint project-path-error',
    });
    this.nameInput = h('input', { id: 'project-name', name: 'name', type: 'text', autocomplete: 'off', placeholder: 'my-app' });
    this.pathError = h('p', { id: 'project-path-error', class: 'field-error', role: 'alert' });
    this.addBtn = h('button', { type: 'submit', class: 'primary' }, 'Add project');
    this.form = h('form', { class: 'add-form', onsubmit: (ev) => { ev.preventDefault(); this.add(); } },
      h('div', { class: 'field grow' },
        h('label', { for: 'project-path' }, 'Folder path'),
        this.pathInput,
        h('p', { id: 'project-path-hint', class: 'hint muted' }, 'The absolute path of a folder on this machine.')),
      h('div', { class: 'field' },
        h('label', { for: 'project-name' }, 'Name ', h('span', { class: 'muted' }, '(optional)')),
        this.nameInput),
      h('div', { class: 'field actions' }, this.addBtn),
      this.pathError);
    this.pathInput.addEventListener('input', () => this.setPathError(''));
    this.listEl = h('div', { class: 'project-list' });
    this.msg = h('p', { class: 'inline-msg', role: 'status' });
    replace(this,
      h('header', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Projects')),
      h('section', { class: 'card', 'aria-labelledby': 'add-project-h' },
        h('h2', { id: 'add-project-h' }, 'Add a project'),
        this.form),
      h('section', { 'aria-labelledby': 'project-list-h' },
        h('h2', { id: 'project-list-h' }, 'Registered projects'),
        this.msg,
        this.listEl));
  }

  setPathError(text) {
    this.pathError.textContent = text;
    if (text) this.pathInput.setAttribute('aria-invalid', 'true');
    else this.pathInput.removeAttribute('aria-invalid');
  }

  async add() {
    const path = this.pathInput.value.trim();
    const name = this.nameInput.value.trim();
    if (!path) {
      this.setPathError('Enter the folder\'s path.');
      this.pathInput.focus();
      return;
    }
    this.setPathError('');
    this.addBtn.disabled = true;
    try {
      const p = await rpc.request('project.create', name ? { path, name } : { path });
      store.putProject(p);
      this.pathInput.value = '';
      this.nameInput.value = '';
      this.msg.textContent = `Added ${p.name}.`;
    } catch (err) {
      this.setPathError(createErrorText(err));
      this.pathInput.focus();
    } finally {
      this.addBtn.disabled = false;
    }
  }

  renderList() {
    if (!this.listEl) return;
    const projects = [...store.projects.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (!store.projectsLoaded) {
      replace(this.listEl, h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    if (!projects.length) {
      replace(this.listEl, h('p', { class: 'muted empty' }, 'No projects yet. Add a folder above to run the agent in it.'));
      return;
    }
    const connected = rpc.state === 'connected';
    const rows = projects.map((p) => {
      const actions = this.confirming === p.id
        ? h('div', { class: 'confirm', role: 'group', 'aria-label': `Confirm removal of ${p.name}` },
          h('span', {}, `Remove ${p.name}? Its output log is deleted; the folder is not touched.`), ' ',
          h('button', { type: 'button', class: 'danger', 'data-action': 'confirm-remove', onclick: () => this.remove(p) }, 'Remove'), ' ',
          h('button', { type: 'button', 'data-action': 'cancel-remove', onclick: () => this.cancelRemove(p) }, 'Cancel'))
        : h('button', {
          type: 'button', class: 'subtle', 'data-action': 'remove', disabled: !connected,
          'aria-label': `Remove ${p.name}`, onclick: () => this.askRemove(p),
        }, 'Remove');
      return h('tr', { dataset: { projectId: p.id } },
        h('th', { scope: 'row' }, h('a', { href: `#/projects/${encodeURIComponent(p.id)}` }, p.name)),
        h('td', { class: 'mono path' }, p.path),
        h('td', {}, h('span', { class: `badge state-${p.state}` }, p.state)),
        h('td', { class: 'mono', title: p.session_id ?? '' }, shortId(p.session_id)),
        h('td', { class: 'num' }, number(p.last_seq)),
        h('td', {}, dateTime(p.created_at)),
        h('td', { class: 'actions' }, actions));
    });
    const focus = this.focusKey();
    replace(this.listEl, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {},
        ...['Name', 'Folder', 'State', 'Session', 'Lines', 'Added'].map((t) => h('th', { scope: 'col' }, t)),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, rows))));
    if (focus) this.listEl.querySelector(focus)?.focus();
  }

  /** A selector for the focused control in the list, to focus it again after a re-render. */
  focusKey() {
    const el = document.activeElement;
    if (!el || !this.listEl.contains(el)) return null;
    const tr = el.closest('tr[data-project-id]');
    if (!tr) return null;
    const row = `tr[data-project-id="${CSS.escape(tr.dataset.projectId)}"]`;
    return el.dataset.action ? `${row} [data-action="${el.dataset.action}"]` : `${row} a`;
  }

  askRemove(p) {
    this.confirming = p.id;
    this.renderList();
    this.listEl.querySelector('[data-action="cancel-remove"]')?.focus();
  }

  cancelRemove(p) {
    this.confirming = null;
    this.renderList();
    this.listEl.querySelector(`tr[data-project-id="${CSS.escape(p.id)}"] [data-action="remove"]`)?.focus();
  }

  async remove(p) {
    try {
      await rpc.request('project.delete', { project_id: p.id });
      this.confirming = null;
      if (store.projects.delete(p.id)) store.emit('projects', { id: p.id, deleted: true });
      else this.renderList();
      this.msg.textContent = `Removed ${p.name}.`;
      this.form.querySelector('input')?.focus();
    } catch (err) {
      this.confirming = null;
      this.renderList();
      this.msg.textContent = `Could not remove ${p.name}: ${errorText(err)}`;
    }
  }
}

customElements.define('hub-projects', ProjectsView);
