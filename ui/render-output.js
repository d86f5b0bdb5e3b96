// Renders one stored output line (a `project.output` Output) as one DOM row.
//
// Output = {project_id, seq, ts, run_id, stream: "stdout"|"stderr"|"hub", kind, event?, text?}
// where `kind` is the Claude Code stream-json `type` (system, assistant, user, result, …),
// "json" for a JSON line without a type (Codex's app-server JSON-RPC messages), "text" for
// a non-JSON stdout line, "stderr", or run_started / run_finished from the hub.
// Shapes follow Claude Code's `--output-format stream-json --verbose` output and the
// Codex app server's notifications (item/started, item/completed, turn/completed).
//
// All text is set through textContent (see dom.js): nothing from the agent becomes markup.

import { h } from './dom.js';
import { usd, duration, number, time } from './format.js';

/** Text longer than this is cut, with a button to show the rest. */
const MAX_INLINE_CHARS = 20_000;

/**
 * @param {any} o   the Output
 * @param {{toolNames: Map<string, string>}} ctx  state shared across rows of one view
 * @returns {HTMLElement}
 */
export function renderOutput(o, ctx) {
  const kind = String(o.kind ?? 'text');
  const row = h('div', {
    class: `row k-${cssIdent(kind)} s-${cssIdent(o.stream ?? 'stdout')}`,
    title: `#${o.seq} · ${time(o.ts)}`,
  });
  row.dataset.seq = String(o.seq);
  let body;
  try {
    body = renderBody(o, kind, ctx);
  } catch {
    body = rawDetails(kind, o.event ?? o.text);
  }
  if (body === null) {
    // A chunk whose text joined the block of the chunks before it: the line keeps its
    // row (its seq), hidden.
    row.hidden = true;
    row.classList.add('merged');
    return row;
  }
  row.append(body);
  return row;
}

function renderBody(o, kind, ctx) {
  const ev = o.event && typeof o.event === 'object' ? o.event : null;
  if (o.stream === 'hub') return renderHub(kind, ev, o);
  if (kind === 'stderr' || o.stream === 'stderr') {
    return h('pre', { class: 'mono err' }, clip(o.text ?? JSON.stringify(ev)));
  }
  if (!ev) return h('pre', { class: 'mono' }, clip(o.text ?? ''));
  switch (kind) {
    case 'system': return renderSystem(ev);
    case 'assistant': return renderMessage(ev, ctx, 'assistant');
    case 'user': return renderMessage(ev, ctx, 'user');
    case 'result': return renderResult(ev);
    default:
      if (kind === 'json' && typeof ev.method === 'string') return renderRpc(ev, ctx, o);
      return rawDetails(kind, ev);
  }
}

/**
 * A JSON-RPC line of an agent that speaks JSON-RPC (Codex's `codex app-server`; ACP
 * agents such as Gemini go to renderAcp): its
 * commands, file changes and messages render as Claude Code's tool calls and text do, so
 * a shell command looks the same whichever agent ran it. Everything else stays raw.
 */
