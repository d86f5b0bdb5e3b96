// "New tasks" of <hub-workers>: queue one task from a form, or a batch pasted or uploaded
// as JSON, in the project the board shows (task.create). The hub checks every task and
// refuses the whole batch at its first bad task (INVALID_PARAMS, TOO_LARGE, TASK_EXISTS);
// its message is shown next to the field it names, or next to the batch line where that
// task starts. The page adds no rules of its own beyond reading the JSON and the form.

import { h, replace } from '../dom.js';
import { errorText } from '../store.js';

/** Largest batch file read, in bytes (task.create takes at most 256 KiB per task). */
const MAX_FILE = 8 * 1024 * 1024;
/** The form's fields: name, label, and the control. */
const FIELDS = [
  ['title', 'Title', 'input'],
  ['prompt', 'Instructions (prompt)', 'textarea'],
  ['context', 'Context', 'textarea'],
  ['acceptance', 'Acceptance criteria, one per line', 'textarea'],
  ['type', 'Type (matched against workers\' capabilities)', 'input'],
  ['priority', 'Priority (higher runs first)', 'input'],
  ['id', 'Id (optional)', 'input'],
];

/**
 * Where each task of a batch starts: the 1-based line of each element of the tasks array
 * (the top-level array, or the array under "tasks" of a top-level object).
 * @param {string} text JSON that parses
 * @returns {number[]}
 */
export function taskLines(text) {
  const lines = [];
  let depth = 0;
  let line = 1;
  let inString = false;
  let escaped = false;
  let arrayDepth = 0;
  let expectValue = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '\n') line += 1;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (/\s/.test(c)) continue;
    if (expectValue && depth === arrayDepth && c !== ']') lines.push(line);
    expectValue = false;
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth += 1;
      if (c === '[' && !arrayDepth && (depth === 1 || depth === 2)) {
        arrayDepth = depth;
        expectValue = true;
      }
    } else if (c === ']' || c === '}') {
      if (depth === arrayDepth && c === ']') arrayDepth = -1;
      depth -= 1;
    } else if (c === ',' && depth === arrayDepth) expectValue = true;
  }
  return lines;
}

/**
 * Where JSON `text` stops being valid: the offset of the first character a JSON parser
 * (RFC 8259) cannot take, or of the end when the text stops early. Browsers' JSON.parse
 * messages do not all say where.
 * @returns {number}
 */
export function jsonErrorAt(text) {
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i += 1; };
  const fail = () => { throw i; };
  const lit = (word) => { if (text.startsWith(word, i)) i += word.length; else fail(); };
  const str = () => {
    i += 1;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') {
        i += 1;
        if (text[i] === 'u') { if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail(); i += 4; } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
      } else if (text.charCodeAt(i) < 0x20) fail();
      i += 1;
    }
    if (i >= text.length) fail();
    i += 1;
  };
  const num = () => {
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail();
    i += m[0].length;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i += 1; ws();
      if (text[i] === '}') { i += 1; return; }
      for (;;) {
        ws(); if (text[i] !== '"') fail(); str(); ws();
        if (text[i] !== ':') fail(); i += 1; value(); ws();
        if (text[i] === ',') { i += 1; continue; }
        if (text[i] === '}') { i += 1; return; }
        fail();
      }
    } else if (c === '[') {
      i += 1; ws();
      if (text[i] === ']') { i += 1; return; }
      for (;;) {
        value(); ws();
        if (text[i] === ',') { i += 1; continue; }
        if (text[i] === ']') { i += 1; return; }
        fail();
      }
    } else if (c === '"') str();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else num();
  };
  try {
    value(); ws();
    return i < text.length ? i : -1;
  } catch (at) {
    return typeof at === 'number' ? Math.min(at, text.length) : 0;
  }
}

/** The 1-based line of character `pos` in `text`. */
function lineAt(text, pos) {
  return text.slice(0, pos).split('\n').length;
}

/** The hub's `tasks[N]: ...` message split into N and the rest, if it has that shape. */
function taskError(err) {
  const m = /^tasks\[(\d+)\]: (.*)$/s.exec(err?.message ?? '');
  return m ? { index: Number(m[1]), reason: m[2] } : null;
}

