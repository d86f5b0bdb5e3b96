// New tasks from the dashboard against a real hub: one task from the form, a batch the hub
// refuses (its error next to the batch line of the bad task), a good batch; then a worker
// driven by Node over WebSocket, and one over MCP (Streamable HTTP at /mcp), complete
// tasks, and each card shows the worker (which kind), the attempt and the report, as text.
// axe-core finds nothing serious with the forms open and errors shown.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, stopHub, launchBrowser, signedInPage, waitConnected, tempDir, rpcInPage,
  hubToken, connectRpc, waitFor, axeSerious,
} from './helpers.js';

/** A minimal MCP client of /mcp (Streamable HTTP, 2025-06-18). */
async function mcpSession(hub, token) {
  let session = null;
  let id = 0;
  async function post(message) {
    const headers = {
      authorization: `Bearer ${token}`, accept: 'application/json, text/event-stream',
      'content-type': 'application/json', 'mcp-protocol-version': '2025-06-18',
    };
    if (session) headers['mcp-session-id'] = session;
    const res = await fetch(`${hub.url}/mcp`, { method: 'POST', headers, body: JSON.stringify(message), signal: AbortSignal.timeout(60_000) });
    session = res.headers.get('mcp-session-id') ?? session;
    const text = await res.text();
    if (!text) return { status: res.status, body: null };
    try { return { status: res.status, body: JSON.parse(text) }; } catch { /* an event stream */ }
    const data = text.split('\n').filter((l) => l.startsWith('data:')).map((l) => { try { return JSON.parse(l.slice(5)); } catch { return null; } });
    return { status: res.status, body: data.find((d) => d && 'id' in d) ?? null };
  }
  const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test-chat', version: '9.9' } } });
  assert.equal(init.status, 200, JSON.stringify(init.body));
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return {
    async tool(name, args) {
      id += 1;
      const { body } = await post({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
      const value = JSON.parse(body.result.content[0].text);
      assert.notEqual(body.result.isError, true, `${name}: ${JSON.stringify(value)}`);
      return value;
    },
  };
}

describe('new tasks from the dashboard, and what the cards say', () => {
  let hub, browser, session, page, token, project;
  const clients = [];

  function card(id) {
    return page.locator(`hub-workers .task[data-task-id="${id}"]`);
  }

  before(async () => {
    hub = await startHub();
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
    token = await hubToken(hub.dataDir);
    project = await rpcInPage(page, 'project.create', { path: await tempDir('proj-new-tasks-'), name: 'forms' });
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await browser?.close();
    await stopHub(hub);
  });

  test('one task from the form, with the keyboard', async () => {
    await page.goto(`${hub.url}/#/workers/${project.id}`);
    await waitConnected(page);
    await page.locator('hub-workers .board .empty', { hasText: 'No tasks' }).waitFor({ timeout: 10_000 });
    const summary = page.locator('hub-workers .task-create > summary');
    await summary.focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('Title').waitFor({ state: 'visible' });

    // An empty title: the hub's own error, next to the title field.
    await page.getByLabel('Title').focus();
    await page.keyboard.press('Enter');
    const titleError = page.locator('#new-task-title-error');
    await waitFor(async () => /title is empty/.test(await titleError.innerText()), { message: 'the hub says the title is empty' });
    assert.equal(await page.getByLabel('Title').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'new-task-title', 'focus goes to the field');

    await page.keyboard.type('Write the greeting');
    await page.getByLabel('Instructions (prompt)').fill('Write hello.txt containing "hello".');
    await page.getByLabel('Acceptance criteria, one per line').fill('hello.txt exists\nit says hello');
    await page.getByLabel('Type (matched against workers\' capabilities)').fill('manual');
    await page.getByLabel('Priority (higher runs first)').fill('3');
    await page.getByLabel('Id (optional)').fill('form-1');
    await page.getByLabel('Id (optional)').press('Enter');
    await card('form-1').waitFor({ timeout: 15_000 });
    assert.equal(await titleError.innerText(), '', 'the error is gone');
    const stored = await rpcInPage(page, 'task.get', { task_id: 'form-1' });
    assert.equal(stored.title, 'Write the greeting');
    assert.deepEqual(stored.acceptance, ['hello.txt exists', 'it says hello']);
    assert.equal(stored.type, 'manual');
    assert.equal(stored.priority, 3);
  });

  test('a bad batch shows the hub\'s error at the line of the bad task; a good one is queued', async () => {
    const bad = '[\n  {"id": "b-1", "title": "Fine"},\n  {"id": "b-2",\n   "title": ""},\n  {"id": "b-3", "title": "Also fine"}\n]';
    await page.getByLabel('Tasks, as a JSON array (or {"tasks": [...]})').fill(bad);
    await page.getByRole('button', { name: 'Queue batch' }).click();
    const error = page.locator('#new-batch-error');
    await waitFor(async () => /title is empty/.test(await error.innerText()), { message: 'the hub refuses task 2' });
    assert.match(await error.innerText(), /^Line 3: .*task 2: title is empty/);
    assert.equal(await error.getAttribute('data-line'), '3');
    assert.equal(await page.locator('#new-batch').getAttribute('aria-invalid'), 'true');
    const none = await rpcInPage(page, 'task.list', { project_id: project.id });
    assert.deepEqual(none.tasks.map((t) => t.id), ['form-1'], 'nothing of the refused batch was queued');

    // Not JSON at all: said with its line.
    await page.getByLabel('Tasks, as a JSON array (or {"tasks": [...]})').fill('[\n  {"title": "x"},\n  oops\n]');
    await page.getByRole('button', { name: 'Queue batch' }).click();
    await waitFor(async () => /^Line 3: This is not valid JSON/.test(await error.innerText()), { message: 'the JSON error and its line' });

    // A good batch, as {"tasks": [...]}; a report with markup comes later.
    await page.getByLabel('Tasks, as a JSON array (or {"tasks": [...]})').fill(JSON.stringify({ tasks: [
      { id: 'ws-1', title: 'For the WebSocket worker', type: 'ws' },
      { id: 'mcp-1', title: 'For the chat over MCP', type: 'mcp' },
    ] }, null, 2));
    await page.getByRole('button', { name: 'Queue batch' }).click();
    await page.locator('hub-workers .batch-form .inline-msg', { hasText: 'Queued 2 tasks.' }).waitFor({ timeout: 10_000 });
    assert.equal(await error.innerText(), '');
    await card('ws-1').waitFor({ timeout: 15_000 });
    await card('mcp-1').waitFor({ timeout: 15_000 });
  });

  test('cards show the worker, its kind, the attempt and the report (as text)', async () => {
    // A WebSocket worker that fails once, then completes.
    const ws = await connectRpc(hub, { token, name: 'socket-worker' });
    clients.push(ws);
    await ws.request('worker.register', { name: 'socket-worker', capabilities: ['ws'] });
    const first = await ws.next('task.assigned', () => true, { timeout: 15_000 });
    assert.equal(first.task.id, 'ws-1');
    await ws.request('task.fail', { task_id: 'ws-1', reason: 'first try failed' });
    const second = await ws.next('task.assigned', () => true, { timeout: 15_000 });
    assert.equal(second.task.id, 'ws-1');
    await waitFor(async () => /Attempt\s*2/.test(await card('ws-1').innerText()), { timeout: 15_000, message: 'the second attempt shows' });
    await ws.request('task.complete', { task_id: 'ws-1', report: { summary: 'done over the socket', html: '<img src=x onerror="window.pwned=1">' } });

    // A chat over MCP.
    const chat = await mcpSession(hub, token);
    await chat.tool('register_worker', { name: 'chat-worker', capabilities: ['mcp'] });
    const next = await chat.tool('next_task', { wait_s: 30 });
    assert.equal(next.task.id, 'mcp-1');
    await chat.tool('complete_task', { task_id: 'mcp-1', report: { summary: 'done by the chat', deliverables: ['hello.txt'] } });

    await page.locator('hub-workers .task-col[data-state="completed"] .task[data-task-id="ws-1"]').waitFor({ timeout: 15_000 });
    await page.locator('hub-workers .task-col[data-state="completed"] .task[data-task-id="mcp-1"]').waitFor({ timeout: 15_000 });
    const wsCard = await card('ws-1').innerText();
    assert.match(wsCard, /socket-worker, WebSocket worker/);
    assert.match(wsCard, /Attempts\s*1/);
    assert.match(wsCard, /Attempt\s*2/);
    assert.match(wsCard, /Created/);
    const mcpCard = await card('mcp-1').innerText();
    assert.match(mcpCard, /chat-worker, chat over MCP \(test-chat 9\.9\)/);
    assert.match(mcpCard, /Attempt\s*1/);

    // The report opens as text: the markup in it is shown, never run.
    await card('ws-1').locator('summary', { hasText: 'Report' }).click();
    const report = card('ws-1').locator('.task-report pre');
    assert.match(await report.innerText(), /"summary": "done over the socket"/);
    assert.match(await report.innerText(), /<img src=x onerror/);
    assert.equal(await card('ws-1').locator('.task-report img').count(), 0);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    await card('mcp-1').locator('summary', { hasText: 'Report' }).click();
    assert.match(await card('mcp-1').locator('.task-report pre').innerText(), /hello\.txt/);

    // The workers table says the same.
    const row = page.locator('hub-workers table.workers tbody tr', { has: page.locator('th', { hasText: /^chat-worker$/ }) });
    assert.match(await row.locator('.worker-kind').innerText(), /chat over MCP \(test-chat 9\.9\)/);
  });

  test('accessibility: axe-core finds no serious or critical violations with the forms open, light and dark', async () => {
    const state = await session.context.storageState();
    for (const colorScheme of ['light', 'dark']) {
      const ctx = await browser.newContext({ bypassCSP: true, colorScheme, storageState: state, viewport: { width: 1280, height: 900 } });
      const p = await ctx.newPage();
      await p.goto(`${hub.url}/#/workers/${project.id}`);
      await waitConnected(p);
      await p.locator('hub-workers .task[data-task-id="ws-1"]').waitFor({ timeout: 10_000 });
      await p.locator('hub-workers .task-create > summary').click();
      await p.getByLabel('Tasks, as a JSON array (or {"tasks": [...]})').fill('[{"title": ""}]');
      await p.getByRole('button', { name: 'Queue batch' }).click();
      await p.locator('#new-batch-error').filter({ hasText: 'title is empty' }).waitFor({ timeout: 10_000 });
      await p.getByRole('button', { name: 'Queue task' }).click();
      await p.locator('#new-task-title-error').filter({ hasText: 'title is empty' }).waitFor({ timeout: 10_000 });
      await p.locator('hub-workers .task[data-task-id="ws-1"] summary', { hasText: 'Report' }).click();
      const serious = await axeSerious(p);
      assert.deepEqual(serious, [], `axe (${colorScheme}) on #/workers with the new-task forms`);
      await ctx.close();
    }
  });

  test('no CSP violations or page errors happened', () => {
    assert.deepEqual(session.cspErrors, []);
    assert.deepEqual(session.pageErrors, []);
  });
});
