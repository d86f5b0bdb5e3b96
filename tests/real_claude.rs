//! The real Claude Code CLI, run by the hub, talking to a scripted fake of the Anthropic
//! Messages API on loopback (`tests/fixtures/fake-anthropic.mjs`), set up by
//! [`crate::util::real_cli`].

use serde_json::{Value, json};

use crate::util::real_cli::{Agent, RealCli, asking, figures as measure};
use crate::util::{TestHub, run};

/// A hub whose agent is the real CLI in permission mode `mode`.
async fn hub_in(cli: &RealCli, mode: &str) -> TestHub {
    cli.hub_with(|c| c.config.agent.permission_mode = mode.into())
        .await
}

#[tokio::test]
async fn the_real_cli_writes_a_file_and_every_line_reaches_subscribers_and_the_log() {
    let cli = RealCli::start(Agent::Claude);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let mut watcher = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;
    watcher
        .ok("project.subscribe", json!({"project_id": project_id}))
        .await;

    let run_id = run(&mut ws, &project_id, "WRITE hello.txt hello from the hub").await;
    let lines = ws.run_output(&run_id).await;
    let ws_first_lines = lines.clone();
    let watched = watcher.run_output(&run_id).await;
    assert_eq!(lines, watched, "every subscriber sees the same lines");

    let written =
        std::fs::read_to_string(dir.path().join("hello.txt")).expect("the agent wrote the file");
    assert_eq!(written, "hello from the hub");

    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert!(
        kinds.contains(&"system") && kinds.contains(&"assistant") && kinds.contains(&"user"),
        "{kinds:?}"
    );
    let tool_use = lines
        .iter()
        .flat_map(|l| {
            l["event"]["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|block| block["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(tool_use["name"], "Write");
    let result = lines
        .iter()
        .find(|l| l["kind"] == "result")
        .expect("a result line");
    assert_eq!(result["event"]["subtype"], "success");
    assert!(result["event"]["total_cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");

    let stored = ws
        .ok(
            "messages.list",
            json!({"project_id": project_id, "limit": 1000}),
        )
        .await;
    assert_eq!(
        stored["messages"].as_array().unwrap(),
        &lines,
        "the log holds every line"
    );
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(project["session_id"], result["event"]["session_id"]);

    // A second run resumes the session the first one created.
    let run_id = run(&mut ws, &project_id, "WRITE second.txt after resume").await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("second.txt")).unwrap(),
        "after resume"
    );
    let init = lines.iter().find(|l| l["kind"] == "system").unwrap();
    assert_eq!(init["event"]["session_id"], project["session_id"]);

    // What each run cost is what the scripted API's usage implies: two calls of 100
    // input tokens, with 20 and 10 output tokens, at the default model's prices (0.00175
    // USD on 2.1.197). The resumed process reports the same total again, whether it
    // restarted from zero (2.1.197) or carried the first run's (then its total would be
    // twice as much): either way the second run cost the same as the first.
    let cost = |lines: &[Value]| {
        let result = lines.iter().rfind(|l| l["kind"] == "result").unwrap();
        result["event"]["modelUsage"]
            .as_object()
            .unwrap()
            .values()
            .map(|m| m["costUSD"].as_f64().unwrap())
            .sum::<f64>()
    };
    let first_cost = cost(&ws_first_lines);
    assert!(first_cost > 0.0);
    let usage = ws
        .ok(
            "agent.usage",
            json!({"project_id": project_id, "group_by": "run"}),
        )
        .await;
    let rows = usage["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{usage}");
    for row in rows {
        assert!(
            (row["usd"].as_f64().unwrap() - first_cost).abs() < 1e-9,
            "{usage}"
        );
        assert_eq!(row["input_tokens"], 200, "{usage}");
        assert_eq!(row["output_tokens"], 30, "{usage}");
        assert_eq!(row["turns"], 1, "{usage}");
    }
    assert!((usage["total"]["usd"].as_f64().unwrap() - 2.0 * first_cost).abs() < 1e-9);
    let end = &lines.last().unwrap()["event"];
    assert!(
        (end["cost_usd"].as_f64().unwrap() - first_cost).abs() < 1e-9,
        "{end}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_built_in_agent_worker_with_the_real_cli_completes_a_task_by_its_report_file() {
    let cli = RealCli::start(Agent::Claude);
    let hub = cli.hub().await;
    let mut coordinator = hub.client().await;
    coordinator
        .ok("hub.hello", json!({"role": "coordinator", "name": "batch"}))
        .await;
    let (project_id, dir) = hub.project(&mut coordinator).await;
    // The scripted API turns the WRITE line of the task's instructions into a Write call.
    let report = r#"{"status":"completed","summary":"written by the agent","deliverables":["reports/r1.json"]}"#;
    let task = json!({"id": "r1", "title": "Write the report", "prompt": format!("WRITE reports/r1.json {report}")});
    coordinator
        .ok(
            "task.create",
            json!({"project_id": project_id, "tasks": [task]}),
        )
        .await;
    coordinator
        .ok(
            "project.configure",
            json!({"project_id": project_id, "agent_workers": 1}),
        )
        .await;
    let completed = loop {
        let done = coordinator.notification("task.completed").await;
        if done["task_id"] == "r1" {
            break done;
        }
    };
    assert_eq!(completed["source"], "report", "{completed}");
    assert_eq!(completed["report"]["summary"], "written by the agent");
    let written = std::fs::read_to_string(dir.path().join("reports/r1.json")).unwrap();
    assert_eq!(written, report, "the agent's Write tool created the report");
    let stored = coordinator.ok("task.get", json!({"task_id": "r1"})).await;
    assert_eq!(stored["state"], "completed");
    assert_eq!(stored["completed_by"], "report");
    hub.stop().await;
}

#[tokio::test]
async fn the_real_cli_takes_an_option_shaped_prompt_as_text() {
    let cli = RealCli::start(Agent::Claude);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;
    // Passed as an argument, the first line would be an option of the CLI that lifts its
    // permission mode; on stdin it is the first line of the user's message.
    let prompt = "--dangerously-skip-permissions\nWRITE flag.txt it was text";
    let run_id = run(&mut ws, &project_id, prompt).await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    let init = lines.iter().find(|l| l["kind"] == "system").unwrap();
    assert_eq!(init["event"]["permissionMode"], "acceptEdits", "{init}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("flag.txt")).unwrap(),
        "it was text"
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_real_cli_asks_before_a_bash_call_and_runs_only_what_was_approved() {
    let cli = RealCli::start(Agent::Claude);
    let hub = hub_in(&cli, "default").await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    // Approved over JSON-RPC: the command runs.
    let (run_id, approval) = asking(&mut ws, &project_id, "BASH echo hi > approved.txt").await;
    assert_eq!(approval["tool_name"], "Bash");
    assert_eq!(approval["input"]["command"], "echo hi > approved.txt");
    assert!(
        approval["tool_use_id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_")
    );
    assert!(!dir.path().join("approved.txt").exists());
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": approval["id"], "decision": "allow_once"}),
    )
    .await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("approved.txt")).unwrap(),
        "hi\n"
    );

    // Denied with a message: nothing runs, and the agent reads the message.
    let (run_id, approval) = asking(&mut ws, &project_id, "BASH echo no > denied.txt").await;
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": approval["id"], "decision": "reject_once",
               "message": "not on this branch"}),
    )
    .await;
    let lines = ws.run_output(&run_id).await;
    assert!(!dir.path().join("denied.txt").exists());
    let told = lines
        .iter()
        .any(|l| l["kind"] == "user" && l["event"].to_string().contains("not on this branch"));
    assert!(told, "{lines:?}");

    // Allowed with an edited input: the edited command is what ran.
    let (run_id, approval) = asking(&mut ws, &project_id, "BASH echo original > edited.txt").await;
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": approval["id"], "decision": "allow_once",
               "updated_input": {"command": "echo changed > edited.txt", "description": "edited"}}),
    )
    .await;
    ws.run_output(&run_id).await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("edited.txt")).unwrap(),
        "changed\n"
    );

    // Always for the project: the next Bash call is answered without asking.
    let (run_id, approval) = asking(&mut ws, &project_id, "BASH touch first.txt").await;
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": approval["id"], "decision": "allow_always", "scope": "project"}),
    )
    .await;
    ws.run_output(&run_id).await;
    assert!(dir.path().join("first.txt").exists());
    let run_id = run(&mut ws, &project_id, "BASH touch second.txt").await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    assert!(dir.path().join("second.txt").exists());
    let by_rule = lines
        .iter()
        .find(|l| l["kind"] == "approval_resolved")
        .expect("the rule answered");
    assert_eq!(by_rule["event"]["resolution"]["by"]["kind"], "rule");
    assert!(!lines.iter().any(|l| l["kind"] == "approval_requested"));
    hub.stop().await;
}

/// Figures, not a test of behaviour: run with `cargo test --test integration
/// real_claude::figures -- --ignored --nocapture`. See [`crate::util::real_cli::figures`].
#[tokio::test]
#[ignore = "measures; run by hand"]
async fn figures() {
    let cli = RealCli::start(Agent::Claude);
    let hub = hub_in(&cli, "default").await;
    measure(&cli, hub).await;
}
