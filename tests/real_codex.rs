//! The real Codex CLI (`codex app-server`), run by the hub, talking to a scripted fake of
//! the OpenAI Responses API on loopback (`tests/fixtures/fake-openai.mjs`), set up by
//! [`crate::util::real_cli`].
//!
//! Each hub gets its own `CODEX_HOME` under `target/` (never under `/tmp`, where Codex
//! refuses to set up its sandbox helper), and threads run with the sandbox
//! `danger-full-access`, so no sandbox is needed on the test machine; every command still
//! asks (approval policy `untrusted`).

use serde_json::{Value, json};

use crate::util::real_cli::{
    Agent, RealCli, agent_lines, an_agent_worker_completes_a_task_by_its_report_file, answer,
    asking, figures as measure,
};

fn kinds(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn a_codex_command_asks_runs_once_approved_and_each_turn_records_its_usage() {
    let cli = RealCli::start(Agent::Codex);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let (run_id, approval) = asking(&mut ws, &project_id, "BASH echo hi > approved.txt").await;
    assert_eq!(approval["tool_name"], "Bash");
    assert!(
        approval["input"]["command"]
            .as_str()
            .unwrap()
            .contains("echo hi > approved.txt"),
        "{approval}"
    );
    assert!(
        !dir.path().join("approved.txt").exists(),
        "nothing runs before the answer"
    );
    // Codex takes a decision only: an edited command is refused, never run as first
    // proposed, and the approval still waits for an answer it can carry out.
    let edited = ws
        .err(
            "agent.approvals.answer",
            json!({
                "approval_id": approval["id"],
                "decision": "allow_once",
                "updated_input": {"command": "echo edited > edited.txt"},
            }),
        )
        .await;
    assert_eq!(edited["data"]["kind"], "INVALID_PARAMS", "{edited}");
    assert!(
        edited["message"].as_str().unwrap().contains("edited"),
        "{edited}"
    );
    assert!(!dir.path().join("approved.txt").exists());
    answer(&mut ws, &approval, json!({"decision": "allow_once"})).await;
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
    // The app server's raw lines are in the log, framed by the hub's turn lines.
    let raw = agent_lines(&lines);
    assert!(
        raw.iter().any(|l| l["event"]["method"] == "turn/completed"),
        "{raw:?}"
    );
    let kinds = kinds(&lines);
    for kind in [
        "run_started",
        "turn_started",
        "approval_requested",
        "approval_resolved",
        "turn_ended",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let ended = lines.iter().find(|l| l["kind"] == "turn_ended").unwrap();
    assert_eq!(ended["event"]["stop_reason"], "end_turn");

    // The thread is the project's Codex session.
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    let thread = project["sessions"]["codex"]
        .as_str()
        .expect("a codex thread")
        .to_string();
    assert_eq!(project["session_id"], thread);
    assert_eq!(project["agent"], "codex");
    assert!(project["sessions"].get("claude").is_none(), "{project}");

    // A second run resumes the thread: its usage is the turn's own, not the thread's.
    let (second, approval) = asking(&mut ws, &project_id, "BASH echo again > again.txt").await;
    answer(&mut ws, &approval, json!({"decision": "allow_once"})).await;
    let lines = ws.run_output(&second).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    let started = lines.iter().find(|l| l["kind"] == "run_started").unwrap();
    assert_eq!(
        started["event"]["resume"], thread,
        "the run resumed the thread"
    );
    assert!(dir.path().join("again.txt").exists());

    // Each turn: two model calls of 100 input tokens (20 cached) and 10 output tokens.
    let usage = ws
        .ok(
            "agent.usage",
            json!({"project_id": project_id, "group_by": "run"}),
        )
        .await;
    let rows = usage["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{usage}");
    for row in rows {
        assert_eq!(row["turns"], 1, "{row}");
        assert_eq!(row["input_tokens"], 160, "{row}");
        assert_eq!(row["cache_read_tokens"], 40, "{row}");
        assert_eq!(row["output_tokens"], 20, "{row}");
        assert_eq!(row["model"], "gpt-5", "{row}");
        // Priced from the default table: gpt-5 at 1.25 / 0.125 / 10 USD per Mtok.
        let usd = row["usd"].as_f64().unwrap();
        let want = (160.0 * 1.25 + 40.0 * 0.125 + 20.0 * 10.0) / 1e6;
        assert!((usd - want).abs() < 1e-9, "{usd} != {want}");
        assert_eq!(
            row["estimated_usd"], row["usd"],
            "the whole cost is an estimate"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_denied_codex_command_does_not_run_and_the_turn_goes_on() {
    let cli = RealCli::start(Agent::Codex);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let (run_id, approval) = asking(&mut ws, &project_id, "BASH echo no > denied.txt").await;
    answer(
        &mut ws,
        &approval,
        json!({"decision": "reject_once", "message": "not this one"}),
    )
    .await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    assert!(
        !dir.path().join("denied.txt").exists(),
        "a denied command never runs"
    );
    let declined = agent_lines(&lines).into_iter().any(|l| {
        l["event"]["method"] == "item/completed"
            && l["event"]["params"]["item"]["status"] == "declined"
    });
    assert!(declined, "Codex marks the command declined: {lines:?}");
    hub.stop().await;
}

#[tokio::test]
async fn a_follow_up_queued_while_codex_waits_runs_as_the_next_turn() {
    let cli = RealCli::start(Agent::Codex);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "BASH echo one > one.txt"}),
        )
        .await;
    assert_eq!(sent["delivery"], "started");
    let run_id = sent["run_id"].as_str().unwrap().to_string();
    let first = ws.notification("agent.approval_requested").await["approval"].clone();
    // Mid-turn (the turn waits on the approval): the follow-up is queued in the hub.
    let queued = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "BASH echo two > two.txt", "mode": "queue"}),
        )
        .await;
    assert_eq!(queued["delivery"], "queued", "{queued}");
    assert_eq!(queued["run_id"], run_id);
    answer(&mut ws, &first, json!({"decision": "allow_once"})).await;
    let second = ws.notification("agent.approval_requested").await["approval"].clone();
    assert_eq!(
        second["run_id"], run_id,
        "the same session runs the follow-up"
    );
    assert!(
        second["input"]["command"]
            .as_str()
            .unwrap()
            .contains("two.txt")
    );
    assert!(dir.path().join("one.txt").exists());
    answer(&mut ws, &second, json!({"decision": "allow_once"})).await;
    // Turn 2 ends; the live session then waits for the next message.
    loop {
        let line = ws.notification("project.output").await;
        if line["kind"] == "turn_ended" && line["event"]["turn"] == 2 {
            assert_eq!(line["event"]["stop_reason"], "end_turn");
            break;
        }
        assert_ne!(line["kind"], "run_finished", "the run ended early: {line}");
    }
    assert!(dir.path().join("two.txt").exists());
    ws.ok("agent.kill", json!({"project_id": project_id})).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_steered_follow_up_joins_the_running_codex_turn() {
    let cli = RealCli::start(Agent::Codex);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "BASH echo one > one.txt"}),
        )
        .await;
    let run_id = sent["run_id"].as_str().unwrap().to_string();
    let first = ws.notification("agent.approval_requested").await["approval"].clone();
    let steered = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "BASH echo two > two.txt", "mode": "steer"}),
        )
        .await;
    assert_eq!(steered["delivery"], "steered", "{steered}");
    answer(&mut ws, &first, json!({"decision": "allow_once"})).await;
    // turn/steer put the message into the running turn: its command asks in turn 1.
    let second = ws.notification("agent.approval_requested").await["approval"].clone();
    assert!(
        second["input"]["command"]
            .as_str()
            .unwrap()
            .contains("two.txt")
    );
    answer(&mut ws, &second, json!({"decision": "allow_once"})).await;
    loop {
        let line = ws.notification("project.output").await;
        if line["run_id"] == run_id && line["kind"] == "turn_ended" {
            assert_eq!(line["event"]["turn"], 1, "one turn for both messages");
            break;
        }
    }
    assert!(dir.path().join("one.txt").exists() && dir.path().join("two.txt").exists());
    ws.ok("agent.kill", json!({"project_id": project_id})).await;
    hub.stop().await;
}

