// Approvals and follow-ups in the dashboard, against a real hub whose fake agent CLI
// speaks Claude Code's control protocol: an approval asked by the agent shows in the
// panel and in the top bar's badge on every view, and is answered with the keyboard
// alone (allowed, the command runs; denied with a message the agent reads); a follow-up
// queued mid-turn shows in the queue, is edited and runs after the turn; an interrupt
// while an approval waits takes it off the panel. Accessibility with axe-core.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startHub, stopHub, launchBrowser, signedInPage, waitConnected, tempDir, rpcInPage,
  openProject, axeSerious, screenshot, waitFor,
} from './helpers.js';

describe('approvals and follow-ups', () => {
  let hub, browser, session, page;
  let projectId, dir;

  before(async () => {
    hub = await startHub();
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
    dir = await tempDir('approvals-');
    projectId = (await rpcInPage(page, 'project.create', { path: dir, name: 'approvals' })).id;
  });

  after(async () => {
    await browser?.close();
    await stopHub(hub);
  });

  /**
   * axe-core's serious violations on `hash` once `selector` shows, in both themes. axe is
   * injected inline, which the dashboard's CSP forbids, so this uses a second context
   * that bypasses it, signed in with the same cookie.
   */
  async function axeOn(hash, selector) {
    const found = [];
    for (const colorScheme of ['light', 'dark']) {
      const ctx = await browser.newContext({ bypassCSP: true, colorScheme, viewport: { width: 1280, height: 800 }, storageState: await page.context().storageState() });
      const p = await ctx.newPage();
      await p.goto(`${hub.url}/${hash}`);
      await waitConnected(p);
      await p.locator(selector).first().waitFor({ timeout: 10_000 });
      found.push(...(await axeSerious(p)).map((v) => ({ colorScheme, ...v })));
      await ctx.close();
    }
    return found;
  }

  /** The project's stored lines. */
  async function lines() {
    const res = await rpcInPage(page, 'messages.list', { project_id: projectId, limit: 1000 });
    return res.messages;
  }

  /** Waits until the project is no longer running. */
  async function idle() {
    await waitFor(async () => (await rpcInPage(page, 'project.get', { project_id: projectId })).state !== 'running',
      { timeout: 30_000, message: 'the run to end' });
  }

  /** The result texts of the agent's turns, oldest first. */
  async function results() {
    return (await lines()).filter((m) => m.event?.type === 'result').map((m) => m.event.result ?? m.event.subtype);
  }

  test('an approval asked by the agent shows on every view and is allowed with the keyboard', async () => {
    await page.goto(`${hub.url}/#/overview`);
    await waitConnected(page);
    const badge = page.locator('#approvals-badge');
    assert.equal(await badge.isVisible(), false, 'no badge while nothing waits');

    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch made.txt' });
    await badge.waitFor({ state: 'visible', timeout: 20_000 });
    assert.match(await badge.innerText(), /^1 approval waiting$/);
    assert.match(await badge.getAttribute('title'), /Bash in approvals/);
    assert.deepEqual(session.pageErrors, []);
    assert.deepEqual(await axeOn('#/overview', '#approvals-badge:not([hidden])'), [], 'no serious axe violations with the badge');

    // The badge is on every view.
    await page.goto(`${hub.url}/#/settings`);
    await badge.waitFor({ state: 'visible', timeout: 10_000 });

    // Keyboard only: focus the badge, Enter opens the project page at that approval.
    await badge.focus();
    await page.keyboard.press('Enter');
    const card = page.locator('hub-approvals article.approval[data-tool="Bash"]');
    await card.waitFor({ timeout: 10_000 });
    await waitFor(() => card.evaluate((el) => el === document.activeElement), { message: 'the approval has the focus' });
    const text = await card.innerText();
    assert.match(text, /Bash wants to run: touch made\.txt/);
    assert.match(text, /scripted/, 'the description');
    assert.match(text, /The agent's suggestions \(1\)/);
    assert.match(text, /Asked /);
    assert.match(await card.locator('.approval-suggestions pre').textContent(), /addRules/);
    assert.deepEqual(await axeOn(`#/projects/${projectId}`, 'hub-approvals article.approval'), [], 'no serious axe violations with an approval');
    await screenshot(page, 'approvals-panel');

    await page.keyboard.press('y');
    await card.waitFor({ state: 'detached', timeout: 10_000 });
    await badge.waitFor({ state: 'hidden', timeout: 10_000 });
    await idle();
    assert.ok(fs.existsSync(path.join(dir, 'made.txt')), 'the allowed command ran');
    assert.equal((await results()).at(-1), 'allowed: touch made.txt');
    const resolved = (await lines()).find((m) => m.kind === 'approval_resolved');
    assert.ok(resolved, 'the log says who answered');
    assert.equal(resolved.event.resolution?.by?.role ?? resolved.event.by?.role, 'dashboard');
  });

  test('denied with a message from the keyboard: nothing runs and the agent reads it', async () => {
    await openProject(page, hub, projectId);
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch denied.txt' });
    const card = page.locator('hub-approvals article.approval');
    await card.waitFor({ timeout: 20_000 });
    await card.focus();
    await page.keyboard.press('n');
    const message = card.getByLabel('Message for the agent');
    assert.ok(await message.evaluate((el) => el === document.activeElement), 'n moves to the message');
    await page.keyboard.type('not on this machine');
    await page.keyboard.press('Enter');
    await card.waitFor({ state: 'detached', timeout: 10_000 });
    await idle();
    assert.equal(fs.existsSync(path.join(dir, 'denied.txt')), false, 'the denied command did not run');
    assert.equal((await results()).at(-1), 'denied: not on this machine');
    assert.equal(await page.locator('hub-approvals').getAttribute('data-count'), '0');
  });

  test('allowed with an edited command: the edited command is what runs', async () => {
    await openProject(page, hub, projectId);
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch proposed.txt' });
    const card = page.locator('hub-approvals article.approval');
    await card.waitFor({ timeout: 20_000 });
    await card.focus();
    await page.keyboard.press('e');
    const editor = card.getByLabel('Command to run instead');
    assert.ok(await editor.evaluate((el) => el === document.activeElement), 'e opens the editor');
    await editor.fill('touch edited.txt');
    await page.keyboard.press('Enter');
    await card.waitFor({ state: 'detached', timeout: 10_000 });
    await idle();
    assert.ok(fs.existsSync(path.join(dir, 'edited.txt')), 'the edited command ran');
    assert.equal(fs.existsSync(path.join(dir, 'proposed.txt')), false, 'the proposed one did not');
    assert.equal((await results()).at(-1), 'allowed: touch edited.txt');
  });

  test('a follow-up queued mid-turn shows in the queue, is edited, and runs after the turn', async () => {
    await openProject(page, hub, projectId);
    // The turn waits on an approval, so it is surely still running while we queue.
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch first.txt' });
    const card = page.locator('hub-approvals article.approval');
    await card.waitFor({ timeout: 20_000 });
    const send = page.getByRole('button', { name: 'Send', exact: true });
    await send.waitFor({ timeout: 10_000 });
    assert.equal(await page.getByRole('radio', { name: /^Queue/ }).isChecked(), true);

    await page.getByLabel('Prompt').fill('ask Bash touch queued.txt');
    await page.keyboard.press('Control+Enter');
    await page.getByLabel('Prompt').fill('cancel me');
    await send.click();
    const items = page.locator('hub-follow-ups li.queue-item');
    await waitFor(async () => (await items.count()) === 2, { message: 'two queued follow-ups' });
    assert.deepEqual(await items.locator('.queue-text').allInnerTexts(), ['ask Bash touch queued.txt', 'cancel me']);
    assert.equal((await rpcInPage(page, 'agent.queue.list', { project_id: projectId })).messages.length, 2);

    // Edit the first, cancel the second.
    await items.first().getByRole('button', { name: 'Edit' }).click();
    await items.first().getByLabel('Edit the follow-up').fill('ask Bash touch second.txt');
    await items.first().getByRole('button', { name: 'Save' }).click();
    await waitFor(async () => (await items.first().locator('.queue-text').innerText()) === 'ask Bash touch second.txt', { message: 'the edit shows' });
    await items.nth(1).getByRole('button', { name: 'Cancel' }).click();
    await waitFor(async () => (await items.count()) === 1, { message: 'the cancelled one leaves the queue' });
    const queued = (await rpcInPage(page, 'agent.queue.list', { project_id: projectId })).messages;
    assert.deepEqual(queued.map((m) => m.text), ['ask Bash touch second.txt']);
    assert.deepEqual(await axeOn(`#/projects/${projectId}`, 'hub-follow-ups li.queue-item'), [], 'no serious axe violations with the queue and send modes');
    await screenshot(page, 'approvals-queue');

    // Allow the first turn's tool; the follow-up then runs as its own turn and asks too.
    await card.focus();
    await page.keyboard.press('y');
    await waitFor(async () => (await items.count()) === 0, { timeout: 20_000, message: 'the follow-up is delivered' });
    const next = page.locator('hub-approvals article.approval', { hasText: 'touch second.txt' });
    await next.waitFor({ timeout: 20_000 });
    await next.focus();
    await page.keyboard.press('y');
    await idle();
    assert.ok(fs.existsSync(path.join(dir, 'first.txt')));
    assert.ok(fs.existsSync(path.join(dir, 'second.txt')), 'the edited follow-up ran');
    assert.equal(fs.existsSync(path.join(dir, 'queued.txt')), false, 'the text before the edit did not');
    const turns = (await lines()).filter((m) => m.kind === 'turn_started');
    assert.equal(turns.at(-1).event.source, 'follow_up');
    assert.equal(turns.at(-1).event.text, 'ask Bash touch second.txt');
    assert.deepEqual((await results()).slice(-2), ['allowed: touch first.txt', 'allowed: touch second.txt']);
  });

  test('an interrupt while an approval waits removes it from the panel and the badge', async () => {
    await openProject(page, hub, projectId);
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch never.txt' });
    const card = page.locator('hub-approvals article.approval');
    await card.waitFor({ timeout: 20_000 });
    await page.locator('#approvals-badge').waitFor({ state: 'visible', timeout: 10_000 });
    await page.getByRole('button', { name: 'Interrupt', exact: true }).click();
    await card.waitFor({ state: 'detached', timeout: 20_000 });
    await page.locator('#approvals-badge').waitFor({ state: 'hidden', timeout: 10_000 });
    await idle();
    assert.equal(fs.existsSync(path.join(dir, 'never.txt')), false);
    assert.deepEqual((await rpcInPage(page, 'agent.approvals.list', { project_id: projectId })).approvals, []);
    const resolved = (await lines()).filter((m) => m.kind === 'approval_resolved').at(-1);
    assert.match(JSON.stringify(resolved.event), /withdrawn/);
    assert.deepEqual(session.pageErrors, []);
    assert.deepEqual(session.cspErrors, []);
  });
  test('"always for this project" stores the rule as edited in the card; it shows in the rules list and is deleted there', async () => {
    await openProject(page, hub, projectId);
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch ruled.txt' });
    const card = page.locator('hub-approvals article.approval');
    await card.waitFor({ timeout: 20_000 });
    const rule = card.getByLabel('Rule for "always"');
    // The agent's suggestion, ready to edit.
    assert.equal(await rule.inputValue(), 'Bash(touch ruled.txt:*)');
    await rule.fill('Bash(touch rule*)');
    await card.getByRole('button', { name: 'Always for this project' }).click();
    await card.waitFor({ state: 'detached', timeout: 10_000 });
    await idle();
    const listed = (await rpcInPage(page, 'agent.approvals.rules.list', { project_id: projectId })).rules;
    assert.deepEqual(listed.map((r) => r.rule), ['Bash(touch rule*)']);
    // The next matching call is answered by it; the log line names the rule.
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch rules.txt' });
    await idle();
    assert.ok(fs.existsSync(path.join(dir, 'rules.txt')), 'the rule allowed it');
    const log = page.locator('hub-project .log-rows');
    await log.locator('.session-line', { hasText: /Bash allowed by a rule for this project · rule Bash\(touch rule\*\)/ })
      .first().waitFor({ timeout: 10_000 });
    // The policy's rules list shows it, and Delete forgets it.
    const policy = page.locator('hub-policy');
    await policy.locator('summary').click();
    const item = policy.locator('.rules-list li', { hasText: 'Bash(touch rule*)' });
    await item.waitFor({ timeout: 10_000 });
    await item.getByRole('button', { name: 'Delete the rule Bash(touch rule*)' }).click();
    await item.waitFor({ state: 'detached', timeout: 10_000 });
    assert.deepEqual((await rpcInPage(page, 'agent.approvals.rules.list', { project_id: projectId })).rules, []);
    assert.deepEqual(session.pageErrors, []);
  });

  test('an approval of a task run links to the task\'s card on the tasks view', async () => {
    const taskProject = (await rpcInPage(page, 'project.create', { path: await tempDir('approvals-task-'), name: 'tasked' })).id;
    await rpcInPage(page, 'task.create', {
      project_id: taskProject,
      tasks: [{ id: 'linked-1', title: 'make the linked file', context: '[fake:ask Bash touch linked.txt]' }],
    });
    await rpcInPage(page, 'project.configure', { project_id: taskProject, agent_workers: 1 });
    await openProject(page, hub, taskProject);
    const card = page.locator('hub-approvals article.approval');
    await card.waitFor({ timeout: 20_000 });
    const link = card.getByRole('link', { name: 'task make the linked file' });
    await link.waitFor({ timeout: 10_000 });
    assert.equal(await link.getAttribute('href'), `#/workers/${encodeURIComponent(taskProject)}/task/linked-1`);
    await link.click();
    const taskCard = page.locator('hub-workers [data-task-id="linked-1"]');
    await taskCard.waitFor({ timeout: 10_000 });
    await waitFor(() => taskCard.evaluate((el) => el.classList.contains('task-highlight') && el === document.activeElement),
      { timeout: 10_000, message: 'the task card is highlighted and focused' });
    assert.match(page.url(), /#\/workers\/[^/]+\/task\/linked-1$/);
    // Answered, the task goes on.
    await rpcInPage(page, 'project.configure', { project_id: taskProject, agent_workers: 0 }).catch(() => {});
    const pending = (await rpcInPage(page, 'agent.approvals.list', { project_id: taskProject })).approvals;
    for (const a of pending) await rpcInPage(page, 'agent.approvals.answer', { approval_id: a.id, decision: 'reject_once' }).catch(() => {});
    assert.deepEqual(session.pageErrors, []);
  });

  test('the session\'s own lines read as sentences in the log, with the agent\'s text as text', async () => {
    await openProject(page, hub, projectId);
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch logged.txt' });
    const card = page.locator('hub-approvals article.approval');
    await card.waitFor({ timeout: 20_000 });
    const markup = '<img src=x onerror="window.__injected=1"> then stop';
    await rpcInPage(page, 'agent.send', { project_id: projectId, text: markup, mode: 'queue' });
    await card.focus();
    await page.keyboard.press('y');
    await idle();
    const log = page.locator('hub-project .log-rows');
    const line = (text) => log.locator('.session-line', { hasText: text });
    await line('Approval asked: Bash wants to run touch logged.txt').first().waitFor({ timeout: 10_000 });
    await line(/^Bash allowed by Dashboard \(http:/).last().waitFor({ timeout: 10_000 });
    await line(`Follow-up queued: ${markup}`).first().waitFor({ timeout: 10_000 });
    await line(/^Turn \d+ started · follow-up/).last().waitFor({ timeout: 10_000 });
    await line(/^Turn \d+ ended$/).last().waitFor({ timeout: 10_000 });
    assert.equal(await log.locator('img').count(), 0, 'the follow-up\'s markup is text, not HTML');
    assert.equal(await page.evaluate(() => window.__injected), undefined);
    // No session line falls back to raw JSON.
    for (const text of await log.locator('.hub-note').allInnerTexts()) {
      assert.doesNotMatch(text, /^(turn_|approval_|follow_up_|interrupt)/, text);
    }
  });
});
