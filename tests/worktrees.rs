//! Task isolation end to end: agent workers each in their own git worktree, the
//! recorded diffs, merge (fast-forward, merge commit, refused conflict, refused
//! uncommitted changes), discard, retention and a restart with a run in progress,
//! through the real server with the fake agent CLI.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::git_repo::{BASE, git, repository, str_of};
use crate::util::{TestHub, Ws, eventually, test_config, when};

/// `notes.txt` with line `line` (from 1) replaced by `text`.
fn edited(line: usize, text: &str) -> String {
    let mut lines: Vec<&str> = BASE.lines().collect();
    lines[line - 1] = text;
    lines.join("\n")
}

/// A task whose agent writes `content` to `notes.txt` (the fake CLI's `[fake:write]`).
fn writing_task(id: &str, content: &str) -> Value {
    json!({"id": id, "title": format!("edit notes for {id}"),
           "context": format!("[fake:write notes.txt {}]", content.replace('\n', "\\n"))})
}

async fn project_in(ws: &mut Ws, dir: &Path) -> String {
    let project = ws.ok("project.create", json!({"path": dir})).await;
    project["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn parallel_agents_work_apart_and_their_branches_merge_conflict_or_go() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    ws.ok("hub.hello", json!({"role": "coordinator"})).await;
    let repo = repository().await;
    let project_id = project_in(&mut ws, repo.path()).await;
    let tasks = json!([
        writing_task("t1", &edited(1, "one")),
        writing_task("t2", &edited(10, "ten")),
        writing_task("t3", &edited(1, "uno")),
        writing_task("t4", &edited(5, "five")),
    ]);
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": tasks}),
    )
    .await;
    let configured = ws
        .ok(
            "project.configure",
            json!({"project_id": project_id, "isolation": "worktree", "agent_workers": 3}),
        )
        .await;
    assert_eq!(configured["isolation"], "worktree");
    assert_eq!(configured["agent_workers"], 3);
    let done = ws.notification("project.completed").await;
    assert_eq!(
        (done["completed"].as_u64(), done["failed"].as_u64()),
        (Some(4), Some(0)),
        "{done}"
    );

    // Nothing touched the main checkout; each diff holds its own change only.
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        BASE
    );
    let base = git(repo.path(), &["rev-parse", "main"]).await;
    let roots = hub.dir.path().join("worktrees").join(&project_id);
    for (id, own, others) in [
        ("t1", "+one", ["+ten", "+uno", "+five"]),
        ("t2", "+ten", ["+one", "+uno", "+five"]),
        ("t3", "+uno", ["+one", "+ten", "+five"]),
        ("t4", "+five", ["+one", "+ten", "+uno"]),
    ] {
        let task = ws.ok("task.get", json!({"task_id": id})).await;
        let worktree = &task["worktree"];
        assert_eq!(worktree["state"], "finished", "{task}");
        assert_eq!(worktree["branch"], format!("semantest/{id}"));
        assert_eq!(worktree["base_branch"], "main");
        assert_eq!(worktree["base_commit"], base.as_str());
        assert_eq!(PathBuf::from(str_of(&worktree["path"])), roots.join(id));
        let diff = &worktree["diff"];
        assert_eq!(
            diff["files"],
            json!([{"path": "notes.txt", "added": 1, "removed": 1}]),
            "{id}: {diff}"
        );
        assert_eq!(
            (diff["added"].as_u64(), diff["removed"].as_u64()),
            (Some(1), Some(1))
        );
        let patch = str_of(&diff["patch"]);
        assert!(patch.contains(own), "{id}: {patch}");
        for other in others {
            assert!(!patch.contains(other), "{id} holds {other}: {patch}");
        }
        // The hub committed the agent's work on the branch, titled with the task.
        let log = git(
            repo.path(),
            &["log", "-1", "--format=%s", &format!("semantest/{id}")],
        )
        .await;
        assert_eq!(log, format!("edit notes for {id}"));
    }

    // The first merges by fast-forward, into the checked-out main.
    let merged = ws.ok("task.merge", json!({"task_id": "t1"})).await;
    assert_eq!(merged["merge"], "fast_forward", "{merged}");
    assert_eq!(merged["base_branch"], "main");
    assert_eq!(
        git(repo.path(), &["rev-parse", "main"]).await,
        str_of(&merged["commit"])
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        edited(1, "one") + "\n"
    );
    assert!(!roots.join("t1").exists(), "the merged worktree is removed");
    assert_eq!(
        git(repo.path(), &["branch", "--list", "semantest/t1"]).await,
        ""
    );

    // The second, from the CLI, with a merge commit.
    let out = hub.cli(&["task", "show", "t2"]).await;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && shown.contains("semantest/t2") && shown.contains("+ten"),
        "{shown}"
    );
    let out = hub.cli(&["task", "merge", "t2", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(merged["merge"], "merge_commit", "{merged}");
    let parents = git(repo.path(), &["rev-list", "--parents", "-n", "1", "main"]).await;
    assert_eq!(parents.split(' ').count(), 3, "a merge commit: {parents}");
    let both = std::fs::read_to_string(repo.path().join("notes.txt")).unwrap();
    assert!(
        both.starts_with("one\n") && both.ends_with("ten\n"),
        "{both}"
    );

    // The third conflicts with the first: refused with the file named, nothing moved.
    let head = git(repo.path(), &["rev-parse", "main"]).await;
    let refused = ws.err("task.merge", json!({"task_id": "t3"})).await;
    assert_eq!(refused["data"]["kind"], "MERGE_CONFLICT", "{refused}");
    assert_eq!(refused["code"], -32027);
    assert_eq!(refused["data"]["files"], json!(["notes.txt"]));
    assert!(str_of(&refused["message"]).contains("notes.txt"));
    assert_eq!(git(repo.path(), &["rev-parse", "main"]).await, head);
    assert_eq!(git(repo.path(), &["status", "--porcelain"]).await, "");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        both
    );
    let t3 = ws.ok("task.get", json!({"task_id": "t3"})).await;
    assert_eq!(
        t3["worktree"]["state"], "finished",
        "still there to discard: {t3}"
    );

    // Uncommitted changes in the file a merge would change: refused, never overwritten.
    std::fs::write(repo.path().join("notes.txt"), "mine\n").unwrap();
    let refused = ws.err("task.merge", json!({"task_id": "t4"})).await;
    assert_eq!(refused["data"]["kind"], "UNCOMMITTED_CHANGES", "{refused}");
    assert_eq!(refused["data"]["files"], json!(["notes.txt"]));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(git(repo.path(), &["rev-parse", "main"]).await, head);
    git(repo.path(), &["checkout", "--", "notes.txt"]).await;

    // Discard removes the worktree and the branch; a second one has nothing left.
    let out = hub.cli(&["task", "discard", "t4", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let discarded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(discarded["branch"], "semantest/t4");
    assert!(!roots.join("t4").exists());
    assert_eq!(
        git(repo.path(), &["branch", "--list", "semantest/t4"]).await,
        ""
    );
    let t4 = ws.ok("task.get", json!({"task_id": "t4"})).await;
    assert_eq!(
        (
            t4["worktree"]["state"].as_str(),
            t4["worktree"]["path"].as_str()
        ),
        (Some("discarded"), None)
    );
    for (method, id) in [("task.discard", "t4"), ("task.merge", "t1")] {
        let error = ws.err(method, json!({"task_id": id})).await;
        assert_eq!(
            error["data"]["kind"], "NO_WORKTREE",
            "{method} {id}: {error}"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_project_outside_git_cannot_be_isolated() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    let error = ws
        .err(
            "project.configure",
            json!({"project_id": project_id, "isolation": "worktree"}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "NOT_A_REPOSITORY", "{error}");
    assert_eq!(error["code"], -32024);
    let unchanged = ws
        .ok(
            "project.configure",
            json!({"project_id": project_id, "agent_workers": 0}),
        )
        .await;
    assert_eq!(unchanged["isolation"], "none");
    let error = ws.err("task.merge", json!({"task_id": "nope"})).await;
    assert_eq!(error["data"]["kind"], "TASK_NOT_FOUND", "{error}");
    hub.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_worktree_of_a_run_in_progress_and_retention_takes_the_rest() {
    // Retention 0: a finished task's worktree goes at the next sweep (every second).
    let start = |dir: tempfile::TempDir| async move {
        let mut config = test_config(dir.path());
        config.config.coordination.worktree_retention_s = 0;
        TestHub::start_in(dir, config).await
    };
    let hub = start(tempfile::tempdir().unwrap()).await;
    let mut ws = hub.client().await;
    let repo = repository().await;
    let project_id = project_in(&mut ws, repo.path()).await;
    ws.ok(
        "project.configure",
        json!({"project_id": project_id, "isolation": "worktree", "agent_workers": 2}),
    )
    .await;
    let hang =
        json!({"id": "h1", "title": "works long", "context": "[fake:write-hang notes.txt wip]"});
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [hang]}),
    )
    .await;
    let worktree = hub
        .dir
        .path()
        .join("worktrees")
        .join(&project_id)
        .join("h1");
    eventually("the hanging run wrote in its worktree", async || {
        when(
            std::fs::read_to_string(worktree.join("notes.txt")).unwrap_or_default(),
            |t| t == "wip\n",
        )
    })
    .await;
    // Something of the run's that only the kept directory would still hold.
    std::fs::write(worktree.join("scratch.txt"), "kept").unwrap();
    drop(ws);

    let dir = hub.stop().await;
    let hub = start(dir).await;
    let mut ws = hub.client().await;
    let task = ws.ok("task.get", json!({"task_id": "h1"})).await;
    assert_eq!(task["worktree"]["state"], "active", "{task}");
    // A task finished after the restart: the sweep runs and removes its worktree...
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [writing_task("q1", &edited(2, "two"))]}),
    )
    .await;
    eventually("the finished task's worktree is swept", async || {
        let task = ws.ok("task.get", json!({"task_id": "q1"})).await;
        when(task, |t| {
            t["worktree"]["state"] == "finished" && t["worktree"]["path"].is_null()
        })
    })
    .await;
    let quick = hub
        .dir
        .path()
        .join("worktrees")
        .join(&project_id)
        .join("q1");
    assert!(!quick.exists());
    // ...and its branch stays, to merge later.
    assert_eq!(
        git(
            repo.path(),
            &[
                "branch",
                "--list",
                "--format=%(refname:short)",
                "semantest/q1"
            ]
        )
        .await,
        "semantest/q1"
    );
    // ...while the worktree of the run that was in progress is kept, and taken up again.
    assert_eq!(
        std::fs::read_to_string(worktree.join("scratch.txt")).unwrap(),
        "kept"
    );
    let task = ws.ok("task.get", json!({"task_id": "h1"})).await;
    assert_eq!(task["worktree"]["state"], "active", "{task}");
    assert_eq!(PathBuf::from(str_of(&task["worktree"]["path"])), worktree);
    let error = ws.err("task.discard", json!({"task_id": "h1"})).await;
    assert_eq!(error["data"]["kind"], "WORKTREE_BUSY", "{error}");
    assert!(worktree.exists());
    let merged = ws.ok("task.merge", json!({"task_id": "q1"})).await;
    assert_eq!(
        merged["merge"], "fast_forward",
        "a swept worktree's branch still merges: {merged}"
    );
    hub.stop().await;
}

