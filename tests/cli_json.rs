//! `--json` on every command that prints data, read back with a JSON parser; `-q` with
//! ids only; the tables' headers and alignment. Against a real hub, with the fake agent
//! CLI, a real pairing request, a real approval and a worker holding a task.

use std::process::{Output, Stdio};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::util::{TestHub, WAIT, Ws, hub_bin, run};

const ORIGIN: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `semantest-hub ARGS` on `hub`, which must succeed, its stdout parsed as one JSON
/// document.
async fn json_of(hub: &TestHub, args: &[&str]) -> Value {
    let output = hub.cli(args).await;
    assert!(output.status.success(), "{args:?}: {output:?}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{args:?} printed no JSON ({err}): {}", stdout(&output)))
}

/// `semantest-hub ARGS`, which must succeed, its stdout parsed as JSON lines.
async fn json_lines_of(hub: &TestHub, args: &[&str]) -> Vec<Value> {
    let output = hub.cli(args).await;
    assert!(output.status.success(), "{args:?}: {output:?}");
    stdout(&output)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{args:?}: not a JSON line ({err}): {line}"))
        })
        .collect()
}

/// `semantest-hub ARGS` with `-q`: its lines, which must succeed.
async fn ids_of(hub: &TestHub, args: &[&str]) -> Vec<String> {
    let output = hub.cli(args).await;
    assert!(output.status.success(), "{args:?}: {output:?}");
    stdout(&output).lines().map(str::to_string).collect()
}

/// Asserts that `table` is a header line of `headers` and `rows` lines below it whose
/// cells start where their column's header starts (columns two spaces apart at least),
/// and returns the rows' first cells.
fn assert_aligned(table: &str, headers: &[&str], rows: usize) -> Vec<String> {
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), rows + 1, "{table}");
    let header = lines[0];
    let mut starts = Vec::new();
    let mut from = 0;
    for name in headers {
        let at = from
            + header[from..]
                .find(name)
                .unwrap_or_else(|| panic!("{name}: {table}"));
        starts.push(header[..at].chars().count());
        from = at + name.len();
    }
    assert!(header.starts_with(headers[0]), "{table}");
    for line in &lines[1..] {
        let chars: Vec<char> = line.chars().collect();
        for (column, &start) in starts.iter().enumerate().skip(1) {
            assert!(
                chars.len() > start,
                "column {column} missing: {line:?}\n{table}"
            );
            assert_eq!(chars[start - 1], ' ', "column {column}: {line:?}\n{table}");
            assert_eq!(chars[start - 2], ' ', "column {column}: {line:?}\n{table}");
            assert_ne!(chars[start], ' ', "column {column}: {line:?}\n{table}");
        }
    }
    lines[1..]
        .iter()
        .map(|line| line.split("  ").next().unwrap().to_string())
        .collect()
}

