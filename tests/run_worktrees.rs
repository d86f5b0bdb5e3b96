//! Interactive runs in a git worktree of their own (`agent.run {isolation: "worktree"}`)
//! end to end: parallel runs in one project, each diff its own, a follow-up in a run's
//! worktree, merge, refused conflict, discard, the CLI, and a restart with a run in
//! progress, through the real server with the fake agent CLI.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::util::git_repo::{BASE, git, repository, str_of};
use crate::util::{TestHub, Ws, eventually, test_config, when};

/// The fake CLI's prompt that writes `notes.txt` with line `line` (from 1) replaced.
fn writing(line: usize, text: &str) -> String {
    let mut lines: Vec<&str> = BASE.lines().collect();
    lines[line - 1] = text;
    format!("write notes.txt {}", lines.join("\\n"))
}

/// Starts an isolated run and returns its id.
async fn isolated(ws: &mut Ws, project_id: &str, prompt: &str) -> String {
    let started = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": prompt, "isolation": "worktree"}),
        )
        .await;
    let run_id = str_of(&started["run_id"]).to_string();
    assert_eq!(started["worktree"]["run_id"], run_id.as_str(), "{started}");
    assert_eq!(
        started["worktree"]["branch"],
        format!("semantest/run-{run_id}")
    );
    run_id
}

/// Waits until the worktree `run_id` worked in is recorded as finished.
async fn finished(ws: &mut Ws, run_id: &str) -> Value {
    eventually("the run's worktree is recorded", async || {
        let tree = ws.ok("agent.run_worktree", json!({"run_id": run_id})).await;
        when(tree, |t| t["state"] == "finished")
    })
    .await
}

