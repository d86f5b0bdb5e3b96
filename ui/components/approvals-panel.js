// <hub-approvals project-id="…">: the project's tool calls waiting for a person
// (docs/agents.md#approvals), each with what the agent wants to run, the CLI's own
// suggestions and when it was asked, and the answers: allow once, allow with an edited
// input, deny with a message, deny and interrupt, always for the session or the project.
//
// Keyboard: each approval is a focusable group; with the focus on it (not in a text
// field) `y` allows once, `n` moves to the message for a denial, `e` opens the input to
// edit, `a` allows always for this session, `p` always for this project. Every answer is
// also a button. `#/projects/<id>/approval/<approval id>` focuses that approval.
// A card is built once per approval and kept while it waits, so an edit in progress and
// the focus survive live updates. An "always" answer remembers the rule in the card's Rule
// field: the agent's suggestion (Claude Code's addRules), which the person may edit, e.g.
// `Bash(npm test:*)`. An approval of a task run links to that task's card on the tasks
// view ("task <title>").

import { h, replace } from '../dom.js';
import { dateTime } from '../format.js';
import { approvals, listen, errorText, rpc } from '../store.js';

/** The answer shortcuts, for the hint and aria-keyshortcuts. */
const KEYS = { y: 'allow', n: 'deny', e: 'edit', a: 'session', p: 'project' };

/** The input as the person edits it: a Bash command as text, anything else as JSON. */
function editable(a) {
  const input = a.input ?? {};
  if (typeof input.command === 'string' && Object.keys(input).every((k) => k === 'command' || k === 'description')) {
    return { text: input.command, asCommand: true };
  }
  return { text: JSON.stringify(input, null, 2), asCommand: false };
}

/** One line that says what the tool would do. */
function summary(a) {
  const input = a.input ?? {};
  for (const k of ['command', 'file_path', 'url', 'path', 'pattern']) {
    if (typeof input[k] === 'string') return input[k];
  }
  return null;
}

/**
 * The rule an "always" answer stores unless the person edits it: the agent's first addRules
 * suggestion for the tool, else the tool itself (every call). The hub does the same.
 */
export function suggestedRule(a) {
  for (const s of Array.isArray(a.suggestions) ? a.suggestions : []) {
    if (s?.type !== 'addRules' || !Array.isArray(s.rules)) continue;
    const r = s.rules.find((x) => x?.toolName === a.tool_name);
    if (r) return r.ruleContent ? `${a.tool_name}(${r.ruleContent})` : a.tool_name;
  }
  return a.tool_name;
}

/** The address of a task's card on the tasks view. */
export function taskHref(projectId, taskId) {
  return `#/workers/${encodeURIComponent(projectId)}/task/${encodeURIComponent(taskId)}`;
}

function resolutionText(r) {
  if (!r) return 'answered elsewhere';
  const who = r.by?.kind === 'client' ? ` by ${r.by.name || r.by.role || 'another client'}` : '';
  if (r.outcome === 'withdrawn') return `withdrawn (${r.message || 'the request went away'})`;
  if (r.by?.kind === 'timeout') return 'denied: nobody answered in time';
  const rule = r.rule && r.by?.kind === 'rule' ? ` by the rule ${r.rule}` : '';
  return `${r.outcome}${who}${rule}`;
}

class ApprovalsPanel extends HTMLElement {
  connectedCallback() {
    this.projectId = this.getAttribute('project-id');
    this.abort = new AbortController();
    const signal = this.abort.signal;
    /** @type {Map<string, {el: HTMLElement, a: any}>} */
    this.cards = new Map();
    this.heading = h('h2', { id: `approvals-h-${this.projectId}` }, 'Approvals');
    this.list = h('div', { class: 'approval-list' });
    this.emptyEl = h('p', { class: 'muted' }, 'Nothing waits for an answer.');
    this.announce = h('p', { class: 'visually-hidden', role: 'status', 'aria-live': 'polite' });
    this.msg = h('p', { class: 'inline-msg', role: 'status' });
    this.className = 'approvals-panel';
    this.setAttribute('role', 'region');
    this.setAttribute('aria-labelledby', this.heading.id);
    replace(this, this.heading,
      h('p', { class: 'hint muted' }, 'On an approval: y allows, n denies with a message, e edits the input, a always allows for this session, p for this project.'),
      this.emptyEl, this.list, this.msg, this.announce);
    listen(approvals, 'change', (ev) => { if (ev.detail.approvals) this.render(); }, signal);
    listen(approvals, 'resolved', (ev) => this.onResolved(ev.detail), signal);
    window.addEventListener('hashchange', () => this.focusFromHash(), { signal });
    this.render();
  }

  disconnectedCallback() {
    this.abort.abort();
  }