/// Every worktree git knows of in `repo` (`git worktree list`), the main one first.
async fn worktree_list(repo: &Path) -> Vec<String> {
    git(repo, &["worktree", "list", "--porcelain"])
        .await
        .lines()
        .filter_map(|line| line.strip_prefix("worktree "))
        .map(str::to_string)
        .collect()
}

/// The task branches left in `repo`.
async fn task_branches(repo: &Path) -> String {
    git(
        repo,
        &[
            "branch",
            "--list",
            "--format=%(refname:short)",
            "semantest/*",
        ],
    )
    .await
}

/// A coordinator chat over MCP sees each isolated task's diff summary in
/// `wait_for_tasks` and `task_status`, reads a diff in bounded parts that say where
/// they were cut, merges one task, is refused the conflicting one with its file named,
/// and discards it.
#[tokio::test]
async fn a_coordinator_over_mcp_reads_diffs_and_merges_or_discards() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let repo = repository().await;
    let project_id = project_in(&mut ws, repo.path()).await;
    // A long new file, so that its diff takes several parts.
    let long: String = (0..600).map(|i| format!("line {i}\n")).collect();
    let tasks = json!([
        writing_task("m1", &edited(1, "one")),
        writing_task("m2", &edited(1, "uno")),
        {"id": "m3", "title": "write a long file",
         "context": format!("[fake:write long.txt {}]", long.trim_end().replace('\n', "\\n"))},
    ]);
    let mut mcp = crate::mcp_http::McpHttp::start(&hub, &hub.token).await;
    let created = mcp
        .ok(
            "create_tasks",
            json!({"project": project_id, "tasks": tasks}),
        )
        .await;
    assert_eq!(created["created"], json!(["m1", "m2", "m3"]), "{created}");
    ws.ok(
        "project.configure",
        json!({"project_id": project_id, "isolation": "worktree", "agent_workers": 3}),
    )
    .await;
    let mut finished = Vec::new();
    eventually("the batch finishes", async || {
        let answer = mcp
            .ok(
                "wait_for_tasks",
                json!({"project": project_id, "wait_s": 5}),
            )
            .await;
        finished.extend(answer["finished"].as_array().cloned().unwrap_or_default());
        when(answer, |a| a["batch_finished"] == true)
    })
    .await;
    assert_eq!(finished.len(), 3, "{finished:?}");
    for task in &finished {
        let id = str_of(&task["id"]);
        let worktree = &task["worktree"];
        assert_eq!(worktree["branch"], format!("semantest/{id}"), "{task}");
        assert_eq!(worktree["base_branch"], "main");
        assert_eq!(worktree["files_changed"], 1, "{task}");
        let file = if id == "m3" { "long.txt" } else { "notes.txt" };
        assert_eq!(worktree["files"][0]["path"], file, "{task}");
        let (added, removed) = if id == "m3" { (600, 0) } else { (1, 1) };
        assert_eq!(
            (worktree["added"].as_u64(), worktree["removed"].as_u64()),
            (Some(added), Some(removed)),
            "{task}"
        );
        assert!(worktree["diff_bytes"].as_u64().unwrap() > 0);
    }
    let status = mcp.ok("task_status", json!({"project": project_id})).await;
    for task in status["tasks"].as_array().unwrap() {
        assert_eq!(task["worktree"]["files_changed"], 1, "{status}");
    }

    // The long diff in parts of at most 1 KiB, each cut after a line end, read on from
    // where the previous one said it stopped, make up the recorded diff.
    let whole = ws.ok("task.get", json!({"task_id": "m3"})).await["worktree"]["diff"]["patch"]
        .as_str()
        .unwrap()
        .to_string();
    let mut read = String::new();
    let mut offset = 0;
    let mut parts = 0;
    loop {
        let part = mcp
            .ok(
                "task_diff",
                json!({"task_id": "m3", "max_bytes": 1024, "offset": offset}),
            )
            .await;
        parts += 1;
        let text = str_of(&part["patch"]);
        assert!(text.len() <= 1024 && text.ends_with('\n'), "{part}");
        assert_eq!(part["total_bytes"], whole.len());
        read.push_str(text);
        if part["complete"] == true {
            assert!(part["cut"].is_null() && part["next_offset"].is_null());
            break;
        }
        assert_eq!(part["cut"]["in_file"], "long.txt", "{part}");
        offset = part["next_offset"].as_u64().unwrap();
        assert_eq!(part["cut"]["at_byte"], offset);
        assert!(parts < 100, "the parts move on");
    }
    assert!(parts > 1, "a long diff comes in several parts");
    assert_eq!(read, whole);
    let small = mcp.ok("task_diff", json!({"task_id": "m1"})).await;
    assert!(str_of(&small["patch"]).contains("+one"), "{small}");
    assert_eq!(small["complete"], true);
    let error = mcp
        .err("task_diff", json!({"task_id": "m1", "offset": 1_000_000}))
        .await;
    assert_eq!(error["kind"], "INVALID_PARAMS", "{error}");

    // Merge, a refused conflict that names its file, discard.
    let merged = mcp.ok("merge_task", json!({"task_id": "m1"})).await;
    assert_eq!(merged["merge"], "fast_forward", "{merged}");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        edited(1, "one") + "\n"
    );
    let head = git(repo.path(), &["rev-parse", "main"]).await;
    let conflict = mcp.err("merge_task", json!({"task_id": "m2"})).await;
    assert_eq!(conflict["kind"], "MERGE_CONFLICT", "{conflict}");
    assert_eq!(conflict["files"], json!(["notes.txt"]), "{conflict}");
    assert!(
        str_of(&conflict["what_to_do"]).contains("discard_task"),
        "{conflict}"
    );
    assert_eq!(git(repo.path(), &["rev-parse", "main"]).await, head);
    let discarded = mcp.ok("discard_task", json!({"task_id": "m2"})).await;
    assert_eq!(discarded["branch"], "semantest/m2", "{discarded}");
    let gone = mcp.err("discard_task", json!({"task_id": "m2"})).await;
    assert_eq!(gone["kind"], "NO_WORKTREE", "{gone}");
    let merged = mcp.ok("merge_task", json!({"task_id": "m3"})).await;
    assert_eq!(merged["merge"], "merge_commit", "{merged}");
    assert_eq!(task_branches(repo.path()).await, "");
    hub.stop().await;
}