/// Projects, runs, logs, usage, events, tokens, pairing, configuration, status and the
/// doctor: each prints JSON that serde_json reads, with the fields a script needs.
#[tokio::test]
async fn every_command_that_prints_data_prints_json_a_parser_reads() {
    let hub = TestHub::start().await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();

    let added = json_of(&hub, &["project", "add", dir, "--name", "demo", "--json"]).await;
    let project_id = added["id"].as_str().expect("project add --json has the id");
    assert_eq!(added["name"], "demo", "{added}");
    let listed = json_of(&hub, &["project", "list", "--json"]).await;
    assert_eq!(listed["projects"][0]["id"], project_id, "{listed}");
    assert_eq!(ids_of(&hub, &["project", "list", "-q"]).await, [project_id]);
    let shown = json_of(&hub, &["project", "show", dir, "--json"]).await;
    assert_eq!(shown["id"], project_id, "{shown}");

    // `agent run --json`: the run's output lines, the last one its end.
    let lines = json_lines_of(&hub, &["agent", "run", dir, "success", "--json"]).await;
    let last = lines.last().expect("agent run --json prints lines");
    assert_eq!(last["kind"], "run_finished", "{lines:?}");
    assert_eq!(last["event"]["status"], "succeeded", "{lines:?}");
    assert!(lines.iter().any(|l| l["kind"] == "assistant"), "{lines:?}");
    let run_id = last["run_id"].as_str().unwrap();
    let logged = json_lines_of(&hub, &["logs", dir, "--json", "--run", run_id]).await;
    assert_eq!(logged.len(), lines.len(), "{logged:?}");
    let forgotten = json_of(&hub, &["agent", "new-session", dir, "--json"]).await;
    assert!(forgotten.is_object(), "{forgotten}");
    let usage = json_of(&hub, &["usage", "--json"]).await;
    assert!(usage.is_object(), "{usage}");

    let published = json_of(
        &hub,
        &[
            "events",
            "publish",
            "demo.message",
            r#"{"text":"hi"}"#,
            "--json",
        ],
    )
    .await;
    assert_eq!(published["delivered"], 0, "{published}");

    // Tokens: the created token is in the JSON, once.
    let created = json_of(
        &hub,
        &[
            "token", "create", "--name", "ci", "--scope", "events", "--json",
        ],
    )
    .await;
    assert_eq!(
        created["token"].as_str().map(str::len),
        Some(64),
        "{created}"
    );
    let client_id = created["client"]["id"].as_str().unwrap();
    assert_eq!(created["client"]["scopes"], json!(["events"]), "{created}");
    let tokens = json_of(&hub, &["token", "list", "--json"]).await;
    assert_eq!(tokens["clients"][0]["id"], client_id, "{tokens}");
    assert_eq!(ids_of(&hub, &["token", "list", "-q"]).await, [client_id]);
    let revoked = json_of(&hub, &["token", "revoke", client_id, "--json"]).await;
    assert!(revoked.is_object(), "{revoked}");

    // Pairing: two real requests from an extension's origin, one approved, one denied.
    let http = reqwest::Client::new();
    for name in ["first", "second"] {
        let response = http
            .post(hub.http("/pair"))
            .header("origin", ORIGIN)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }
    let pending = json_of(&hub, &["pair", "list", "--json"]).await;
    let requests = pending["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{pending}");
    assert_eq!(
        requests[0]["code"].as_str().map(str::len),
        Some(6),
        "{pending}"
    );
    let ids: Vec<&str> = requests.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids_of(&hub, &["pair", "list", "-q"]).await, ids);
    let table = stdout(&hub.cli(&["pair", "list"]).await);
    let first = assert_aligned(
        &table,
        &["ID", "CODE", "NAME", "ORIGIN", "ADDRESS", "EXPIRES"],
        2,
    );
    assert_eq!(first, ids, "{table}");
    let approved = json_of(
        &hub,
        &["pair", "approve", ids[0], "--scope", "events", "--json"],
    )
    .await;
    assert_eq!(approved["client"]["origin"], ORIGIN, "{approved}");
    let denied = json_of(&hub, &["pair", "deny", ids[1], "--json"]).await;
    assert!(denied.is_object(), "{denied}");
    // The approved client is a token now, in the table too.
    let table = stdout(&hub.cli(&["token", "list"]).await);
    assert_aligned(
        &table,
        &[
            "ID",
            "KIND",
            "NAME",
            "SCOPES",
            "ORIGIN",
            "LAST USED",
            "FROM",
            "CONNECTED",
        ],
        1,
    );

    // Configuration, in a file of this test's own.
    let config = hub.dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let config = config.to_str().unwrap();
    let set = json_of(
        &hub,
        &[
            "--config",
            config,
            "config",
            "set",
            "limits.max_projects",
            "500",
            "--json",
        ],
    )
    .await;
    assert_eq!(set["key"], "limits.max_projects", "{set}");
    assert_eq!(set["value"], 500, "{set}");
    assert_eq!(set["source"], "file", "{set}");
    let got = json_of(
        &hub,
        &[
            "--config",
            config,
            "config",
            "get",
            "limits.max_projects",
            "--json",
        ],
    )
    .await;
    assert_eq!(got, 500);
    let paths = json_of(&hub, &["--config", config, "config", "path", "--json"]).await;
    assert_eq!(paths["config_file"], config, "{paths}");

    let status = json_of(&hub, &["status"]).await;
    assert!(status.is_object(), "{status}");
    // The doctor may find something to warn about on this machine; its JSON parses
    // whatever its exit code.
    let doctor = hub.cli(&["doctor", "--json"]).await;
    let doctor: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert!(
        doctor["checks"].as_array().is_some_and(|c| !c.is_empty()),
        "{doctor}"
    );

    let removed = json_of(&hub, &["project", "rm", project_id, "--json"]).await;
    assert!(removed.is_object(), "{removed}");
    hub.stop().await;
}

