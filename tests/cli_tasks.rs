//! The task commands of the command line against a running hub: `task create|list|show|
//! cancel|watch|complete|fail` and `worker next`, tables and `--json`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::util::{TestHub, hub_bin};

/// Deadline for a command or a line of its output; generous, the machine is loaded.
const DEADLINE: Duration = Duration::from_secs(60);

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn ok(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{output:?}");
    stdout(output)
}

/// `semantest-hub ARGS` on `hub`'s data directory as a running child.
fn child(hub: &TestHub, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(hub_bin())
        .args(["--data-dir", hub.dir.path().to_str().unwrap()])
        .args(["--secret-store", "file"])
        .args(args)
        .env_remove("SEMANTEST_HUB_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Runs a child to its end with `input` on stdin.
async fn run_with_input(hub: &TestHub, args: &[&str], input: &str) -> std::process::Output {
    let mut process = child(hub, args);
    let mut stdin = process.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    tokio::time::timeout(DEADLINE, process.wait_with_output())
        .await
        .expect("the command ends")
        .unwrap()
}

/// The queue from the shell: create from a file and stdin, list as a table and JSON,
/// show, cancel; `worker next` blocks until a task arrives and holds it until `task
/// complete` (or `task fail`) from another shell finishes it; `task watch` streams the
/// changes until the batch is done.
#[tokio::test]
async fn the_task_commands_run_a_batch_from_the_shell() {
    let hub = TestHub::start().await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    ok(&hub.cli(&["project", "add", dir, "--name", "demo"]).await);

    // `worker next` started before any task exists: it waits.
    let mut worker = child(
        &hub,
        &[
            "worker",
            "next",
            "--name",
            "shell-1",
            "--capability",
            "docs",
        ],
    );
    let mut worker_out = BufReader::new(worker.stdout.take().unwrap()).lines();

    let file = project.path().join("batch.json");
    std::fs::write(
        &file,
        json!([
            {"id": "c1", "title": "Write the guide", "type": "docs", "prompt": "Write GUIDE.md"},
            {"id": "c2", "title": "Write the code", "type": "code"},
        ])
        .to_string(),
    )
    .unwrap();
    let created = ok(&hub
        .cli(&["task", "create", dir, file.to_str().unwrap()])
        .await);
    assert_eq!(created, "created   c1\ncreated   c2\n");
    // Again, from stdin and as an object: nothing twice, one more task.
    let again = run_with_input(
        &hub,
        &["task", "create", dir, "-", "--json"],
        &json!({"tasks": [{"id": "c1", "title": "Write the guide"}, {"id": "c3", "title": "Cancel me"}]})
            .to_string(),
    )
    .await;
    let again: Value = serde_json::from_str(&ok(&again)).unwrap();
    assert_eq!(again["created"], json!(["c3"]), "{again}");
    assert_eq!(again["existing"], json!(["c1"]), "{again}");
    // A batch that is not one is refused before anything is sent.
    let bad = run_with_input(&hub, &["task", "create", dir, "-"], r#"{"title": "x"}"#).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("array of tasks"),
        "{bad:?}"
    );

    // The worker, which takes docs only, gets c1 and prints it as one JSON line.
    let line = tokio::time::timeout(DEADLINE, worker_out.next_line())
        .await
        .expect("worker next prints the task")
        .unwrap()
        .unwrap();
    let task: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(task["id"], "c1", "{task}");
    assert_eq!(task["prompt"], "Write GUIDE.md");

    // `task list`: a table with a header, then --json.
    let table = ok(&hub.cli(&["task", "list", dir]).await);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["ID", "STATE", "TYPE", "ATTEMPTS", "WORKER", "TITLE"],
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert_eq!(&lines[1][..4], ["c1", "running", "docs", "0"], "{table}");
    assert_eq!(&lines[2][..3], ["c2", "pending", "code"], "{table}");
    let listed: Value = serde_json::from_str(&ok(&hub
        .cli(&["task", "list", dir, "--json", "--state", "pending"])
        .await))
    .unwrap();
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c2", "c3"]);

    // `task cancel`, then `task show` as text and JSON.
    assert_eq!(
        ok(&hub.cli(&["task", "cancel", "c3"]).await),
        "cancelled c3\n"
    );
    assert_eq!(
        ok(&hub.cli(&["task", "cancel", "c3"]).await),
        "c3 had already finished: cancelled\n"
    );
    let shown = ok(&hub.cli(&["task", "show", "c3"]).await);
    assert!(shown.contains("state     cancelled"), "{shown}");
    let shown: Value =
        serde_json::from_str(&ok(&hub.cli(&["task", "show", "c1", "--json"]).await)).unwrap();
    assert_eq!(shown["state"], "running");
    assert!(shown["worker_id"].is_string(), "{shown}");
    let missing = hub.cli(&["task", "show", "nope"]).await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("TASK_NOT_FOUND"),
        "{missing:?}"
    );

    // `task watch` follows the batch while it runs.
    let mut watch = child(&hub, &["task", "watch", dir, "--json"]);
    let mut watch_out = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(DEADLINE, watch_out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["event"], "coordination.status", "{first}");
    assert_eq!(first["running"], 1, "{first}");

    // `task complete` with a report on stdin: the worker process ends with 0.
    let completed = run_with_input(
        &hub,
        &["task", "complete", "c1", "--report", "-", "--json"],
        r#"{"summary": "wrote GUIDE.md", "deliverables": ["GUIDE.md"]}"#,
    )
    .await;
    let completed: Value = serde_json::from_str(&ok(&completed)).unwrap();
    assert_eq!(completed["state"], "completed", "{completed}");
    assert_eq!(completed["report"]["summary"], "wrote GUIDE.md");
    assert_eq!(completed["completed_by"], "report");
    let status = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .expect("worker next ends when its task is finished")
        .unwrap();
    assert!(status.success(), "{status:?}");

    // A failure with its reason; the last attempt of c2 is failed for good after three.
    for attempt in 1..=3 {
        let failed = ok(&hub
            .cli(&["task", "fail", "c2", "--reason", "no compiler"])
            .await);
        let want = if attempt < 3 {
            "c2 pending\n"
        } else {
            "c2 failed\n"
        };
        assert_eq!(failed, want, "attempt {attempt}");
    }

    // The watcher saw the changes and stops at the end of the batch.
    let mut events = Vec::new();
    while let Some(line) = tokio::time::timeout(DEADLINE, watch_out.next_line())
        .await
        .expect("task watch ends with the batch")
        .unwrap()
    {
        let event: Value = serde_json::from_str(&line).unwrap();
        events.push(event["event"].as_str().unwrap().to_string());
    }
    assert!(events.contains(&"task.completed".to_string()), "{events:?}");
    assert!(events.contains(&"task.requeued".to_string()), "{events:?}");
    assert_eq!(
        events.last().map(String::as_str),
        Some("project.completed"),
        "{events:?}"
    );
    assert!(watch.wait().await.unwrap().success());
    // Watching a finished batch prints its counts and returns at once.
    let done = ok(&hub.cli(&["task", "watch", dir]).await);
    assert_eq!(
        done,
        "3 tasks: 0 pending, 0 running, 1 completed, 1 failed, 1 cancelled\n"
    );
}

/// `worker next --wait` gives up with exit code 3 when no task comes, and a task
/// cancelled while a shell worker holds it ends that worker with 1.
#[tokio::test]
async fn worker_next_gives_up_or_loses_its_task() {
    let hub = TestHub::start().await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    ok(&hub.cli(&["project", "add", dir]).await);
    let idle = hub
        .cli(&["worker", "next", "--name", "idle", "--wait", "1"])
        .await;
    assert_eq!(idle.status.code(), Some(3), "{idle:?}");

    let mut worker = child(&hub, &["worker", "next", "--name", "w"]);
    let mut out = BufReader::new(worker.stdout.take().unwrap()).lines();
    run_with_input(
        &hub,
        &["task", "create", dir, "-"],
        r#"[{"id": "x1", "title": "t"}]"#,
    )
    .await;
    let line = tokio::time::timeout(DEADLINE, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.contains("\"x1\""), "{line}");
    ok(&hub.cli(&["task", "cancel", "x1"]).await);
    let output = tokio::time::timeout(DEADLINE, worker.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("x1 was taken away: cancelled"),
        "{output:?}"
    );
}
