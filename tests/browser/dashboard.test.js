// The dashboard against a real hub in Debian's Chromium: sign-in, projects, agent output,
// kill, connections, settings, accessibility (axe-core) and screenshots.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  startHub, stopHub, launchBrowser, signInUrl, signedInPage, waitConnected, tempDir,
  addProjectViaUi, openProject, renderedSeqs, contiguity, screenshot, axeSerious, rpcInPage,
  watchPage, waitFor,
} from './helpers.js';

describe('dashboard', () => {
  let hub, browser, session, page;
  const projects = {}; // name → {id, dir}

  before(async () => {
    // hub.stats every second rather than every ten, so the overview's live updates show quickly.
    hub = await startHub({ env: { SEMANTEST_HUB_STATS_INTERVAL_S: '1' } });
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
  });

  after(async () => {
    await browser?.close();
    const res = await stopHub(hub);
    if (hub && res?.signal !== 'SIGTERM' && res?.code !== 0 && res?.code !== null) {
      console.log(`hub exit: ${JSON.stringify(res)}\n${hub.log()}`);
    }
  });

  test('sign-in: the one-time link signs in; a bad or reused link is refused', async () => {
    const link = await signInUrl(hub.dataDir);
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    const res = await p.goto(link);
    assert.equal(new URL(p.url()).pathname, '/', 'the link redirects to the dashboard');
    assert.equal(res.status(), 200);
    const csp = res.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/, `the dashboard is served with a strict CSP (got ${JSON.stringify(csp)})`);
    await waitConnected(p);

    // The same link again, from a browser with no cookie: refused.
    const other = await browser.newContext();
    const p2 = await other.newPage();
    const reused = await p2.goto(link);
    assert.equal(reused.status(), 401, 'a reused link is refused');
    const bad = await p2.goto(`${hub.url}/login?code=not-a-real-code`);
    assert.equal(bad.status(), 401, 'a bad code is refused');
    assert.equal(bad.headers()['set-cookie'], undefined, 'a refused link sets no cookie');

    // Without a cookie the dashboard says it is signed out, and stops retrying.
    await p2.goto(`${hub.url}/`);
    await p2.locator('#signed-out').waitFor({ state: 'visible', timeout: 15_000 });
    assert.match(await p2.locator('#signed-out').innerText(), /semantest-hub dashboard/);
    assert.match(await p2.locator('#conn-status').innerText(), /Signed out/);
    await ctx.close();
    await other.close();
  });

  test('projects: inline errors for a relative or missing path, then add one', async () => {
    await page.goto(`${hub.url}/#/projects`);
    await waitConnected(page);
    const pathInput = page.getByLabel('Folder path');
    const error = page.locator('#project-path-error');
    const add = page.getByRole('button', { name: 'Add project' });

    await pathInput.fill('relative/folder');
    await add.click();
    await error.waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await error.innerText(), /can't be added/i);
    assert.match(await error.innerText(), /absolute/i);
    assert.equal(await pathInput.getAttribute('aria-invalid'), 'true');

    const missing = path.join(await tempDir(), 'does-not-exist');
    await pathInput.fill(missing);
    assert.equal(await error.isVisible(), false, 'typing clears the error');
    await add.click();
    await error.waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await error.innerText(), /can't be added/i);
    assert.match(await error.innerText(), /not found|not exist|no such|missing/i);

    const file = path.join(await tempDir(), 'a-file.txt');
    await fs.writeFile(file, 'x');
    await pathInput.fill(file);
    await add.click();
    await waitFor(async () => /directory|folder/i.test(await error.innerText()), { message: 'not-a-directory error' });

    const dir = await tempDir('proj-main-');
    const id = await addProjectViaUi(page, hub, dir, 'main-project');
    projects.main = { id, dir };
    assert.equal(await error.isVisible(), false);
    const row = page.locator(`tr[data-project-id="${id}"]`);
    assert.match(await row.innerText(), /main-project/);
    assert.match(await row.locator('.badge').innerText(), /idle/);

    // The same folder again, and a folder inside it.
    await pathInput.fill(dir);
    await add.click();
    await waitFor(async () => /already a project/i.test(await error.innerText()), { message: 'PROJECT_EXISTS error' });
    const inner = path.join(dir, 'inner');
    await fs.mkdir(inner);
    await pathInput.fill(inner);
    await add.click();
    await waitFor(async () => /nested/i.test(await error.innerText()), { message: 'PROJECT_NESTED error' });
  });

  test('projects: removal asks for confirmation in the page', async () => {
    const dir = await tempDir('proj-remove-');
    const id = await addProjectViaUi(page, hub, dir, 'to-remove');
    const row = page.locator(`tr[data-project-id="${id}"]`);
    let dialogs = 0;
    page.on('dialog', (d) => { dialogs++; d.dismiss(); });

    await row.getByRole('button', { name: 'Remove to-remove' }).click();
    const cancel = row.getByRole('button', { name: 'Cancel' });
    await cancel.waitFor({ timeout: 5_000 });
    assert.ok(await cancel.evaluate((el) => el === document.activeElement), 'focus moves to Cancel');
    await cancel.click();
    await row.getByRole('button', { name: 'Remove to-remove' }).waitFor({ timeout: 5_000 });

    await row.getByRole('button', { name: 'Remove to-remove' }).click();
    await row.getByRole('button', { name: 'Remove', exact: true }).click();
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(dialogs, 0, 'no window.confirm');
    const list = await rpcInPage(page, 'project.list', {});
    assert.ok(!list.projects.some((p) => p.id === id), 'the hub no longer lists it');
  });

  test('project view: a successful run renders text, the tool call, its result and the cost', async () => {
    const { id } = projects.main;
    await openProject(page, hub, id);
    await page.getByLabel('Prompt').fill('success please');
    await page.getByRole('button', { name: 'Run' }).click();

    const result = page.locator('hub-project .row .result');
    await result.waitFor({ timeout: 20_000 });
    assert.equal(await result.locator('.f-cost').innerText(), '$0.0123');
    assert.equal(await result.locator('.f-duration').innerText(), '1.2 s');
    assert.equal(await result.locator('.f-turns').innerText(), '2');

    const log = page.locator('hub-project .log');
    assert.match(await log.innerText(), /Run started/);
    assert.match(await log.innerText(), /success please/);
    assert.match(await log.innerText(), /Session started · model fake-model/);
    assert.match(await log.innerText(), /Working on it\./);

    const tool = page.locator('hub-project details.tool');
    assert.equal(await tool.count(), 1);
    assert.match(await tool.locator('summary').innerText(), /Tool\s+Write/i);
    assert.equal(await tool.evaluate((d) => d.open), false, 'collapsed by default');
    await tool.locator('summary').click();
    assert.match(await tool.locator('pre').innerText(), /"content": "hi"/);
    const toolResult = page.locator('hub-project details.tool-result');
    await toolResult.locator('summary').click();
    assert.match(await toolResult.locator('pre').innerText(), /File created successfully/);

    await page.locator('hub-project .badge[data-state="idle"]').waitFor({ timeout: 10_000 });
    await page.locator('hub-project .run-sep.end', { hasText: 'Run succeeded' }).waitFor({ timeout: 10_000 });
    const seqs = await renderedSeqs(page);
    assert.deepEqual(contiguity(seqs), { dups: [], gaps: [] });
    const stored = await rpcInPage(page, 'messages.list', { project_id: id, after_seq: 0, limit: 1000 });
    assert.deepEqual(seqs, stored.messages.map((m) => m.seq), 'the view shows exactly the stored lines');
  });

  test('project view: errors, stderr and non-JSON lines', async () => {
    const { id } = projects.main;
    await openProject(page, hub, id);
    await page.getByLabel('Prompt').fill('nonjson');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.locator('hub-project .row.k-text pre', { hasText: 'this line is not JSON' }).waitFor({ timeout: 20_000 });
    const stderr = page.locator('hub-project .row.s-stderr pre', { hasText: 'warning: something on stderr' });
    await stderr.waitFor({ timeout: 10_000 });
    const red = await stderr.evaluate((el) => getComputedStyle(el).color);
    assert.match(red, /rgb\((1[5-9]\d|2\d\d), \d{1,2}, \d{1,2}\)/, `stderr is red (got ${red})`);
    await page.locator('hub-project .badge[data-state="idle"]').waitFor({ timeout: 10_000 });

    await page.getByLabel('Prompt').fill('error');
    await page.getByRole('button', { name: 'Run' }).click();
    const failed = page.locator('hub-project .result.err');
    await failed.waitFor({ timeout: 20_000 });
    assert.match(await failed.innerText(), /API Error: fake failure/);
    await page.locator('hub-project .badge[data-state="failed"]').waitFor({ timeout: 10_000 });
    await page.locator('hub-project .run-sep.end.err', { hasText: 'Run failed' }).waitFor({ timeout: 10_000 });
  });

  test('project view: Kill stops a hanging run and the state becomes killed', async () => {
    const { id } = projects.main;
    await openProject(page, hub, id);
    await page.getByLabel('Prompt').fill('hang');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.locator('hub-project .badge[data-state="running"]').waitFor({ timeout: 10_000 });
    await page.locator('hub-project .row.k-system').last().waitFor({ timeout: 10_000 });
    assert.equal(await page.getByRole('button', { name: 'Running…' }).isDisabled(), true, 'Run is disabled while running');
    await page.getByRole('button', { name: 'Kill' }).click();
    await page.locator('hub-project .badge[data-state="killed"]').waitFor({ timeout: 20_000 });
    await page.locator('hub-project .run-sep.end', { hasText: 'Run killed' }).waitFor({ timeout: 10_000 });
    const p = await rpcInPage(page, 'project.get', { project_id: id });
    assert.equal(p.state, 'killed');
  });

  test('project view: New session clears the session', async () => {
    const { id } = projects.main;
    await openProject(page, hub, id);
    const before = await rpcInPage(page, 'project.get', { project_id: id });
    assert.ok(before.session_id, 'the earlier runs left a session');
    await page.getByRole('button', { name: 'New session' }).click();
    await page.locator('hub-project .project-meta', { hasText: 'no session yet' }).waitFor({ timeout: 10_000 });
    const afterP = await rpcInPage(page, 'project.get', { project_id: id });
    assert.equal(afterP.session_id, null);
  });

  test('connections: two dashboards are listed with LOCAL badges', async () => {
    const second = await session.context.newPage();
    await second.goto(`${hub.url}/#/overview`);
    await waitConnected(second);
    await page.goto(`${hub.url}/#/connections`);
    await waitConnected(page);
    const dashRows = page.locator('hub-connections tbody tr', { hasText: 'dashboard' });
    await waitFor(async () => (await dashRows.count()) >= 2, { message: 'two dashboard rows' });
    const badges = await dashRows.locator('.badge').allInnerTexts();
    assert.ok(badges.length >= 2 && badges.every((b) => b === 'LOCAL'), `LOCAL badges: ${badges}`);
    assert.equal(await page.locator('hub-connections tbody tr', { hasText: 'this window' }).count(), 1);
    const n = await dashRows.count();
    await second.close();
    await waitFor(async () => (await dashRows.count()) === n - 1, { message: 'the closed dashboard to leave the list' });
  });

  test('overview and settings show the hub status, health and config', async () => {
    await page.goto(`${hub.url}/#/overview`);
    await waitConnected(page);
    const ov = page.locator('hub-overview');
    await waitFor(async () => /found/.test(await ov.innerText()) && /Disk free\s+\S+/.test(await ov.innerText()), { message: 'health' });
    const text = await ov.innerText();
    assert.match(text, new RegExp(`Port\\s+${hub.port}`));
    assert.match(text, /fake-claude/);
    assert.match(text, /9\.9\.9/);

    // Live: hub.stats notifications arrive, and counts follow project.created at once.
    const live = page.locator('hub-overview .live-note');
    const updates = async () => Number(await live.getAttribute('data-updates'));
    const u0 = await updates();
    await waitFor(async () => (await updates()) >= u0 + 2, { timeout: 10_000, message: 'two hub.stats notifications' });
    const projectsStat = page.locator('hub-overview [data-stat="projects"] .stat-value');
    const n0 = Number(await projectsStat.innerText());
    await rpcInPage(page, 'project.create', { path: await tempDir('proj-count-') });
    await waitFor(async () => Number(await projectsStat.innerText()) === n0 + 1, { timeout: 5_000, message: 'the project count to go up' });
    await page.goto(`${hub.url}/#/settings`);
    const row = page.locator('hub-settings tr[data-key="limits.max_connections"]');
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.innerText(), /100\s+default/);
    const durable = page.locator('hub-settings tr[data-key="storage.lose_acknowledged_writes_on_power_cut"]');
    assert.match(await durable.innerText(), /false\s+default/);
    assert.match(await page.locator('hub-settings [data-durability="power_cut"]').innerText(), /survives a power cut/);
    assert.equal(await page.getByLabel('Start at login').count(), 0, 'no desktop toggle in a plain browser');
  });

  test('settings: the Start at login toggle appears in the app window and calls the shell', async () => {
    const state = await session.context.storageState();
    const ctx = await browser.newContext({ storageState: state });
    // Stand-in for the Tauri shell's global API (see ui/desktop.js).
    await ctx.addInitScript(() => {
      window.__shellCalls = [];
      let enabled = false;
      window.__TAURI__ = {
        core: {
          invoke: async (cmd, args) => {
            window.__shellCalls.push([cmd, args ?? null]);
            if (cmd === 'autostart_set') enabled = args.enabled;
            return enabled;
          },
        },
      };
    });
    const p = await ctx.newPage();
    await p.goto(`${hub.url}/#/settings`);
    await waitConnected(p);
    const toggle = p.getByLabel('Start at login');
    await toggle.waitFor({ timeout: 5_000 });
    await waitFor(async () => !(await toggle.isDisabled()), { message: 'toggle enabled' });
    assert.equal(await toggle.isChecked(), false);
    await toggle.check();
    await waitFor(async () => JSON.stringify(await p.evaluate(() => window.__shellCalls)).includes('["autostart_set",{"enabled":true}]'), { message: 'autostart_set {enabled:true} called' });
    assert.match(await p.locator('hub-settings').innerText(), /will start when you log in/);
    await toggle.uncheck();
    await waitFor(async () => JSON.stringify(await p.evaluate(() => window.__shellCalls)).includes('["autostart_set",{"enabled":false}]'), { message: 'autostart_set {enabled:false} called' });
    assert.equal((await p.evaluate(() => window.__shellCalls))[0][0], 'autostart_get');
    await ctx.close();
  });

  test('keyboard: the nav and the prompt work without a mouse', async () => {
    await page.goto(`${hub.url}/#/overview`);
    await waitConnected(page);
    await page.keyboard.press('Tab'); // skip link
    await page.keyboard.press('Tab'); // brand
    await page.keyboard.press('Tab'); // Sign out
    await page.keyboard.press('Tab'); // Overview
    await page.keyboard.press('Tab'); // Projects
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Projects');
    await page.keyboard.press('Enter');
    await page.locator('hub-projects').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the new view');
  });

  test('accessibility: axe-core finds no serious or critical violations, light and dark', async () => {
    // axe is injected as a script tag, which the dashboard's CSP forbids: this context
    // bypasses the CSP (the other tests run with it enforced).
    const state = await session.context.storageState();
    for (const colorScheme of ['light', 'dark']) {
      const ctx = await browser.newContext({ bypassCSP: true, colorScheme, storageState: state, viewport: { width: 1280, height: 800 } });
      const p = await ctx.newPage();
      const views = ['overview', 'projects', `projects/${projects.main.id}`, 'connections', 'settings'];
      for (const v of views) {
        await p.goto(`${hub.url}/#/${v}`);
        await waitConnected(p);
        if (v.startsWith('projects/')) {
          await p.locator('hub-project .row').first().waitFor({ timeout: 10_000 });
          await p.locator('hub-project details.tool summary').first().click();
        } else {
          await p.locator('main h1').waitFor();
          await p.waitForLoadState('networkidle');
        }
        const serious = await axeSerious(p);
        assert.deepEqual(serious, [], `axe (${colorScheme}) on #/${v}`);
      }
      await ctx.close();
    }
  });

  test('screenshots of each main view are saved and not blank', async () => {
    // A project whose output shows each kind of row: text, a tool call and its result, the
    // result line with cost, a non-JSON line and stderr.
    const showcase = await rpcInPage(page, 'project.create', { path: await tempDir('proj-showcase-'), name: 'showcase' });
    await openProject(page, hub, showcase.id);
    for (const prompt of ['success write out.txt', 'nonjson']) {
      await page.getByLabel('Prompt').fill(prompt);
      await page.getByRole('button', { name: 'Run' }).click();
      await page.locator('hub-project .run-sep.end').nth(prompt === 'nonjson' ? 1 : 0).waitFor({ timeout: 20_000 });
      await page.locator('hub-project .badge[data-state="idle"]').waitFor({ timeout: 10_000 });
    }
    const views = [['overview', 'overview'], ['projects', 'projects'], [`projects/${showcase.id}`, 'project'], ['connections', 'connections'], ['settings', 'settings']];
    for (const [route, name] of views) {
      await page.goto(`${hub.url}/#/${route}`);
      await waitConnected(page);
      if (name === 'project') {
        await page.locator('hub-project .row .result').nth(1).waitFor({ timeout: 10_000 });
        for (const s of await page.locator('hub-project details summary').all()) await s.click();
        await page.locator('hub-project .log').evaluate((el) => { el.scrollTop = 0; });
      } else {
        await page.locator('main h1').waitFor();
      }
      await page.waitForLoadState('networkidle');
      const shot = await screenshot(page, name);
      console.log(`screenshot ${shot.file} ${JSON.stringify(shot.stats)}`);
    }
    const state = await session.context.storageState();
    const dark = await browser.newContext({ colorScheme: 'dark', storageState: state, viewport: { width: 1280, height: 800 } });
    const dp = await dark.newPage();
    const w = watchPage(dp);
    await dp.goto(`${hub.url}/#/projects/${projects.main.id}`);
    await waitConnected(dp);
    await dp.locator('hub-project .row .result').first().waitFor({ timeout: 10_000 });
    const bg = await dp.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(bg, 'rgb(246, 247, 249)', 'the dark theme applies');
    await screenshot(dp, 'project-dark');
    assert.deepEqual(w.cspErrors, []);
    await dark.close();
  });

  test('no CSP violations or page errors happened', () => {
    assert.deepEqual(session.cspErrors, []);
    assert.deepEqual(session.pageErrors, []);
  });
});
