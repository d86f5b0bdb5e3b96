// The project's approval policy in the dashboard (components/policy-editor.js), against a
// real hub whose fake agent CLI asks before each Bash call: the form shows the policy in
// force, a setting the hub refuses is shown next to its field, Bash moved to "never ask"
// with the keyboard then runs without an approval, the setting survives a reload, and
// "Follow the hub's config" brings the asking back. Accessibility with axe-core.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startHub, stopHub, launchBrowser, signedInPage, waitConnected, tempDir, rpcInPage,
  openProject, axeSerious, screenshot, waitFor,
} from './helpers.js';

describe('approval policy editor', () => {
  let hub, browser, session, page;
  let projectId, dir;

  before(async () => {
    hub = await startHub();
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
    dir = await tempDir('policy-');
    projectId = (await rpcInPage(page, 'project.create', { path: dir, name: 'policy' })).id;
  });

  after(async () => {
    await browser?.close();
    await stopHub(hub);
  });

  /** axe-core's serious violations on the project page with the policy open, in both themes. */
  async function axeOnPolicy() {
    const found = [];
    for (const colorScheme of ['light', 'dark']) {
      const ctx = await browser.newContext({ bypassCSP: true, colorScheme, viewport: { width: 1280, height: 800 }, storageState: await page.context().storageState() });
      const p = await ctx.newPage();
      await p.goto(`${hub.url}/#/projects/${projectId}`);
      await waitConnected(p);
      await p.locator('hub-policy summary').click();
      await p.locator('#policy-timeout-s').waitFor({ timeout: 10_000 });
      found.push(...(await axeSerious(p)).map((v) => ({ colorScheme, ...v })));
      await ctx.close();
    }
    return found;
  }

  /** Opens the policy with the keyboard: focus its summary, Enter. */
  async function openPolicy() {
    await openProject(page, hub, projectId);
    const summary = page.locator('hub-policy summary');
    await summary.focus();
    await page.keyboard.press('Enter');
    const never = page.getByLabel('Never ask for');
    await never.waitFor({ timeout: 10_000 });
    // Loaded from the hub (the config's default list holds Read).
    await waitFor(async () => /Read/.test(await never.inputValue()), { message: 'the policy is loaded' });
    return never;
  }

  /** Waits until the project is no longer running. */
  async function idle() {
    await waitFor(async () => (await rpcInPage(page, 'project.get', { project_id: projectId })).state !== 'running',
      { timeout: 30_000, message: 'the run to end' });
  }

  async function lines() {
    return (await rpcInPage(page, 'messages.list', { project_id: projectId, limit: 1000 })).messages;
  }

  test('Bash set to never ask from the keyboard runs without an approval, and the setting survives a reload', async () => {
    const never = await openPolicy();
    assert.doesNotMatch(await never.inputValue(), /\bBash\b/);
    assert.match(await page.locator('hub-policy').innerText(), /follows the hub's config/);
    const timeout = page.getByLabel('Wait for an answer (seconds)');
    assert.equal(await timeout.inputValue(), '600');

    // A value the hub refuses: its message shows next to that field, which gets the focus.
    await timeout.fill('0');
    await timeout.press('Enter');
    const timeoutError = page.locator('#policy-timeout-s-error');
    await waitFor(async () => /between 1 and 604800/.test(await timeoutError.innerText()), { message: 'the hub\'s error beside the field' });
    assert.equal(await timeout.getAttribute('aria-invalid'), 'true');
    assert.ok(await timeout.evaluate((el) => el === document.activeElement), 'the invalid field has the focus');
    assert.match(await timeout.getAttribute('aria-describedby'), /policy-timeout-s-error/);
    assert.equal((await rpcInPage(page, 'agent.policy.get', { project_id: projectId })).custom, false, 'nothing was stored');
    assert.deepEqual(await axeOnPolicy(), [], 'no serious axe violations with the policy open');

    // Keyboard only: add Bash to "never ask", fix the timeout, Enter saves.
    await never.focus();
    await page.keyboard.press('End');
    await page.keyboard.type(', Bash');
    await timeout.focus();
    await page.keyboard.press('Control+A');
    await page.keyboard.type('120');
    assert.equal(await timeoutError.innerText(), '', 'editing clears the error');
    await page.keyboard.press('Enter');
    await waitFor(async () => /Policy saved/.test(await page.locator('hub-policy').innerText()), { message: 'saved' });
    const policy = await rpcInPage(page, 'agent.policy.get', { project_id: projectId });
    assert.equal(policy.custom, true);
    assert.ok(policy.never_ask.includes('Bash'), JSON.stringify(policy));
    assert.equal(policy.timeout_s, 120);
    await screenshot(page, 'policy-editor');

    // The Bash call now runs without asking anyone.
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch free.txt' });
    await idle();
    assert.ok(fs.existsSync(path.join(dir, 'free.txt')), 'the command ran');
    const resolved = (await lines()).filter((m) => m.kind === 'approval_resolved');
    assert.equal(resolved.length, 1);
    assert.equal(resolved[0].event.resolution.by.kind, 'policy');
    assert.equal(await page.locator('hub-approvals article.approval').count(), 0, 'no approval was shown');

    // After a reload the form shows the project's own policy.
    await page.reload();
    await waitConnected(page);
    const neverAgain = await openPolicy();
    assert.match(await neverAgain.inputValue(), /\bBash\b/);
    assert.equal(await page.getByLabel('Wait for an answer (seconds)').inputValue(), '120');
    assert.match(await page.locator('hub-policy').innerText(), /has its own policy/);

    // Back to the config: Bash asks again.
    await page.getByRole('button', { name: 'Follow the hub\'s config' }).click();
    await waitFor(async () => /follows the hub's config/.test(await page.locator('hub-policy').innerText()), { message: 'reset' });
    assert.doesNotMatch(await neverAgain.inputValue(), /\bBash\b/);
    await rpcInPage(page, 'agent.run', { project_id: projectId, prompt: 'ask Bash touch asked.txt' });
    const card = page.locator('hub-approvals article.approval[data-tool="Bash"]');
    await card.waitFor({ timeout: 20_000 });
    await card.focus();
    await page.keyboard.press('y');
    await idle();
    assert.ok(fs.existsSync(path.join(dir, 'asked.txt')));
    assert.deepEqual(session.pageErrors, []);
    assert.deepEqual(session.cspErrors, []);
  });
});
