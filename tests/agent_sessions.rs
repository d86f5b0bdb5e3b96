//! Live sessions with the fake CLI speaking the control protocol: approvals (answers,
//! rules, policy, timeout, races, a dying CLI, malformed lines), follow-ups (queue,
//! steer, interrupt, edit, cancel, a restart) and the idle timeout.

use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{TestHub, Ws, recording, run};

/// Waits for the run's `turn_ended` lines until the `n`th, returns the `result` lines seen.
async fn results_until_turn(ws: &mut Ws, run_id: &str, n: u64) -> Vec<Value> {
    let mut results = Vec::new();
    loop {
        let line = ws.notification("project.output").await;
        if line["run_id"] != run_id {
            continue;
        }
        if line["kind"] == "result" {
            results.push(line["event"].clone());
        }
        if line["kind"] == "turn_ended" && line["event"]["turn"] == n {
            return results;
        }
        assert_ne!(line["kind"], "run_finished", "the run ended early: {line}");
    }
}

/// The `agent.approval_resolved` of approval `id` (earlier ones are skipped).
async fn resolved(ws: &mut Ws, id: &Value) -> Value {
    loop {
        let resolved = ws.notification("agent.approval_resolved").await;
        if resolved["approval_id"] == *id {
            return resolved;
        }
    }
}

fn kinds(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["kind"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_bash_call_asks_and_runs_only_once_allowed_and_a_second_answer_is_refused() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "ask Bash echo hi > out.txt").await;
    let requested = ws.notification("agent.approval_requested").await;
    let approval = &requested["approval"];
    assert_eq!(approval["project_id"], project_id);
    assert_eq!(approval["run_id"], run_id);
    assert_eq!(approval["tool_name"], "Bash");
    assert_eq!(approval["input"]["command"], "echo hi > out.txt");
    assert_eq!(approval["tool_use_id"], "toolu_fake_1");
    assert_eq!(approval["suggestions"][0]["type"], "addRules");
    assert!(approval["asked_at"].as_str().unwrap().ends_with('Z'));
    // Nothing ran before the answer.
    assert!(!dir.path().join("out.txt").exists());
    let listed = ws.ok("agent.approvals.list", json!({})).await;
    assert_eq!(listed["approvals"][0], *approval);
    let id = approval["id"].as_str().unwrap();

    let answered = ws
        .ok(
            "agent.approvals.answer",
            json!({"approval_id": id, "decision": "allow_once"}),
        )
        .await;
    assert_eq!(answered["resolution"]["outcome"], "allowed");
    assert_eq!(answered["resolution"]["by"]["kind"], "client");
    let resolved = ws.notification("agent.approval_resolved").await;
    assert_eq!(resolved["approval_id"], id);
    assert_eq!(resolved["resolution"]["decision"], "allow_once");
    let lines = ws.run_output(&run_id).await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    let result = lines.iter().find(|l| l["kind"] == "result").unwrap();
    assert_eq!(result["event"]["result"], "allowed: echo hi > out.txt");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "hi\n"
    );
    // The log tells who asked and who answered.
    let log = kinds(&lines);
    assert!(log.contains(&"control_request"), "{log:?}");
    let asked = lines
        .iter()
        .find(|l| l["kind"] == "approval_requested")
        .unwrap();
    assert_eq!(asked["event"]["approval_id"], id);
    let answered_line = lines
        .iter()
        .find(|l| l["kind"] == "approval_resolved")
        .unwrap();
    assert_eq!(answered_line["event"]["resolution"]["by"]["kind"], "client");

    // The first answer won; a later one and an unknown id get their own kinds.
    let late = ws
        .err(
            "agent.approvals.answer",
            json!({"approval_id": id, "decision": "reject_once"}),
        )
        .await;
    assert_eq!(late["data"]["kind"], "APPROVAL_RESOLVED");
    assert_eq!(late["data"]["resolution"]["outcome"], "allowed");
    let unknown = ws
        .err(
            "agent.approvals.answer",
            json!({"approval_id": "ap_nope", "decision": "allow_once"}),
        )
        .await;
    assert_eq!(unknown["data"]["kind"], "APPROVAL_NOT_FOUND");
    assert_eq!(
        ws.ok("agent.approvals.list", json!({})).await["approvals"],
        json!([])
    );
    hub.stop().await;
}