export class TaskCreate {
  /**
   * @param {import('../task-store.js').TaskBoard} board
   * @param {{connected: () => boolean, onCreated: (text: string) => void}} opts
   */
  constructor(board, { connected, onCreated }) {
    this.board = board;
    this.connected = connected;
    this.onCreated = onCreated;
    this.inputs = {};
    this.errors = {};
    this.el = this.build();
  }

  build() {
    const fields = FIELDS.map(([name, label, tag]) => {
      const id = `new-task-${name}`;
      const input = h(tag, {
        id, name, autocomplete: 'off', 'aria-describedby': `${id}-error`,
        ...(tag === 'textarea' ? { rows: name === 'prompt' ? 4 : 2 } : { type: 'text' }),
        ...(name === 'priority' ? { inputmode: 'numeric', placeholder: '0' } : {}),
        ...(name === 'title' ? { required: true, 'aria-required': 'true' } : {}),
      });
      input.addEventListener('input', () => this.setError(name, ''));
      this.inputs[name] = input;
      this.errors[name] = h('p', { id: `${id}-error`, class: 'field-error', role: 'alert' });
      return h('div', { class: 'field', dataset: { field: name } }, h('label', { for: id }, label), input, this.errors[name]);
    });
    this.formMsg = h('p', { class: 'inline-msg', role: 'status' });
    this.formError = h('p', { class: 'field-error', role: 'alert' });
    this.formBtn = h('button', { type: 'submit' }, 'Queue task');
    const form = h('form', { class: 'task-form', novalidate: true, 'aria-labelledby': 'new-task-h', onsubmit: (ev) => { ev.preventDefault(); this.createOne(); } },
      h('h3', { id: 'new-task-h' }, 'One task'),
      fields, h('div', { class: 'form-actions' }, this.formBtn), this.formError, this.formMsg);

    this.batchInput = h('textarea', {
      id: 'new-batch', name: 'batch', rows: 8, spellcheck: 'false', class: 'mono', autocomplete: 'off',
      'aria-describedby': 'new-batch-hint new-batch-error',
      placeholder: '[\n  {"title": "Add the endpoint", "prompt": "…", "type": "code"},\n  {"title": "Document it", "type": "docs"}\n]',
    });
    this.batchInput.addEventListener('input', () => this.setBatchError(''));
    this.batchFile = h('input', { id: 'new-batch-file', type: 'file', accept: '.json,application/json', onchange: () => this.readFile() });
    this.batchError = h('p', { id: 'new-batch-error', class: 'field-error', role: 'alert' });
    this.batchMsg = h('p', { class: 'inline-msg', role: 'status' });
    this.batchBtn = h('button', { type: 'submit' }, 'Queue batch');
    const batch = h('form', { class: 'batch-form', novalidate: true, 'aria-labelledby': 'new-batch-h', onsubmit: (ev) => { ev.preventDefault(); this.createBatch(); } },
      h('h3', { id: 'new-batch-h' }, 'A batch (JSON)'),
      h('div', { class: 'field' },
        h('label', { for: 'new-batch' }, 'Tasks, as a JSON array (or {"tasks": [...]})'),
        this.batchInput,
        h('p', { id: 'new-batch-hint', class: 'hint muted' }, 'Each task takes the fields of task.create: title, and optionally id, prompt, context, acceptance, type, priority.'),
        this.batchError),
      h('div', { class: 'field' }, h('label', { for: 'new-batch-file' }, 'Or load a file'), this.batchFile),
      h('div', { class: 'form-actions' }, this.batchBtn), this.batchMsg);

    return h('details', { class: 'card task-create' },
      h('summary', {}, h('h2', { class: 'summary-h' }, 'New tasks')),
      h('div', { class: 'task-create-forms' }, form, batch));
  }

  /** Enables the buttons while a project is shown and the hub is connected. */
  update() {
    const off = !this.board.projectId || !this.connected();
    this.formBtn.disabled = off || this.busy;
    this.batchBtn.disabled = off || this.busy;
  }

  setError(name, text) {
    this.errors[name].textContent = text;
    if (text) this.inputs[name].setAttribute('aria-invalid', 'true');
    else this.inputs[name].removeAttribute('aria-invalid');
  }

  setBatchError(text) {
    this.batchError.textContent = text;
    if (text) this.batchInput.setAttribute('aria-invalid', 'true');
    else this.batchInput.removeAttribute('aria-invalid');
  }

