// scripts/check-docs.mjs, the check of the docs' examples, on documents with known
// mistakes: each must be reported with its line, and correct examples must pass.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCli, checkJson, loadValidator } from '../../scripts/check-docs.mjs';

const validator = loadValidator();
const fence = (lang, body) => `\`\`\`${lang}\n${body}\n\`\`\``;

test('JSON-RPC examples: correct ones pass, wrong ones are reported on their line', () => {
  const doc = [
    '# Example', // 1
    fence('json', '{"jsonrpc":"2.0","id":1,"method":"hub.status"}'), // 2-4
    '### event.publish', // 5
    fence('json', [
      '→ {"jsonrpc":"2.0","id":3,"method":"event.publish","params":{"type":"probe.click","payload":{}}}', // 7
      '← {"jsonrpc":"2.0","id":3,"result":{"delivered":1,"seq":1}}', // 8
      '   (prose between messages)', // 9
      '← {"jsonrpc":"2.0","id":3,"result":{"delivered":"one"}}', // 10
    ].join('\n')),
    fence('json', '{"jsonrpc":"2.0","id":2,"method":"hub.statuz"}'), // 12-14
    fence('json', '{"jsonrpc":"2.0","method":"event","params":{"type":"probe.click"}}'), // 15-17
    fence('json', '{"jsonrpc": "2.0", ...}'), // 18-20
    fence('json', '{"name": "not a JSON-RPC message, not checked"}'), // 21-23
    '## Elsewhere', // 24
    fence('json', '{"jsonrpc":"2.0","id":9,"result":{"killed":true}}'), // 25-27: some method's result
    fence('json', '{"jsonrpc":"2.0","id":9,"result":{"nobody":"returns this"}}'), // 28-30
  ].join('\n');
  const problems = checkJson(doc, validator);
  const at = (line) => problems.filter((p) => p.line === line).map((p) => p.message).join(' | ');
  assert.equal(at(3), '');
  assert.equal(at(7), '');
  assert.equal(at(8), '');
  assert.match(at(10), /^event\.publish result: .*\/delivered must be integer/);
  assert.match(at(13), /unknown method "hub\.statuz"/);
  assert.match(at(16), /^event notification: .*must have required property/);
  assert.match(at(19), /not JSON/);
  assert.equal(at(26), '');
  assert.match(at(29), /its result is the result of no method/);
  assert.equal(problems.length, 5, JSON.stringify(problems));
});

test('CLI examples: the real CLI parses each `semantest-hub` command; mistakes are reported on their line', () => {
  const doc = fence('sh', [
    'semantest-hub project add ~/code/myapp   # a placeholder path', // 2
    'SEMANTEST_HUB_PORT=3005 \\', // 3
    '  semantest-hub serve --bogus', // 4
    'curl -H "Authorization: Bearer $(semantest-hub tokn)" http://127.0.0.1:3003/ws', // 5
    'semantest-hub token create --name ci --scope tasks nope', // 6
    'systemctl --user enable --now semantest-hub', // 7: not an invocation
  ].join('\n'));
  const problems = checkCli(doc);
  const at = (line) => problems.filter((p) => p.line === line).map((p) => p.message).join(' | ');
  assert.equal(at(2), '');
  assert.match(at(3), /semantest-hub serve --bogus: .*unexpected argument '--bogus'/);
  assert.match(at(5), /semantest-hub tokn: .*unrecognized subcommand 'tokn'/);
  assert.match(at(6), /invalid value 'nope'/);
  assert.equal(problems.length, 3, JSON.stringify(problems));
});