#[tokio::test]
async fn an_edited_input_runs_as_edited_and_a_denial_reaches_the_agent() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;

    let run_id = run(&mut ws, &project_id, "ask Bash echo hi > out.txt").await;
    let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
    let bad = ws
        .err(
            "agent.approvals.answer",
            json!({"approval_id": id, "decision": "allow_once", "updated_input": "rm -rf /"}),
        )
        .await;
    assert_eq!(bad["data"]["kind"], "INVALID_PARAMS");
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": id, "decision": "allow_once",
               "updated_input": {"command": "echo edited > edited.txt"}}),
    )
    .await;
    let lines = ws.run_output(&run_id).await;
    let result = lines.iter().find(|l| l["kind"] == "result").unwrap();
    assert_eq!(
        result["event"]["result"],
        "allowed: echo edited > edited.txt"
    );
    assert!(dir.path().join("edited.txt").exists());
    assert!(!dir.path().join("out.txt").exists());

    let run_id = run(&mut ws, &project_id, "ask Bash echo hi > out.txt").await;
    let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": id, "decision": "reject_once", "message": "not on main"}),
    )
    .await;
    let resolved = resolved(&mut ws, &id).await;
    assert_eq!(resolved["resolution"]["outcome"], "denied");
    assert_eq!(resolved["resolution"]["message"], "not on main");
    let lines = ws.run_output(&run_id).await;
    let result = lines.iter().find(|l| l["kind"] == "result").unwrap();
    assert_eq!(result["event"]["result"], "denied: not on main");
    assert!(!dir.path().join("out.txt").exists());

    // Deny and interrupt ends the turn.
    let run_id = run(&mut ws, &project_id, "ask Bash echo hi > out.txt").await;
    let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": id, "decision": "reject_once", "interrupt": true}),
    )
    .await;
    let lines = ws.run_output(&run_id).await;
    let ended = lines.iter().find(|l| l["kind"] == "turn_ended").unwrap();
    assert_eq!(ended["event"]["stop_reason"], "cancelled");
    assert_eq!(lines.last().unwrap()["event"]["status"], "failed");
    assert!(!dir.path().join("out.txt").exists());
    hub.stop().await;
}

#[tokio::test]
async fn always_for_the_project_answers_the_next_request_also_after_a_restart() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "ask Bash touch one").await;
    let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
    let answered = ws
        .ok(
            "agent.approvals.answer",
            json!({"approval_id": id, "decision": "allow_always", "scope": "project"}),
        )
        .await;
    assert_eq!(answered["resolution"]["scope"], "project");
    ws.run_output(&run_id).await;
    assert!(dir.path().join("one").exists());

    let answered_by_rule = async |ws: &mut Ws, file: &str| {
        let run_id = run(ws, &project_id, &format!("ask Bash touch {file}")).await;
        let lines = ws.run_output(&run_id).await;
        assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
        let resolved = lines
            .iter()
            .find(|l| l["kind"] == "approval_resolved")
            .expect("answered in the log");
        assert_eq!(resolved["event"]["resolution"]["by"]["kind"], "rule");
        assert_eq!(resolved["event"]["resolution"]["by"]["scope"], "project");
        assert!(!kinds(&lines).contains(&"approval_requested"), "{lines:?}");
    };
    answered_by_rule(&mut ws, "two").await;
    assert!(dir.path().join("two").exists());
    drop(ws);

    let hub = hub.restart().await;
    let mut ws = hub.client().await;
    ws.subscribe(&project_id).await;
    answered_by_rule(&mut ws, "three").await;
    assert!(dir.path().join("three").exists());
    // Nobody was asked.
    assert!(
        ws.notification_within("agent.approval_requested", Duration::from_millis(200))
            .await
            .is_none()
    );
    hub.stop().await;
}

