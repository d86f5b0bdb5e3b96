//! `semantest-hub mcp` driven over stdio as an agent CLI drives it: newline-delimited
//! JSON-RPC (the MCP stdio transport), `initialize`, `tools/list`, then the tools of a
//! coordinator and of a worker against a running hub.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::util::real_cli::{Agent, FakeApi};
use crate::util::{TestHub, hub_bin};

/// Deadline for one MCP answer; generous, the machine is loaded.
const ANSWER: Duration = Duration::from_secs(60);

/// One `semantest-hub mcp` process and its stdio.
struct Mcp {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl Mcp {
    /// Starts the server on `hub`'s data directory with `env`, and initializes it.
    async fn start(hub: &TestHub, env: &[(&str, &str)]) -> (Self, Value) {
        let mut command = tokio::process::Command::new(hub_bin());
        command
            .args(["--data-dir", hub.dir.path().to_str().unwrap()])
            .args(["--secret-store", "file", "mcp"])
            .env_remove("SEMANTEST_HUB_TOKEN")
            .env_remove("SEMANTEST_HUB_CLIENT_ID")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut mcp = Self {
            child,
            stdin,
            stdout,
            next_id: 0,
        };
        let init = mcp
            .call(
                "initialize",
                json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "test-agent", "version": "1.0.0"},
                }),
            )
            .await;
        mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        (mcp, init)
    }

    async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Sends a request and returns its whole response (`result` or `error`).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        tokio::time::timeout(ANSWER, async {
            loop {
                let line = self
                    .stdout
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the MCP server ended");
                let message: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("not JSON-RPC on stdout: {line:?}: {err}"));
                if message["id"] == id {
                    return message;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} within {ANSWER:?}"))
    }

    /// Calls a tool; returns `(is_error, the JSON the tool answered)`.
    async fn tool(&mut self, name: &str, arguments: Value) -> (bool, Value) {
        let response = self
            .call("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        let result = &response["result"];
        assert!(result.is_object(), "{name}: {response}");
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        let value: Value = serde_json::from_str(text)
            .unwrap_or_else(|err| panic!("{name} answered no JSON: {text:?}: {err}"));
        assert_eq!(result["structuredContent"], value, "{response}");
        (result["isError"] == true, value)
    }

    /// A tool call that must succeed.
    async fn ok(&mut self, name: &str, arguments: Value) -> Value {
        let (is_error, value) = self.tool(name, arguments).await;
        assert!(!is_error, "{name} failed: {value}");
        value
    }

    /// A tool call that must fail; returns the `error` object.
    async fn err(&mut self, name: &str, arguments: Value) -> Value {
        let (is_error, value) = self.tool(name, arguments).await;
        assert!(is_error, "{name} should fail: {value}");
        assert!(
            value["error"]["what_to_do"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{value}"
        );
        value["error"].clone()
    }

    /// Closes stdin, as an agent CLI that exits, and waits for the server to end.
    async fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin);
        tokio::time::timeout(ANSWER, self.child.wait())
            .await
            .expect("the MCP server ends when its stdin closes")
            .unwrap()
    }
}

