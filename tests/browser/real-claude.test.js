// The real Claude Code CLI (installed by the test command into target/claude-code; set
// SEMANTEST_TEST_CLAUDE to use another) against the scripted Messages API
// (tests/fixtures/fake-anthropic.mjs), supervised from the dashboard in Chromium: a Bash
// call asks, nothing runs before the answer, it is allowed from the keyboard on the
// project page, and the command's file appears.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import {
  startHub, stopHub, launchBrowser, signedInPage, tempDir, openProject, rpcInPage, waitFor, REPO,
} from './helpers.js';

const CLAUDE = process.env.SEMANTEST_TEST_CLAUDE || path.join(REPO, 'target/claude-code/node_modules/.bin/claude');

/** The scripted Messages API; resolves to {url, stop}. */
async function fakeAnthropic() {
  const child = spawn(process.execPath, [path.join(REPO, 'tests/fixtures/fake-anthropic.mjs')], { stdio: ['ignore', 'pipe', 'ignore'] });
  const first = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('error', reject);
  });
  return { url: JSON.parse(first).listening, stop: () => child.kill() };
}

describe('the real Claude Code CLI supervised from the dashboard', () => {
  let hub, browser, session, page, api, configDir;

  before(async () => {
    assert.ok(fs.existsSync(CLAUDE), `${CLAUDE} (npm install --prefix target/claude-code @anthropic-ai/claude-code)`);
    api = await fakeAnthropic();
    configDir = await tempDir('claude-config-');
    const env = {
      ANTHROPIC_BASE_URL: api.url,
      ANTHROPIC_API_KEY: 'dummy',
      CLAUDE_CONFIG_DIR: configDir,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
    };
    hub = await startHub({
      env: {
        SEMANTEST_HUB_AGENT__CLI_PATH: CLAUDE,
        SEMANTEST_HUB_AGENT__PERMISSION_MODE: 'default',
        SEMANTEST_HUB_AGENT__ENV: `{${Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`,
      },
    });
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
  });

  after(async () => {
    await browser?.close();
    await stopHub(hub);
    api?.stop();
    if (configDir) fs.rmSync(configDir, { recursive: true, force: true });
  });

  test('a Bash call asks, is allowed from the dashboard with the keyboard, and its file appears', async () => {
    const dir = await tempDir('hub-claude-');
    const id = (await rpcInPage(page, 'project.create', { path: dir, name: 'claude' })).id;
    await openProject(page, hub, id);
    await page.getByLabel('Prompt').fill('BASH echo from-claude > claude.txt');
    await page.getByRole('button', { name: 'Run' }).click();
    const card = page.locator('hub-approvals article.approval[data-tool="Bash"]');
    await card.waitFor({ timeout: 60_000 });
    assert.match(await card.innerText(), /echo from-claude > claude\.txt/);
    assert.equal(fs.existsSync(path.join(dir, 'claude.txt')), false, 'nothing runs before the answer');
    const pending = (await rpcInPage(page, 'agent.approvals.list', { project_id: id })).approvals;
    assert.equal(pending.length, 1);
    assert.ok(pending[0].tool_use_id, 'tied to the streamed tool call');
    await card.focus();
    await page.keyboard.press('y');
    await card.waitFor({ state: 'detached', timeout: 10_000 });
    await waitFor(async () => (await rpcInPage(page, 'project.get', { project_id: id })).state !== 'running',
      { timeout: 60_000, message: 'the run to end' });
    assert.equal(fs.readFileSync(path.join(dir, 'claude.txt'), 'utf8'), 'from-claude\n');
    const lines = (await rpcInPage(page, 'messages.list', { project_id: id, limit: 1000 })).messages;
    const resolved = lines.find((m) => m.kind === 'approval_resolved');
    assert.equal(resolved.event.resolution.by.role, 'dashboard');
    assert.equal(resolved.event.resolution.outcome, 'allowed');
    // The tool call renders in the log as a Bash call.
    await page.locator('hub-project details.tool', { hasText: 'echo from-claude' }).first().waitFor({ timeout: 10_000 });
    assert.deepEqual(session.pageErrors, []);
  });
});