#[tokio::test]
async fn read_only_tools_never_ask_and_always_ask_tools_take_no_rule() {
    let hub = TestHub::start_with(|c| {
        c.config.agent.approvals.always_ask = vec!["Write".into()];
    })
    .await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "ask Read README.md").await;
    let lines = ws.run_output(&run_id).await;
    let resolved = lines
        .iter()
        .find(|l| l["kind"] == "approval_resolved")
        .unwrap();
    assert_eq!(resolved["event"]["resolution"]["by"]["kind"], "policy");
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");

    run(&mut ws, &project_id, "ask Write notes.md").await;
    let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
    let refused = ws
        .err(
            "agent.approvals.answer",
            json!({"approval_id": id, "decision": "allow_always", "scope": "project"}),
        )
        .await;
    assert_eq!(refused["data"]["kind"], "INVALID_PARAMS");
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": id, "decision": "allow_once"}),
    )
    .await;
    hub.stop().await;
}

#[tokio::test]
async fn nobody_answering_denies_with_the_timeout_message() {
    let hub = TestHub::start_with(|c| {
        c.config.agent.approvals.timeout_s = 1;
        c.config.agent.approvals.timeout_message = "nobody is here".into();
    })
    .await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "ask Bash touch late").await;
    let resolved = ws.notification("agent.approval_resolved").await;
    assert_eq!(resolved["resolution"]["by"]["kind"], "timeout");
    assert_eq!(resolved["resolution"]["outcome"], "denied");
    let lines = ws.run_output(&run_id).await;
    let result = lines.iter().find(|l| l["kind"] == "result").unwrap();
    assert_eq!(result["event"]["result"], "denied: nobody is here");
    assert!(!dir.path().join("late").exists());
    hub.stop().await;
}

#[tokio::test]
async fn the_cli_dying_with_an_approval_pending_withdraws_it_and_fails_the_run() {
    let record = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(recording(record.path())).await;
    let mut ws = hub.client().await;
    let mut other = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "ask Bash touch never").await;
    let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
    assert_eq!(
        other.notification("agent.approval_requested").await["approval"]["id"],
        id
    );
    let pid: i32 = std::fs::read_to_string(record.path().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for client in [&mut ws, &mut other] {
        let resolved = client.notification("agent.approval_resolved").await;
        assert_eq!(resolved["approval_id"], id);
        assert_eq!(resolved["resolution"]["outcome"], "withdrawn");
        assert_eq!(resolved["resolution"]["message"], "the agent exited");
    }
    let lines = ws.run_output(&run_id).await;
    let finished = &lines.last().unwrap()["event"];
    assert_eq!(finished["status"], "failed");
    assert_eq!(finished["reason"], "the agent was ended by signal 9");
    let late = ws
        .err(
            "agent.approvals.answer",
            json!({"approval_id": id, "decision": "allow_once"}),
        )
        .await;
    assert_eq!(late["data"]["kind"], "APPROVAL_RESOLVED");
    assert_eq!(
        ws.ok("agent.approvals.list", json!({})).await["approvals"],
        json!([])
    );
    hub.stop().await;
}

#[tokio::test]
async fn malformed_control_lines_are_logged_and_the_session_goes_on() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "malformed").await;
    let requested = ws.notification("agent.approval_requested").await;
    assert_eq!(requested["approval"]["input"]["command"], "echo ok");
    // Only the well-formed request waits.
    let listed = ws.ok("agent.approvals.list", json!({})).await;
    assert_eq!(listed["approvals"].as_array().unwrap().len(), 1);
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": requested["approval"]["id"], "decision": "allow_once"}),
    )
    .await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    // Every line is in the log, the broken ones too.
    let control = lines
        .iter()
        .filter(|l| l["kind"] == "control_request")
        .count();
    assert_eq!(control, 5, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["text"] == "{\"type\":\"control_request\", \"truncated")
    );
    hub.stop().await;
}