/// The whole loop: a coordinator session queues tasks, a worker session registers, gets
/// each task pushed, completes it, and is told when the batch is finished; the
/// coordinator's `wait_for_tasks` returns each finished task once, with its report.
#[tokio::test]
async fn a_coordinator_and_a_worker_run_a_batch_over_mcp() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, project_dir) = hub.project(&mut ws).await;

    let (mut coordinator, init) = Mcp::start(&hub, &[]).await;
    let result = &init["result"];
    assert_eq!(result["serverInfo"]["name"], "semantest-hub", "{init}");
    assert!(result["capabilities"]["tools"].is_object(), "{init}");
    let instructions = result["instructions"].as_str().unwrap();
    assert_eq!(instructions.lines().count(), 3, "{instructions}");
    assert!(instructions.contains("next_task") && instructions.contains("wait_for_tasks"));

    let tools = coordinator.call("tools/list", json!({})).await;
    let mut names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cancel_task",
            "complete_task",
            "create_tasks",
            "fail_task",
            "next_task",
            "register_worker",
            "task_status",
            "wait_for_tasks"
        ]
    );
    for tool in tools["result"]["tools"].as_array().unwrap() {
        let description = tool["description"].as_str().unwrap_or_default();
        assert!(description.len() > 60, "{tool}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    }

    // The coordinator queues two tasks by the project's directory.
    let created = coordinator
        .ok(
            "create_tasks",
            json!({"project": project_dir.path(), "tasks": [
                {"id": "m1", "title": "Write a.txt", "prompt": "Write a.txt", "acceptance": ["a.txt exists"]},
                {"id": "m2", "title": "Write b.txt", "context": "b is for bees"},
            ]}),
        )
        .await;
    assert_eq!(created["project_id"], project_id.as_str());
    assert_eq!(created["created"], json!(["m1", "m2"]));
    let nothing = coordinator
        .ok(
            "wait_for_tasks",
            json!({"project": project_id, "wait_s": 1}),
        )
        .await;
    assert_eq!(nothing["finished"], json!([]), "{nothing}");
    assert_eq!(nothing["batch_finished"], false);
    assert_eq!(nothing["counts"]["pending"], 2);

    // A worker session: next_task before register_worker is an actionable error.
    let (mut worker, _) = Mcp::start(&hub, &[]).await;
    let error = worker.err("next_task", json!({"wait_s": 1})).await;
    assert_eq!(error["kind"], "NOT_A_WORKER", "{error}");
    assert!(
        error["what_to_do"]
            .as_str()
            .unwrap()
            .contains("register_worker")
    );
    worker
        .ok("register_worker", json!({"name": "mcp-worker-1"}))
        .await;
    let first = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(first["task"]["id"], "m1", "{first}");
    assert_eq!(first["task"]["acceptance"], json!(["a.txt exists"]));
    let report_file = first["task"]["report_file"].as_str().unwrap();
    assert!(
        report_file.ends_with("/reports/m1.json")
            && report_file.starts_with(
                &*std::fs::canonicalize(project_dir.path())
                    .unwrap()
                    .to_string_lossy()
            ),
        "{report_file}"
    );
    // Registering again keeps the worker (one connection, one id) and its task.
    worker
        .ok(
            "register_worker",
            json!({"name": "mcp-worker-1", "capabilities": []}),
        )
        .await;
    let workers = ws.ok("worker.list", json!({})).await;
    let named: Vec<&Value> = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["name"] == "mcp-worker-1")
        .collect();
    assert_eq!(named.len(), 1, "{workers}");
    assert_eq!(named[0]["task_id"], "m1", "{workers}");
    // Asking again while holding it hands out the same task, not a second one.
    let again = worker.ok("next_task", json!({"wait_s": 1})).await;
    assert_eq!(again["task"]["id"], "m1", "{again}");
    let done = worker
        .ok(
            "complete_task",
            json!({"task_id": "m1", "report": {"summary": "wrote a.txt", "deliverables": ["a.txt"]}}),
        )
        .await;
    assert_eq!(done["state"], "completed", "{done}");

    let finished = coordinator
        .ok(
            "wait_for_tasks",
            json!({"project": project_id, "wait_s": 30}),
        )
        .await;
    let finished_ids: Vec<&str> = finished["finished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(finished_ids, ["m1"], "{finished}");
    assert_eq!(finished["finished"][0]["report"]["summary"], "wrote a.txt");

    let second = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(second["task"]["id"], "m2", "{second}");
    assert_eq!(second["task"]["context"], "b is for bees");
    // Completing a finished task again changes nothing.
    let twice = worker
        .ok(
            "complete_task",
            json!({"task_id": "m1", "report": {"summary": "again"}}),
        )
        .await;
    assert_eq!(twice["duplicate"], true, "{twice}");
    worker
        .ok(
            "complete_task",
            json!({"task_id": "m2", "report": {"summary": "wrote b.txt"}}),
        )
        .await;

    // Each finished task is returned once; then the batch is finished for both roles.
    let last = coordinator
        .ok(
            "wait_for_tasks",
            json!({"project": project_id, "wait_s": 30}),
        )
        .await;
    assert_eq!(last["finished"].as_array().unwrap().len(), 1, "{last}");
    assert_eq!(last["finished"][0]["id"], "m2");
    assert_eq!(last["finished"][0]["report"]["summary"], "wrote b.txt");
    assert_eq!(last["batch_finished"], true, "{last}");
    let end = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(end["task"], Value::Null, "{end}");
    assert_eq!(end["batch_finished"], true, "{end}");

    let status = coordinator
        .ok("task_status", json!({"project": project_id}))
        .await;
    assert_eq!(status["counts"]["completed"], 2, "{status}");

    assert!(worker.close().await.success());
    assert!(coordinator.close().await.success());
}

/// A worker session keeps its lease while the agent works (heartbeats from the MCP
/// server), and when the agent's process goes away, its task goes back to the queue.
#[tokio::test]
async fn the_lease_holds_while_the_agent_works_and_ends_with_its_process() {
    let hub = TestHub::start_with(|config| config.config.coordination.lease_s = 2).await;
    let mut ws = hub.client().await;
    ws.ok("hub.hello", json!({"role": "coordinator"})).await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [{"id": "l1", "title": "slow"}]}),
    )
    .await;
    let (mut worker, _) = Mcp::start(&hub, &[]).await;
    worker.ok("register_worker", json!({"name": "slow"})).await;
    let task = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(task["task"]["id"], "l1", "{task}");
    // Three leases pass with no tool call: the heartbeats keep the task.
    let requeued = ws
        .notification_within("task.requeued", Duration::from_secs(6))
        .await;
    assert!(requeued.is_none(), "the lease ran out: {requeued:?}");
    let held = ws.ok("task.get", json!({"task_id": "l1"})).await;
    assert_eq!(held["state"], "running", "{held}");
    // The agent exits: the server ends, the connection closes, the task is requeued.
    worker.close().await;
    let requeued = ws.notification("task.requeued").await;
    assert_eq!(requeued["task_id"], "l1", "{requeued}");
    assert_eq!(requeued["reason"], "worker disconnected", "{requeued}");
}

