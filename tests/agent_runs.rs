use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{TestHub, process_alive, run, run_with_grandchild};

fn kinds(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["kind"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_successful_run_streams_every_line_and_records_the_result() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "success").await;
    assert_eq!(ws.notification("project.state").await["state"], "running");
    let lines = ws.run_output(&run_id).await;
    assert_eq!(
        kinds(&lines),
        [
            "run_started",
            "turn_started",
            "system",
            "assistant",
            "assistant",
            "user",
            "assistant",
            "result",
            "turn_ended",
            "run_finished"
        ]
    );
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=10).collect::<Vec<_>>(),
        "seq numbers are gapless from 1"
    );
    // The stream-json event is forwarded as an object, tool calls included.
    assert_eq!(lines[4]["event"]["message"]["content"][0]["name"], "Write");
    assert_eq!(lines[7]["event"]["total_cost_usd"], 0.0123);
    // One turn: the session's lines frame it.
    assert_eq!(lines[1]["event"]["turn"], 1);
    assert_eq!(lines[1]["event"]["source"], "prompt");
    assert_eq!(lines[8]["event"]["stop_reason"], "end_turn");
    assert_eq!(lines[9]["event"]["status"], "succeeded");
    let state = ws.notification("project.state").await;
    assert_eq!(state["state"], "idle");
    let session = lines[2]["event"]["session_id"].as_str().unwrap();
    assert_eq!(state["session_id"], session);
    // The run happened in the project directory.
    assert_eq!(
        lines[2]["event"]["cwd"],
        dir.path().canonicalize().unwrap().display().to_string()
    );

    // The log holds the same lines.
    let stored = ws
        .ok("messages.list", json!({"project_id": project_id}))
        .await;
    assert_eq!(stored["messages"].as_array().unwrap().len(), 10);
    assert_eq!(stored["messages"][7], lines[7]);
    let results = ws
        .ok(
            "messages.list",
            json!({"project_id": project_id, "kinds": ["result"]}),
        )
        .await;
    assert_eq!(results["messages"].as_array().unwrap().len(), 1);

    // The next run resumes the session; new_session forgets it.
    let run_id = run(&mut ws, &project_id, "success").await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(lines[0]["event"]["resume"], session);
    assert_eq!(lines[2]["event"]["session_id"], session);
    let project = ws
        .ok("agent.new_session", json!({"project_id": project_id}))
        .await;
    assert!(project["session_id"].is_null());
    let run_id = run(&mut ws, &project_id, "success").await;
    let lines = ws.run_output(&run_id).await;
    assert!(lines[0]["event"]["resume"].is_null());
    assert_ne!(lines[2]["event"]["session_id"], session);
    hub.stop().await;
}