#[tokio::test]
async fn of_two_clients_answering_at_once_exactly_one_wins() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let mut a = hub.client().await;
    let mut b = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    for round in 0..5 {
        let file = format!("f{round}");
        let run_id = run(&mut ws, &project_id, &format!("ask Bash touch {file}")).await;
        let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
        let allow = json!({"jsonrpc": "2.0", "id": 900, "method": "agent.approvals.answer",
                           "params": {"approval_id": id, "decision": "allow_once"}});
        let deny = json!({"jsonrpc": "2.0", "id": 900, "method": "agent.approvals.answer",
                          "params": {"approval_id": id, "decision": "reject_once"}});
        // Both frames are on the wire before either answer is read.
        a.send_raw(&allow.to_string()).await;
        b.send_raw(&deny.to_string()).await;
        let (ra, rb) = (a.response(900).await, b.response(900).await);
        let wins = [&ra, &rb]
            .iter()
            .filter(|r| r.get("result").is_some())
            .count();
        assert_eq!(wins, 1, "{ra} {rb}");
        let loser = if ra.get("error").is_some() { &ra } else { &rb };
        assert_eq!(loser["error"]["data"]["kind"], "APPROVAL_RESOLVED");
        let lines = ws.run_output(&run_id).await;
        let result = lines.iter().find(|l| l["kind"] == "result").unwrap();
        let allowed = ra.get("result").is_some();
        assert_eq!(
            result["event"]["result"]
                .as_str()
                .unwrap()
                .starts_with("allowed"),
            allowed
        );
        assert_eq!(dir.path().join(&file).exists(), allowed);
    }
    hub.stop().await;
}