#[tokio::test]
async fn an_interrupt_while_a_codex_approval_waits_withdraws_it() {
    let cli = RealCli::start(Agent::Codex);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let (run_id, approval) = asking(&mut ws, &project_id, "BASH echo late > late.txt").await;
    let interrupted = ws
        .ok("agent.interrupt", json!({"project_id": project_id}))
        .await;
    assert_eq!(interrupted["run_id"], run_id);
    let resolved = loop {
        let resolved = ws.notification("agent.approval_resolved").await;
        if resolved["approval_id"] == approval["id"] {
            break resolved;
        }
    };
    assert_eq!(resolved["resolution"]["outcome"], "withdrawn", "{resolved}");
    assert_eq!(
        ws.ok("agent.approvals.list", json!({})).await["approvals"],
        json!([])
    );
    let lines = ws.run_output(&run_id).await;
    let ended = lines.iter().find(|l| l["kind"] == "turn_ended").unwrap();
    assert_eq!(ended["event"]["stop_reason"], "cancelled", "{lines:?}");
    let finished = &lines.last().unwrap()["event"];
    assert_eq!(finished["status"], "failed", "{finished}");
    assert_eq!(finished["reason"], "the turn was interrupted");
    assert!(!dir.path().join("late.txt").exists());
    // A late answer finds the approval gone.
    let late = ws
        .err(
            "agent.approvals.answer",
            json!({"approval_id": approval["id"], "decision": "allow_once"}),
        )
        .await;
    assert_eq!(late["data"]["kind"], "APPROVAL_RESOLVED", "{late}");
    hub.stop().await;
}

#[tokio::test]
async fn a_codex_agent_worker_completes_a_task_by_its_report_file() {
    let cli = RealCli::start(Agent::Codex);
    an_agent_worker_completes_a_task_by_its_report_file(&cli, "c1").await;
}

/// Figures, not a test of behaviour: run with `cargo test --test integration
/// real_codex::figures -- --ignored --nocapture`. See [`crate::util::real_cli::figures`];
/// for Codex it also prints the time from the answer to the app server's
/// `serverRequest/resolved`.
#[tokio::test]
#[ignore = "measures; run by hand"]
async fn figures() {
    let cli = RealCli::start(Agent::Codex);
    let hub = cli.hub().await;
    measure(&cli, hub).await;
}
