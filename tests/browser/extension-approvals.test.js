// The reference extension and the agents' approvals, in Chromium, against a real hub
// whose fake agent CLI asks for permission: with a token holding the `agents` scope the
// toolbar badge counts the approvals waiting and the popup allows and denies them (the
// command runs, or the agent reads the message); one answered elsewhere leaves the popup;
// with a token without the scope nothing of it shows.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, waitFor, tempDir, screenshot } from './helpers.js';
import { startHub, stopHub, ownerConnection, FIXTURES } from '../../clients/js/test/helpers.js';
import { STORAGE_KEYS } from '../../clients/js/src/index.js';
import { buildExtension } from '../../extension/build.mjs';

/** A fixed public key pins the extension id (the same as extension.test.js). */
const KEY = 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA50KauTtcAZ67IxqRxeoYcmDv02wZGzqi7aZeDbnT4h2UnZVFlRnpqwd6lG++wfBsjBDuOzUdK1TjdwFmo7UcfEXBmcreZmdY8jRG6Vqbob9u8eEpMfZaYqtHrAEDv7QILjQKvhK42sA3xrgc+ZK4gZHXRvZJE1Vnrrs/TiNE3RhUExz6mMY3TK2aY9yFRADtIqwfXg3juW9ZMkjTrv3jFCBnVy6amQFgP3L5pqop5Qm0ARJftIdJMbJ9h5Gvb5cOu4OXrewJgLDmp7LU6hXa0B7TbTqm2ItT+uJA1SRtEsGZSSRmXNwItxDonKBVfW1wxlcGhiZxWGl07OrbI0yo2QIDAQAB';
const EXT_ID = 'gicphdoffnhcbkipgfnlgmgnelkbhhlg';
const ORIGIN = `chrome-extension://${EXT_ID}`;

let hub;
let owner;
let context;
let sw;
let popup;

const badgeText = () => sw.evaluate(() => chrome.action.getBadgeText({}));
async function expectBadge(text) {
  await waitFor(async () => (await badgeText()) === text, { timeout: 15_000, message: `badge ${text} (it shows ${JSON.stringify(await badgeText().catch(() => null))})` });
}

/** Gives the extension a client token with `scopes` (as pairing would store it). */
async function useToken(scopes) {
  const { token, client } = await owner.call('client.create', { name: `extension ${scopes.join(' ')}`, scopes, origin: ORIGIN });
  await sw.evaluate(async ([k, v]) => { await chrome.storage.local.set({ [k]: v }); }, [STORAGE_KEYS.localToken, { token, clientId: client.id, scopes }]);
  await popup.evaluate(() => chrome.runtime.sendMessage({ cmd: 'restart' }));
  await popup.locator('#mode[data-mode="LOCAL"]').waitFor({ timeout: 20_000 });
  return client.id;
}

async function project(name) {
  const dir = await tempDir(`ext-approvals-${name}-`);
  const p = await owner.call('project.create', { path: dir, name });
  return { id: p.id, dir };
}

async function results(projectId) {
  const res = await owner.call('messages.list', { project_id: projectId, limit: 1000 });
  return res.messages.filter((m) => m.event?.type === 'result').map((m) => m.event.result ?? m.event.subtype);
}

async function idle(projectId) {
  await waitFor(async () => (await owner.call('project.get', { project_id: projectId })).state !== 'running',
    { timeout: 30_000, message: 'the run to end' });
}

/** Starts a run whose agent asks to run `command`, and waits until the hub lists its approval. */
async function ask(projectId, command) {
  await owner.call('agent.run', { project_id: projectId, prompt: `ask Bash ${command}` });
  return waitFor(async () => (await owner.call('agent.approvals.list', { project_id: projectId })).approvals[0] ?? null,
    { timeout: 30_000, message: `the approval for ${command}` });
}

before(async () => {
  hub = await startHub({ allowedOrigins: [ORIGIN], env: { SEMANTEST_HUB_AGENT__CLI_PATH: path.join(FIXTURES, 'fake-claude') } });
  owner = await ownerConnection(hub);
  const extDir = buildExtension(path.join(await tempDir('ext-approvals-build-'), 'extension'), { key: KEY });
  context = await chromium.launchPersistentContext(await tempDir('ext-approvals-profile-'), {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--disable-extensions'],
    viewport: { width: 360, height: 640 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      `--disable-extensions-except=${extDir}`, `--load-extension=${extDir}`,
    ],
  });
  sw = context.serviceWorkers().find((w) => w.url().startsWith(ORIGIN)) ?? await context.waitForEvent('serviceworker', { predicate: (w) => w.url().startsWith(ORIGIN), timeout: 15_000 });
  await sw.evaluate(async (settings) => { await chrome.storage.local.set({ settings }); }, { ports: [hub.port], publicUrls: [], backoff: { initialMs: 250, maxMs: 1000 } });
  popup = await context.newPage();
  await popup.goto(`${ORIGIN}/popup.html`);
});

