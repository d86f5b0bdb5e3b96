#!/usr/bin/env node
// Keeps the examples in the docs true to the code:
//
// - every JSON-RPC message in a ```json block (a request, a response or a notification;
//   a block is one JSON value, or one per line, optionally after → or ←) validates against
//   docs/protocol.schema.json: requests against their method's branch of AnyRequest,
//   notifications against AnyNotification, responses against Response or ErrorResponse
//   and their `result` against Results/<method>, the method being that of the request
//   with the same id shown before it (same block, else same section), else the section's
//   heading when it names a method (failing both, the result must be some method's);
// - every `semantest-hub …` command in a ```sh block parses with the real CLI: the
//   binary runs with the example's arguments plus `--help`, so clap reads every
//   subcommand, flag and value of the example and stops before doing anything. An unknown
//   subcommand or flag, a bad value or an extra argument fails. (Missing required
//   arguments and conflicts are not caught: clap checks those after `--help`.)
//
//   node scripts/check-docs.mjs [FILE.md ...]     (default: README.md, clients/js/README.md, docs/*.md)
//
// Each problem is printed as `file:line: what failed`; the exit code is 1 when there is
// one. The hub binary is target/debug/semantest-hub, or SEMANTEST_HUB_BIN. The validator
// is Ajv (draft 2020-12, with ajv-formats), pinned in tests/browser/package.json.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCHEMA_FILE = path.join(REPO, 'docs/protocol.schema.json');
const HUB_BIN = process.env.SEMANTEST_HUB_BIN || path.join(REPO, 'target/debug/semantest-hub');

