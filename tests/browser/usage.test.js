// The Usage view against a real hub in Chromium: the fake agent CLI runs turns whose
// cumulative totals the hub turns into per-turn figures; the view charts the cost per
// day, lists projects and runs, narrows to one project, and the project's log shows each
// run's cost. Accessibility with axe-core.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, stopHub, launchBrowser, signedInPage, waitConnected, tempDir, rpcInPage,
  openProject, axeSerious, screenshot, waitFor,
} from './helpers.js';

describe('usage view', () => {
  let hub, browser, page;
  const projects = {};

  /** Runs `prompt` in a project and waits until the hub recorded `turns` turns in all. */
  async function runAndWait(id, prompt, turns) {
    await rpcInPage(page, 'agent.run', { project_id: id, prompt });
    await waitFor(async () => {
      const [usage, project] = await Promise.all([
        rpcInPage(page, 'agent.usage', { group_by: 'project' }),
        rpcInPage(page, 'project.get', { project_id: id }),
      ]);
      return usage.total.turns === turns && project.state === 'idle';
    }, { timeout: 30_000, message: `${turns} turns recorded` });
  }

  before(async () => {
    hub = await startHub();
    browser = await launchBrowser();
    page = (await signedInPage(browser, hub)).page;
    await waitConnected(page);
    for (const name of ['alpha', 'beta']) {
      const dir = await tempDir(`usage-${name}-`);
      const project = await rpcInPage(page, 'project.create', { path: dir, name });
      projects[name] = project.id;
    }
    // alpha: turns 1 and 2 in one process, then turn 3 in a resumed process that carries
    // the session's total (0.001 + 0.002, then 0.003 USD). beta: one turn of 0.001.
    await runAndWait(projects.alpha, 'usage carry 2', 2);
    await runAndWait(projects.alpha, 'usage carry 1', 3);
    await runAndWait(projects.beta, 'usage carry 1', 4);
  });

  after(async () => {
    await browser?.close();
    await stopHub(hub);
  });

  test('the chart has a bar for today with the day\'s cost; the tables sum per project and run', async () => {
    await page.goto(`${hub.url}/#/usage`);
    await waitConnected(page);
    await page.locator('hub-usage[data-loaded] .usage-chart').waitFor({ timeout: 10_000 });
    assert.equal(await page.title(), 'Usage · Semantest Hub');
    assert.equal(await page.locator('nav a[aria-current="page"]').innerText(), 'Usage');

    // Thirty days on the axis by default, today last, with all of today's cost.
    const bars = await page.$$eval('hub-usage .usage-chart g.day', (gs) => gs.map((g) => ({ day: g.dataset.day, usd: Number(g.dataset.usd) })));
    assert.equal(bars.length, 30);
    assert.ok(Math.abs(bars.at(-1).usd - 0.007) < 1e-9, JSON.stringify(bars.at(-1)));
    assert.ok(bars.slice(0, -1).every((b) => b.usd === 0));
    const tall = await page.locator('hub-usage .usage-chart g.day').last().locator('rect.bar').getAttribute('height');
    assert.ok(Number(tall) > 100, `today's bar is the tallest (${tall})`);
    assert.match(await page.locator('hub-usage .usage-chart').getAttribute('aria-label'), /\$0\.0070 in all/);
    assert.match(await page.locator('hub-usage .usage-total').innerText(), /\$0\.0070 · 4 turns in 3 runs/);

    const projectRows = await page.$$eval('hub-usage table.by-project tbody tr', (trs) => trs.map((tr) => [tr.querySelector('th').textContent, tr.querySelector('.f-usd').textContent]));
    assert.deepEqual(projectRows, [['alpha', '$0.0060'], ['beta', '$0.0010']]);
    const runCosts = await page.$$eval('hub-usage table.by-run tbody .f-usd', (tds) => tds.map((td) => td.textContent));
    assert.deepEqual(runCosts, ['$0.0010', '$0.0030', '$0.0030'], 'most recent first: beta, then alpha\'s resumed run, then its first');

    // One project only.
    await page.selectOption('#usage-project', projects.beta);
    await waitFor(async () => (await page.locator('hub-usage .usage-total').innerText()).startsWith('$0.0010'), { message: 'beta only' });
    assert.equal(await page.locator('hub-usage table.by-run tbody tr').count(), 1);

    // All time: the axis starts at the first day with usage (today).
    await page.selectOption('#usage-project', '');
    await page.selectOption('#usage-range', 'all');
    await waitFor(async () => (await page.locator('hub-usage .usage-chart g.day').count()) === 1, { message: 'one day on the axis' });

    await screenshot(page, 'usage');
    // axe is injected as a script, which the dashboard's CSP forbids: a context that
    // bypasses it, signed in with the same cookie, in both themes.
    for (const colorScheme of ['light', 'dark']) {
      const ctx = await browser.newContext({ bypassCSP: true, colorScheme, viewport: { width: 1280, height: 800 }, storageState: await page.context().storageState() });
      const p = await ctx.newPage();
      await p.goto(`${hub.url}/#/usage`);
      await p.locator('hub-usage[data-loaded] .usage-chart').waitFor({ timeout: 10_000 });
      assert.deepEqual(await axeSerious(p), [], colorScheme);
      await ctx.close();
    }
  });

  test('a new run updates the view, and the project log shows each run\'s cost', async () => {
    await page.goto(`${hub.url}/#/usage`);
    await page.locator('hub-usage[data-loaded] .usage-chart').waitFor({ timeout: 10_000 });
    await rpcInPage(page, 'agent.run', { project_id: projects.beta, prompt: 'usage carry 1' });
    // beta's second turn, resumed: 0.002 USD.
    await waitFor(async () => (await page.locator('hub-usage .usage-total').innerText()).startsWith('$0.0090'), { timeout: 30_000, message: 'the view reloads when the run ends' });

    await openProject(page, hub, projects.alpha);
    const costs = page.locator('hub-project .run-sep.end .run-cost');
    await waitFor(async () => (await costs.count()) === 2, { message: 'two finished runs' });
    assert.deepEqual((await costs.allInnerTexts()).map((t) => t.trim()), ['· cost $0.0030', '· cost $0.0030']);
  });
});
