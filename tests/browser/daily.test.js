// The dashboard's daily-use views against a real hub: creating a client token from the
// Clients panel (shown once, with Copy, and working; bound to an Origin when one is
// given), and the Events view (a live tail
// filtered by pattern, and a publish form whose event reaches another client). Checks
// axe-core and a screenshot (events.png).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, stopHub, launchBrowser, signedInPage, waitConnected, connectRpc, hubToken,
  screenshot, axeSerious, waitFor, tempDir, openProject,
} from './helpers.js';

describe('dashboard for daily use', () => {
  let hub, browser, session, page, owner;

  before(async () => {
    hub = await startHub();
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
    await session.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: hub.url });
    owner = await connectRpc(hub, { token: await hubToken(hub.dataDir), name: 'node-owner' });
  });

  after(async () => {
    await owner?.close();
    await browser?.close();
    await stopHub(hub);
  });

  test('Create a token: shown once with Copy; it works with the scopes chosen', async () => {
    await page.goto(`${hub.url}/#clients`);
    await waitConnected(page);
    const form = page.locator('hub-token-create');
    await form.getByLabel('Name').fill('ci-runner');
    await form.getByRole('checkbox', { name: /^events/ }).uncheck();
    await form.getByRole('checkbox', { name: /^tasks/ }).check();
    await form.getByRole('button', { name: 'Create token' }).click();
    const value = form.locator('input.token-value');
    await value.waitFor();
    const token = await value.inputValue();
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.match(await form.locator('.token-result').innerText(), /shown only this once/);
    await form.getByRole('button', { name: 'Copy' }).click();
    await waitFor(async () => (await page.evaluate(() => navigator.clipboard.readText())) === token,
      { message: 'the token on the clipboard' });
    // The new client is listed, and its token works for tasks only.
    await page.locator('hub-clients tr', { hasText: 'ci-runner' }).waitFor();
    const client = await connectRpc(hub, { token, name: 'ci' });
    try {
      await client.request('task.list', {}).catch((err) => {
        assert.notEqual(err.kind, 'FORBIDDEN', 'the tasks scope was granted');
      });
      await assert.rejects(client.request('event.subscribe', { types: ['*'] }), (err) => err.kind === 'FORBIDDEN');
    } finally {
      await client.close();
    }
    // Done forgets it; an empty name is refused in the form.
    await form.getByRole('button', { name: 'Done' }).click();
    assert.equal(await value.count(), 0);
    await form.getByRole('button', { name: 'Create token' }).click();
    assert.match(await form.locator('.field-error').innerText(), /name/);
  });

  test('Create a token bound to an Origin: listed with it, and it works only from that origin', async () => {
    const extension = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop';
    await page.goto(`${hub.url}/#clients`);
    await waitConnected(page);
    const form = page.locator('hub-token-create');
    await form.getByLabel('Name').fill('recorder');
    await form.getByLabel('Origin').fill(`  ${extension} `);
    await form.getByRole('button', { name: 'Create token' }).click();
    const value = form.locator('input.token-value');
    await value.waitFor();
    const token = await value.inputValue();
    await form.getByRole('button', { name: 'Done' }).click();
    // The table shows the origin it is bound to; the hub has it, trimmed.
    await page.locator('hub-clients tr', { hasText: 'recorder' }).filter({ hasText: extension }).waitFor();
    const { clients } = await owner.request('client.list', {});
    assert.equal(clients.find((c) => c.name === 'recorder')?.origin, extension);
    // From its origin it connects; from none (a program) or another origin it does not.
    const fromExtension = await connectRpc(hub, { token, origin: extension, name: 'recorder' });
    await fromExtension.close();
    await assert.rejects(connectRpc(hub, { token, name: 'no origin' }));
    await assert.rejects(connectRpc(hub, { token, origin: 'chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba', name: 'other' }));
    // A value that is not an origin is refused with the hub's reason, in the form.
    await form.getByLabel('Name').fill('bad-origin');
    await form.getByLabel('Origin').fill('not an origin');
    await form.getByRole('button', { name: 'Create token' }).click();
    await waitFor(async () => (await form.locator('.field-error').innerText()).length > 0, { message: 'the form says why' });
    assert.equal(await form.locator('input.token-value').count(), 0);
    assert.equal((await owner.request('client.list', {})).clients.some((c) => c.name === 'bad-origin'), false);
  });

  test('Events: a live tail filtered by pattern, and a publish form', async () => {
    await page.goto(`${hub.url}/#events`);
    await waitConnected(page);
    const view = page.locator('hub-events');
    await view.getByText('Watching *.').waitFor();
    const rows = view.locator('li.event-row');
    await owner.request('event.publish', { type: 'demo.one', payload: { n: 1 } });
    await rows.filter({ hasText: 'demo.one' }).waitFor();
    assert.match(await rows.first().innerText(), /\{"n":1\}/);

    // Only the types the patterns match.
    await view.getByLabel('Types').fill('other.*');
    await view.getByRole('button', { name: 'Watch' }).click();
    await view.getByText('Watching other.*.').waitFor();
    await owner.request('event.publish', { type: 'demo.two', payload: 2 });
    await owner.request('event.publish', { type: 'other.three', payload: 3 });
    await rows.filter({ hasText: 'other.three' }).waitFor();
    assert.equal(await rows.filter({ hasText: 'demo.two' }).count(), 0, 'demo.two is not watched');

    // The publish form reaches another client, and says how many it reached.
    await owner.request('event.subscribe', { types: ['form.*'] });
    await view.getByLabel('Type', { exact: true }).fill('form.hello');
    await view.getByLabel('Payload (JSON)').fill('{"a": 1}');
    await view.getByRole('button', { name: 'Publish' }).click();
    await view.getByText('Published form.hello to 1 subscriber.').waitFor();
    const got = await owner.next('event', (p) => p.type === 'form.hello');
    assert.deepEqual(got.payload, { a: 1 });
    await view.getByLabel('Payload (JSON)').fill('{not json');
    await view.getByRole('button', { name: 'Publish' }).click();
    assert.match(await view.locator('.field-error').innerText(), /not JSON/);

    await screenshot(page, 'events');
    assert.deepEqual(session.cspErrors, []);
    assert.deepEqual(session.pageErrors, []);
  });

  test('Runs of a project with status, duration, cost and prompt; search in the output', async () => {
    const dir = await tempDir('hub-proj-');
    const project = await owner.request('project.create', { path: dir, name: 'daily' });
    await owner.request('project.subscribe', { project_id: project.id });
    for (const prompt of ['success', 'error']) {
      const { run_id: runId } = await owner.request('agent.run', { project_id: project.id, prompt });
      await owner.next('project.output', (p) => p.run_id === runId && p.kind === 'run_finished', { timeout: 20_000 });
    }
    await openProject(page, hub, project.id);
    const runs = page.locator('hub-project-runs table.runs tbody tr');
    await waitFor(async () => (await runs.count()) === 2, { message: 'two runs listed' });
    const first = await runs.nth(0).innerText();
    const second = await runs.nth(1).innerText();
    assert.match(first, /failed/);
    assert.match(first, /fake failure/);
    assert.match(first, /error/);
    assert.match(second, /succeeded/);
    assert.match(second, /\$0\.0123/);
    assert.match(second, /success/);
    // A run started now shows up without a reload, as running, then with its outcome.
    const { run_id: live } = await owner.request('agent.run', { project_id: project.id, prompt: 'success' });
    await page.locator(`hub-project-runs tr[data-run-id="${live}"][data-status="succeeded"]`).waitFor({ timeout: 20_000 });

    const runsView = page.locator('hub-project-runs');
    await runsView.getByLabel('Find').fill('FAKE failure');
    await runsView.getByRole('button', { name: 'Search' }).click();
    await runsView.getByText(/lines? hold FAKE failure/).waitFor();
    const found = runsView.locator('.search-results > .row');
    assert.ok(await found.count() >= 1);
    for (const text of await found.allInnerTexts()) assert.match(text, /fake failure/i);
    await runsView.getByLabel('Find').fill('nosuchwordanywhere');
    await runsView.getByRole('button', { name: 'Search' }).click();
    await runsView.getByText('No stored line holds nosuchwordanywhere.').waitFor();
    assert.equal(await found.count(), 0);
    await screenshot(page, 'project-runs');
    assert.deepEqual(session.pageErrors, []);
  });

  test('accessibility of the Events view and the token form (axe-core)', async () => {
    // axe is injected as a script, which the dashboard's CSP forbids: a context that
    // bypasses the CSP, with the same session.
    const ctx = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 }, storageState: await session.context.storageState() });
    try {
      const p = await ctx.newPage();
      for (const view of ['events', 'clients']) {
        await p.goto(`${hub.url}/#${view}`);
        await waitConnected(p);
        await p.locator(view === 'events' ? 'hub-events h1' : 'hub-token-create form').waitFor();
        assert.deepEqual(await axeSerious(p), [], view);
      }
    } finally {
      await ctx.close();
    }
  });
});
