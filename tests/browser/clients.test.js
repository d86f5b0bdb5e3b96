// The Clients panel (#/clients) against a real hub: Node plays an extension that asks to
// pair (POST /pair with a chrome-extension:// Origin, then polls POST /pair/{id} with its
// claim), and the page approves, denies and revokes. Checks the live updates
// (pairing.requested, pairing.resolved, client.changed, hub.connection), that the claimer
// gets a token with exactly the scopes ticked, that a denied claimer gets none, that
// Revoke closes the client's connection (1008) and the token stops working (401), keyboard use,
// axe-core, and a screenshot (clients.png).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHub, stopHub, launchBrowser, signedInPage, waitConnected, connectRpc, postJson,
  hubToken, screenshot, axeSerious, waitFor,
} from './helpers.js';

/** A Chrome extension's origin: ids are 32 letters a-p. */
const EXT_ORIGIN = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop';

/** Asks to pair as an extension; returns the 201 body. */
async function requestPairing(hub, name) {
  const res = await postJson(hub, '/pair', { name }, { origin: EXT_ORIGIN });
  assert.equal(res.status, 201, `POST /pair: ${JSON.stringify(res.body)}`);
  assert.match(res.body.code, /^\d{6}$/);
  assert.ok(res.body.request_id && res.body.claim, JSON.stringify(res.body));
  return res.body;
}

/** Polls POST /pair/{id} as the claimer until it is no longer pending. */
async function claim(hub, pairing) {
  let last;
  await waitFor(async () => {
    last = await postJson(hub, `/pair/${encodeURIComponent(pairing.request_id)}`, { claim: pairing.claim }, { origin: EXT_ORIGIN });
    return last.status !== 202;
  }, { timeout: 10_000, interval: 100, message: 'the pairing request to be answered' });
  return last;
}