/// `project.delete` is refused while a task run works in one of the project's
/// worktrees; once it ended, the delete removes every worktree of the project (`git
/// worktree remove`), the task branches not merged, and the project's directory under
/// the data directory, and leaves the user's checkout as it was.
#[tokio::test]
async fn deleting_a_project_removes_its_worktrees_and_task_branches() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let repo = repository().await;
    let project_id = project_in(&mut ws, repo.path()).await;
    ws.ok(
        "project.configure",
        json!({"project_id": project_id, "isolation": "worktree", "agent_workers": 2}),
    )
    .await;
    let hang =
        json!({"id": "d2", "title": "works long", "context": "[fake:write-hang notes.txt wip]"});
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [writing_task("d1", &edited(3, "three")), hang]}),
    )
    .await;
    let roots = hub.dir.path().join("worktrees").join(&project_id);
    eventually("one task done and the other at work", async || {
        let done = ws.ok("task.get", json!({"task_id": "d1"})).await;
        let wip = std::fs::read_to_string(roots.join("d2/notes.txt")).unwrap_or_default();
        when((done, wip), |(done, wip)| {
            done["worktree"]["state"] == "finished" && wip == "wip\n"
        })
    })
    .await;
    assert_eq!(worktree_list(repo.path()).await.len(), 3);

    let refused = ws
        .err("project.delete", json!({"project_id": project_id}))
        .await;
    assert_eq!(refused["data"]["kind"], "PROJECT_BUSY", "{refused}");
    assert!(roots.join("d1").exists() && roots.join("d2").exists());

    ws.ok("task.cancel", json!({"task_id": "d2"})).await;
    eventually("the delete is taken once the run ended", async || {
        let answer = ws
            .call("project.delete", json!({"project_id": project_id}))
            .await;
        when(answer, |a| a["result"]["deleted"] == true)
    })
    .await;
    assert!(!roots.exists(), "the project's worktrees directory is gone");
    assert_eq!(
        worktree_list(repo.path()).await,
        [std::fs::canonicalize(repo.path())
            .unwrap()
            .display()
            .to_string()],
        "only the main worktree is left"
    );
    assert_eq!(task_branches(repo.path()).await, "");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        BASE
    );
    assert_eq!(git(repo.path(), &["status", "--porcelain"]).await, "");
    hub.stop().await;
}