/** The Markdown files checked by default. */
export function defaultFiles() {
  const docs = fs.readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`);
  return ['README.md', 'clients/js/README.md', ...docs];
}

/**
 * The fenced code blocks of a Markdown text: `{lang, line, lines: [{text, line}]}`, lines
 * numbered from 1, each with the fence's indentation removed. Headings outside blocks are
 * returned as `{heading, line}` in the same list, in order.
 */
export function parseMarkdown(text) {
  const out = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+|~~~+)\s*([^\s`]*)/.exec(lines[i]);
    if (open) {
      const [, indent, fence, lang] = open;
      const block = { lang: lang.toLowerCase(), line: i + 1, lines: [] };
      for (i++; i < lines.length; i++) {
        if (new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`).test(lines[i])) break;
        const raw = lines[i];
        block.lines.push({ text: raw.startsWith(indent) ? raw.slice(indent.length) : raw.trimStart(), line: i + 1 });
      }
      out.push(block);
      continue;
    }
    const h = /^#{1,6}\s+(.*)$/.exec(lines[i]);
    if (h) out.push({ heading: h[1].trim(), line: i + 1 });
  }
  return out;
}

// ---------------------------------------------------------------- JSON-RPC examples

export function loadValidator() {
  const require = createRequire(path.join(REPO, 'tests/browser/package.json'));
  let Ajv2020;
  let addFormats;
  try {
    Ajv2020 = require('ajv/dist/2020').default;
    addFormats = require('ajv-formats').default;
  } catch (err) {
    throw new Error(`cannot load Ajv from tests/browser/node_modules (run \`npm ci\` in tests/browser): ${err.message}`);
  }
  // strictSchema catches unknown keywords (a typo in the schema); the stylistic strict
  // checks (union types, required properties declared elsewhere) do not apply to it.
  const ajv = new Ajv2020({ allErrors: true, strictSchema: true, strictTypes: false, strictTuples: false, strictRequired: false });
  addFormats(ajv);
  const schema = JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8'));
  ajv.addSchema(schema);
  const id = schema.$id;
  const get = (pointer) => ajv.getSchema(`${id}#${pointer}`);
  const branches = (name) => new Map(schema.$defs[name].oneOf.map((b, i) => [b.properties.method.const, `/$defs/${name}/oneOf/${i}`]));
  return {
    requests: branches('AnyRequest'),
    notifications: branches('AnyNotification'),
    results: new Set(Object.keys(schema.$defs.Results.$defs)),
    /** The validator of `method`'s result. */
    result: (method) => get(`/$defs/Results/$defs/${method.replace(/~/g, '~0').replace(/\//g, '~1')}`),
    get,
  };
}

function describeErrors(errors) {
  const seen = new Set();
  return errors
    .filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf' && e.keyword !== 'if')
    .map((e) => `${e.instancePath || '/'} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ''}${e.params?.allowedValue !== undefined ? ` ${JSON.stringify(e.params.allowedValue)}` : ''}`)
    .filter((m) => !seen.has(m) && seen.add(m))
    .slice(0, 6)
    .join('; ');
}

/** The JSON values of a ```json block, each with its line, or a problem. */
function jsonValues(block) {
  const whole = block.lines.map((l) => l.text).join('\n');
  if (!whole.trim()) return { values: [] };
  try {
    return { values: [{ value: JSON.parse(whole), line: block.lines[0].line }] };
  } catch {
    // one value per line, see below
  }
  const values = [];
  for (const { text, line } of block.lines) {
    if (!text.trim()) continue;
    const arrow = /^\s*(→|←)\s*/.exec(text);
    const body = arrow ? text.slice(arrow[0].length) : text.trim();
    // An indented line that is not JSON is prose between the messages ("one of them answers:").
    if (!arrow && /^\s/.test(text) && !/^[[{]/.test(body)) continue;
    try {
      values.push({ value: JSON.parse(body), line });
    } catch (err) {
      return { problem: { line, message: `not JSON (${err.message}); a json block holds one JSON value, or one per line (optionally after → or ←)` } };
    }
  }
  return { values };
}

/** Checks the JSON-RPC messages of one file; returns `[{line, message}]`. */
export function checkJson(text, validator) {
  const problems = [];
  let sectionIds = new Map();
  let sectionMethod = null;
  for (const item of parseMarkdown(text)) {
    if (item.heading !== undefined) {
      sectionIds = new Map();
      const name = item.heading.replace(/`/g, '').trim();
      sectionMethod = validator.results.has(name) ? name : null;
      continue;
    }
    if (item.lang !== 'json') continue;
    const { values, problem } = jsonValues(item);
    if (problem) { problems.push(problem); continue; }
    const blockIds = new Map();
    for (const { value, line } of values) {
      if (!value || typeof value !== 'object' || Array.isArray(value) || !('jsonrpc' in value)) continue;
      const fail = (what, validate) => {
        if (!validate(value)) problems.push({ line, message: `${what}: ${describeErrors(validate.errors)}` });
      };
      const key = JSON.stringify(value.id);
      if ('method' in value) {
        const isRequest = 'id' in value;
        const table = isRequest ? validator.requests : validator.notifications;
        const pointer = table.get(value.method);
        if (!pointer) {
          problems.push({ line, message: `${isRequest ? 'request' : 'notification'} of unknown method ${JSON.stringify(value.method)} (not in docs/protocol.schema.json ${isRequest ? 'AnyRequest' : 'AnyNotification'})` });
          continue;
        }
        fail(`${value.method} ${isRequest ? 'request' : 'notification'}`, validator.get(pointer));
        if (isRequest) { blockIds.set(key, value.method); sectionIds.set(key, value.method); }
      } else if ('error' in value) {
        fail('error response', validator.get('/$defs/ErrorResponse'));
      } else if ('result' in value) {
        fail('response', validator.get('/$defs/Response'));
        const method = blockIds.get(key) ?? sectionIds.get(key) ?? sectionMethod;
        if (!method) {
          // No request or heading says which method answered: the result must at least
          // be the result of some method.
          if (![...validator.results].some((m) => validator.result(m)(value.result))) {
            problems.push({ line, message: `response with id ${key}: its result is the result of no method in docs/protocol.schema.json Results (show its request before it, in the block or section, or put it under a heading naming the method, for a precise check)` });
          }
        } else if (validator.results.has(method)) {
          const validate = validator.result(method);
          if (!validate(value.result)) problems.push({ line, message: `${method} result: ${describeErrors(validate.errors)}` });
        }
      } else {
        problems.push({ line, message: 'a JSON-RPC message with neither method, result nor error' });
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------- CLI examples

/**
 * Logical lines of a shell block, with their first line: lines ending in a backslash, and
 * lines inside an open quote or `$(`, are joined with the next.
 */
export function logicalLines(block) {
  const out = [];
  let cur = null;
  for (const { text, line } of block.lines) {
    if (cur) cur.text += `\n${text}`;
    else cur = { text, line };
    if (/(^|[^\\])\\$/.test(text) && !/(^|\s)#/.test(text.replace(/'[^']*'|"(\\.|[^"\\])*"/g, ''))) {
      cur.text = cur.text.slice(0, -1);
      continue;
    }
    try {
      shellCommands(cur.text);
    } catch (err) {
      if (/unterminated/.test(err.message)) continue;
    }
    out.push(cur);
    cur = null;
  }
  if (cur) out.push(cur);
  return out;
}

/** The text of a `$( … )` starting at `i` (just after `$(`) and the index after its `)`. */
function substitution(s, i) {
  let depth = 1;
  let quote = null;
  const start = i;
  for (; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '\'' || c === '"') quote = c;
    else if (c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return { inner: s.slice(start, i), end: i + 1 };
  }
  throw new Error('unterminated $(');
}

/**
 * The simple commands of a shell line, as word lists, including those inside `$( … )`.
 * Enough of POSIX shell for examples: quotes, backslashes, comments, `|`, `&&`, `||`,
 * `;`, `&`, redirections and command substitution. Words keep `~` and `$VAR` as written.
 */
export function shellCommands(s) {
  const commands = [];
  let words = [];
  let word = null;
  let dropNext = false;
  const endWord = () => {
    if (word !== null) { if (dropNext) dropNext = false; else words.push(word); }
    word = null;
  };
  const endCommand = () => { endWord(); if (words.length) commands.push(words); words = []; };
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === ' ' || c === '\t' || c === '\n') { endWord(); continue; }
    if (c === '#' && word === null) { while (i < s.length && s[i] !== '\n') i++; endCommand(); continue; }
    if (c === '\'') {
      const j = s.indexOf('\'', i + 1);
      if (j < 0) throw new Error('unterminated \'');
      word = (word ?? '') + s.slice(i + 1, j);
      i = j;
      continue;
    }
    if (c === '"') {
      word ??= '';
      for (i++; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === '\\' && '"\\$`'.includes(s[i + 1])) { word += s[++i]; continue; }
        if (s[i] === '$' && s[i + 1] === '(') {
          const sub = substitution(s, i + 2);
          commands.push(...shellCommands(sub.inner));
          word += '$(…)';
          i = sub.end - 1;
          continue;
        }
        word += s[i];
      }
      if (i >= s.length) throw new Error('unterminated "');
      continue;
    }
    if (c === '\\') { word = (word ?? '') + (s[i + 1] ?? ''); i++; continue; }
    if (c === '$' && s[i + 1] === '(') {
      const sub = substitution(s, i + 2);
      commands.push(...shellCommands(sub.inner));
      word = `${word ?? ''}$(…)`;
      i = sub.end - 1;
      continue;
    }
    if ('|&;()'.includes(c)) { endCommand(); if (s[i + 1] === c) i++; continue; }
    if (c === '>' || c === '<') {
      if (word !== null && /^\d+$/.test(word)) word = null; // the fd of 2>…
      endWord();
      while (s[i + 1] === '>' || s[i + 1] === '<') i++;
      if (s[i + 1] === '&') { i++; while (/\d/.test(s[i + 1] ?? '')) i++; continue; }
      dropNext = true;
      continue;
    }
    word = (word ?? '') + c;
  }
  endCommand();
  return commands;
}

/** The argument lists of the `semantest-hub` invocations among `commands`. */
export function hubInvocations(commands) {
  const out = [];
  for (let words of commands) {
    for (;;) {
      while (words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) words = words.slice(1);
      if (['sudo', 'env', 'exec', 'nohup', 'time', 'command'].includes(words[0])) { words = words.slice(1); continue; }
      break;
    }
    if (words.length && path.basename(words[0]) === 'semantest-hub') out.push(words.slice(1));
  }
  return out;
}

/** Checks the `semantest-hub` commands of one file's ```sh blocks; returns `[{line, message}]`. */
export function checkCli(text, hubBin = HUB_BIN) {
  const problems = [];
  // The binary must not pick up a setting (or an unknown variable) from the caller.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toUpperCase().startsWith('SEMANTEST_HUB_')));
  for (const block of parseMarkdown(text)) {
    if (!['sh', 'bash', 'shell', 'console'].includes(block.lang)) continue;
    for (const { text: cmd, line } of logicalLines(block)) {
      let invocations;
      try {
        invocations = hubInvocations(shellCommands(cmd));
      } catch (err) {
        if (cmd.includes('semantest-hub')) problems.push({ line, message: `cannot read the shell line (${err.message}): ${cmd.trim()}` });
        continue;
      }
      for (const args of invocations) {
        const dashdash = args.indexOf('--');
        const withHelp = dashdash < 0 ? [...args, '--help'] : [...args.slice(0, dashdash), '--help', ...args.slice(dashdash)];
        const r = spawnSync(hubBin, withHelp, { env, encoding: 'utf8', timeout: 10_000 });
        const shown = `semantest-hub ${args.join(' ')}`;
        if (r.error) {
          problems.push({ line, message: `${shown}: cannot run ${hubBin}: ${r.error.message}` });
        } else if (r.status !== 0 || !/Usage:/.test(r.stdout)) {
          const why = (r.stderr.split('\n').find((l) => l.startsWith('error:')) ?? r.stderr.trim().split('\n')[0] ?? `exit ${r.status}`).trim();
          problems.push({ line, message: `${shown}: the CLI does not accept it: ${why || `exit ${r.status ?? r.signal}`}` });
        }
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------- main

function main(argv) {
  const files = argv.length ? argv : defaultFiles();
  if (!fs.existsSync(HUB_BIN)) {
    console.error(`check-docs: hub binary not found at ${HUB_BIN}: run \`cargo build\` first (or set SEMANTEST_HUB_BIN)`);
    return 2;
  }
  const validator = loadValidator();
  let count = 0;
  for (const file of files) {
    const text = fs.readFileSync(path.resolve(REPO, file), 'utf8');
    const rel = path.relative(REPO, path.resolve(REPO, file));
    for (const p of [...checkJson(text, validator), ...checkCli(text)].sort((a, b) => a.line - b.line)) {
      console.error(`${rel}:${p.line}: ${p.message}`);
      count++;
    }
  }
  if (count) {
    console.error(`check-docs: ${count} problem${count === 1 ? '' : 's'} in the docs' examples`);
    return 1;
  }
  console.log(`check-docs: the JSON-RPC and CLI examples of ${files.length} files agree with docs/protocol.schema.json and the CLI`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