#[tokio::test]
async fn follow_ups_queue_steer_and_interrupt_a_live_session() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    // No session: the message starts one.
    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "work 25"}),
        )
        .await;
    assert_eq!(sent["delivery"], "started");
    let run_id = sent["run_id"].as_str().unwrap().to_string();
    // While the turn works: queue two, edit one, cancel the other, steer one.
    let queued = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "ask Bash touch first", "mode": "queue"}),
        )
        .await;
    assert_eq!(queued["delivery"], "queued");
    assert_eq!(queued["run_id"], run_id);
    let first = queued["message"]["id"].as_str().unwrap().to_string();
    let second = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "success", "mode": "queue"}),
        )
        .await["message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = ws
        .ok("agent.queue.list", json!({"project_id": project_id}))
        .await;
    assert_eq!(listed["messages"].as_array().unwrap().len(), 2);
    assert_eq!(listed["messages"][0]["id"], first);
    let edited = ws
        .ok(
            "agent.queue.update",
            json!({"id": first, "text": "ask Bash touch edited"}),
        )
        .await;
    assert_eq!(edited["message"]["text"], "ask Bash touch edited");
    let cancelled = ws.ok("agent.queue.cancel", json!({"id": second})).await;
    assert_eq!(cancelled["message"]["state"], "cancelled");
    let again = ws.err("agent.queue.cancel", json!({"id": second})).await;
    assert_eq!(again["data"]["kind"], "MESSAGE_NOT_QUEUED");
    assert_eq!(again["data"]["state"], "cancelled");
    let steered = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "also this", "mode": "steer"}),
        )
        .await;
    assert_eq!(steered["delivery"], "steered");

    // The steer lands in the running turn; the queued one is its own turn after it.
    let results = results_until_turn(&mut ws, &run_id, 1).await;
    assert_eq!(results[0]["result"], "worked; heard: also this");
    let started = ws.output_of_kind("turn_started").await;
    assert_eq!(started["event"]["turn"], 2);
    assert_eq!(started["event"]["source"], "follow_up");
    assert_eq!(started["event"]["message_id"], first);
    let delivered = loop {
        let change = ws.notification("agent.queue_changed").await;
        if change["message"]["state"] == "delivered" {
            break change;
        }
    };
    assert_eq!(delivered["message"]["id"], first);
    let edit_late = ws
        .err("agent.queue.update", json!({"id": first, "text": "x"}))
        .await;
    assert_eq!(edit_late["data"]["kind"], "MESSAGE_NOT_QUEUED");

    // An interrupt while an approval waits withdraws it and runs the new message next.
    let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
    let interrupting = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "success", "mode": "interrupt"}),
        )
        .await;
    assert_eq!(interrupting["delivery"], "interrupting");
    let resolved = ws.notification("agent.approval_resolved").await;
    assert_eq!(resolved["approval_id"], id);
    assert_eq!(resolved["resolution"]["outcome"], "withdrawn");
    assert_eq!(
        resolved["resolution"]["message"],
        "the turn was interrupted"
    );
    let results = results_until_turn(&mut ws, &run_id, 3).await;
    assert_eq!(results.last().unwrap()["result"], "Done.");
    assert!(!dir.path().join("edited").exists());
    assert_eq!(
        ws.ok("agent.approvals.list", json!({})).await["approvals"],
        json!([])
    );

    // The session is open and idle: no turn to interrupt, a message starts the next.
    let none = ws
        .err("agent.interrupt", json!({"project_id": project_id}))
        .await;
    assert_eq!(none["data"]["kind"], "NOT_RUNNING");
    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "work 100"}),
        )
        .await;
    assert_eq!(sent["delivery"], "started");
    assert_eq!(sent["run_id"], run_id);
    ws.output_of_kind("turn_started").await;
    let interrupted = ws
        .ok("agent.interrupt", json!({"project_id": project_id}))
        .await;
    assert_eq!(interrupted["run_id"], run_id);
    let ended = ws.output_of_kind("turn_ended").await;
    assert_eq!(ended["event"]["stop_reason"], "cancelled");
    ws.ok("agent.kill", json!({"project_id": project_id})).await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "killed");
    hub.stop().await;
}

#[tokio::test]
async fn an_idle_session_ends_and_the_next_message_resumes_it() {
    let hub = TestHub::start_with(|c| c.config.agent.session_idle_s = 1).await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "success"}),
        )
        .await;
    let run_id = sent["run_id"].as_str().unwrap().to_string();
    let lines = ws.run_output(&run_id).await;
    let kinds = kinds(&lines);
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["turn_ended", "session_idle", "run_finished"]
    );
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    let session =
        lines.iter().find(|l| l["kind"] == "system").unwrap()["event"]["session_id"].clone();
    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "success"}),
        )
        .await;
    assert_ne!(sent["run_id"], run_id);
    let lines = ws.run_output(sent["run_id"].as_str().unwrap()).await;
    assert_eq!(lines[0]["event"]["resume"], session);
    hub.stop().await;
}