/// What runs now: an agent waiting on an approval and a task a worker holds, in `ps`
/// (table, JSON and ids); the approval listed, allowed and denied with `--json`; `task
/// cancel`, `fail` and `complete` with `--json`; `task list -q`; `agent kill --json`.
#[tokio::test]
async fn running_agents_approvals_and_tasks_print_json_and_ids() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, project) = hub.project(&mut ws).await;
    let dir = project.path().to_str().unwrap();
    ws.subscribe(&project_id).await;

    // A worker holding task t1; t2 and t3 wait.
    let batch = project.path().join("batch.json");
    std::fs::write(
        &batch,
        json!([
            {"id": "t1", "title": "Held", "type": "docs"},
            {"id": "t2", "title": "Cancelled", "type": "code"},
            {"id": "t3", "title": "Failed", "type": "code"},
        ])
        .to_string(),
    )
    .unwrap();
    let created = json_of(
        &hub,
        &["task", "create", dir, batch.to_str().unwrap(), "--json"],
    )
    .await;
    assert_eq!(created["created"], json!(["t1", "t2", "t3"]), "{created}");
    let mut worker = tokio::process::Command::new(hub_bin())
        .args(["--data-dir", hub.dir.path().to_str().unwrap()])
        .args(["--secret-store", "file"])
        .args(["worker", "next", "--name", "w1", "--capability", "docs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut held = BufReader::new(worker.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, held.next_line())
        .await
        .expect("worker next prints its task")
        .unwrap()
        .unwrap();
    let task: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(task["id"], "t1", "{task}");

    // An agent whose tool call waits for an answer.
    let run_id = run(&mut ws, &project_id, "ask Bash echo hi").await;
    let asked = ws.notification("agent.approval_requested").await;
    let approval_id = asked["approval"]["id"].as_str().unwrap().to_string();

    let ps = json_of(&hub, &["ps", "--json"]).await;
    let running = ps["running"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = running
        .iter()
        .map(|i| (i["kind"].as_str().unwrap(), i["id"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("agent", run_id.as_str()), ("task", "t1")], "{ps}");
    assert_eq!(ids_of(&hub, &["ps", "-q"]).await, [run_id.as_str(), "t1"]);
    let table = stdout(&hub.cli(&["ps"]).await);
    let first = assert_aligned(&table, &["ID", "KIND", "PROJECT", "SINCE", "WHAT"], 2);
    assert_eq!(first, [run_id.as_str(), "t1"], "{table}");

    let approvals = json_of(&hub, &["approvals", "list", "--json"]).await;
    assert_eq!(approvals["approvals"][0]["id"], approval_id, "{approvals}");
    assert_eq!(
        ids_of(&hub, &["approvals", "-q"]).await,
        [approval_id.as_str()]
    );
    let table = stdout(&hub.cli(&["approvals"]).await);
    assert_aligned(&table, &["ID", "PROJECT", "TOOL", "ASKED", "INPUT"], 1);
    let allowed = json_of(&hub, &["approvals", "allow", &approval_id, "--json"]).await;
    assert_eq!(allowed["approval"]["id"], approval_id, "{allowed}");
    assert!(allowed["resolution"]["outcome"].is_string(), "{allowed}");
    wait_finished(&mut ws, &run_id).await;

    // A second tool call, denied.
    let run_id = run(&mut ws, &project_id, "ask Bash echo no").await;
    let asked = ws.notification("agent.approval_requested").await;
    let approval_id = asked["approval"]["id"].as_str().unwrap().to_string();
    let denied = json_of(
        &hub,
        &[
            "approvals",
            "deny",
            &approval_id,
            "--message",
            "not now",
            "--json",
        ],
    )
    .await;
    assert_eq!(denied["approval"]["id"], approval_id, "{denied}");
    wait_finished(&mut ws, &run_id).await;

    // Tasks: list as ids, cancel, fail, complete.
    assert_eq!(
        ids_of(&hub, &["task", "list", dir, "-q"]).await,
        ["t1", "t2", "t3"]
    );
    let cancelled = json_of(&hub, &["task", "cancel", "t2", "--json"]).await;
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    let failed = json_of(
        &hub,
        &["task", "fail", "t3", "--reason", "no compiler", "--json"],
    )
    .await;
    assert_eq!(failed["id"], "t3", "{failed}");
    let completed = json_of(&hub, &["task", "complete", "t1", "--json"]).await;
    assert_eq!(completed["state"], "completed", "{completed}");
    let shown = json_of(&hub, &["task", "show", "t1", "--json"]).await;
    assert_eq!(shown["state"], "completed", "{shown}");
    let table = stdout(&hub.cli(&["task", "list", dir]).await);
    assert_aligned(
        &table,
        &["ID", "STATE", "TYPE", "ATTEMPTS", "WORKER", "TITLE"],
        3,
    );
    tokio::time::timeout(WAIT, worker.wait())
        .await
        .expect("the worker ends once its task is finished")
        .unwrap();

    // `agent kill --json` on a run that would never end.
    let run_id = run(&mut ws, &project_id, "hang").await;
    let killed = json_of(&hub, &["agent", "kill", dir, "--json"]).await;
    assert!(killed.is_object(), "{killed}");
    wait_finished(&mut ws, &run_id).await;
    hub.stop().await;
}

/// Waits for the `run_finished` line of `run_id`.
async fn wait_finished(ws: &mut Ws, run_id: &str) {
    loop {
        let output = ws.notification("project.output").await;
        if output["run_id"] == run_id && output["kind"] == "run_finished" {
            return;
        }
    }
}