function renderRpc(ev, ctx, o) {
  const params = ev.params && typeof ev.params === 'object' ? ev.params : {};
  if (ev.method === 'session/update' || ev.method === 'session/request_permission') return renderAcp(ev, params, ctx, o);
  const item = params.item && typeof params.item === 'object' ? params.item : null;
  if (item && (ev.method === 'item/started' || ev.method === 'item/completed')) {
    const done = ev.method === 'item/completed';
    switch (item.type) {
      case 'commandExecution': {
        if (item.id) ctx.toolNames.set(String(item.id), 'Bash');
        if (!done) return renderToolUse({ name: 'Bash', input: { command: item.command, cwd: item.cwd } });
        const status = String(item.status ?? '');
        const out = item.aggregatedOutput ?? '';
        const exit = item.exitCode !== undefined && item.exitCode !== null ? `exit code ${item.exitCode}` : status;
        return renderToolResult({
          tool_use_id: item.id,
          is_error: status !== 'completed' || (item.exitCode ?? 0) !== 0,
          content: out ? `${exit}\n${out}` : exit,
        }, ctx);
      }
      case 'fileChange': {
        const paths = Array.isArray(item.changes) ? item.changes.map((c) => c?.path).filter(Boolean) : [];
        if (!done) return renderToolUse({ name: 'Edit', input: { files: paths } });
        return renderToolResult({ is_error: item.status !== 'completed', content: `${item.status ?? ''} ${paths.join(', ')}` }, ctx);
      }
      case 'agentMessage':
        return done ? h('div', { class: 'msg assistant' }, formatText(String(item.text ?? ''))) : rawDetails(ev.method, ev);
      case 'userMessage': {
        if (!done) return rawDetails(ev.method, ev);
        const text = (Array.isArray(item.content) ? item.content : []).map((c) => c?.text ?? '').join('\n');
        return h('div', { class: 'msg user' }, h('div', { class: 'user-text' }, clip(text)));
      }
      default:
        return rawDetails(`${ev.method} · ${item.type}`, ev);
    }
  }
  if (ev.method === 'turn/completed') {
    const status = String(params.turn?.status ?? 'completed');
    const isErr = status !== 'completed';
    return h('div', { class: `result ${isErr ? 'err' : 'ok'}` },
      h('div', { class: 'result-line' }, h('span', { class: 'tag' }, isErr ? 'Stopped' : 'Result'), ` turn ${status}`,
        typeof params.turn?.durationMs === 'number'
          ? h('span', { class: 'fact' }, ' · duration ', h('strong', { class: 'f-duration' }, duration(params.turn.durationMs)))
          : null),
      params.turn?.error?.message ? h('div', { class: 'text' }, clip(String(params.turn.error.message))) : null);
  }
  if (ev.method === 'thread/started') {
    return h('div', { class: 'sys muted' }, 'Session started',
      params.thread?.cwd ? [' · in ', h('code', {}, String(params.thread.cwd))] : null);
  }
  return rawDetails(ev.method, ev);
}

/** Claude Code's name for an ACP tool call's kind (as the hub's approvals name it). */
const ACP_TOOL = { execute: 'Bash', edit: 'Edit', read: 'Read', fetch: 'WebFetch', search: 'Grep' };

/** An ACP tool call (Gemini's `gemini --acp`) as a tool_use block: a shell command's title is its command line. */
function acpToolUse(call, ctx) {
  const name = ACP_TOOL[call.kind] ?? String(call.kind ?? 'tool');
  if (call.toolCallId) ctx.toolNames.set(String(call.toolCallId), name);
  const input = call.kind === 'execute' ? { command: call.title } : { title: call.title, locations: call.locations };
  return renderToolUse({ name, input });
}

/**
 * A line of an Agent Client Protocol agent (Gemini): its tool calls render as Claude
 * Code's tool calls and results, its message chunks as text; everything else stays raw.
 * An agent message arrives in small chunks, one line each: a chunk that directly follows
 * another of the same run (the previous seq) joins that chunk's block, which shows the
 * whole text so far, and renders as null (its row stays, hidden).
 */
function renderAcp(ev, params, ctx, o) {
  if (ev.method === 'session/request_permission') {
    return acpToolUse(params.toolCall && typeof params.toolCall === 'object' ? params.toolCall : {}, ctx);
  }
  const update = params.update && typeof params.update === 'object' ? params.update : {};
  const text = typeof update.content?.text === 'string' ? update.content.text : '';
  switch (update.sessionUpdate) {
    case 'agent_message_chunk': {
      const prev = ctx.acpMessage;
      if (prev && prev.runId === o.run_id && typeof o.seq === 'number' && prev.seq === o.seq - 1) {
        prev.text += text;
        prev.seq = o.seq;
        prev.block.replaceChildren(formatText(prev.text));
        return null;
      }
      const block = h('div', { class: 'msg assistant' }, formatText(text));
      ctx.acpMessage = { runId: o.run_id, seq: o.seq, block, text };
      return block;
    }
    case 'user_message_chunk':
      return h('div', { class: 'msg user' }, h('div', { class: 'user-text' }, clip(text)));
    case 'tool_call':
      if (update.status === 'pending' || update.status === 'in_progress' || !update.status) return acpToolUse(update, ctx);
    // falls through: a call already finished (a replayed session) shows as its result
    case 'tool_call_update': {
      if (update.status !== 'completed' && update.status !== 'failed') return rawDetails(`${ev.method} · ${update.sessionUpdate}`, ev);
      const out = (Array.isArray(update.content) ? update.content : []).map((c) => c?.content?.text ?? '').filter(Boolean).join('\n');
      return renderToolResult({
        tool_use_id: update.toolCallId,
        is_error: update.status === 'failed',
        content: out || `${update.status} ${update.title ?? ''}`,
      }, ctx);
    }
    default:
      return rawDetails(`${ev.method} · ${update.sessionUpdate ?? ''}`, ev);
  }
}