after(async () => {
  await context?.close().catch(() => {});
  owner?.close();
  await stopHub(hub);
});

test('with the agents scope: the badge counts approvals, the popup allows and denies them', async () => {
  await useToken(['events', 'agents']);
  await popup.locator('#approvals').waitFor({ state: 'visible', timeout: 15_000 });
  assert.equal(await popup.locator('#approvals-empty').isVisible(), true);
  await expectBadge('LOC');

  const one = await project('one');
  const two = await project('two');
  const a1 = await ask(one.id, 'touch from-popup.txt');
  await expectBadge('1');
  const a2 = await ask(two.id, 'touch never.txt');
  await expectBadge('2');
  assert.match(await sw.evaluate(() => chrome.action.getTitle({})), /2 approvals waiting/);
  const items = popup.locator('#approval-list li.approval');
  await waitFor(async () => (await items.count()) === 2, { message: 'two approvals in the popup' });
  const first = popup.locator(`li[data-approval-id="${a1.id}"]`);
  assert.match(await first.innerText(), /Bash wants to run: touch from-popup\.txt/);
  await screenshot(popup, 'extension-approvals');

  await first.getByRole('button', { name: /^Allow Bash/ }).click();
  await first.waitFor({ state: 'detached', timeout: 10_000 });
  await expectBadge('1');
  await idle(one.id);
  assert.ok(fs.existsSync(path.join(one.dir, 'from-popup.txt')), 'the allowed command ran');
  assert.equal((await results(one.id)).at(-1), 'allowed: touch from-popup.txt');

  const second = popup.locator(`li[data-approval-id="${a2.id}"]`);
  await second.getByRole('textbox').fill('not from the browser');
  await second.getByRole('textbox').press('Enter');
  await second.waitFor({ state: 'detached', timeout: 10_000 });
  await expectBadge('LOC');
  await idle(two.id);
  assert.equal(fs.existsSync(path.join(two.dir, 'never.txt')), false);
  assert.equal((await results(two.id)).at(-1), 'denied: not from the browser');
  assert.match(await popup.locator('#approvals-message').innerText(), /Denied/);

  // Answered elsewhere: it leaves the popup and the badge.
  const a3 = await ask(one.id, 'true');
  await popup.locator(`li[data-approval-id="${a3.id}"]`).waitFor({ timeout: 10_000 });
  await expectBadge('1');
  await owner.call('agent.approvals.answer', { approval_id: a3.id, decision: 'reject_once', interrupt: true });
  await popup.locator(`li[data-approval-id="${a3.id}"]`).waitFor({ state: 'detached', timeout: 10_000 });
  await expectBadge('LOC');
  await idle(one.id);
});

test('the approvals already waiting show when the extension connects', async () => {
  const p = await project('before');
  const a = await ask(p.id, 'true');
  await useToken(['events', 'agents']);
  await popup.locator(`li[data-approval-id="${a.id}"]`).waitFor({ timeout: 15_000 });
  await expectBadge('1');
  await owner.call('agent.approvals.answer', { approval_id: a.id, decision: 'reject_once', interrupt: true });
  await expectBadge('LOC');
  await idle(p.id);
});

test('without the agents scope: no approvals section, the badge shows the mode', async () => {
  await useToken(['events']);
  const p = await project('noscope');
  const a = await ask(p.id, 'true');
  // The hub refused the list: the section stays hidden, and the badge keeps the mode.
  await waitFor(async () => (await popup.evaluate(() => chrome.runtime.sendMessage({ cmd: 'state' }))).agents.available === false,
    { message: 'the hub refused the list (FORBIDDEN)' });
  assert.equal(await popup.locator('#approvals').isHidden(), true);
  await expectBadge('LOC');
  assert.equal(await popup.locator('#approval-list li').count(), 0);
  await owner.call('agent.approvals.answer', { approval_id: a.id, decision: 'reject_once', interrupt: true });
  await idle(p.id);
});
