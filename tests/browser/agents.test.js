// The agent choice in the dashboard, in Debian's Chromium: the project page picks the
// agent and model (project.configure), the overview lists every agent's CLI.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, stopHub, launchBrowser, signedInPage, tempDir, addProjectViaUi, openProject,
  rpcInPage, waitConnected, axeSerious,
} from './helpers.js';

describe('agent choice', () => {
  let hub, browser, page;

  before(async () => {
    hub = await startHub({ env: { SEMANTEST_HUB_AGENT__CODEX__CLI_PATH: '/nonexistent/codex' } });
    browser = await launchBrowser();
    page = (await signedInPage(browser, hub)).page;
  });

  after(async () => {
    await browser?.close();
    await stopHub(hub);
  });

  test('the project page sets the agent and model; the overview lists each CLI', async () => {
    const dir = await tempDir('hub-agents-');
    const id = await addProjectViaUi(page, hub, dir, 'agents');
    await openProject(page, hub, id);
    const agent = page.getByLabel('Agent', { exact: true });
    assert.equal(await agent.inputValue(), 'claude');
    await agent.selectOption('codex');
    await page.getByLabel('Model', { exact: true }).fill('gpt-5');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('hub-project .agent-form', { hasText: 'Saved' }).waitFor({ timeout: 10_000 });
    const p = await rpcInPage(page, 'project.get', { project_id: id });
    assert.equal(p.agent, 'codex');
    assert.equal(p.model, 'gpt-5');
    // Shown again after a reload, from the hub.
    await page.reload();
    await waitConnected(page);
    await openProject(page, hub, id);
    await page.waitForFunction(() => document.querySelector('#project-agent')?.value === 'codex');
    assert.equal(await page.getByLabel('Model', { exact: true }).inputValue(), 'gpt-5');
    // axe needs an inline script, which the dashboard's CSP forbids: a context without it.
    const ctx = await browser.newContext({ bypassCSP: true, storageState: await page.context().storageState() });
    const checked = await ctx.newPage();
    await openProject(checked, hub, id);
    assert.deepEqual(await axeSerious(checked), [], 'no serious accessibility issue');
    await ctx.close();

    await page.goto(`${hub.url}/#/overview`);
    await waitConnected(page);
    const overview = page.locator('hub-overview');
    await overview.getByText('Codex CLI', { exact: true }).waitFor({ timeout: 10_000 });
    assert.match(await overview.innerText(), /Codex CLI\s*not found/);
    assert.match(await overview.innerText(), /agent\.codex\.cli_path/);
  });
});
