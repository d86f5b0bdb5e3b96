//! Task isolation end to end: agent workers each in their own git worktree, the
//! recorded diffs, merge (fast-forward, merge commit, refused conflict, refused
//! uncommitted changes), discard, retention and a restart with a run in progress,
//! through the real server with the fake agent CLI.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::{TestHub, Ws, eventually, test_config, when};

/// The base content of the file every task edits: ten lines, `a` to `j`.
const BASE: &str = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";

/// Runs git in `dir` and returns its trimmed standard output; fails the test when git
/// does.
async fn git(dir: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .await
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A repository on branch `main` with one commit holding `notes.txt` = [`BASE`].
async fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]).await;
    git(dir.path(), &["config", "user.name", "Test"]).await;
    git(dir.path(), &["config", "user.email", "test@example.com"]).await;
    std::fs::write(dir.path().join("notes.txt"), BASE).unwrap();
    git(dir.path(), &["add", "-A"]).await;
    git(dir.path(), &["commit", "-q", "-m", "base"]).await;
    dir
}

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

fn str_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
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