describe('clients panel', () => {
  let hub, browser, session, page;

  before(async () => {
    hub = await startHub();
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
    await page.goto(`${hub.url}/#clients`);
    await waitConnected(page);
  });

  after(async () => {
    await browser?.close();
    await stopHub(hub);
  });

  const panel = () => page.locator('hub-clients');
  const requestEl = (id) => panel().locator(`li.pair-request[data-request-id="${id}"]`);

  test('the panel is in the navigation and shows its empty states', async () => {
    assert.equal(await page.getByRole('link', { name: 'Clients' }).getAttribute('aria-current'), 'page');
    await panel().getByRole('heading', { name: 'Pairing requests' }).waitFor();
    await panel().getByText(/No pairing requests/).waitFor({ timeout: 10_000 });
    await panel().getByText(/No paired clients/).waitFor({ timeout: 10_000 });
    // The dashboard itself is a live connection, with its badge.
    const me = panel().locator('table.connections tbody tr', { hasText: 'this window' });
    await me.waitFor({ timeout: 10_000 });
    assert.equal(await me.locator('[data-badge]').innerText(), 'LOCAL');
  });

  let approved;
  test('a pairing request shows up live with its code; Approve with a chosen scope gives the claimer a token with those scopes', async () => {
    const pairing = await requestPairing(hub, 'Semantest Test Extension');
    const el = requestEl(pairing.request_id);
    await el.waitFor({ timeout: 10_000 });
    assert.equal(await el.locator('[data-field="code"]').innerText(), pairing.code, 'the same code on both sides');
    assert.equal(await el.locator('[data-field="origin"]').innerText(), EXT_ORIGIN);
    assert.match(await el.locator('[data-field="address"]').innerText(), /127\.0\.0\.1/);
    assert.match(await el.locator('[data-field="time-left"]').innerText(), /^[0-2]:\d\d$/);
    assert.match(await el.getByRole('heading').innerText(), /Semantest Test Extension/);
    // events is preselected, nothing else.
    assert.equal(await el.getByRole('checkbox', { name: /^events/ }).isChecked(), true);
    for (const s of ['projects:read', 'agents', 'tasks', 'admin']) {
      assert.equal(await el.getByRole('checkbox', { name: new RegExp(`^${s}`) }).isChecked(), false, `${s} not preselected`);
    }
    // From the keyboard: tick projects:read, then Approve.
    await el.getByRole('checkbox', { name: /^projects:read/ }).focus();
    await page.keyboard.press('Space');
    await el.getByRole('button', { name: /^Approve/ }).focus();
    await page.keyboard.press('Enter');

    const res = await claim(hub, pairing);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.status, 'approved');
    assert.match(res.body.token, /^[0-9a-f]{64}$/, 'a 256-bit token in hex');
    assert.deepEqual([...res.body.scopes].sort(), ['events', 'projects:read']);
    approved = res.body;
    // The token is handed out exactly once.
    const again = await postJson(hub, `/pair/${encodeURIComponent(pairing.request_id)}`, { claim: pairing.claim }, { origin: EXT_ORIGIN });
    assert.notEqual(again.status, 200, 'a second claim gets no token');

    await el.waitFor({ state: 'detached', timeout: 10_000 });
    await panel().getByText(/Approved Semantest Test Extension/).waitFor({ timeout: 10_000 });
    const row = panel().locator(`tr[data-client-id="${approved.client_id}"]`);
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.innerText(), /Semantest Test Extension/);
    assert.match(await row.innerText(), new RegExp(EXT_ORIGIN));
    assert.deepEqual((await row.locator('[data-field="scopes"] .badge').allInnerTexts()).sort(), ['events', 'projects:read']);
  });

  let extension;
  test('the paired client connects with its token: the panel shows its live connection and count', async () => {
    extension = await connectRpc(hub, { token: approved.token, origin: EXT_ORIGIN, role: 'extension', name: 'Semantest Test Extension' });
    const conn = panel().locator('table.connections tbody tr', { hasText: 'Semantest Test Extension' });
    await conn.waitFor({ timeout: 10_000 });
    assert.equal(await conn.locator('[data-badge]').innerText(), 'LOCAL');
    const row = panel().locator(`tr[data-client-id="${approved.client_id}"]`);
    await waitFor(async () => (await row.locator('[data-field="connected"]').innerText()) === '1',
      { message: 'the client counted as connected once' });
  });

  test('Deny: the request leaves the panel and the claimer gets no token', async () => {
    const pairing = await requestPairing(hub, 'Unwanted Extension');
    const el = requestEl(pairing.request_id);
    await el.waitFor({ timeout: 10_000 });
    assert.equal(await el.locator('[data-field="code"]').innerText(), pairing.code);
    await el.getByRole('button', { name: /^Deny/ }).click();
    const res = await claim(hub, pairing);
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.equal(res.body.status, 'denied');
    assert.equal(res.body.token, undefined, 'no token');
    await el.waitFor({ state: 'detached', timeout: 10_000 });
    await panel().getByText(/Denied Unwanted Extension/).waitFor({ timeout: 10_000 });
    assert.equal(await panel().locator('tr[data-client-id]', { hasText: 'Unwanted Extension' }).count(), 0);
  });

  test('a request answered elsewhere leaves the panel live (pairing.resolved)', async () => {
    const pairing = await requestPairing(hub, 'Answered Elsewhere');
    const el = requestEl(pairing.request_id);
    await el.waitFor({ timeout: 10_000 });
    // The owner's command-line client, say.
    const owner = await connectRpc(hub, { token: await hubToken(hub.dataDir), name: 'owner-cli' });
    assert.deepEqual(await owner.request('pairing.deny', { request_id: pairing.request_id }), { denied: true });
    await owner.close();
    await el.waitFor({ state: 'detached', timeout: 10_000 });
    await panel().getByText(/Answered Elsewhere was denied/).waitFor({ timeout: 10_000 });
  });

  test('screenshot and accessibility of the panel with a pending request', async () => {
    const pairing = await requestPairing(hub, 'Screenshot Extension');
    await requestEl(pairing.request_id).waitFor({ timeout: 10_000 });
    await screenshot(page, 'clients');
    const ctx = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 }, storageState: await session.context.storageState() });
    const p = await ctx.newPage();
    await p.goto(`${hub.url}/#/clients`);
    await waitConnected(p);
    await p.locator(`hub-clients li.pair-request[data-request-id="${pairing.request_id}"]`).waitFor({ timeout: 10_000 });
    const violations = await axeSerious(p);
    assert.deepEqual(violations, [], JSON.stringify(violations, null, 2));
    // Every control has a name.
    const unnamed = await p.evaluate(() => [...document.querySelectorAll('hub-clients button, hub-clients input')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim())).length);
    assert.equal(unnamed, 0);
    await ctx.close();
    await page.evaluate((id) => window.semantestHub.rpc.request('pairing.deny', { request_id: id }), pairing.request_id);
  });

  test('Revoke asks first, then removes the client, closes its connection with 1008, and the token stops working', async () => {
    const row = panel().locator(`tr[data-client-id="${approved.client_id}"]`);
    await row.getByRole('button', { name: /^Revoke Semantest Test Extension/ }).click();
    const keep = row.getByRole('button', { name: 'Keep' });
    assert.ok(await keep.evaluate((el) => el === document.activeElement), 'focus moves to Keep');
    await keep.click();
    assert.equal(await row.getByRole('button', { name: 'Revoke client' }).count(), 0, 'Keep leaves it paired');
    await row.getByRole('button', { name: /^Revoke Semantest Test Extension/ }).click();
    await row.getByRole('button', { name: 'Revoke client' }).click();
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    await panel().getByText(/Revoked Semantest Test Extension/).waitFor({ timeout: 10_000 });
    await waitFor(() => extension.closed, { message: 'the revoked client disconnected' });
    assert.equal(extension.closeCode, 1008, 'closed with 1008 (policy violation)');
    await panel().locator('table.connections tbody tr', { hasText: 'Semantest Test Extension' })
      .waitFor({ state: 'detached', timeout: 10_000 });
    // The token is dead (401), and its origin left the allowlist with it (refused before
    // the token is looked at).
    await assert.rejects(connectRpc(hub, { token: approved.token }), (err) => err.status === 401);
    await assert.rejects(connectRpc(hub, { token: approved.token, origin: EXT_ORIGIN }), (err) => err.status === 401 || err.status === 403);
    assert.deepEqual(session.cspErrors, []);
    assert.deepEqual(session.pageErrors, []);
  });
});
