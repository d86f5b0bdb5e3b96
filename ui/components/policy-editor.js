// <hub-policy project-id="…">: the project's approval policy (docs/agents.md#policies),
// read with agent.policy.get and saved with agent.policy.set: which tools never ask, which
// always ask, how long an approval waits, and what the agent reads when nobody answered
// (the hub then denies the call). Saving stores all four as the project's own settings;
// "Follow the hub's config" drops them. The hub validates: an error naming a param
// (error.data.param) is shown next to that field, any other one under the form.
// The form is loaded when the connection is up and not reloaded while it has unsaved edits.
// Under it, the rules the project remembers from "always" answers (agent.approvals.rules.list),
// each with a Delete button (agent.approvals.rules.delete); reloaded when an answer stores one.

import { h, replace } from '../dom.js';
import { rpc, listen, errorText, approvals } from '../store.js';

/** The form's fields: the agent.policy.set param, its label and its hint. */
const FIELDS = [
  { param: 'never_ask', label: 'Never ask for', kind: 'tools', hint: 'Tool names, separated by commas or spaces: the agent runs these without asking (e.g. Read, Glob, Grep).' },
  { param: 'always_ask', label: 'Always ask for', kind: 'tools', hint: 'These ask every time; no remembered "always allow" answers them. A tool in both lists asks.' },
  { param: 'timeout_s', label: 'Wait for an answer (seconds)', kind: 'number', hint: 'After this long with nobody answering, the hub denies the call (1 to 604800).' },
  { param: 'timeout_message', label: 'When nobody answers, tell the agent', kind: 'text', hint: 'The denial message the agent reads.' },
];