#[tokio::test]
async fn queued_follow_ups_survive_a_restart_and_run_in_order() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "work 500").await;
    ws.output_of_kind("turn_started").await;
    let queued = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "ask Read a", "mode": "queue"}),
        )
        .await;
    assert_eq!(queued["run_id"], run_id);
    drop(ws);
    let hub = hub.restart().await;
    let mut ws = hub.client().await;
    ws.subscribe(&project_id).await;
    let listed = ws
        .ok("agent.queue.list", json!({"project_id": project_id}))
        .await;
    assert_eq!(listed["messages"][0]["text"], "ask Read a");
    // A new message goes behind it: the old one is the first turn.
    let sent = ws
        .ok(
            "agent.send",
            json!({"project_id": project_id, "text": "ask Bash touch b", "mode": "queue"}),
        )
        .await;
    assert_eq!(sent["delivery"], "queued");
    let run_id = sent["run_id"].as_str().unwrap().to_string();
    let results = results_until_turn(&mut ws, &run_id, 1).await;
    assert_eq!(results[0]["result"], "allowed: a");
    let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": id, "decision": "allow_once"}),
    )
    .await;
    results_until_turn(&mut ws, &run_id, 2).await;
    assert!(dir.path().join("b").exists());
    assert_eq!(
        ws.ok("agent.queue.list", json!({"project_id": project_id}))
            .await["messages"],
        json!([])
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_cli_lists_and_answers_approvals() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "ask Bash touch cli.txt").await;
    let id = ws.notification("agent.approval_requested").await["approval"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = hub.cli(&["approvals"]).await;
    assert!(listed.status.success(), "{listed:?}");
    let table = String::from_utf8(listed.stdout).unwrap();
    assert!(
        table.contains(&id) && table.contains("touch cli.txt"),
        "{table}"
    );
    let denied = hub
        .cli(&["approvals", "deny", &id, "--message", "not from here"])
        .await;
    assert!(denied.status.success(), "{denied:?}");
    assert!(
        String::from_utf8(denied.stdout)
            .unwrap()
            .starts_with("denied")
    );
    let again = hub.cli(&["approvals", "allow", &id]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8(again.stderr)
            .unwrap()
            .contains("already denied")
    );
    let lines = ws.run_output(&run_id).await;
    let result = lines.iter().find(|l| l["kind"] == "result").unwrap();
    assert_eq!(result["event"]["result"], "denied: not from here");
    assert!(!dir.path().join("cli.txt").exists());
    hub.stop().await;
}

