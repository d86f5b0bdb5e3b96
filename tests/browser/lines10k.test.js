// 10,000 output lines: the project view streams them with a capped DOM, opens quickly on a
// project with 10,000 stored lines, and loads older lines when scrolled up.
// Prints `FIGURE name=value unit` lines, for reports to quote.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, stopHub, launchBrowser, signedInPage, tempDir, addProjectViaUi, openProject,
  renderedSeqs, contiguity, rpcInPage, waitFor, waitConnected, figure,
} from './helpers.js';

const N = 10_000;
const MAX_ROWS = 1500; // ui/components/project-view.js

test('10,000 lines: streaming, first render, heap, and scroll-up history', async (t) => {
  const hub = await startHub();
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await stopHub(hub);
  });
  const { page, context, pageErrors } = await signedInPage(browser, hub);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const dir = await tempDir('proj-10k-');
  const id = await addProjectViaUi(page, hub, dir, 'ten-thousand');
  await openProject(page, hub, id);

  // Long tasks while streaming tell whether the page stays responsive.
  await page.evaluate(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: false });
  });

  const t0 = Date.now();
  await page.getByLabel('Prompt').fill(`lines ${N}`);
  await page.getByRole('button', { name: 'Run' }).click();
  await page.locator('hub-project .run-sep.end', { hasText: 'Run succeeded' }).waitFor({ timeout: 180_000 });
  const streamMs = Date.now() - t0;
  const p = await rpcInPage(page, 'project.get', { project_id: id });
  assert.ok(p.last_seq >= N + 2, `stored ${p.last_seq} lines`);
  await waitFor(async () => (await renderedSeqs(page)).at(-1) === p.last_seq, { timeout: 10_000, message: 'the last line to render' });

  const rows = await page.locator('hub-project .log-rows > .row').count();
  assert.ok(rows <= MAX_ROWS, `at most ${MAX_ROWS} rows in the DOM (got ${rows})`);
  const seqs = await renderedSeqs(page);
  assert.deepEqual(contiguity(seqs), { dups: [], gaps: [] });
  const longTasks = await page.evaluate(() => window.__longTasks);
  await cdp.send('HeapProfiler.collectGarbage');
  const heapAfterStream = metric(await cdp.send('Performance.getMetrics'), 'JSHeapUsedSize');
  const nodes = metric(await cdp.send('Performance.getMetrics'), 'Nodes');

  figure('stream_10k_lines_ms', streamMs, 'ms');
  figure('stored_lines', p.last_seq, 'lines');
  figure('dom_rows_after_10k', rows, 'rows');
  figure('dom_nodes_after_10k', nodes, 'nodes');
  figure('js_heap_after_10k_mib', (heapAfterStream / 1048576).toFixed(1), 'MiB');
  figure('long_tasks_while_streaming', longTasks.length, 'tasks');
  figure('longest_task_while_streaming_ms', Math.round(Math.max(0, ...longTasks)), 'ms');

  // First render of the project view with 10,000 stored lines, on a fresh page load.
  await page.goto(`${hub.url}/#/overview`);
  await waitConnected(page);
  const t1 = Date.now();
  await page.goto(`${hub.url}/#/projects/${id}`);
  await page.locator(`hub-project .row[data-seq="${p.last_seq}"]`).waitFor({ timeout: 30_000 });
  const firstRenderMs = Date.now() - t1;
  figure('first_render_10k_page_load_ms', firstRenderMs, 'ms');

  // And when navigating to it inside the app (no page load).
  await page.locator('nav a[data-view="projects"]').click();
  await page.locator(`tr[data-project-id="${id}"]`).waitFor();
  const t2 = Date.now();
  await page.locator(`tr[data-project-id="${id}"] a`).click();
  await page.locator(`hub-project .row[data-seq="${p.last_seq}"]`).waitFor({ timeout: 30_000 });
  figure('first_render_10k_in_app_ms', Date.now() - t2, 'ms');
  await cdp.send('HeapProfiler.collectGarbage');
  figure('js_heap_after_reopen_mib', (metric(await cdp.send('Performance.getMetrics'), 'JSHeapUsedSize') / 1048576).toFixed(1), 'MiB');

  // Scrolling up loads older lines, keeps the DOM capped and the seqs contiguous.
  const first = async () => (await renderedSeqs(page))[0];
  let oldest = await first();
  for (let i = 0; i < 10; i++) {
    await page.locator('hub-project .log').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    const before = oldest;
    oldest = await waitFor(async () => { const f = await first(); return f < before ? f : null; }, { timeout: 10_000, message: `lines older than ${before}` });
  }
  const afterScroll = await renderedSeqs(page);
  assert.ok(afterScroll.length <= MAX_ROWS, `still at most ${MAX_ROWS} rows (got ${afterScroll.length})`);
  assert.deepEqual(contiguity(afterScroll), { dups: [], gaps: [] });
  assert.ok(afterScroll[0] < p.last_seq - 2000, `scrolled back to ${afterScroll[0]}`);

  // While the reader is up in the history with a full window, new lines are counted, not
  // rendered; "Jump to latest" then brings the tail back with no gap.
  await rpcInPage(page, 'agent.run', { project_id: id, prompt: 'lines 300' });
  const p2 = await waitFor(async () => {
    const q = await rpcInPage(page, 'project.get', { project_id: id });
    return q.state === 'idle' && q.last_seq > p.last_seq ? q : null;
  }, { timeout: 60_000, interval: 250, message: 'the second run to finish' });
  const jump = page.getByRole('button', { name: /Jump to latest/ });
  await waitFor(async () => /\(\d[\d,.\s]* new\)/.test(await jump.innerText()), { timeout: 10_000, message: 'a count of new lines' });
  assert.equal(await page.locator(`hub-project .row[data-seq="${p2.last_seq}"]`).count(), 0, 'the new lines are not rendered while reading history');
  assert.ok((await renderedSeqs(page))[0] === afterScroll[0], 'the reader keeps their place');
  // Scrolling down loads the next lines.
  let newest = (await renderedSeqs(page)).at(-1);
  for (let i = 0; i < 3; i++) {
    await page.locator('hub-project .log').evaluate((el) => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); });
    const before = newest;
    newest = await waitFor(async () => { const l = (await renderedSeqs(page)).at(-1); return l > before ? l : null; }, { timeout: 10_000, message: `lines newer than ${before}` });
    const seqs = await renderedSeqs(page);
    assert.ok(seqs.length <= MAX_ROWS, `at most ${MAX_ROWS} rows while scrolling down (got ${seqs.length})`);
    assert.deepEqual(contiguity(seqs), { dups: [], gaps: [] });
  }
  await jump.click();
  await page.locator(`hub-project .row[data-seq="${p2.last_seq}"]`).waitFor({ timeout: 10_000 });
  assert.deepEqual(contiguity(await renderedSeqs(page)), { dups: [], gaps: [] });
  assert.ok(await page.locator('hub-project .log').evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 50), 'at the bottom');
  assert.deepEqual(pageErrors, []);
});

function metric(res, name) {
  return res.metrics.find((m) => m.name === name)?.value ?? NaN;
}