/// Tool errors carry the hub's kind and a sentence to act on: an unknown project, a
/// client token without the `tasks` scope, a wrong token, and no hub at all.
#[tokio::test]
async fn tool_errors_name_the_kind_and_what_to_do() {
    let hub = TestHub::start().await;
    let (mut mcp, _) = Mcp::start(&hub, &[]).await;
    let error = mcp
        .err(
            "create_tasks",
            json!({"project": "no-such-project", "tasks": [{"title": "x"}]}),
        )
        .await;
    assert_eq!(error["kind"], "PROJECT_NOT_FOUND", "{error}");
    let error = mcp
        .err("task_status", json!({"project": "/no/such/dir"}))
        .await;
    assert_eq!(error["kind"], "PROJECT_NOT_FOUND", "{error}");
    // Arguments that do not match the tool's schema are refused by the SDK.
    let bad = mcp
        .call(
            "tools/call",
            json!({"name": "create_tasks", "arguments": {"tasks": "none"}}),
        )
        .await;
    assert!(
        bad["error"].is_object() || bad["result"]["isError"] == true,
        "{bad}"
    );
    mcp.close().await;

    // A client token with the `events` scope only: FORBIDDEN, and how to get one.
    let mut ws = hub.client().await;
    let created = ws
        .ok(
            "client.create",
            json!({"name": "agent", "scopes": ["events"]}),
        )
        .await;
    let token = created["token"].as_str().unwrap();
    let id = created["client"]["id"].as_str().unwrap();
    let env = [
        ("SEMANTEST_HUB_TOKEN", token),
        ("SEMANTEST_HUB_CLIENT_ID", id),
    ];
    let (mut mcp, _) = Mcp::start(&hub, &env).await;
    let error = mcp.err("register_worker", json!({"name": "w"})).await;
    assert_eq!(error["kind"], "FORBIDDEN", "{error}");
    assert!(
        error["what_to_do"]
            .as_str()
            .unwrap()
            .contains("--scope tasks"),
        "{error}"
    );
    mcp.close().await;

    // The same client token with `tasks`: it works with its own scopes.
    let created = ws
        .ok(
            "client.create",
            json!({"name": "worker", "scopes": ["tasks"]}),
        )
        .await;
    let env = [
        ("SEMANTEST_HUB_TOKEN", created["token"].as_str().unwrap()),
        (
            "SEMANTEST_HUB_CLIENT_ID",
            created["client"]["id"].as_str().unwrap(),
        ),
    ];
    let (mut mcp, _) = Mcp::start(&hub, &env).await;
    mcp.ok("register_worker", json!({"name": "scoped"})).await;
    let idle = mcp.ok("next_task", json!({"wait_s": 1})).await;
    assert_eq!(idle["task"], Value::Null, "{idle}");
    assert_eq!(idle["batch_finished"], false);
    mcp.close().await;

    // A token the hub does not know: its proof fails, nothing is sent.
    let wrong = "0".repeat(64);
    let (mut mcp, _) = Mcp::start(&hub, &[("SEMANTEST_HUB_TOKEN", &wrong)]).await;
    let error = mcp.err("register_worker", json!({"name": "w"})).await;
    assert_eq!(error["kind"], "HUB_UNAVAILABLE", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("did not prove"),
        "{error}"
    );
    mcp.close().await;

    // No hub running for the data directory: the server still starts and lists its
    // tools, and a tool says to start the hub.
    let stopped = hub.stop().await;
    let hub = TestHub {
        server: None,
        dir: stopped,
        token: String::new(),
        port: 0,
    };
    let (mut mcp, _) = Mcp::start(&hub, &[]).await;
    let error = mcp.err("task_status", json!({"project": "p"})).await;
    assert_eq!(error["kind"], "HUB_UNAVAILABLE", "{error}");
    assert!(
        error["what_to_do"]
            .as_str()
            .unwrap()
            .contains("semantest-hub serve"),
        "{error}"
    );
    mcp.close().await;
}

