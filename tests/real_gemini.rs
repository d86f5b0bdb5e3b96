//! The real Gemini CLI (`gemini --acp`), talking to a scripted fake of the Gemini API on
//! loopback (`tests/fixtures/fake-gemini.mjs`), set up by [`crate::util::real_cli`].

mod acp_contract;

use std::path::Path;

use serde_json::json;

use crate::util::real_cli::{
    Agent, RealCli, agent_lines, an_agent_worker_completes_a_task_by_its_report_file, answer,
    asking, figures as measure, notice, output,
};

/// Gives the chat files of `session` an earlier minute in their names. Gemini CLI 0.61
/// names a session's file after the minute it began and its short id, and
/// `session/load` starts a file of that same name: loaded within the minute it began,
/// the session's own file is overwritten and the load fails (see fake-gemini.md). A
/// person resumes minutes later; a test renames the file rather than wait.
fn age_session_files(home: &Path, session: &str) {
    let short = &session[..8];
    let tmp = home.join(".gemini/tmp");
    let mut renamed = 0;
    for project in std::fs::read_dir(&tmp).unwrap().flatten() {
        let chats = project.path().join("chats");
        let Ok(files) = std::fs::read_dir(&chats) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().to_string();
            if name.starts_with("session-") && name.ends_with(&format!("-{short}.jsonl")) {
                let aged = format!("session-2000-01-01T00-00-{short}.jsonl");
                std::fs::rename(file.path(), chats.join(aged)).unwrap();
                renamed += 1;
            }
        }
    }
    assert_eq!(
        renamed, 1,
        "one chat file for session {session} under {tmp:?}"
    );
}

#[tokio::test]
async fn a_gemini_command_asks_runs_once_approved_resumes_and_each_turn_records_its_usage() {
    let cli = RealCli::start(Agent::Gemini);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let (run_id, approval) = asking(&mut ws, &project_id, "SHELL echo hi > approved.txt").await;
    // The same tool name and input shape as Claude Code's and Codex's shell calls.
    assert_eq!(approval["tool_name"], "Bash", "{approval}");
    assert_eq!(approval["input"]["command"], "echo hi > approved.txt");
    assert!(
        approval["tool_use_id"]
            .as_str()
            .unwrap()
            .starts_with("run_shell_command__"),
        "{approval}"
    );
    assert!(
        !dir.path().join("approved.txt").exists(),
        "nothing runs before the answer"
    );
    answer(&mut ws, &approval, json!({"decision": "allow_once"})).await;
    let lines = output(&mut ws, &run_id).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("approved.txt")).unwrap(),
        "hi\n"
    );
    // The CLI's raw lines are in the log: the permission request, and the option the
    // hub chose by its kind (Gemini lists allow_always first).
    let raw = agent_lines(&lines);
    assert!(
        raw.iter()
            .any(|l| l["event"]["method"] == "session/request_permission"),
        "{raw:?}"
    );
    let ended = lines.iter().find(|l| l["kind"] == "turn_ended").unwrap();
    assert_eq!(ended["event"]["stop_reason"], "end_turn");

    // The ACP session is the project's Gemini session.
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    let session = project["sessions"]["gemini"]
        .as_str()
        .expect("a gemini session")
        .to_string();
    assert_eq!(project["agent"], "gemini");

    // A second run reopens it with session/load, and the model sees the first turn.
    age_session_files(cli.home.path(), &session);
    let (second, approval) = asking(&mut ws, &project_id, "SHELL echo again > again.txt").await;
    answer(&mut ws, &approval, json!({"decision": "allow_once"})).await;
    let lines = output(&mut ws, &second).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    let started = lines.iter().find(|l| l["kind"] == "run_started").unwrap();
    assert_eq!(
        started["event"]["resume"], session,
        "the run resumed the session"
    );
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(
        project["sessions"]["gemini"], session,
        "the loaded session stays the project's"
    );
    assert!(
        agent_lines(&lines).iter().any(|l| {
            l["event"]["params"]["update"]["sessionUpdate"] == "user_message_chunk"
                && l["event"].to_string().contains("approved.txt")
        }),
        "session/load replayed the first turn: {lines:?}"
    );
    assert!(dir.path().join("again.txt").exists());

    // Each turn: two calls of 100 input and 10 output tokens, priced from the default
    // table (gemini-2.5-flash at 0.30 and 2.50 USD per Mtok) as an estimate.
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
        assert_eq!(row["input_tokens"], 200, "{row}");
        assert_eq!(row["output_tokens"], 20, "{row}");
        assert_eq!(row["model"], "gemini-2.5-flash", "{row}");
        let usd = row["usd"].as_f64().unwrap();
        let want = (200.0 * 0.30 + 20.0 * 2.5) / 1e6;
        assert!((usd - want).abs() < 1e-9, "{usd} != {want}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_denied_gemini_command_does_not_run_and_the_turn_goes_on() {
    let cli = RealCli::start(Agent::Gemini);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let (run_id, approval) = asking(&mut ws, &project_id, "SHELL echo no > denied.txt").await;
    answer(
        &mut ws,
        &approval,
        json!({"decision": "reject_once", "message": "not this one"}),
    )
    .await;
    let lines = output(&mut ws, &run_id).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    assert!(
        !dir.path().join("denied.txt").exists(),
        "a denied command never runs"
    );
    let ended = lines.iter().find(|l| l["kind"] == "turn_ended").unwrap();
    assert_eq!(ended["event"]["stop_reason"], "end_turn");
    hub.stop().await;
}

