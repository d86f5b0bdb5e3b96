// An isolated task's card against a real hub: two agent workers (the fake CLI) each edit
// notes.txt of a git repository in their own worktree; the finished cards show the branch,
// the file with its line counts and the diff; Merge fast-forwards the first, a second
// Merge is refused with the conflicting file named, and Discard (after its in-page
// confirmation) removes the branch. Then the same on the project's runs for interactive
// runs in a worktree of their own (agent.run {isolation: "worktree"}).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  startHub, stopHub, launchBrowser, signedInPage, waitConnected, tempDir, rpcInPage,
  hubToken, connectRpc, waitFor, openProject,
} from './helpers.js';

const git = (dir, ...args) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();

describe('an isolated task on its card', () => {
  let hub, browser, session, page, repo, project, coordinator;

  before(async () => {
    hub = await startHub();
    browser = await launchBrowser();
    session = await signedInPage(browser, hub);
    page = session.page;
    repo = await tempDir('proj-worktree-');
    git(repo, 'init', '-q', '-b', 'main');
    git(repo, 'config', 'user.name', 'Test');
    git(repo, 'config', 'user.email', 'test@example.com');
    await fs.writeFile(path.join(repo, 'notes.txt'), 'a\nb\nc\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-q', '-m', 'base');
    project = await rpcInPage(page, 'project.create', { path: repo, name: 'isolated' });
    coordinator = await connectRpc(hub, { token: await hubToken(hub.dataDir), role: 'coordinator', name: 'test' });
  });

  after(async () => {
    await coordinator?.close().catch(() => {});
    await browser?.close();
    await stopHub(hub);
  });

  const card = (id) => page.locator(`hub-workers .task[data-task-id="${id}"]`);

  test('the card shows the diff; Merge, a refused Merge, and Discard', async () => {
    await coordinator.request('project.configure', { project_id: project.id, isolation: 'worktree', agent_workers: 2 });
    await coordinator.request('task.create', {
      project_id: project.id,
      tasks: [
        { id: 'w1', title: 'first edit', context: '[fake:write notes.txt one\\nb\\nc]' },
        { id: 'w2', title: 'second edit', context: '[fake:write notes.txt uno\\nb\\nc]' },
      ],
    });
    await page.goto(`${hub.url}/#/workers/${project.id}`);
    await waitConnected(page);
    for (const id of ['w1', 'w2']) {
      await card(id).locator('hub-task-worktree .task-actions').waitFor({ timeout: 20_000 });
      const text = await card(id).locator('hub-task-worktree').innerText();
      assert.match(text, new RegExp(`semantest/${id}`));
      assert.match(text, /1 file changed, \+1 −1/);
    }
    const w1 = card('w1').locator('hub-task-worktree');
    await w1.locator('summary').click();
    assert.match(await w1.locator('.worktree-patch').innerText(), /\+one/);
    assert.match(await w1.locator('.worktree-files').innerText(), /notes\.txt/);

    await w1.getByRole('button', { name: 'Merge semantest/w1 into main' }).click();
    await waitFor(async () => /Merged into main/.test(await w1.innerText()), { message: 'w1 merged' });
    assert.equal(await fs.readFile(path.join(repo, 'notes.txt'), 'utf8'), 'one\nb\nc\n');

    const w2 = card('w2').locator('hub-task-worktree');
    await w2.getByRole('button', { name: 'Merge semantest/w2 into main' }).click();
    await waitFor(async () => /conflict in notes\.txt\. Nothing changed\./.test(await w2.innerText()), { message: 'w2 refused' });
    assert.equal(await fs.readFile(path.join(repo, 'notes.txt'), 'utf8'), 'one\nb\nc\n', 'the checkout is as it was');

    await w2.getByRole('button', { name: 'Discard semantest/w2' }).click();
    await w2.locator('[data-action="confirm-discard"]').click();
    await waitFor(async () => /Discarded\./.test(await w2.innerText()), { message: 'w2 discarded' });
    assert.equal(git(repo, 'branch', '--list', 'semantest/w2'), '');
  });

  test("the project's runs show an isolated run's diff; Merge and Discard", async () => {
    const start = async (prompt) => {
      const started = await coordinator.request('agent.run', { project_id: project.id, prompt, isolation: 'worktree' });
      assert.equal(started.worktree.branch, `semantest/run-${started.run_id}`);
      return started.run_id;
    };
    // Two at once, beside each other.
    const [keep, drop] = await Promise.all([start('write extra.txt kept'), start('write notes.txt dropped')]);
    await openProject(page, hub, project.id);
    const view = (id) => page.locator(`hub-project-runs tr.run-worktree[data-worktree-of="${id}"] hub-run-worktree`);
    for (const id of [keep, drop]) {
      await view(id).locator('.task-actions').waitFor({ timeout: 20_000 });
      assert.match(await view(id).innerText(), new RegExp(`semantest/run-${id}`));
    }
    const kept = view(keep);
    assert.match(await kept.innerText(), /1 file changed, \+1 −0/);
    await kept.locator('summary').click();
    assert.match(await kept.locator('.worktree-patch').innerText(), /\+kept/);
    assert.doesNotMatch(await kept.locator('.worktree-patch').innerText(), /dropped/);
    assert.match(await kept.locator('.worktree-files').innerText(), /extra\.txt/);

    await kept.getByRole('button', { name: `Merge semantest/run-${keep} into main` }).click();
    await waitFor(async () => /Merged into main/.test(await kept.innerText()), { message: 'run merged' });
    assert.equal(await fs.readFile(path.join(repo, 'extra.txt'), 'utf8'), 'kept\n');
    assert.equal(git(repo, 'branch', '--list', `semantest/run-${keep}`), '');

    const dropped = view(drop);
    await dropped.getByRole('button', { name: `Discard semantest/run-${drop}` }).click();
    await dropped.locator('[data-action="confirm-discard"]').click();
    await waitFor(async () => /Discarded\./.test(await dropped.innerText()), { message: 'run discarded' });
    assert.equal(git(repo, 'branch', '--list', `semantest/run-${drop}`), '');
    assert.equal(await fs.readFile(path.join(repo, 'notes.txt'), 'utf8'), 'one\nb\nc\n', 'the discarded run left the checkout alone');
    assert.deepEqual(session.pageErrors, []);
  });
});