  render() {
    const list = approvals.list(this.projectId);
    const ids = new Set(list.map((a) => a.id));
    for (const [id, c] of this.cards) {
      if (!ids.has(id)) {
        const hadFocus = c.el.contains(document.activeElement);
        c.el.remove();
        this.cards.delete(id);
        if (hadFocus) this.focusNext();
      }
    }
    for (const a of list) {
      if (!this.cards.has(a.id)) {
        const c = this.buildCard(a);
        this.cards.set(a.id, c);
        this.list.append(c.el);
        this.announce.textContent = `${a.tool_name} asks for permission.`;
      }
    }
    this.emptyEl.hidden = list.length > 0;
    this.heading.textContent = list.length ? `Approvals (${list.length} waiting)` : 'Approvals';
    this.dataset.count = String(list.length);
    this.focusFromHash();
  }

  /** Focuses the approval the address names, once it is listed. */
  focusFromHash() {
    const m = /\/approval\/([^/?#]+)/.exec(location.hash);
    if (!m) return;
    const id = decodeURIComponent(m[1]);
    const c = this.cards.get(id);
    if (!c || this.focusedFromHash === id) return;
    this.focusedFromHash = id;
    // After the router has moved the focus to the new view's heading.
    queueMicrotask(() => {
      c.el.scrollIntoView({ block: 'nearest' });
      c.el.focus();
    });
  }

  /** After an answer, focus moves to the next approval, or to the panel's heading. */
  focusNext() {
    const next = this.list.firstElementChild;
    if (next) next.focus();
    else {
      this.heading.setAttribute('tabindex', '-1');
      this.heading.focus();
    }
  }

  onResolved(p) {
    if (p.project_id !== this.projectId) return;
    this.announce.textContent = `${p.tool_name} ${resolutionText(p.resolution)}.`;
  }

  buildCard(a) {
    const idBase = `ap-${a.id}`;
    const what = summary(a);
    const edit = editable(a);
    const status = h('p', { class: 'field-error', role: 'alert' });
    const message = h('input', {
      id: `${idBase}-msg`, type: 'text', name: 'message', autocomplete: 'off',
      placeholder: 'Tell the agent why (optional)',
    });
    const editor = h('textarea', { id: `${idBase}-edit`, name: 'input', rows: edit.asCommand ? '2' : '6', class: 'mono', spellcheck: 'false' });
    editor.value = edit.text;
    const editBox = h('div', { class: 'approval-edit', hidden: true },
      h('label', { for: editor.id }, edit.asCommand ? 'Command to run instead' : 'Input to run with instead (JSON)'),
      editor,
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', class: 'primary', onclick: () => this.allowEdited(a, editor, edit.asCommand, status, card) }, 'Allow edited'),
        h('button', { type: 'button', onclick: () => { editBox.hidden = true; editBtn.setAttribute('aria-expanded', 'false'); editBtn.focus(); } }, 'Cancel edit')));
    const editBtn = h('button', {
      type: 'button', 'aria-expanded': 'false', 'aria-controls': `${idBase}-editbox`, 'aria-keyshortcuts': 'e',
      onclick: () => {
        editBox.hidden = !editBox.hidden;
        editBtn.setAttribute('aria-expanded', String(!editBox.hidden));
        if (!editBox.hidden) editor.focus();
      },
    }, 'Edit input…');
    editBox.id = `${idBase}-editbox`;

    const act = (answer) => this.send(a, answer, status, card);
    const suggested = suggestedRule(a);
    const rule = h('input', {
      id: `${idBase}-rule`, type: 'text', name: 'rule', autocomplete: 'off', spellcheck: 'false', class: 'mono',
      'aria-describedby': `${idBase}-rule-hint`,
    });
    rule.value = suggested;
    // The hub takes the agent's suggestion by itself; a rule is sent only when edited.
    const always = (scope) => {
      const text = rule.value.trim();
      return { decision: 'allow_always', scope, ...(text && text !== suggested ? { rule: text } : {}) };
    };
    const denyAnswer = (interrupt) => {
      const text = message.value.trim();
      return { decision: 'reject_once', ...(text ? { message: text } : {}), ...(interrupt ? { interrupt: true } : {}) };
    };
    const allowBtn = h('button', { type: 'button', class: 'primary', 'aria-keyshortcuts': 'y', onclick: () => act({ decision: 'allow_once' }) }, 'Allow once');
    const sessionBtn = h('button', { type: 'button', 'aria-keyshortcuts': 'a', onclick: () => act(always('session')) }, 'Always for this session');
    const projectBtn = h('button', { type: 'button', 'aria-keyshortcuts': 'p', onclick: () => act(always('project')) }, 'Always for this project');
    const denyBtn = h('button', { type: 'button', class: 'danger', 'aria-keyshortcuts': 'n', onclick: () => act(denyAnswer(false)) }, 'Deny');
    const stopBtn = h('button', { type: 'button', class: 'danger', onclick: () => act(denyAnswer(true)) }, 'Deny and interrupt');
    message.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        act(denyAnswer(false));
      }
    });
    editor.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey || edit.asCommand)) {
        ev.preventDefault();
        this.allowEdited(a, editor, edit.asCommand, status, card);
      }
    });

    const suggestions = Array.isArray(a.suggestions) && a.suggestions.length
      ? h('details', { class: 'approval-suggestions' },
        h('summary', {}, `The agent's suggestions (${a.suggestions.length})`),
        h('pre', { class: 'mono' }, JSON.stringify(a.suggestions, null, 2)))
      : null;
    const headId = `${idBase}-h`;
    const card = h('article', {
      class: 'approval', tabindex: '0', 'aria-labelledby': headId, dataset: { approvalId: a.id, tool: a.tool_name },
      'aria-keyshortcuts': 'y n e a p',
    },
    h('h3', { id: headId }, `${a.tool_name} wants to run`, what ? ': ' : '', what ? h('code', {}, what) : null),
    a.description ? h('p', { class: 'muted' }, a.description) : null,
    a.task_id ? this.taskLine(a) : null,
    h('details', { class: 'approval-input' },
      h('summary', {}, 'Full input'),
      h('pre', { class: 'mono' }, JSON.stringify(a.input ?? {}, null, 2))),
    suggestions,
    h('p', { class: 'hint muted' },
      `Asked ${dateTime(a.asked_at)}`,
      a.expires_at ? ` · denied by itself at ${dateTime(a.expires_at)} if nobody answers` : ''),
    h('div', { class: 'toolbar approval-actions' }, allowBtn, editBtn, sessionBtn, projectBtn),
    h('div', { class: 'field approval-rule' },
      h('label', { for: rule.id }, 'Rule for "always"'),
      rule,
      h('p', { id: `${idBase}-rule-hint`, class: 'hint muted' },
        'What later calls it answers: Bash(npm test:*) is that command with any arguments, Read(/path/**) a folder, a bare tool name every call.')),
    editBox,
    h('div', { class: 'approval-deny' },
      h('label', { for: message.id }, 'Message for the agent'),
      h('div', { class: 'prompt-row' }, message, denyBtn, stopBtn)),
    status);
    card.addEventListener('keydown', (ev) => {
      if (ev.target !== card || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const k = KEYS[ev.key.toLowerCase()];
      if (!k) return;
      ev.preventDefault();
      if (k === 'allow') allowBtn.click();
      else if (k === 'deny') message.focus();
      else if (k === 'edit') { if (editBox.hidden) editBtn.click(); else editor.focus(); }
      else if (k === 'session') sessionBtn.click();
      else if (k === 'project') projectBtn.click();
    });
    return { el: card, a };
  }

  /** "For task <title>", linking to the task's card; the title comes from task.get. */
  taskLine(a) {
    const link = h('a', { href: taskHref(a.project_id, a.task_id), class: 'approval-task-link' }, `task ${a.task_id}`);
    rpc.request('task.get', { task_id: a.task_id })
      .then((r) => { const title = r?.title ?? r?.task?.title; if (title) link.textContent = `task ${title}`; })
      .catch(() => {});
    return h('p', { class: 'approval-task muted' }, 'For ', link, ' (an agent worker waits for this answer)');
  }

  allowEdited(a, editor, asCommand, status, card) {
    let input;
    if (asCommand) {
      input = { ...(a.input ?? {}), command: editor.value };
    } else {
      try {
        input = JSON.parse(editor.value);
      } catch (err) {
        status.textContent = `The input is not valid JSON: ${err.message}`;
        editor.focus();
        return;
      }
      if (!input || typeof input !== 'object' || Array.isArray(input)) {
        status.textContent = 'The input must be a JSON object.';
        editor.focus();
        return;
      }
    }
    this.send(a, { decision: 'allow_once', updated_input: input }, status, card);
  }

  async send(a, answer, status, card) {
    status.textContent = '';
    const buttons = [...card.querySelectorAll('button')];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const r = await approvals.answer(a.id, answer);
      this.announce.textContent = `${a.tool_name}: ${r?.outcome ?? 'answered'}${r?.rule ? `, rule ${r.rule}` : ''}.`;
    } catch (err) {
      if (err.kind === 'APPROVAL_RESOLVED' || err.kind === 'APPROVAL_NOT_FOUND') {
        this.msg.textContent = `${a.tool_name} was already ${resolutionText(err.data?.resolution)}.`;
        approvals.onResolved({ approval_id: a.id, project_id: a.project_id, tool_name: a.tool_name, resolution: err.data?.resolution });
        return;
      }
      status.textContent = errorText(err);
      buttons.forEach((b) => { b.disabled = false; });
    }
  }
}

customElements.define('hub-approvals', ApprovalsPanel);