#[tokio::test]
async fn a_follow_up_queued_while_gemini_waits_runs_as_the_next_turn() {
    let cli = RealCli::start(Agent::Gemini);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "SHELL echo one > one.txt"}),
        )
        .await;
    assert_eq!(sent["delivery"], "started");
    let run_id = sent["run_id"].as_str().unwrap().to_string();
    let first = notice(&mut ws, "agent.approval_requested").await["approval"].clone();
    // Mid-turn (the turn waits on the approval): queued in the hub, and a steer too,
    // since a second session/prompt would cancel the running one.
    let queued = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "SHELL echo two > two.txt", "mode": "queue"}),
        )
        .await;
    assert_eq!(queued["delivery"], "queued", "{queued}");
    let steered = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "SHELL echo three > three.txt", "mode": "steer"}),
        )
        .await;
    assert_eq!(steered["run_id"], run_id, "{steered}");
    answer(&mut ws, &first, json!({"decision": "allow_once"})).await;
    // The first turn is not cancelled by the follow-ups: its command runs, then each
    // follow-up asks in its own turn of the same session.
    let mut commands = Vec::new();
    for _ in 0..2 {
        let next = notice(&mut ws, "agent.approval_requested").await["approval"].clone();
        assert_eq!(
            next["run_id"], run_id,
            "the same session runs the follow-ups"
        );
        commands.push(next["input"]["command"].as_str().unwrap().to_string());
        answer(&mut ws, &next, json!({"decision": "allow_once"})).await;
    }
    commands.sort();
    assert_eq!(commands, ["echo three > three.txt", "echo two > two.txt"]);
    let mut ended = Vec::new();
    while ended.len() < 3 {
        let line = notice(&mut ws, "project.output").await;
        if line["kind"] == "turn_ended" {
            ended.push(line["event"]["stop_reason"].as_str().unwrap().to_string());
        }
        assert_ne!(line["kind"], "run_finished", "the run ended early: {line}");
    }
    assert_eq!(
        ended,
        ["end_turn", "end_turn", "end_turn"],
        "no turn was cancelled"
    );
    for file in ["one.txt", "two.txt", "three.txt"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    ws.ok("agent.kill", json!({"project_id": project_id})).await;
    hub.stop().await;
}

#[tokio::test]
async fn an_interrupt_while_a_gemini_approval_waits_withdraws_it() {
    let cli = RealCli::start(Agent::Gemini);
    let hub = cli.hub().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = cli.project(&hub, &mut ws).await;

    let (run_id, approval) = asking(&mut ws, &project_id, "SHELL echo late > late.txt").await;
    let interrupted = ws
        .ok("agent.interrupt", json!({"project_id": project_id}))
        .await;
    assert_eq!(interrupted["run_id"], run_id);
    let resolved = loop {
        let resolved = notice(&mut ws, "agent.approval_resolved").await;
        if resolved["approval_id"] == approval["id"] {
            break resolved;
        }
    };
    assert_eq!(resolved["resolution"]["outcome"], "withdrawn", "{resolved}");
    assert_eq!(
        ws.ok("agent.approvals.list", json!({})).await["approvals"],
        json!([])
    );
    let lines = output(&mut ws, &run_id).await;
    let ended = lines.iter().find(|l| l["kind"] == "turn_ended").unwrap();
    assert_eq!(ended["event"]["stop_reason"], "cancelled", "{lines:?}");
    let finished = &lines.last().unwrap()["event"];
    assert_eq!(finished["status"], "failed", "{finished}");
    assert!(!dir.path().join("late.txt").exists());
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
async fn a_gemini_agent_worker_completes_a_task_by_its_report_file() {
    let cli = RealCli::start(Agent::Gemini);
    an_agent_worker_completes_a_task_by_its_report_file(&cli, "g1").await;
}

/// Figures, not a test of behaviour: run with `cargo test --test integration
/// real_gemini::figures -- --ignored --nocapture`. See [`crate::util::real_cli::figures`]
/// (the CLI writes nothing before it answers `initialize`, so spawn counts until then).
#[tokio::test]
#[ignore = "measures; run by hand"]
async fn figures() {
    let cli = RealCli::start(Agent::Gemini);
    let hub = cli.hub().await;
    measure(&cli, hub).await;
}
