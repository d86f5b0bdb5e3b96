// The Workers & tasks view against a real hub: Node acts as a coordinator and two client
// workers over WebSocket; the page shows the workers, moves tasks between the state
// columns, keeps the counts, cancels a task, sets a built-in agent worker (the fake CLI
// completes a task through its report file), shows report-file notices, caps long columns,
// and passes axe-core in light and dark.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  startHub, stopHub, launchBrowser, signedInPage, waitConnected, tempDir, rpcInPage,
  hubToken, connectRpc, waitFor, axeSerious, screenshot, watchPage, figure,
} from './helpers.js';

const STATES = ['pending', 'running', 'completed', 'failed', 'cancelled'];

describe('workers & tasks view', () => {
  let hub, browser, session, page, token;
  let coordinator, workerA, workerB;
  let project, other;
  const clients = [];

  /** Task ids per column, as the page shows them. */
  async function board() {
    return page.evaluate((states) => Object.fromEntries(states.map((s) => [s,
      [...document.querySelectorAll(`hub-workers .task-col[data-state="${s}"] .task`)].map((el) => el.dataset.taskId).sort()])), STATES);
  }

  /** Waits until every column holds exactly the given ids (unlisted columns: empty). */
  async function waitBoard(expected, message) {
    const want = Object.fromEntries(STATES.map((s) => [s, [...(expected[s] ?? [])].sort()]));
    let last;
    await waitFor(async () => {
      last = await board();
      return JSON.stringify(last) === JSON.stringify(want);
    }, { timeout: 15_000, message: `${message}: want ${JSON.stringify(want)}` }).catch((err) => {
      throw new Error(`${err.message}; the page shows ${JSON.stringify(last)}`);
    });
  }

  /** The column counts and the summary line's counts; asserts they agree and add up. */
  async function counts() {
    const c = await page.evaluate((states) => {
      const summary = document.querySelector('hub-workers .task-summary');
      return {
        cols: Object.fromEntries(states.map((s) => [s, Number(document.querySelector(`hub-workers .task-col[data-state="${s}"] .col-count`)?.dataset.count)])),
        summary: Object.fromEntries(states.map((s) => [s, Number(summary.dataset[s])])),
        total: Number(summary.dataset.total),
        text: summary.textContent,
      };
    }, STATES);
    assert.deepEqual(c.cols, c.summary, `column counts agree with the hub's counts (${c.text})`);
    assert.equal(STATES.reduce((n, s) => n + c.cols[s], 0), c.total, `counts add up to the total (${c.text})`);
    return c;
  }

  /** Waits until the summary shows `expected` and the columns agree with it. */
  async function waitCounts(expected, message) {
    await waitFor(async () => {
      const c = await page.evaluate((states) => ({
        summary: { ...document.querySelector('hub-workers .task-summary')?.dataset },
        cols: states.map((s) => document.querySelector(`hub-workers .task-col[data-state="${s}"] .col-count`)?.dataset.count),
      }), STATES);
      return Object.entries(expected).every(([k, v]) => Number(c.summary[k]) === v)
        && STATES.every((s, i) => c.cols[i] === c.summary[s]);
    }, { timeout: 15_000, message });
    return counts();
  }

  function workerRow(name) {
    return page.locator('hub-workers table.workers tbody tr', { has: page.locator('th', { hasText: new RegExp(`^${name}$`) }) });
  }

  async function waitWorker(name, status, taskId) {
    const row = workerRow(name);
    await waitFor(async () => {
      if ((await row.count()) !== 1) return false;
      if ((await row.getAttribute('data-status')) !== status) return false;
      if (taskId === undefined) return true;
      return (await row.locator('td.current-task').innerText()).includes(taskId);
    }, { timeout: 15_000, message: `worker ${name} ${status}${taskId ? ` on ${taskId}` : ''}` });
    // The status is written out, not only coloured.
    assert.equal((await row.locator('.badge').innerText()).trim(), status);
    return row;
  }

  function card(id) {
    return page.locator(`hub-workers .task[data-task-id="${id}"]`);
  }

  async function connectWorker(name, capabilities) {
    const w = await connectRpc(hub, { token, name });
    clients.push(w);
    const reg = await w.request('worker.register', { name, capabilities });
    w.id = reg.worker_id;
    return w;
  }

  before(async () => {
    // Two attempts per task, so a task fails for good on its second failed attempt.
    hub = await startHub({ env: { SEMANTEST_HUB_COORDINATION__MAX_ATTEMPTS: '2' } });
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
    token = await hubToken(hub.dataDir);
    project = await rpcInPage(page, 'project.create', { path: await tempDir('proj-tasks-'), name: 'batch' });
    other = await rpcInPage(page, 'project.create', { path: await tempDir('proj-bulk-'), name: 'bulk' });
    coordinator = await connectRpc(hub, { token, role: 'coordinator', name: 'test coordinator' });
    clients.push(coordinator);
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await browser?.close();
    const res = await stopHub(hub);
    if (hub && res?.signal !== 'SIGTERM' && res?.code !== 0 && res?.code !== null) {
      console.log(`hub exit: ${JSON.stringify(res)}\n${hub.log()}`);
    }
  });

  test('the nav shows Workers & tasks; workers appear from worker.list and then live', async () => {
    workerA = await connectWorker('worker-A', ['code']);
    await page.goto(`${hub.url}/#/overview`);
    await waitConnected(page);
    await page.locator('#nav-list a', { hasText: 'Workers & tasks' }).click();
    await page.locator('hub-workers h1', { hasText: 'Workers & tasks' }).waitFor({ timeout: 5_000 });
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the view');
    // worker-A registered before the page opened: from worker.list.
    const rowA = await waitWorker('worker-A', 'idle');
    assert.match(await rowA.innerText(), /WebSocket worker/);
    assert.match(await rowA.innerText(), /\bcode\b/);

    // The picker lists both projects; pick "batch" and the address follows.
    const picker = page.getByLabel('Project', { exact: true });
    assert.deepEqual((await picker.locator('option').allInnerTexts()).sort(), ['batch', 'bulk']);
    await picker.selectOption({ label: 'batch' });
    await waitFor(async () => page.url().endsWith(`#/workers/${project.id}`), { message: 'the address names the project' });
    await page.locator('hub-workers .board .empty', { hasText: 'No tasks' }).waitFor({ timeout: 10_000 });

    // worker-B registers while the page is open: from worker.status.
    workerB = await connectWorker('worker-B', ['test']);
    await waitWorker('worker-B', 'idle');
  });

  test('six tasks: assignments, completions and a failure move the cards, counts add up', async () => {
    const fakeReport = '[fake:report] Do the task and write its report.';
    const tasks = [
      { id: 'a1', title: 'Add the endpoint', type: 'code', priority: 3, prompt: fakeReport },
      { id: 'a2', title: 'Add the handler', type: 'code', priority: 2, prompt: fakeReport },
      { id: 'a3', title: 'Wire the routes', type: 'code', priority: 1, prompt: fakeReport },
      { id: 'b1', title: 'Write the tests', type: 'test', priority: 3, prompt: fakeReport },
      { id: 'd1', title: 'Document the endpoint', type: 'docs', prompt: fakeReport },
      { id: 'd2', title: 'Update the changelog', type: 'docs', prompt: fakeReport },
    ];
    const created = await coordinator.request('task.create', { project_id: project.id, tasks });
    assert.deepEqual(created.created, tasks.map((t) => t.id));
    assert.equal((await workerA.next('task.assigned')).task.id, 'a1');
    assert.equal((await workerB.next('task.assigned')).task.id, 'b1');

    // The hub announces no new tasks; the board reloads when coordination.status disagrees.
    await waitBoard({ pending: ['a2', 'a3', 'd1', 'd2'], running: ['a1', 'b1'] }, 'the new tasks');
    await waitCounts({ total: 6, pending: 4, running: 2 }, 'counts 4 pending, 2 running');
    await waitWorker('worker-A', 'working', 'a1');
    await waitWorker('worker-B', 'working', 'b1');
    const a1 = await card('a1').innerText();
    for (const re of [/a1/, /Add the endpoint/, /Type\s*code/, /Priority\s*3/, /Attempts\s*0/, /Worker\s*worker-A/]) assert.match(a1, re);
    // The pending column is in queue order: priority, then creation.
    assert.deepEqual(await page.locator('hub-workers .task-col[data-state="pending"] .task').evaluateAll((els) => els.map((e) => e.dataset.taskId)), ['a2', 'a3', 'd1', 'd2']);

    // worker-A completes a1 and a2 and keeps a3.
    await workerA.request('task.complete', { task_id: 'a1', report: { summary: 'added GET /items', deliverables: ['src/api.rs'] } });
    assert.equal((await workerA.next('task.assigned')).task.id, 'a2');
    await waitBoard({ pending: ['a3', 'd1', 'd2'], running: ['a2', 'b1'], completed: ['a1'] }, 'a1 completed');
    assert.match(await card('a1').innerText(), /Completed by a worker: added GET \/items/);
    await workerA.request('task.complete', { task_id: 'a2', report: { summary: 'added the handler' } });
    assert.equal((await workerA.next('task.assigned')).task.id, 'a3');

    // worker-B fails b1 twice: requeued (and handed back to it), then failed for good.
    const r1 = await workerB.request('task.fail', { task_id: 'b1', reason: 'tests do not compile' });
    assert.equal(r1.state, 'pending');
    await coordinator.next('task.requeued', (p) => p.task_id === 'b1');
    assert.equal((await workerB.next('task.assigned')).task.id, 'b1');
    await waitFor(async () => /Attempts\s*1/.test(await card('b1').innerText()), { message: 'b1 shows one attempt' });
    assert.match(await card('b1').innerText(), /Last failure: tests do not compile/);
    const r2 = await workerB.request('task.fail', { task_id: 'b1', reason: 'still does not compile' });
    assert.equal(r2.state, 'failed');

    await waitBoard({ pending: ['d1', 'd2'], running: ['a3'], completed: ['a1', 'a2'], failed: ['b1'] }, 'after the work');
    const c = await waitCounts({ total: 6, pending: 2, running: 1, completed: 2, failed: 1, cancelled: 0 }, 'counts after the work');
    assert.match(c.text, /6 tasks: 2 pending, 1 running, 2 completed, 1 failed, 0 cancelled/);
    const b1 = await card('b1').innerText();
    assert.match(b1, /Attempts\s*2/);
    assert.match(b1, /Failed: still does not compile/);
    assert.match(b1, /Worker\s*worker-B/);
    await waitWorker('worker-A', 'working', 'a3');
    await waitWorker('worker-B', 'idle');
    // Only pending and running tasks can be cancelled.
    assert.equal(await card('a1').getByRole('button').count(), 0);
    assert.equal(await card('d1').getByRole('button', { name: 'Cancel task d1' }).count(), 1);
    assert.equal(await card('a3').getByRole('button', { name: 'Cancel task a3' }).count(), 1);
  });

  test('report files: an invalid one and one for an unknown task show as notices', async () => {
    const reports = path.join(project.path, 'reports');
    await fs.mkdir(reports, { recursive: true });
    await fs.writeFile(path.join(reports, 'a3.json'), '{"status": "done", "summary": "x"}');
    await fs.writeFile(path.join(reports, 'notes.json'), '{"status": "completed", "summary": "notes"}');
    const invalid = page.locator('hub-workers .notice[data-kind="invalid"][data-task-id="a3"]');
    const unknown = page.locator('hub-workers .notice[data-kind="unknown"][data-task-id="notes"]');
    await invalid.waitFor({ timeout: 15_000 });
    await unknown.waitFor({ timeout: 15_000 });
    assert.match(await invalid.innerText(), /report file .*a3\.json for task a3 in batch can't be used: .*The task is unchanged; fix the file/);
    assert.match(await unknown.innerText(), /notes\.json names task notes, which is not a task of batch\. The hub ignored it\./);
    // The invalid report left a3 as it was.
    await waitBoard({ pending: ['d1', 'd2'], running: ['a3'], completed: ['a1', 'a2'], failed: ['b1'] }, 'a3 unchanged');

    // The screenshot: workers busy and idle, every kind of column, notices.
    await page.setViewportSize({ width: 1440, height: 1100 });
    const shot = await screenshot(page, 'tasks');
    console.log(`screenshot ${shot.file} ${JSON.stringify(shot.stats)}`);
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('cancel a pending task from the page, with an in-page confirmation', async () => {
    let dialogs = 0;
    page.on('dialog', (d) => { dialogs++; d.dismiss(); });
    const d1 = card('d1');
    await d1.getByRole('button', { name: 'Cancel task d1' }).click();
    const keep = d1.getByRole('button', { name: 'Keep' });
    await keep.waitFor({ timeout: 5_000 });
    assert.ok(await keep.evaluate((el) => el === document.activeElement), 'focus moves to Keep');
    await keep.click();
    await d1.getByRole('button', { name: 'Cancel task d1' }).waitFor({ timeout: 5_000 });
    assert.equal(await card('d1').getAttribute('data-state'), 'pending', 'Keep keeps it');

    await d1.getByRole('button', { name: 'Cancel task d1' }).click();
    await d1.getByRole('button', { name: 'Cancel task', exact: true }).click();
    await waitBoard({ running: ['a3'], pending: ['d2'], completed: ['a1', 'a2'], failed: ['b1'], cancelled: ['d1'] }, 'd1 cancelled');
    await coordinator.next('task.cancelled', (p) => p.task_id === 'd1');
    await waitCounts({ total: 6, pending: 1, cancelled: 1 }, 'one cancelled');
    assert.equal(dialogs, 0, 'no window.confirm');
    assert.match(await page.locator('hub-workers .board-bar ~ .inline-msg').innerText(), /Cancelled task d1/);
    assert.equal((await coordinator.request('task.get', { task_id: 'd1' })).state, 'cancelled');
  });

  test('agent workers: inline errors, then one agent worker completes a task with the fake CLI', async () => {
    const input = page.getByLabel('Built-in agent workers');
    const error = page.locator('#agent-workers-error');
    const set = page.locator('hub-workers .agent-form').getByRole('button', { name: 'Set' });
    assert.equal(await input.inputValue(), '0', 'no agent workers yet');

    await input.fill('');
    await set.click();
    await error.waitFor({ state: 'visible', timeout: 5_000 });
    assert.match(await error.innerText(), /whole number/);
    assert.equal(await input.getAttribute('aria-invalid'), 'true');

    await input.fill('99');
    assert.equal(await error.isVisible(), false, 'typing clears the error');
    await set.click();
    await waitFor(async () => /did not accept this: .*between 0 and 8/.test(await error.innerText()), { message: 'the hub refuses 99' });

    await input.fill('1');
    await set.click();
    // The agent takes d2, whose prompt has the fake CLI's [fake:report] marker: it writes
    // reports/d2.json, which completes the task (or its run's result does, whichever is first).
    await waitBoard({ running: ['a3'], completed: ['a1', 'a2', 'd2'], failed: ['b1'], cancelled: ['d1'] }, 'the agent completed d2');
    assert.match(await card('d2').innerText(), /Completed by (a report file|an agent run)/);
    assert.match(await card('d2').innerText(), /Worker\s*agent 1/);
    const report = JSON.parse(await fs.readFile(path.join(project.path, 'reports/d2.json'), 'utf8'));
    assert.equal(report.task_id, 'd2');
    const agent = await waitWorker('agent 1', 'idle');
    assert.match(await agent.innerText(), /agent · batch/);
    assert.equal(await error.isVisible(), false);
    await waitFor(async () => (await input.inputValue()) === '1', { message: 'the form shows 1 agent worker' });
  });

  test('the last task finishes: project.completed shows; a disconnected worker shows offline', async () => {
    await workerA.request('task.complete', { task_id: 'a3', report: { summary: 'wired' } });
    await waitBoard({ completed: ['a1', 'a2', 'a3', 'd2'], failed: ['b1'], cancelled: ['d1'] }, 'all finished');
    await waitCounts({ total: 6, pending: 0, running: 0, completed: 4, failed: 1, cancelled: 1 }, 'final counts');
    const done = page.locator('hub-workers .batch-done');
    await waitFor(async () => /all 6 tasks finished: 4 completed, 1 failed, 1 cancelled/.test(await done.innerText()), { message: 'the batch-finished message' });
    await coordinator.next('project.completed', (p) => p.project_id === project.id);

    await workerB.close();
    await waitWorker('worker-B', 'offline');
    await waitWorker('worker-A', 'idle');
  });

  test('a large batch: columns are capped, "Show more" adds cards; keyboard works', async () => {
    const bulk = Array.from({ length: 130 }, (_, i) => ({ id: `bulk-${String(i + 1).padStart(3, '0')}`, title: `Bulk task ${i + 1}`, type: 'bulk' }));
    await coordinator.request('task.create', { project_id: other.id, tasks: bulk });
    await page.getByLabel('Project', { exact: true }).selectOption({ label: 'bulk' });
    const pendingCol = page.locator('hub-workers .task-col[data-state="pending"]');
    await waitFor(async () => (await pendingCol.locator('.col-count').getAttribute('data-count')) === '130', { message: '130 pending' });
    assert.equal(await pendingCol.locator('.task').count(), 50, 'the column renders 50 cards');
    const more = pendingCol.getByRole('button', { name: /Show 50 more \(80 not shown\)/ });
    await more.focus();
    await page.keyboard.press('Enter');
    await waitFor(async () => (await pendingCol.locator('.task').count()) === 100, { message: '100 cards' });
    assert.ok(await pendingCol.getByRole('button', { name: /Show 30 more/ }).evaluate((el) => el === document.activeElement), 'focus stays on Show more');
    await waitCounts({ total: 130, pending: 130 }, '130 pending in the summary');

    // Cancel by keyboard: Enter on Cancel, focus on Keep, Enter keeps it.
    const first = card('bulk-001');
    await first.getByRole('button', { name: 'Cancel task bulk-001' }).focus();
    await page.keyboard.press('Enter');
    const keep = first.getByRole('button', { name: 'Keep' });
    await keep.waitFor({ timeout: 5_000 });
    assert.ok(await keep.evaluate((el) => el === document.activeElement), 'focus on Keep');
    await page.keyboard.press('Enter');
    await first.getByRole('button', { name: 'Cancel task bulk-001' }).waitFor({ timeout: 5_000 });
    assert.ok(await first.getByRole('button', { name: 'Cancel task bulk-001' }).evaluate((el) => el === document.activeElement), 'focus back on Cancel');

    // Every control has a label.
    const unlabeled = await page.evaluate(() => [...document.querySelectorAll('hub-workers input, hub-workers select, hub-workers button')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim())).map((el) => el.outerHTML));
    assert.deepEqual(unlabeled, []);
    // A heavy batch does not grow the DOM without bound.
    const nodes = await page.evaluate(() => document.querySelectorAll('hub-workers *').length);
    assert.ok(nodes < 5_000, `DOM nodes in the view: ${nodes}`);

    await page.getByLabel('Project', { exact: true }).selectOption({ label: 'batch' });
    await waitBoard({ completed: ['a1', 'a2', 'a3', 'd2'], failed: ['b1'], cancelled: ['d1'] }, 'back to batch');
  });

  test('5,000 tasks: loaded in pages, the DOM stays bounded (figures)', async () => {
    const big = await rpcInPage(page, 'project.create', { path: await tempDir('proj-5k-'), name: 'five-thousand' });
    const tasks = Array.from({ length: 5_000 }, (_, i) => ({ id: `k${i + 1}`, title: `Task ${i + 1} of a large batch`, type: 'bulk', priority: i % 3 }));
    await coordinator.request('task.create', { project_id: big.id, tasks }, { timeout: 30_000 });
    const t0 = Date.now();
    await page.goto(`${hub.url}/#/workers/${big.id}`);
    await waitConnected(page);
    const pendingCol = page.locator('hub-workers .task-col[data-state="pending"]');
    await waitFor(async () => (await pendingCol.locator('.col-count').getAttribute('data-count')) === '5000', { timeout: 30_000, message: '5,000 pending' });
    figure('tasks_5k_board_ms', Date.now() - t0, 'ms');
    assert.equal(await pendingCol.locator('.task').count(), 50);
    // Queue order: the highest priority first.
    assert.match(await pendingCol.locator('.task').first().innerText(), /Priority\s*2/);
    const nodes = await page.evaluate(() => document.querySelectorAll('hub-workers *').length);
    figure('tasks_5k_dom_nodes', nodes, 'nodes');
    assert.ok(nodes < 3_000, `DOM nodes with 5,000 tasks: ${nodes}`);
    const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
    if (heap) figure('tasks_5k_js_heap_mib', (heap / 1048576).toFixed(1), 'MiB');
    // Live changes on a large board: cancelling through the hub moves the card.
    await coordinator.request('task.cancel', { task_id: 'k3' });
    await page.locator('hub-workers .task-col[data-state="cancelled"] .task[data-task-id="k3"]').waitFor({ timeout: 10_000 });
    await waitCounts({ total: 5000, pending: 4999, cancelled: 1 }, 'the hub counts the cancelled task');
  });

  test('after a reload the page shows the same board from task.list and worker.list', async () => {
    await page.goto(`${hub.url}/#/workers/${project.id}`);
    await page.reload();
    await waitConnected(page);
    await waitBoard({ completed: ['a1', 'a2', 'a3', 'd2'], failed: ['b1'], cancelled: ['d1'] }, 'after reload');
    await waitCounts({ total: 6, completed: 4, failed: 1, cancelled: 1 }, 'counts after reload');
    await waitWorker('worker-A', 'idle');
    await waitWorker('agent 1', 'idle');
    assert.equal(await workerRow('worker-B').count(), 0, 'a disconnected client worker is gone from worker.list');
    assert.match(await card('b1').innerText(), /Attempts\s*2/);
  });

  test('accessibility: axe-core finds no serious or critical violations, light and dark', async () => {
    const state = await session.context.storageState();
    for (const colorScheme of ['light', 'dark']) {
      const ctx = await browser.newContext({ bypassCSP: true, colorScheme, storageState: state, viewport: { width: 1280, height: 900 } });
      const p = await ctx.newPage();
      await p.goto(`${hub.url}/#/workers/${project.id}`);
      await waitConnected(p);
      await p.locator('hub-workers .task[data-task-id="b1"]').waitFor({ timeout: 10_000 });
      await p.locator('hub-workers table.workers').waitFor({ timeout: 10_000 });
      // A notice, an inline error and an open confirmation are on the page too.
      await fs.writeFile(path.join(project.path, 'reports', `unknown-${colorScheme}.json`), '{}');
      await p.locator('hub-workers .notice').first().waitFor({ timeout: 15_000 });
      await p.getByLabel('Built-in agent workers').fill('-1');
      await p.locator('hub-workers .agent-form').getByRole('button', { name: 'Set' }).click();
      await p.locator('#agent-workers-error').waitFor({ state: 'visible' });
      await p.getByLabel('Project', { exact: true }).selectOption({ label: 'bulk' });
      await p.locator('hub-workers .task[data-task-id="bulk-001"]').waitFor({ timeout: 10_000 });
      await p.getByRole('button', { name: 'Cancel task bulk-002' }).click();
      await p.getByRole('button', { name: 'Keep' }).waitFor();
      const serious = await axeSerious(p);
      assert.deepEqual(serious, [], `axe (${colorScheme}) on #/workers`);
      await ctx.close();
    }
  });

  test('the dark theme applies to the view (screenshot)', async () => {
    const state = await session.context.storageState();
    const dark = await browser.newContext({ colorScheme: 'dark', storageState: state, viewport: { width: 1440, height: 1000 } });
    const dp = await dark.newPage();
    const w = watchPage(dp);
    await dp.goto(`${hub.url}/#/workers/${other.id}`);
    await waitConnected(dp);
    await dp.locator('hub-workers .task[data-task-id="bulk-001"]').waitFor({ timeout: 10_000 });
    const bg = await dp.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(bg, 'rgb(246, 247, 249)', 'the dark theme applies');
    const shot = await screenshot(dp, 'tasks-dark');
    console.log(`screenshot ${shot.file} ${JSON.stringify(shot.stats)}`);
    assert.deepEqual(w.cspErrors, []);
    assert.deepEqual(w.pageErrors, []);
    await dark.close();
  });

  test('a hub restart: the page reconnects and reloads the workers and the board', async () => {
    await page.goto(`${hub.url}/#/workers/${project.id}`);
    await waitConnected(page);
    await waitBoard({ completed: ['a1', 'a2', 'a3', 'd2'], failed: ['b1'], cancelled: ['d1'] }, 'before the restart');
    const { dataDir, port } = hub;
    await stopHub(hub);
    await page.locator('#conn-status.conn-reconnecting').waitFor({ timeout: 15_000 });
    hub = await startHub({ dataDir, port, env: { SEMANTEST_HUB_COORDINATION__MAX_ATTEMPTS: '2' } });
    await waitConnected(page, 30_000);
    // worker-A's connection went with the old hub; the agent worker comes back by itself.
    await waitFor(async () => (await workerRow('worker-A').count()) === 0, { timeout: 15_000, message: 'worker-A gone after the reload' });
    await waitWorker('agent 1', 'idle');
    // A task queued while the page is reconnected shows up, and the agent does it.
    const co = await connectRpc(hub, { token, role: 'coordinator', name: 'after restart' });
    clients.push(co);
    await co.request('task.create', { project_id: project.id, tasks: [{ id: 'r1', title: 'After the restart', prompt: '[fake:report] go' }] });
    await waitBoard({ completed: ['a1', 'a2', 'a3', 'd2', 'r1'], failed: ['b1'], cancelled: ['d1'] }, 'r1 done by the agent');
    await waitCounts({ total: 7, pending: 0, running: 0, completed: 5, failed: 1, cancelled: 1 }, 'counts after the restart');
  });

  test('no CSP violations or page errors happened', () => {
    assert.deepEqual(session.cspErrors, []);
    assert.deepEqual(session.pageErrors, []);
  });
});
