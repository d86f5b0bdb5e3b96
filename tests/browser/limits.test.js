// The dashboard under configured limits: the project limit shows as an inline error in
// plain words, and the setting's source reads "env".

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, stopHub, launchBrowser, signedInPage, tempDir, addProjectViaUi, waitConnected } from './helpers.js';

test('LIMIT_REACHED: adding a project past limits.max_projects is refused inline', async (t) => {
  const hub = await startHub({ env: { SEMANTEST_HUB_LIMITS__MAX_PROJECTS: '1' } });
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await stopHub(hub);
  });
  const { page, cspErrors, pageErrors } = await signedInPage(browser, hub);
  await addProjectViaUi(page, hub, await tempDir('proj-limit-a-'));
  await page.getByLabel('Folder path').fill(await tempDir('proj-limit-b-'));
  await page.getByRole('button', { name: 'Add project' }).click();
  const error = page.locator('#project-path-error');
  await error.waitFor({ state: 'visible', timeout: 10_000 });
  assert.match(await error.innerText(), /project limit/i);
  assert.equal(await page.locator('tr[data-project-id]').count(), 1);

  await page.goto(`${hub.url}/#/settings`);
  await waitConnected(page);
  const row = page.locator('hub-settings tr[data-key="limits.max_projects"]');
  await row.waitFor({ timeout: 10_000 });
  assert.match(await row.innerText(), /1\s+env/);
  assert.deepEqual(cspErrors, []);
  assert.deepEqual(pageErrors, []);
});