#[tokio::test]
async fn parallel_isolated_runs_keep_their_own_diffs_and_merge_conflict_or_go() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let repo = repository().await;
    let project = ws.ok("project.create", json!({"path": repo.path()})).await;
    let project_id = str_of(&project["id"]).to_string();
    let path = repo.path().to_str().unwrap().to_string();

    // Three runs at once, all writing notes.txt: two here, one through the CLI flag
    // (which waits for the run's end and prints the diff).
    let one = isolated(&mut ws, &project_id, &writing(1, "one")).await;
    let three = isolated(&mut ws, &project_id, &writing(1, "uno")).await;
    let out = hub
        .cli(&["agent", "run", &path, &writing(10, "ten"), "--worktree"])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("started in worktree semantest/run-")
            && stderr.contains("1 files changed, +1 -1")
            && stderr.contains("notes.txt"),
        "{stderr}"
    );
    let two = stderr
        .split_whitespace()
        .skip_while(|word| *word != "run")
        .nth(1)
        .expect("the CLI names its run")
        .to_string();

    // Nothing touched the main checkout; each diff holds its own change only.
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        BASE
    );
    let base = git(repo.path(), &["rev-parse", "main"]).await;
    let roots = hub.dir.path().join("worktrees").join(&project_id);
    for (id, own, others) in [
        (&one, "+one", ["+ten", "+uno"]),
        (&two, "+ten", ["+one", "+uno"]),
        (&three, "+uno", ["+one", "+ten"]),
    ] {
        let tree = finished(&mut ws, id).await;
        assert_eq!(tree["run_id"], id.as_str());
        assert_eq!(tree["branch"], format!("semantest/run-{id}"));
        assert_eq!(
            (tree["base_branch"].as_str(), tree["base_commit"].as_str()),
            (Some("main"), Some(base.as_str()))
        );
        assert_eq!(
            PathBuf::from(str_of(&tree["path"])),
            roots.join(format!("run-{id}"))
        );
        let diff = &tree["diff"];
        assert_eq!(
            diff["files"],
            json!([{"path": "notes.txt", "added": 1, "removed": 1}]),
            "{id}: {diff}"
        );
        let patch = str_of(&diff["patch"]);
        assert!(patch.contains(own), "{id}: {patch}");
        for other in others {
            assert!(!patch.contains(other), "{id} holds {other}: {patch}");
        }
    }
    // project.runs names each run's worktree.
    let runs = ws
        .ok("project.runs", json!({"project_id": project_id}))
        .await;
    for id in [&one, &two, &three] {
        let run = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} listed: {runs}"));
        assert_eq!(run["worktree"], id.as_str(), "{run}");
    }

    // A follow-up in the first run's worktree resumes its session there; while it runs
    // the worktree is busy, and agent.kill {run_id} stops it; the diff then holds both
    // runs' work, and the follow-up's id names the same worktree.
    let follow = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": "write-hang extra.txt more", "worktree": one}),
        )
        .await;
    let follow_id = str_of(&follow["run_id"]).to_string();
    assert_ne!(follow_id, one);
    assert_eq!(follow["worktree"]["run_id"], one.as_str(), "{follow}");
    let extra = roots.join(format!("run-{one}")).join("extra.txt");
    eventually(
        "the follow-up wrote in the first run's worktree",
        async || when(extra.exists(), |made| *made),
    )
    .await;
    for method in ["agent.run_merge", "agent.run_discard"] {
        let error = ws.err(method, json!({"run_id": one})).await;
        assert_eq!(error["data"]["kind"], "WORKTREE_BUSY", "{method}: {error}");
    }
    let error = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "write x.txt y", "worktree": one}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "WORKTREE_BUSY", "{error}");
    // The project's own run is free meanwhile: isolated runs do not hold the project.
    let error = ws
        .err("agent.kill", json!({"project_id": project_id}))
        .await;
    assert_eq!(error["data"]["kind"], "NOT_RUNNING", "{error}");
    let out = hub
        .cli(&["agent", "kill", &path, "--run", &follow_id])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = eventually("the follow-up is recorded", async || {
        let tree = ws
            .ok("agent.run_worktree", json!({"run_id": follow_id}))
            .await;
        when(tree, |t| {
            t["state"] == "finished" && t["diff"]["files"].as_array().map(Vec::len) == Some(2)
        })
    })
    .await;
    assert_eq!(tree["run_id"], one.as_str());
    let results = ws
        .ok(
            "messages.list",
            json!({"project_id": project_id, "kinds": ["system", "run_started"]}),
        )
        .await;
    let of = |run: &str, kind: &str| {
        results["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["run_id"] == run && m["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("a {kind} line of {run}: {results}"))
    };
    let session = str_of(&of(&one, "system")["event"]["session_id"]).to_string();
    assert_eq!(
        of(&follow_id, "run_started")["event"]["resume"],
        session.as_str()
    );
    assert_eq!(
        of(&follow_id, "system")["event"]["session_id"],
        session.as_str()
    );
    assert_eq!(
        PathBuf::from(str_of(&of(&follow_id, "system")["event"]["cwd"])),
        roots.join(format!("run-{one}"))
    );
    // The project's own session is not the isolated runs'.
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert!(project["session_id"].is_null(), "{project}");

    // The first merges by fast-forward from the CLI, by the follow-up's id.
    let out = hub.cli(&["agent", "merge", &follow_id, "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (merged["merge"].as_str(), merged["run_id"].as_str()),
        (Some("fast_forward"), Some(one.as_str())),
        "{merged}"
    );
    assert_eq!(
        git(repo.path(), &["rev-parse", "main"]).await,
        str_of(&merged["commit"])
    );
    assert!(repo.path().join("extra.txt").exists());
    assert!(!roots.join(format!("run-{one}")).exists());
    assert_eq!(
        git(
            repo.path(),
            &["branch", "--list", &format!("semantest/run-{one}")]
        )
        .await,
        ""
    );

    // The third conflicts with it: refused with the file named, nothing moved.
    let head = git(repo.path(), &["rev-parse", "main"]).await;
    let refused = ws.err("agent.run_merge", json!({"run_id": three})).await;
    assert_eq!(refused["data"]["kind"], "MERGE_CONFLICT", "{refused}");
    assert_eq!(refused["data"]["files"], json!(["notes.txt"]));
    assert_eq!(git(repo.path(), &["rev-parse", "main"]).await, head);
    assert_eq!(git(repo.path(), &["status", "--porcelain"]).await, "");

    // `agent worktree` prints the branch and the diff it still has.
    let out = hub.cli(&["agent", "worktree", &three]).await;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && shown.contains(&format!("semantest/run-{three}"))
            && shown.contains("changes   1 files, +1 -1")
            && shown.contains("+uno"),
        "{shown}"
    );

    // Discard (from the CLI) removes the worktree and the branch; nothing is left to
    // settle then.
    let out = hub.cli(&["agent", "discard", &two, "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let discarded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(discarded["branch"], format!("semantest/run-{two}"));
    assert!(!roots.join(format!("run-{two}")).exists());
    assert_eq!(
        git(
            repo.path(),
            &["branch", "--list", &format!("semantest/run-{two}")]
        )
        .await,
        ""
    );
    let tree = ws.ok("agent.run_worktree", json!({"run_id": two})).await;
    assert_eq!(
        (tree["state"].as_str(), tree["path"].as_str()),
        (Some("discarded"), None)
    );
    for (method, id) in [("agent.run_discard", &two), ("agent.run_merge", &one)] {
        let error = ws.err(method, json!({"run_id": id})).await;
        assert_eq!(error["data"]["kind"], "NO_WORKTREE", "{method}: {error}");
    }
    let error = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "write y.txt z", "worktree": two}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "NO_WORKTREE", "{error}");
    hub.stop().await;
}

