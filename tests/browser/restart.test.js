// The project view survives a hub restart in the middle of a run: it shows
// "Reconnecting…", resubscribes with after_seq, and ends with every stored line exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, stopHub, launchBrowser, signedInPage, tempDir, addProjectViaUi, openProject,
  renderedSeqs, contiguity, rpcInPage, waitFor, waitConnected,
} from './helpers.js';

test('a hub restart mid-run: the view resumes with no gap and no duplicate', async (t) => {
  let hub = await startHub();
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await stopHub(hub);
  });
  const { page, cspErrors, pageErrors } = await signedInPage(browser, hub);
  const dir = await tempDir('proj-restart-');
  const id = await addProjectViaUi(page, hub, dir, 'restart');
  await openProject(page, hub, id);

  await page.getByLabel('Prompt').fill('slow 60');
  await page.getByRole('button', { name: 'Run' }).click();
  const slowRows = page.locator('hub-project .row', { hasText: /slow line \d+/ });
  await waitFor(async () => (await slowRows.count()) >= 5, { timeout: 20_000, message: 'five slow lines' });

  // Stop the hub mid-run; the page notices and says so.
  const port = hub.port;
  const dataDir = hub.dataDir;
  const seqsBefore = await renderedSeqs(page);
  const exit = await stopHub(hub);
  assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `graceful exit: ${JSON.stringify(exit)}\n${hub.log()}`);
  await page.locator('#conn-status.conn-reconnecting').waitFor({ timeout: 15_000 });
  assert.match(await page.locator('#conn-status').innerText(), /Reconnecting/);

  // Same data dir, same port: the page reconnects by itself.
  hub = await startHub({ dataDir, port });
  assert.equal(hub.port, port);
  await waitConnected(page, 30_000);
  await page.locator('hub-project .badge[data-state]:not([data-state="running"])').waitFor({ timeout: 30_000 });

  // Every line stored before and after the restart, once, in order.
  const stored = await rpcInPage(page, 'messages.list', { project_id: id, after_seq: 0, limit: 1000 });
  const storedSeqs = stored.messages.map((m) => m.seq);
  await waitFor(async () => (await renderedSeqs(page)).at(-1) === storedSeqs.at(-1), { timeout: 10_000, message: 'the last stored line to render' });
  const seqs = await renderedSeqs(page);
  assert.deepEqual(contiguity(seqs), { dups: [], gaps: [] }, `rendered seqs ${seqs.join(',')}`);
  assert.deepEqual(seqs, storedSeqs, 'the view shows exactly the stored lines');
  assert.ok(seqs.length > seqsBefore.length, 'lines stored around the restart were added');
  assert.deepEqual(seqs.slice(0, seqsBefore.length), seqsBefore, 'lines rendered before the restart kept');

  // And the live stream works again on the new connection.
  await page.getByLabel('Prompt').fill('success');
  await page.getByRole('button', { name: 'Run' }).click();
  await page.locator('hub-project .row .result.ok').last().waitFor({ timeout: 20_000 });
  await page.locator('hub-project .badge[data-state="idle"]').waitFor({ timeout: 10_000 });
  const after = await rpcInPage(page, 'messages.list', { project_id: id, after_seq: 0, limit: 1000 });
  await waitFor(async () => (await renderedSeqs(page)).at(-1) === after.messages.at(-1).seq, { timeout: 10_000, message: 'the new run to render' });
  const final = await renderedSeqs(page);
  assert.deepEqual(contiguity(final), { dups: [], gaps: [] });
  assert.deepEqual(final, after.messages.map((m) => m.seq));
  assert.deepEqual(cspErrors, []);
  assert.deepEqual(pageErrors, []);
});
