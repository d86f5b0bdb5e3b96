// The agent choice in the dashboard, in Debian's Chromium: the project page picks the
// agent and model (project.configure), the overview lists every agent's CLI.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import {
  startHub, stopHub, launchBrowser, signedInPage, tempDir, addProjectViaUi, openProject,
  rpcInPage, waitConnected, axeSerious, waitFor, REPO,
} from './helpers.js';

const CODEX = process.env.SEMANTEST_TEST_CODEX || path.join(REPO, 'target/codex/node_modules/.bin/codex');

/** The scripted Responses API (tests/fixtures/fake-openai.mjs); resolves to {url, stop}. */
async function fakeOpenAi() {
  const child = spawn(process.execPath, [path.join(REPO, 'tests/fixtures/fake-openai.mjs')], { stdio: ['ignore', 'pipe', 'ignore'] });
  const first = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('error', reject);
  });
  return { url: JSON.parse(first).listening, stop: () => child.kill() };
}

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
    await page.locator('hub-project .agent-choice', { hasText: 'Saved' }).waitFor({ timeout: 10_000 });
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

describe('a Codex project in the dashboard', () => {
  let hub, browser, page, api, home;

  before(async () => {
    api = await fakeOpenAi();
    // Not under /tmp: Codex refuses to set up its sandbox helper there.
    fs.mkdirSync(path.join(REPO, 'target/codex-homes'), { recursive: true });
    home = fs.mkdtempSync(path.join(REPO, 'target/codex-homes/ui-'));
    fs.writeFileSync(path.join(home, 'config.toml'),
      `model = "gpt-5"\nmodel_provider = "fake"\n[model_providers.fake]\nname = "Fake"\n`
      + `base_url = "${api.url}/v1"\nenv_key = "FAKE_API_KEY"\nwire_api = "responses"\n`);
    hub = await startHub({
      env: {
        SEMANTEST_HUB_AGENT__CODEX__CLI_PATH: CODEX,
        SEMANTEST_HUB_AGENT__CODEX__SANDBOX: 'danger-full-access',
        SEMANTEST_HUB_AGENT__CODEX__ENV: `{CODEX_HOME="${home}",FAKE_API_KEY="dummy"}`,
      },
    });
    browser = await launchBrowser();
    page = (await signedInPage(browser, hub)).page;
  });

  after(async () => {
    await browser?.close();
    await stopHub(hub);
    api?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  test('a Codex command waits for the dashboard, runs once allowed and shows as a shell command', async () => {
    const dir = await tempDir('hub-codex-');
    const id = (await rpcInPage(page, 'project.create', { path: dir, name: 'codex' })).id;
    await rpcInPage(page, 'project.configure', { project_id: id, agent: 'codex' });
    await openProject(page, hub, id);
    await page.getByLabel('Prompt').fill('BASH echo from-codex > codex.txt');
    await page.getByRole('button', { name: 'Run' }).click();
    const card = page.locator('hub-approvals article.approval[data-tool="Bash"]');
    await card.waitFor({ timeout: 30_000 });
    assert.match(await card.innerText(), /echo from-codex > codex\.txt/);
    assert.equal(fs.existsSync(path.join(dir, 'codex.txt')), false, 'nothing runs before the answer');
    await card.focus();
    await page.keyboard.press('y');
    await card.waitFor({ state: 'detached', timeout: 10_000 });
    await waitFor(async () => (await rpcInPage(page, 'project.get', { project_id: id })).state !== 'running',
      { timeout: 30_000, message: 'the run to end' });
    assert.equal(fs.readFileSync(path.join(dir, 'codex.txt'), 'utf8'), 'from-codex\n');
    // The command renders as a Bash tool call, and Codex's final message as text.
    const log = page.locator('hub-project');
    await log.locator('details.tool', { hasText: 'echo from-codex' }).first().waitFor({ timeout: 10_000 });
    await log.locator('.msg.assistant', { hasText: 'Done.' }).first().waitFor({ timeout: 10_000 });
    const p = await rpcInPage(page, 'project.get', { project_id: id });
    assert.equal(p.state, 'idle');
    assert.ok(p.sessions.codex, 'the Codex thread is the Codex session of the project');
  });
});

const GEMINI = process.env.SEMANTEST_TEST_GEMINI || path.join(REPO, 'target/gemini-cli/node_modules/.bin/gemini');

/** The scripted Gemini API (tests/fixtures/fake-gemini.mjs); resolves to {url, stop}. */
async function fakeGemini() {
  const child = spawn(process.execPath, [path.join(REPO, 'tests/fixtures/fake-gemini.mjs')], { stdio: ['ignore', 'pipe', 'ignore'] });
  const first = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('error', reject);
  });
  return { url: JSON.parse(first).listening, stop: () => child.kill() };
}