#[tokio::test]
async fn error_results_crashes_and_odd_output_are_recorded() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;

    let run_id = run(&mut ws, &project_id, "error").await;
    let lines = ws.run_output(&run_id).await;
    let finished = &lines.last().unwrap()["event"];
    assert_eq!(finished["status"], "failed");
    assert_eq!(finished["reason"], "API Error: fake failure");
    assert_eq!(
        ws.ok("project.get", json!({"project_id": project_id}))
            .await["state"],
        "failed"
    );

    let run_id = run(&mut ws, &project_id, "nonjson").await;
    let lines = ws.run_output(&run_id).await;
    let text = lines
        .iter()
        .find(|l| l["kind"] == "text")
        .expect("a text line");
    assert_eq!(text["text"], "this line is not JSON");
    assert!(text.get("event").is_none());
    let stderr = lines
        .iter()
        .find(|l| l["kind"] == "stderr")
        .expect("a stderr line");
    assert_eq!(stderr["stream"], "stderr");
    assert_eq!(stderr["text"], "warning: something on stderr");
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");

    let run_id = run(&mut ws, &project_id, "crash").await;
    let lines = ws.run_output(&run_id).await;
    let finished = &lines.last().unwrap()["event"];
    assert_eq!(finished["status"], "failed");
    assert!(
        finished["reason"].as_str().unwrap().contains("signal"),
        "{finished}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_one_mebibyte_line_arrives_whole() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "bigline").await;
    let lines = ws.run_output(&run_id).await;
    let big = lines.iter().find(|l| l["kind"] == "assistant").unwrap();
    let text = big["event"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(text.len(), 1 << 20);
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    let stored = ws
        .ok(
            "messages.list",
            json!({"project_id": project_id, "kinds": ["assistant"]}),
        )
        .await;
    assert_eq!(
        stored["messages"][0]["event"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .len(),
        1 << 20
    );
    hub.stop().await;
}

#[tokio::test]
async fn kill_ends_the_whole_process_group_and_a_second_run_is_busy() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let (run_id, grandchild) = run_with_grandchild(&mut ws, &project_id, dir.path()).await;
    assert!(process_alive(grandchild));

    let busy = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "success"}),
        )
        .await;
    assert_eq!(busy["data"]["kind"], "PROJECT_BUSY");
    let busy = ws
        .err("project.delete", json!({"project_id": project_id}))
        .await;
    assert_eq!(busy["data"]["kind"], "PROJECT_BUSY");

    ws.ok("agent.kill", json!({"project_id": project_id})).await;
    let lines = ws.run_output(&run_id).await;
    let finished = &lines.last().unwrap()["event"];
    assert_eq!(finished["status"], "killed");
    assert!(
        !process_alive(grandchild),
        "the background grandchild died with the run"
    );
    assert_eq!(
        ws.ok("project.get", json!({"project_id": project_id}))
            .await["state"],
        "killed"
    );
    let not_running = ws
        .err("agent.kill", json!({"project_id": project_id}))
        .await;
    assert_eq!(not_running["data"]["kind"], "NOT_RUNNING");
    hub.stop().await;
}

#[tokio::test]
async fn a_run_that_ignores_sigint_and_sigterm_is_still_killed() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "ignoreint").await;
    ws.output_of_kind("system").await;
    let started = Instant::now();
    ws.ok("agent.kill", json!({"project_id": project_id})).await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "killed");
    // SIGINT and SIGTERM are ignored: it takes both grace periods, then SIGKILL.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_run_past_its_timeout_is_stopped() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let started = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": "hang", "timeout_s": 1}),
        )
        .await;
    let lines = ws.run_output(started["run_id"].as_str().unwrap()).await;
    let finished = &lines.last().unwrap()["event"];
    assert_eq!(finished["status"], "timed_out");
    assert_eq!(finished["reason"], "timed out after 1 s");
    let state = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(state["state"], "failed");
    let too_long = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "hang", "timeout_s": 10_000_000}),
        )
        .await;
    assert_eq!(too_long["data"]["kind"], "INVALID_PARAMS");
    hub.stop().await;
}

#[tokio::test]
async fn a_missing_cli_is_reported_not_crashed_on() {
    let hub =
        TestHub::start_with(|c| c.config.agent.cli_path = Some("/nonexistent/claude".into())).await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    let error = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "success"}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "AGENT_UNAVAILABLE");
    let health: Value = reqwest::get(hub.http("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["agent_cli"]["found"], false);
    assert_eq!(
        ws.ok("project.get", json!({"project_id": project_id}))
            .await["state"],
        "idle"
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_next_run_starts_as_soon_as_the_last_one_s_end_is_heard() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    // Several rounds, each starting the next run the moment the last one's
    // `run_finished` line arrives: the project is free by then, never `PROJECT_BUSY`.
    let mut run_id = run(&mut ws, &project_id, "success").await;
    for _ in 0..5 {
        let lines = ws.run_output(&run_id).await;
        assert_eq!(lines.last().unwrap()["kind"], "run_finished");
        let started = ws
            .call(
                "agent.run",
                json!({"project_id": project_id, "prompt": "success"}),
            )
            .await;
        assert!(started.get("error").is_none(), "{started}");
        run_id = started["result"]["run_id"].as_str().unwrap().to_string();
    }
    ws.run_output(&run_id).await;
    hub.stop().await;
}