/// At start the hub removes the worktree directories of projects that no longer exist
/// (a project deleted by a hub that left them behind), with their registration in the
/// repository and their task branch, and leaves a branch that is not a task's.
#[tokio::test]
async fn a_start_removes_the_worktrees_of_projects_that_no_longer_exist() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository().await;
    let gone = dir.path().join("worktrees").join("p_gone");
    std::fs::create_dir_all(&gone).unwrap();
    let task = gone.join("t9");
    let other = gone.join("other");
    for (path, branch) in [(&task, "semantest/t9"), (&other, "feature")] {
        git(
            repo.path(),
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                branch,
                path.to_str().unwrap(),
                "main",
            ],
        )
        .await;
    }
    std::fs::write(task.join("left.txt"), "left behind").unwrap();
    assert_eq!(worktree_list(repo.path()).await.len(), 3);

    let config = test_config(dir.path());
    let hub = TestHub::start_in(dir, config).await;
    eventually("the deleted project's worktrees are removed", async || {
        when(gone.exists(), |exists| !*exists)
    })
    .await;
    assert_eq!(worktree_list(repo.path()).await.len(), 1);
    assert_eq!(task_branches(repo.path()).await, "");
    assert_eq!(
        git(
            repo.path(),
            &["branch", "--list", "--format=%(refname:short)", "feature"]
        )
        .await,
        "feature",
        "a branch that is not a task's stays"
    );
    hub.stop().await;
}