/** Tool names from a field's text: split on commas and white space, empty ones and repeats dropped. */
export function toolList(text) {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

class PolicyEditor extends HTMLElement {
  connectedCallback() {
    this.projectId = this.getAttribute('project-id');
    this.abort = new AbortController();
    this.dirty = false;
    this.className = 'policy-editor';
    this.build();
    listen(rpc, 'state', (ev) => { if (ev.detail.state === 'connected') { this.load(); this.loadRules(); } }, this.abort.signal);
    listen(approvals, 'resolved', (ev) => {
      if (ev.detail.project_id === this.projectId && ev.detail.resolution?.scope === 'project') this.loadRules();
    }, this.abort.signal);
    if (rpc.state === 'connected') { this.load(); this.loadRules(); }
  }

  disconnectedCallback() {
    this.abort.abort();
  }

  build() {
    this.inputs = {};
    this.errors = {};
    const rows = FIELDS.map((f) => {
      const id = `policy-${f.param.replace('_', '-')}`;
      const hintId = `${id}-hint`;
      const errId = `${id}-error`;
      const attrs = { id, name: f.param, 'aria-describedby': `${hintId} ${errId}`, spellcheck: 'false', autocomplete: 'off' };
      const input = f.kind === 'number'
        ? h('input', { ...attrs, type: 'number', min: '1', max: '604800', step: '1', inputmode: 'numeric' })
        : h('textarea', { ...attrs, rows: f.kind === 'tools' ? '2' : '3' });
      input.addEventListener('input', () => { this.dirty = true; this.clearError(f.param); });
      this.inputs[f.param] = input;
      this.errors[f.param] = h('p', { id: errId, class: 'field-error', role: 'alert' });
      return h('div', { class: 'field' },
        h('label', { for: id }, f.label),
        input,
        h('p', { id: hintId, class: 'hint muted' }, f.hint),
        this.errors[f.param]);
    });
    this.source = h('p', { class: 'hint muted', role: 'status' });
    this.saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Save policy');
    this.resetBtn = h('button', { type: 'button', onclick: () => this.save(true) }, 'Follow the hub\'s config');
    this.formError = h('p', { class: 'field-error', role: 'alert' });
    this.msg = h('p', { class: 'inline-msg', role: 'status' });
    this.form = h('form', {
      class: 'policy-form',
      'aria-label': 'Approval policy of this project',
      // The hub is the judge of what is valid; its message is shown next to the field.
      novalidate: true,
      onsubmit: (ev) => { ev.preventDefault(); this.save(false); },
    }, rows, h('div', { class: 'toolbar' }, this.saveBtn, this.resetBtn), this.formError, this.msg);
    this.summary = h('summary', {}, 'Approval policy');
    this.rulesList = h('ul', { class: 'rules-list' });
    this.rulesEmpty = h('p', { class: 'muted' }, 'No remembered rules: an "Always for this project" answer adds one.');
    this.rulesMsg = h('p', { class: 'inline-msg', role: 'status' });
    const rules = h('section', { class: 'rules', 'aria-labelledby': `rules-h-${this.projectId}` },
      h('h3', { id: `rules-h-${this.projectId}` }, 'Remembered rules'),
      h('p', { class: 'hint muted' }, 'Each answers the calls it matches without asking: Bash(npm test:*) is that command with any arguments, a bare tool name every call.'),
      this.rulesEmpty, this.rulesList, this.rulesMsg);
    replace(this, h('details', { class: 'policy' }, this.summary, this.source, this.form, rules));
  }

  async loadRules() {
    try {
      const { rules } = await rpc.request('agent.approvals.rules.list', { project_id: this.projectId });
      this.showRules(rules);
    } catch (err) {
      this.rulesMsg.textContent = errorText(err);
    }
  }

  showRules(rules) {
    this.rulesEmpty.hidden = rules.length > 0;
    this.dataset.rules = String(rules.length);
    replace(this.rulesList, rules.map((r) => h('li', { dataset: { rule: r.rule } },
      h('code', {}, r.rule), ` ${r.behavior === 'deny' ? 'denied' : 'allowed'} · since ${r.created_at.slice(0, 10)} `,
      h('button', { type: 'button', class: 'subtle', 'aria-label': `Delete the rule ${r.rule}`, onclick: () => this.deleteRule(r.rule) }, 'Delete'))));
  }

  async deleteRule(rule) {
    this.rulesMsg.textContent = '';
    try {
      await rpc.request('agent.approvals.rules.delete', { project_id: this.projectId, rule });
      this.rulesMsg.textContent = `Deleted ${rule}; those calls ask again.`;
    } catch (err) {
      this.rulesMsg.textContent = errorText(err);
    }
    await this.loadRules();
  }

  async load() {
    if (this.dirty) return;
    try {
      this.show(await rpc.request('agent.policy.get', { project_id: this.projectId }));
    } catch (err) {
      this.formError.textContent = errorText(err);
    }
  }

  /** Fills the form with the policy in force. */
  show(policy) {
    this.inputs.never_ask.value = policy.never_ask.join(', ');
    this.inputs.always_ask.value = policy.always_ask.join(', ');
    this.inputs.timeout_s.value = String(policy.timeout_s);
    this.inputs.timeout_message.value = policy.timeout_message;
    this.source.textContent = policy.custom
      ? 'This project has its own policy.'
      : 'This project follows the hub\'s config ([agent.approvals]).';
    this.dataset.custom = String(policy.custom);
    this.dirty = false;
  }

  clearError(param) {
    this.errors[param].textContent = '';
    this.inputs[param].removeAttribute('aria-invalid');
  }

  /** agent.policy.set with the form's settings, or with none (`reset`) to follow the config. */
  async save(reset) {
    for (const f of FIELDS) this.clearError(f.param);
    this.formError.textContent = '';
    this.msg.textContent = '';
    const params = { project_id: this.projectId };
    if (!reset) {
      params.never_ask = toolList(this.inputs.never_ask.value);
      params.always_ask = toolList(this.inputs.always_ask.value);
      const timeout = this.inputs.timeout_s.value.trim();
      if (!/^\d+$/.test(timeout)) {
        this.fieldError('timeout_s', 'Enter a whole number of seconds.');
        return;
      }
      params.timeout_s = Number(timeout);
      params.timeout_message = this.inputs.timeout_message.value;
    }
    this.saveBtn.disabled = this.resetBtn.disabled = true;
    try {
      this.show(await rpc.request('agent.policy.set', params));
      this.msg.textContent = reset ? 'Now following the hub\'s config.' : 'Policy saved.';
    } catch (err) {
      const param = err.data?.param;
      if (param && this.inputs[param]) this.fieldError(param, err.message);
      else this.formError.textContent = errorText(err) || err.message;
    } finally {
      this.saveBtn.disabled = this.resetBtn.disabled = false;
    }
  }

  fieldError(param, text) {
    this.errors[param].textContent = text;
    this.inputs[param].setAttribute('aria-invalid', 'true');
    this.inputs[param].focus();
  }
}

customElements.define('hub-policy', PolicyEditor);
