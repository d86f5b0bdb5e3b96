// The SDK's approvals and follow-ups against a real hub whose fake agent CLI speaks Claude
// Code's control protocol, as a client holding the `agents` scope: an approval arrives as
// an event, is listed, answered with an edited input (which is what runs), and a second
// answer gets APPROVAL_RESOLVED; follow-ups are queued, edited, cancelled and delivered;
// a denial's message reaches the agent; an interrupt withdraws a waiting approval. A
// client without the scope gets FORBIDDEN and none of the events.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HubClient, memoryStorage, RpcError } from '../src/index.js';
import { startHub, stopHub, waitFor, nextEvent, wsClass, sdkFetch, ownerConnection, tempDir, EXT_ORIGIN, FIXTURES } from './helpers.js';

let hub;
let owner;

before(async () => {
  hub = await startHub({ env: { SEMANTEST_HUB_AGENT__CLI_PATH: path.join(FIXTURES, 'fake-claude') } });
  owner = await ownerConnection(hub);
});

after(async () => {
  owner?.close();
  await stopHub(hub);
});

/** A started client with a client token holding `scopes`. */
async function client(scopes) {
  const { token, client: { id: clientId } } = await owner.call('client.create', { name: `agents ${scopes.join(' ')}`, scopes });
  const c = new HubClient({
    ports: [hub.port],
    token: { token, clientId },
    storage: memoryStorage(),
    WebSocket: wsClass({ origin: EXT_ORIGIN }),
    fetch: sdkFetch({ origin: EXT_ORIGIN }),
    backoff: { initialMs: 100, maxMs: 500 },
  });
  const s = await c.start();
  assert.equal(s.connected, true, JSON.stringify(s));
  return c;
}

/** A new project in a fresh folder. */
async function project(name) {
  const dir = await tempDir(`sdk-agents-${name}-`);
  const p = await owner.call('project.create', { path: dir, name });
  return { id: p.id, dir };
}

/** The result texts of a project's turns, oldest first. */
async function results(projectId) {
  const res = await owner.call('messages.list', { project_id: projectId, limit: 1000 });
  return res.messages.filter((m) => m.event?.type === 'result').map((m) => m.event.result ?? m.event.subtype);
}

async function idle(projectId) {
  await waitFor(async () => (await owner.call('project.get', { project_id: projectId })).state !== 'running',
    { timeout: 30_000, message: 'the run to end' });
}

test('an approval: event, list, allowed with an edited input, a second answer refused', async () => {
  const c = await client(['agents']);
  const resolvedSeen = [];
  c.on('approvalresolved', (r) => resolvedSeen.push(r));
  try {
    const { id, dir } = await project('allow');
    const asked = nextEvent(c, 'approvalrequested', (a) => a.project_id === id, 30_000);
    await c.call('agent.run', { project_id: id, prompt: 'ask Bash touch proposed.txt' });
    const a = await asked;
    assert.match(a.id, /^ap_/);
    assert.equal(a.tool_name, 'Bash');
    assert.deepEqual(a.input, { command: 'touch proposed.txt', description: 'scripted' });
    assert.equal(a.tool_use_id, 'toolu_fake_1');
    assert.ok(Array.isArray(a.suggestions) && a.suggestions.length === 1);
    assert.ok(Date.parse(a.expires_at) > Date.parse(a.asked_at));

    assert.deepEqual((await c.approvals()).map((x) => x.id), [a.id]);
    assert.deepEqual((await c.approvals({ projectId: id })).map((x) => x.id), [a.id]);
    assert.deepEqual(await c.approvals({ projectId: '01a1fc9d-c134-7624-9b77-0c07587770e3' }), []);

    const resolved = nextEvent(c, 'approvalresolved', (r) => r.approval_id === a.id);
    const { approval, resolution } = await c.allow(a.id, { updatedInput: { command: 'touch edited.txt' } });
    assert.equal(approval.id, a.id);
    assert.equal(resolution.outcome, 'allowed');
    assert.equal(resolution.decision, 'allow_once');
    assert.equal(resolution.edited, true);
    assert.equal(resolution.by.kind, 'client');
    assert.equal((await resolved).resolution.outcome, 'allowed');

    await assert.rejects(c.deny(a.id, { message: 'too late' }), (e) => e instanceof RpcError
      && e.kind === 'APPROVAL_RESOLVED' && e.data.resolution.outcome === 'allowed');
    await assert.rejects(c.allow('ap_00000000000000000000000000000000'), (e) => e.kind === 'APPROVAL_NOT_FOUND');
    await assert.rejects(c.answerApproval(a.id, { decision: 'maybe' }), TypeError);

    await idle(id);
    assert.ok(fs.existsSync(path.join(dir, 'edited.txt')), 'the edited command ran');
    assert.equal(fs.existsSync(path.join(dir, 'proposed.txt')), false, 'the proposed one did not');
    assert.equal((await results(id)).at(-1), 'allowed: touch edited.txt');
    assert.deepEqual(await c.approvals(), []);
    assert.equal(resolvedSeen.filter((r) => r.approval_id === a.id).length, 1, 'one approvalresolved per approval');
  } finally {
    await c.stop();
  }
});