describe('a Gemini project in the dashboard', () => {
  let hub, browser, page, api, home;

  before(async () => {
    api = await fakeGemini();
    // The CLI's settings: API-key auth (0.61 rejects the type it infers from a base URL).
    home = await tempDir('hub-gemini-home-');
    fs.mkdirSync(path.join(home, '.gemini'));
    fs.writeFileSync(path.join(home, '.gemini/settings.json'), JSON.stringify({
      security: { auth: { selectedType: 'gemini-api-key' } },
      privacy: { usageStatisticsEnabled: false },
    }));
    hub = await startHub({
      env: {
        SEMANTEST_HUB_AGENT__GEMINI__CLI_PATH: GEMINI,
        SEMANTEST_HUB_AGENT__GEMINI__ENV: `{HOME="${home}",GOOGLE_GEMINI_BASE_URL="${api.url}",GEMINI_API_KEY="dummy",GEMINI_CLI_TRUST_WORKSPACE="true"}`,
      },
    });
    browser = await launchBrowser();
    page = (await signedInPage(browser, hub)).page;
  });

  after(async () => {
    await browser?.close();
    await stopHub(hub);
    api?.stop();
  });

  test('a Gemini command waits for the dashboard, runs once allowed and shows as a shell command', async () => {
    const dir = await tempDir('hub-gemini-');
    const id = (await rpcInPage(page, 'project.create', { path: dir, name: 'gemini' })).id;
    await rpcInPage(page, 'project.configure', { project_id: id, agent: 'gemini' });
    await openProject(page, hub, id);
    await page.getByLabel('Prompt').fill('SHELL echo from-gemini > gemini.txt');
    await page.getByRole('button', { name: 'Run' }).click();
    const card = page.locator('hub-approvals article.approval[data-tool="Bash"]');
    await card.waitFor({ timeout: 60_000 });
    assert.match(await card.innerText(), /echo from-gemini > gemini\.txt/);
    assert.equal(fs.existsSync(path.join(dir, 'gemini.txt')), false, 'nothing runs before the answer');
    await card.focus();
    await page.keyboard.press('y');
    await card.waitFor({ state: 'detached', timeout: 10_000 });
    await waitFor(async () => (await rpcInPage(page, 'project.get', { project_id: id })).state !== 'running',
      { timeout: 60_000, message: 'the run to end' });
    assert.equal(fs.readFileSync(path.join(dir, 'gemini.txt'), 'utf8'), 'from-gemini\n');
    // The command renders as a Bash tool call, as Claude Code's and Codex's do.
    const log = page.locator('hub-project');
    await log.locator('details.tool', { hasText: 'echo from-gemini' }).first().waitFor({ timeout: 10_000 });
    // The answer streams in two chunks ("Do", "ne."), one log line each: one block shows it.
    await log.locator('.msg.assistant', { hasText: 'Done.' }).first().waitFor({ timeout: 10_000 });
    const blocks = (await log.locator('.msg.assistant').allInnerTexts()).map((t) => t.trim());
    assert.ok(!blocks.includes('Do') && !blocks.includes('ne.'), JSON.stringify(blocks));
    assert.ok(await log.locator('.row.merged').count() >= 1, 'the joined chunk keeps its row');
    const p = await rpcInPage(page, 'project.get', { project_id: id });
    assert.equal(p.state, 'idle');
    assert.ok(p.sessions.gemini, 'the ACP session is the Gemini session of the project');
  });
});