function renderHub(kind, ev, o) {
  if (kind === 'run_started') {
    return h('div', { class: 'run-sep start' },
      h('span', { class: 'run-label' }, 'Run started'),
      ev?.prompt ? h('div', { class: 'prompt-echo' }, clip(String(ev.prompt))) : null);
  }
  if (kind === 'run_finished') {
    const status = String(ev?.status ?? 'finished');
    const bad = status !== 'succeeded';
    const label = { succeeded: 'Run succeeded', failed: 'Run failed', killed: 'Run killed', timed_out: 'Run timed out' }[status] ?? `Run ${status}`;
    return h('div', { class: `run-sep end ${bad ? 'err' : 'ok'}` },
      h('span', { class: 'run-label' }, label),
      ev?.exit_code !== undefined && ev?.exit_code !== null ? h('span', { class: 'muted' }, ` · exit code ${ev.exit_code}`) : null,
      typeof ev?.cost_usd === 'number' ? h('span', { class: 'muted run-cost' }, ` · cost ${usd(ev.cost_usd)}`) : null,
      ev?.reason ? h('span', { class: 'muted' }, ` · ${ev.reason}`) : null);
  }
  const session = renderSessionLine(kind, ev);
  if (session) return session;
  return h('div', { class: 'hub-note muted' }, o.text ?? (ev ? `${kind}: ${JSON.stringify(ev)}` : kind));
}

/** Who answered an approval (docs/protocol.md, `approval_resolved`'s `resolution.by`), in words. */
function answeredBy(by) {
  switch (by?.kind) {
    case 'client': {
      const who = String(by.name || by.role || 'a client');
      return by.origin ? `${who} (${by.origin})` : who;
    }
    case 'policy': return 'the project\'s policy';
    case 'rule': return `a rule for this ${by.scope === 'project' ? 'project' : 'session'}`;
    case 'timeout': return 'nobody in time';
    case 'withdrawn': return null;
    default: return by?.kind ? String(by.kind) : null;
  }
}

/**
 * A session's own log lines (turns, approvals, follow-ups, interrupts; docs/protocol.md,
 * "The session's lines") as one readable line each, or null for another kind. Every
 * string from the agent or a client (a follow-up's text, a tool's input) goes in as text.
 */