/// An MCP configuration in `dir` that starts `semantest-hub mcp` for `hub` as the
/// server `hub` (its tools are `mcp__hub__<tool>`).
fn mcp_config_for(hub: &TestHub, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("mcp.json");
    std::fs::write(
        &path,
        json!({"mcpServers": {"hub": {
            "command": hub_bin(),
            "args": ["--data-dir", hub.dir.path(), "--secret-store", "file", "mcp"],
        }}})
        .to_string(),
    )
    .unwrap();
    path
}

/// Runs the real Claude Code CLI once in `cwd` with `prompt` (the fake model's script)
/// and the MCP configuration, allowed to call the `hub` server's tools, and returns its
/// output once it exits.
async fn run_claude(
    api: &FakeApi,
    config_dir: &std::path::Path,
    cwd: &std::path::Path,
    mcp_config: &std::path::Path,
    prompt: &str,
) -> std::process::Output {
    let run = tokio::process::Command::new(Agent::Claude.cli())
        .current_dir(cwd)
        .args(["-p", prompt, "--mcp-config"])
        .arg(mcp_config)
        .args(["--strict-mcp-config", "--allowedTools", "mcp__hub"])
        .args(["--permission-mode", "acceptEdits"])
        .args(["--output-format", "stream-json", "--verbose"])
        .envs(Agent::Claude.env(api, config_dir))
        .env_remove("SEMANTEST_HUB_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("claude finishes")
        .unwrap()
}

/// The `tool_result` blocks in a stream-json transcript, in order.
fn tool_results(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["type"] == "user")
        .flat_map(|event| {
            event["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|block| block["type"] == "tool_result")
        .collect()
}

/// The real Claude Code CLI as a worker chat, against the scripted Messages API
/// (tests/fixtures/fake-anthropic.mjs), with an MCP configuration that starts
/// `semantest-hub mcp`: it loads the server, registers, takes the task pushed to it,
/// writes the file, completes the task with its report, and is told the batch is done.
#[tokio::test]
async fn the_real_claude_cli_works_a_task_through_the_mcp_server() {
    let api = FakeApi::start(Agent::Claude);
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    ws.ok("hub.hello", json!({"role": "coordinator"})).await;
    let (project_id, project_dir) = hub.project(&mut ws).await;
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [{"id": "r1", "title": "Write done.txt"}]}),
    )
    .await;
    let config_dir = tempfile::tempdir().unwrap();
    let mcp_config = mcp_config_for(&hub, config_dir.path());
    // One line per step of the fake model: three tool calls of the server, a Write,
    // and the call that learns the batch is finished.
    let prompt = [
        r#"CALL mcp__hub__register_worker {"name": "claude-1"}"#,
        r#"CALL mcp__hub__next_task {"wait_s": 60}"#,
        "WRITE done.txt done by claude",
        r#"CALL mcp__hub__complete_task {"task_id": "r1", "report": {"summary": "wrote done.txt", "deliverables": ["done.txt"]}}"#,
        r#"CALL mcp__hub__next_task {"wait_s": 60}"#,
    ]
    .join("\n");
    let output = run_claude(
        &api,
        config_dir.path(),
        project_dir.path(),
        &mcp_config,
        &prompt,
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");

    let started = ws.notification("task.started").await;
    assert_eq!(started["task_id"], "r1", "{started}");
    let completed = ws.notification("task.completed").await;
    assert_eq!(completed["task_id"], "r1");
    assert_eq!(completed["source"], "worker", "{completed}");
    assert_eq!(completed["worker"], started["worker_id"], "{completed}");
    assert_eq!(completed["report"]["summary"], "wrote done.txt");
    assert_eq!(
        std::fs::read_to_string(project_dir.path().join("done.txt")).unwrap(),
        "done by claude"
    );
    // The tool results the CLI got, in order: the task, then the end of the batch.
    let results = tool_results(&stdout);
    assert_eq!(results.len(), 5, "{stdout}");
    assert!(results.iter().all(|r| r["is_error"] != true), "{results:?}");
    let text = |i: usize| {
        results[i]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let task: Value = serde_json::from_str(&text(1)).unwrap();
    assert_eq!(task["task"]["id"], "r1", "{task}");
    let last: Value = serde_json::from_str(&text(4)).unwrap();
    assert_eq!(last["batch_finished"], true, "{last}");
}

/// The real Claude Code CLI as a coordinator chat: it queues a batch with
/// `create_tasks` and waits with `wait_for_tasks` while the hub's built-in agent
/// workers do the tasks, and gets every report back.
#[tokio::test]
async fn the_real_claude_cli_coordinates_a_batch_through_the_mcp_server() {
    let api = FakeApi::start(Agent::Claude);
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, project_dir) = hub.project(&mut ws).await;
    ws.ok(
        "project.configure",
        json!({"project_id": project_id, "agent_workers": 2}),
    )
    .await;
    let config_dir = tempfile::tempdir().unwrap();
    let mcp_config = mcp_config_for(&hub, config_dir.path());
    let tasks = json!({"project": project_id, "tasks": [
        {"id": "k1", "title": "First", "prompt": "[fake:report] one"},
        {"id": "k2", "title": "Second", "prompt": "[fake:report] two"},
    ]});
    let wait = json!({"project": project_id, "wait_s": 120});
    let prompt = [
        format!("CALL mcp__hub__create_tasks {tasks}"),
        format!("CALL mcp__hub__wait_for_tasks {wait}"),
        format!("CALL mcp__hub__wait_for_tasks {wait}"),
    ]
    .join("\n");
    let output = run_claude(
        &api,
        config_dir.path(),
        project_dir.path(),
        &mcp_config,
        &prompt,
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let results = tool_results(&stdout);
    assert_eq!(results.len(), 3, "{stdout}");
    assert!(results.iter().all(|r| r["is_error"] != true), "{results:?}");
    let answers: Vec<Value> = results
        .iter()
        .map(|r| serde_json::from_str(r["content"].as_str().unwrap_or_default()).unwrap())
        .collect();
    assert_eq!(answers[0]["created"], json!(["k1", "k2"]), "{answers:?}");
    // The two waits return each finished task once, with its report, and the end.
    let mut finished: Vec<String> = answers[1..]
        .iter()
        .flat_map(|a| a["finished"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            assert_eq!(t["state"], "completed", "{t}");
            assert!(t["report"]["summary"].is_string(), "{t}");
            t["id"].as_str().unwrap().to_string()
        })
        .collect();
    finished.sort();
    let last = answers.last().unwrap();
    assert_eq!(finished, ["k1", "k2"], "{answers:?}");
    assert_eq!(last["batch_finished"], true, "{answers:?}");
}

/// Two real Claude Code worker chats and three tasks, with no prompt but the first: one
/// worker is killed while it holds a task (its fake model never answers), the task goes
/// back to the queue when its MCP server goes away with it, and the other worker does
/// every task, each completed once by the worker that held it.
#[tokio::test]
async fn two_real_claude_workers_share_a_batch_and_one_is_killed_mid_task() {
    let api = FakeApi::start(Agent::Claude);
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    ws.ok("hub.hello", json!({"role": "coordinator"})).await;
    let (project_id, project_dir) = hub.project(&mut ws).await;
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [
            {"id": "w1", "title": "one"}, {"id": "w2", "title": "two"}, {"id": "w3", "title": "three"},
        ]}),
    )
    .await;
    let config_a = tempfile::tempdir().unwrap();
    let config_b = tempfile::tempdir().unwrap();
    let claude = |config: &std::path::Path, prompt: String| {
        let mcp_config = mcp_config_for(&hub, config);
        tokio::process::Command::new(Agent::Claude.cli())
            .current_dir(project_dir.path())
            .args(["-p", &prompt, "--mcp-config"])
            .arg(&mcp_config)
            .args(["--strict-mcp-config", "--allowedTools", "mcp__hub"])
            .args(["--permission-mode", "acceptEdits"])
            .args(["--output-format", "stream-json", "--verbose"])
            .envs(Agent::Claude.env(&api, config))
            .env_remove("SEMANTEST_HUB_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    // Worker A takes the first task, then its model never answers again.
    let mut a = claude(
        config_a.path(),
        [
            r#"CALL mcp__hub__register_worker {"name": "claude-a"}"#,
            r#"CALL mcp__hub__next_task {"wait_s": 60}"#,
            "HOLD",
        ]
        .join("\n"),
    );
    let started = ws.notification("task.started").await;
    let (held_by_a, worker_a) = (started["task_id"].clone(), started["worker_id"].clone());
    assert_eq!(held_by_a, "w1", "{started}");

    // Worker B loops over whatever it is given.
    let round = [
        r#"CALL mcp__hub__next_task {"wait_s": 60}"#,
        "WRITE $TASK.txt done by b",
        r#"CALL mcp__hub__complete_task {"task_id": "$TASK", "report": {"summary": "b did $TASK"}}"#,
    ]
    .join("\n");
    let prompt_b = format!(
        "CALL mcp__hub__register_worker {{\"name\": \"claude-b\"}}\n{round}\n{round}\n{round}\nCALL mcp__hub__next_task {{\"wait_s\": 60}}"
    );
    let b = claude(config_b.path(), prompt_b);
    let started = ws.notification("task.started").await;
    let worker_b = started["worker_id"].clone();
    assert_ne!(worker_b, worker_a, "{started}");
    // A dies holding w1: its MCP server sees stdin close and goes, and so does w1's lease.
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let requeued = ws.notification("task.requeued").await;
    assert_eq!(requeued["task_id"], "w1", "{requeued}");
    assert_eq!(requeued["worker"], worker_a, "{requeued}");
    assert_eq!(requeued["reason"], "worker disconnected", "{requeued}");

    let output = tokio::time::timeout(Duration::from_secs(180), b.wait_with_output())
        .await
        .expect("worker B finishes")
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let results = tool_results(&String::from_utf8_lossy(&output.stdout));
    let last: Value = serde_json::from_str(
        results.last().unwrap()["content"]
            .as_str()
            .unwrap_or_default(),
    )
    .unwrap();
    assert_eq!(last["batch_finished"], true, "{last}");
    let mut completed = Vec::new();
    while completed.len() < 3 {
        let done = ws.notification("task.completed").await;
        assert_eq!(done["worker"], worker_b, "{done}");
        assert_eq!(done["source"], "worker", "{done}");
        let id = done["task_id"].as_str().unwrap().to_string();
        assert_eq!(done["report"]["summary"], format!("b did {id}"), "{done}");
        completed.push(id);
    }
    completed.sort();
    assert_eq!(completed, ["w1", "w2", "w3"], "each task completed once");
    for id in ["w1", "w2", "w3"] {
        let file = project_dir.path().join(format!("{id}.txt"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "done by b", "{id}");
    }
    let w1 = ws.ok("task.get", json!({"task_id": "w1"})).await;
    assert_eq!(w1["failures"][0]["worker_id"], worker_a, "{w1}");
}