#[tokio::test]
async fn a_run_outside_git_or_without_a_worktree_is_refused_clearly() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    let error = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "success", "isolation": "worktree"}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "NOT_A_REPOSITORY", "{error}");
    let out = hub
        .cli(&[
            "agent",
            "run",
            dir.path().to_str().unwrap(),
            "success",
            "--worktree",
        ])
        .await;
    assert_eq!(out.status.code(), Some(125), "refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("git repository"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A plain run has no worktree to read, merge or discard.
    ws.subscribe(&project_id).await;
    let plain = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": "success"}),
        )
        .await;
    assert!(plain.get("worktree").is_none(), "{plain}");
    let run_id = str_of(&plain["run_id"]).to_string();
    ws.run_output(&run_id).await;
    for method in ["agent.run_worktree", "agent.run_merge", "agent.run_discard"] {
        let error = ws.err(method, json!({"run_id": run_id})).await;
        assert_eq!(error["data"]["kind"], "NO_WORKTREE", "{method}: {error}");
    }
    let error = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "x", "isolation": "none", "worktree": run_id}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "INVALID_PARAMS", "{error}");
    hub.stop().await;
}

#[tokio::test]
async fn a_restart_records_the_worktree_of_a_run_in_progress_and_retention_keeps_its_branch() {
    // Retention 0: a finished run's worktree directory goes at the next sweep.
    let start = |dir: tempfile::TempDir| async move {
        let mut config = test_config(dir.path());
        config.config.coordination.worktree_retention_s = 0;
        TestHub::start_in(dir, config).await
    };
    let hub = start(tempfile::tempdir().unwrap()).await;
    let mut ws = hub.client().await;
    let repo = repository().await;
    let project = ws.ok("project.create", json!({"path": repo.path()})).await;
    let project_id = str_of(&project["id"]).to_string();
    let run_id = isolated(&mut ws, &project_id, "write-hang notes.txt wip").await;
    let worktree = hub
        .dir
        .path()
        .join("worktrees")
        .join(&project_id)
        .join(format!("run-{run_id}"));
    eventually("the hanging run wrote in its worktree", async || {
        when(
            std::fs::read_to_string(worktree.join("notes.txt")).unwrap_or_default(),
            |t| t == "wip\n",
        )
    })
    .await;
    // While it runs, its worktree is in use.
    let error = ws.err("agent.run_discard", json!({"run_id": run_id})).await;
    assert_eq!(error["data"]["kind"], "WORKTREE_BUSY", "{error}");
    let error = ws
        .err(
            "agent.kill",
            json!({"project_id": project_id, "run_id": "nope"}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "NOT_RUNNING", "{error}");
    drop(ws);

    let dir = hub.stop().await;
    let hub = start(dir).await;
    let mut ws = hub.client().await;
    // The run's work is committed and its diff recorded at the start; then retention
    // removes the directory, and the branch stays.
    let tree = eventually(
        "the interrupted run's worktree is reconciled and swept",
        async || {
            let tree = ws.ok("agent.run_worktree", json!({"run_id": run_id})).await;
            when(tree, |t| t["state"] == "finished" && t["path"].is_null())
        },
    )
    .await;
    assert_eq!(
        tree["diff"]["files"],
        json!([{"path": "notes.txt", "added": 1, "removed": 10}]),
        "{tree}"
    );
    assert!(!worktree.exists());
    let branch = format!("semantest/run-{run_id}");
    assert_eq!(
        git(
            repo.path(),
            &["branch", "--list", "--format=%(refname:short)", &branch]
        )
        .await,
        branch
    );
    // A follow-up takes the worktree up again on its branch.
    let follow = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": "write more.txt x", "worktree": run_id}),
        )
        .await;
    let follow_id = str_of(&follow["run_id"]).to_string();
    let tree = eventually("the follow-up is recorded", async || {
        let tree = ws
            .ok("agent.run_worktree", json!({"run_id": follow_id}))
            .await;
        when(tree, |t| {
            t["state"] == "finished" && t["diff"]["files"].as_array().map(Vec::len) == Some(2)
        })
    })
    .await;
    assert_eq!(tree["run_id"], run_id.as_str());
    let merged = ws.ok("agent.run_merge", json!({"run_id": run_id})).await;
    assert_eq!(merged["merge"], "fast_forward", "{merged}");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        "wip\n"
    );
    hub.stop().await;
}