#[tokio::test]
async fn agent_run_on_a_terminal_asks_and_runs_what_the_person_allowed() {
    use tokio::io::AsyncWriteExt;
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    // `script` runs the command on a pseudo-terminal and relays our pipe to it.
    let command = format!(
        "{} --data-dir {} --secret-store file agent run {project_id} 'ask Bash echo typed > pty.txt'",
        crate::util::hub_bin().display(),
        hub.dir.path().display(),
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script(1) runs");
    let mut stdin = child.stdin.take().unwrap();
    // "e" edits the command, then the edited one is typed; the terminal keeps the
    // lines until the CLI asks.
    stdin
        .write_all(b"e\necho edited > pty.txt\n")
        .await
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(60), async {
        let out = child.wait_with_output().await.unwrap();
        drop(stdin);
        out
    })
    .await
    .expect("the CLI ends");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("Bash wants to run: echo typed > pty.txt"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pty.txt")).unwrap(),
        "edited\n"
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_desktop_app_hears_of_an_approval_with_the_project_the_tool_and_the_command() {
    let hub = TestHub::start().await;
    let mut events = hub.hub().events();
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    let name = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await["name"]
        .as_str()
        .unwrap()
        .to_string();
    run(&mut ws, &project_id, "ask Bash echo desktop").await;
    let requested = ws.notification("agent.approval_requested").await;
    let id = requested["approval"]["id"].as_str().unwrap().to_string();
    let event = loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("a desktop event in time")
            .expect("the event channel is open");
        if matches!(
            event,
            semantest_hub::hub::HubEvent::ApprovalRequested { .. }
        ) {
            break event;
        }
    };
    assert_eq!(
        event,
        semantest_hub::hub::HubEvent::ApprovalRequested {
            project_id: project_id.clone(),
            project_name: name,
            approval_id: id.clone(),
            tool_name: "Bash".into(),
            target: Some("echo desktop".into()),
        }
    );
    ws.ok(
        "agent.approvals.answer",
        json!({"approval_id": id, "decision": "reject_once", "interrupt": true}),
    )
    .await;
}

#[tokio::test]
async fn a_hundred_approvals_in_one_turn_are_each_answered_and_timed() {
    let record = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(recording(record.path())).await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "asks 100 Bash true").await;
    for _ in 0..100 {
        let id = ws.notification("agent.approval_requested").await["approval"]["id"].clone();
        ws.ok(
            "agent.approvals.answer",
            json!({"approval_id": id, "decision": "allow_once"}),
        )
        .await;
    }
    let lines = ws.run_output(&run_id).await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    let resolved = lines
        .iter()
        .filter(|l| l["kind"] == "approval_resolved")
        .count();
    assert_eq!(resolved, 100);
    // From the request on the agent's stdout to its answer read from its stdin: the
    // hub reading, storing and announcing the line, a client answering, the hub writing.
    let mut samples: Vec<Duration> = std::fs::read_to_string(record.path().join("latency"))
        .unwrap()
        .lines()
        .map(|line| {
            let (asked, read) = line.split_once(' ').unwrap();
            let (asked, read): (f64, f64) = (asked.parse().unwrap(), read.parse().unwrap());
            Duration::from_secs_f64((read - asked).max(0.0))
        })
        .collect();
    assert_eq!(samples.len(), 100);
    let p50 = crate::util::quantile(&mut samples, 0.5);
    let p99 = crate::util::quantile(&mut samples, 0.99);
    crate::util::timing_target(
        "approval round trip (fake CLI, one client answering)",
        &format!("p50 {p50:?}, p99 {p99:?}"),
        "p99 < 100 ms",
        p99 < Duration::from_millis(100),
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_projects_own_policy_applies_to_it_alone_and_survives_a_restart() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    let (other_id, _other_dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let policy = ws
        .ok("agent.policy.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(policy["custom"], false);
    assert_eq!(policy["timeout_s"], 600);
    let bad = ws
        .err(
            "agent.policy.set",
            json!({"project_id": project_id, "timeout_s": 0}),
        )
        .await;
    assert_eq!(bad["data"]["kind"], "INVALID_PARAMS");
    assert_eq!(bad["data"]["param"], "timeout_s", "{bad}");
    let bad = ws
        .err(
            "agent.policy.set",
            json!({"project_id": project_id, "always_ask": ["Bash", ""]}),
        )
        .await;
    assert_eq!(bad["data"]["param"], "always_ask", "{bad}");
    let set = ws
        .ok(
            "agent.policy.set",
            json!({"project_id": project_id, "never_ask": ["Read", "Bash"], "timeout_s": 30}),
        )
        .await;
    assert_eq!(set["custom"], true);
    assert_eq!(set["never_ask"], json!(["Read", "Bash"]));
    assert_eq!(set["always_ask"], json!([]));
    drop(ws);
    let hub = hub.restart().await;
    let mut ws = hub.client().await;
    ws.subscribe(&project_id).await;
    let policy = ws
        .ok("agent.policy.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(policy["timeout_s"], 30);
    let run_id = run(&mut ws, &project_id, "ask Bash touch free").await;
    let lines = ws.run_output(&run_id).await;
    let resolved = lines
        .iter()
        .find(|l| l["kind"] == "approval_resolved")
        .unwrap();
    assert_eq!(resolved["event"]["resolution"]["by"]["kind"], "policy");
    assert!(dir.path().join("free").exists());
    // The other project still follows the config.
    let other = ws
        .ok("agent.policy.get", json!({"project_id": other_id}))
        .await;
    assert_eq!(other["custom"], false);
    assert!(
        !other["never_ask"]
            .as_array()
            .unwrap()
            .contains(&json!("Bash"))
    );
    // Nothing but the project: back to the config.
    let reset = ws
        .ok("agent.policy.set", json!({"project_id": project_id}))
        .await;
    assert_eq!(reset["custom"], false);
    run(&mut ws, &project_id, "ask Bash touch asked").await;
    let requested = ws.notification("agent.approval_requested").await;
    assert_eq!(requested["approval"]["input"]["command"], "touch asked");
    hub.stop().await;
}