function renderSessionLine(kind, ev) {
  if (!ev || typeof ev !== 'object') return null;
  const note = (cls, ...parts) => h('div', { class: `session-line ${cls}` }, ...parts);
  const turn = ev.turn ? `Turn ${ev.turn}` : 'Turn';
  const quote = (text) => (text ? [': ', h('q', {}, clip(String(text)))] : null);
  switch (kind) {
    case 'turn_started':
      return note('turn start', `${turn} started`,
        ev.source === 'follow_up' ? [' · follow-up', quote(ev.text)] : null);
    case 'turn_ended': {
      const how = { end_turn: 'ended', cancelled: 'was interrupted', error: 'ended with an error' }[ev.stop_reason] ?? 'ended';
      return note(`turn end ${ev.stop_reason === 'error' ? 'err' : ''}`, `${turn} ${how}`);
    }
    case 'follow_up_queued':
      return note('follow-up', 'Follow-up queued', quote(ev.text));
    case 'follow_up_delivered':
      return note('follow-up', ev.source === 'steer' ? `Steered into turn ${ev.turn ?? ''}`.trim() : 'Follow-up delivered', quote(ev.text));
    case 'interrupt':
      return note('interrupt warn', `${turn} interrupted`,
        ev.withdrawn ? ` · ${ev.withdrawn} approval${ev.withdrawn === 1 ? '' : 's'} withdrawn` : null);
    case 'session_idle':
      return note('idle muted', 'Session idle: its process ends; the next prompt resumes it');
    case 'approval_requested': {
      const command = ev.input && typeof ev.input.command === 'string' ? ev.input.command : null;
      return note('approval asked warn', `Approval asked: ${String(ev.tool_name ?? 'a tool')}`,
        command ? [' wants to run ', h('code', {}, clip(command))] : null);
    }
    case 'approval_resolved': {
      const r = ev.resolution ?? {};
      const tool = String(ev.tool_name ?? 'a tool');
      const by = answeredBy(r.by);
      const what = r.outcome === 'allowed' ? `${tool} allowed` : r.outcome === 'denied' ? `${tool} denied` : `${tool} approval withdrawn`;
      const always = r.decision === 'allow_always' || r.decision === 'reject_always'
        ? ` (always, for this ${r.scope === 'project' ? 'project' : 'session'})` : '';
      return note(`approval answered ${r.outcome === 'allowed' ? 'ok' : 'err'}`,
        `${what}${r.edited ? ' with an edited input' : ''}${always}`,
        by ? ` by ${by}` : null,
        r.rule ? [' · rule ', h('code', {}, clip(String(r.rule)))] : null,
        r.message ? [' · ', h('q', {}, clip(String(r.message)))] : null);
    }
    default:
      return null;
  }
}

function renderSystem(ev) {
  if (ev.subtype === 'init') {
    return h('div', { class: 'sys muted' },
      'Session started',
      ev.model ? [' · model ', h('code', {}, String(ev.model))] : null,
      ev.cwd ? [' · in ', h('code', {}, String(ev.cwd))] : null);
  }
  return rawDetails(`system${ev.subtype ? ` · ${ev.subtype}` : ''}`, ev);
}

function renderMessage(ev, ctx, role) {
  const content = ev.message?.content;
  const wrap = h('div', { class: `msg ${role}` });
  if (typeof content === 'string') {
    wrap.append(role === 'user' ? h('div', { class: 'user-text' }, clip(content)) : formatText(content));
    return wrap;
  }
  if (!Array.isArray(content)) return rawDetails(role, ev);
  for (const block of content) {
    if (!block || typeof block !== 'object') continue;
    switch (block.type) {
      case 'text':
        wrap.append(role === 'user' ? h('div', { class: 'user-text' }, clip(String(block.text ?? ''))) : formatText(String(block.text ?? '')));
        break;
      case 'thinking':
        wrap.append(h('details', { class: 'thinking' }, h('summary', {}, 'Thinking'), h('div', { class: 'text' }, clip(String(block.thinking ?? '')))));
        break;
      case 'tool_use':
        if (block.id) ctx.toolNames.set(block.id, String(block.name ?? 'tool'));
        wrap.append(renderToolUse(block));
        break;
      case 'tool_result':
        wrap.append(renderToolResult(block, ctx));
        break;
      default:
        wrap.append(rawDetails(block.type ?? 'block', block));
    }
  }
  return wrap;
}

function renderToolUse(block) {
  const name = String(block.name ?? 'tool');
  const hint = toolHint(block.input);
  return h('details', { class: 'tool' },
    h('summary', {},
      h('span', { class: 'tag' }, 'Tool'), ' ', h('strong', {}, name),
      hint ? h('span', { class: 'hint' }, ` ${hint}`) : null),
    h('pre', { class: 'mono' }, clip(pretty(block.input))));
}