  /** The form as one task of task.create; empty fields are left out. */
  formTask() {
    const v = (name) => this.inputs[name].value;
    const task = { title: v('title') };
    for (const name of ['prompt', 'context', 'type', 'id']) if (v(name).trim()) task[name] = v(name);
    const acceptance = v('acceptance').split('\n').map((s) => s.trim()).filter(Boolean);
    if (acceptance.length) task.acceptance = acceptance;
    if (v('priority').trim()) task.priority = /^-?\d+$/.test(v('priority').trim()) ? Number(v('priority').trim()) : v('priority');
    return task;
  }

  /** The form field a hub error concerns. */
  static fieldOf(err, reason) {
    if (err.kind === 'TASK_EXISTS') return 'id';
    if (err.kind === 'TOO_LARGE') return 'prompt';
    const m = /^(?:invalid params: )?(id|title|type|prompt|context|acceptance|priority)\b/.exec(reason);
    if (m) return m[1];
    return /`(title|type|prompt|context|acceptance|priority|id)`/.exec(reason)?.[1] ?? null;
  }

  async send(tasks) {
    this.busy = true;
    this.update();
    try {
      return await this.board.createTasks(tasks);
    } finally {
      this.busy = false;
      this.update();
    }
  }

  async createOne() {
    for (const [name] of FIELDS) this.setError(name, '');
    this.formMsg.textContent = '';
    this.formError.textContent = '';
    let res;
    try {
      res = await this.send([this.formTask()]);
    } catch (err) {
      const reason = taskError(err)?.reason ?? err.message ?? '';
      const text = `The hub did not accept this: ${reason || errorText(err)}`;
      const field = TaskCreate.fieldOf(err, reason);
      if (field) {
        this.setError(field, text);
        this.inputs[field].focus();
      } else {
        this.formError.textContent = text;
        this.formBtn.focus();
      }
      return;
    }
    const id = res.created[0] ?? res.existing[0];
    const text = res.created.length ? `Queued task ${id}.` : `Task ${id} exists already; nothing was created.`;
    this.formMsg.textContent = text;
    if (res.created.length) for (const [name] of FIELDS) this.inputs[name].value = '';
    this.onCreated(text);
  }

  async readFile() {
    const file = this.batchFile.files?.[0];
    if (!file) return;
    if (file.size > MAX_FILE) {
      this.setBatchError(`The file is ${file.size} bytes; a batch file may hold at most ${MAX_FILE}.`);
      return;
    }
    this.batchInput.value = await file.text();
    this.setBatchError('');
    this.batchMsg.textContent = `Loaded ${file.name}. Check it, then queue it.`;
    this.batchInput.focus();
  }

  /** Shows `text` as the batch's error, at line `line` of the text when given. */
  batchFailed(text, line) {
    this.setBatchError(line ? `Line ${line}: ${text}` : text);
    if (line) this.batchError.dataset.line = String(line);
    else delete this.batchError.dataset.line;
    this.batchInput.focus();
    if (line) {
      const lines = this.batchInput.value.split('\n');
      const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
      this.batchInput.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
    }
  }

  async createBatch() {
    this.setBatchError('');
    this.batchMsg.textContent = '';
    const text = this.batchInput.value;
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      const at = jsonErrorAt(text);
      this.batchFailed(`This is not valid JSON: ${err.message}`, at >= 0 ? lineAt(text, at) : null);
      return;
    }
    const tasks = Array.isArray(parsed) ? parsed : parsed?.tasks;
    if (!Array.isArray(tasks)) {
      this.batchFailed('Give a JSON array of tasks, or an object with a "tasks" array.', 1);
      return;
    }
    let res;
    try {
      res = await this.send(tasks);
    } catch (err) {
      const bad = taskError(err);
      const line = bad ? taskLines(text)[bad.index] : null;
      const what = bad ? `task ${bad.index + 1}: ${bad.reason}` : (err.message || errorText(err));
      this.batchFailed(`The hub did not accept the batch (nothing was queued): ${what}`, line);
      return;
    }
    const msg = `Queued ${res.created.length} task${res.created.length === 1 ? '' : 's'}`
      + (res.existing.length ? `; ${res.existing.length} existed already (${res.existing.join(', ')}).` : '.');
    this.batchMsg.textContent = msg;
    this.onCreated(msg);
  }
}

export function mountTaskCreate(parent, board, opts) {
  const view = new TaskCreate(board, opts);
  replace(parent, view.el);
  return view;
}