test('follow-ups: queued mid-turn, edited, cancelled, delivered after the turn; a denial and an interrupt', async () => {
  const c = await client(['agents']);
  const changes = [];
  c.on('queuechanged', (m) => changes.push(m));
  try {
    const { id, dir } = await project('follow');
    let asked = nextEvent(c, 'approvalrequested', (a) => a.project_id === id, 30_000);
    await c.call('agent.run', { project_id: id, prompt: 'ask Bash touch first.txt' });
    const first = await asked;

    // The turn waits on the approval: these are queued behind it.
    const q1 = await c.sendToAgent(id, 'ask Bash touch queued.txt');
    assert.equal(q1.delivery, 'queued');
    assert.match(q1.message.id, /^qm_/);
    assert.equal(q1.message.state, 'queued');
    const q2 = await c.sendToAgent(id, 'cancel me', { mode: 'queue' });
    assert.deepEqual((await c.followUps(id)).map((m) => m.text), ['ask Bash touch queued.txt', 'cancel me']);
    const edited = await c.updateFollowUp(q1.message.id, 'ask Bash touch second.txt');
    assert.equal(edited.text, 'ask Bash touch second.txt');
    const cancelled = await c.cancelFollowUp(q2.message.id);
    assert.equal(cancelled.state, 'cancelled');
    await assert.rejects(c.cancelFollowUp(q2.message.id), (e) => e.kind === 'MESSAGE_NOT_QUEUED');
    assert.deepEqual((await c.followUps(id)).map((m) => m.text), ['ask Bash touch second.txt']);
    await waitFor(() => changes.some((m) => m.id === q2.message.id && m.state === 'cancelled'), { message: 'queuechanged for the cancel' });
    assert.ok(changes.some((m) => m.id === q1.message.id && m.text === 'ask Bash touch second.txt'), 'queuechanged for the edit');

    // Denied with a message: nothing runs, the agent reads it, and the queued one goes next.
    asked = nextEvent(c, 'approvalrequested', (a) => a.project_id === id && a.input.command === 'touch second.txt', 30_000);
    const denied = await c.deny(first.id, { message: 'not this one' });
    assert.equal(denied.resolution.outcome, 'denied');
    const second = await asked;
    await waitFor(() => changes.some((m) => m.id === q1.message.id && m.state === 'delivered'), { message: 'queuechanged for the delivery' });
    assert.deepEqual(await c.followUps(id), []);
    await assert.rejects(c.updateFollowUp(q1.message.id, 'too late'), (e) => e.kind === 'MESSAGE_NOT_QUEUED');

    // An interrupt while it waits withdraws it.
    const withdrawn = nextEvent(c, 'approvalresolved', (r) => r.approval_id === second.id);
    const stop = await c.interrupt(id);
    assert.equal(stop.interrupted, true);
    assert.equal((await withdrawn).resolution.outcome, 'withdrawn');
    await assert.rejects(c.allow(second.id), (e) => e.kind === 'APPROVAL_RESOLVED');
    await idle(id);
    assert.equal(fs.existsSync(path.join(dir, 'first.txt')), false);
    assert.equal(fs.existsSync(path.join(dir, 'second.txt')), false);
    assert.equal((await results(id))[0], 'denied: not this one');
    await assert.rejects(c.interrupt(id), (e) => e.kind === 'NOT_RUNNING');
  } finally {
    await c.stop();
  }
});

test('without the agents scope: FORBIDDEN, and no approval events', async () => {
  const agents = await client(['agents']);
  const events = await client(['events']);
  const seen = [];
  events.on('approvalrequested', (a) => seen.push(a));
  try {
    await assert.rejects(events.approvals(), (e) => e.kind === 'FORBIDDEN');
    await assert.rejects(events.sendToAgent('x', 'hi'), (e) => e.kind === 'FORBIDDEN');
    const { id } = await project('scope');
    const asked = nextEvent(agents, 'approvalrequested', (a) => a.project_id === id, 30_000);
    await agents.call('agent.run', { project_id: id, prompt: 'ask Bash true' });
    const a = await asked;
    await assert.rejects(events.deny(a.id), (e) => e.kind === 'FORBIDDEN');
    await agents.deny(a.id, { interrupt: true });
    await idle(id);
    // The agents client got its events through the same hub: by now the other would have too.
    assert.deepEqual(seen, []);
  } finally {
    await Promise.all([agents.stop(), events.stop()]);
  }
});