function renderToolResult(block, ctx) {
  const text = resultText(block.content);
  const name = ctx.toolNames.get(block.tool_use_id);
  const isErr = block.is_error === true;
  const first = text.split('\n', 1)[0];
  return h('details', { class: `tool-result${isErr ? ' err' : ''}` },
    h('summary', {},
      h('span', { class: 'tag' }, isErr ? 'Error' : 'Result'), ' ',
      name ? h('strong', {}, name) : null,
      h('span', { class: 'hint' }, ` ${first.length > 80 ? `${first.slice(0, 80)}…` : first}`)),
    h('pre', { class: 'mono' }, clip(text)));
}

function renderResult(ev) {
  const isErr = ev.is_error === true || (typeof ev.subtype === 'string' && ev.subtype.startsWith('error'));
  const parts = [
    h('span', { class: 'tag' }, isErr ? 'Failed' : 'Result'),
    ` ${ev.subtype ?? ''}`,
  ];
  const facts = [];
  if (ev.total_cost_usd !== undefined) facts.push(['cost', usd(ev.total_cost_usd)]);
  if (ev.duration_ms !== undefined) facts.push(['duration', duration(ev.duration_ms)]);
  if (ev.num_turns !== undefined) facts.push(['turns', number(ev.num_turns)]);
  return h('div', { class: `result ${isErr ? 'err' : 'ok'}` },
    h('div', { class: 'result-line' }, parts,
      facts.map(([k, v]) => h('span', { class: 'fact' }, ` · ${k} `, h('strong', { class: `f-${k}` }, v)))),
    isErr && ev.result ? h('div', { class: 'text' }, clip(String(ev.result))) : null);
}

function rawDetails(label, value) {
  return h('details', { class: 'raw' }, h('summary', {}, String(label)), h('pre', { class: 'mono' }, clip(pretty(value))));
}

/**
 * Formats assistant text: ``` fences become code blocks, blank lines split paragraphs,
 * `inline code` becomes <code>. Everything else stays literal text.
 */
export function formatText(text) {
  const out = h('div', { class: 'text' });
  const clipped = text.length > MAX_INLINE_CHARS;
  const src = clipped ? text.slice(0, MAX_INLINE_CHARS) : text;
  const parts = src.split(/^```[^\n]*\n?/m);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      out.append(h('pre', { class: 'mono code' }, h('code', {}, part.replace(/\n$/, ''))));
      return;
    }
    for (const para of part.split(/\n{2,}/)) {
      if (!para.trim()) continue;
      out.append(h('p', {}, inlineCode(para)));
    }
  });
  if (clipped) out.append(moreButton(text, out));
  return out;
}

function inlineCode(s) {
  if (!s.includes('`')) return s;
  return s.split(/`([^`\n]+)`/).map((seg, i) => (i % 2 ? h('code', {}, seg) : seg));
}

/** Plain text, cut at MAX_INLINE_CHARS with a "show all" button. */
function clip(text) {
  if (text.length <= MAX_INLINE_CHARS) return text;
  const span = h('span', {}, text.slice(0, MAX_INLINE_CHARS));
  const frag = document.createDocumentFragment();
  frag.append(span, moreButton(text, span));
  return frag;
}

function moreButton(text, target) {
  const btn = h('button', { type: 'button', class: 'link more' },
    `Show all ${number(text.length)} characters`);
  btn.addEventListener('click', () => {
    target.replaceChildren(text);
    btn.remove();
  }, { once: true });
  return btn;
}

function resultText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((c) => (c?.type === 'text' ? String(c.text ?? '') : pretty(c))).join('\n');
  }
  return content === undefined ? '' : pretty(content);
}

function toolHint(input) {
  if (!input || typeof input !== 'object') return '';
  const v = input.file_path ?? input.command ?? input.pattern ?? input.path ?? input.url ?? input.description ?? '';
  const s = String(v).replace(/\s+/g, ' ');
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function pretty(v) {
  try {
    return JSON.stringify(v, null, 2) ?? '';
  } catch {
    return String(v);
  }
}

function cssIdent(s) {
  return String(s).replace(/[^a-zA-Z0-9_-]/g, '_');
}
