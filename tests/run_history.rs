//! A project's history over the wire: `project.runs` (status, duration, cost, prompt,
//! paging) and `messages.list` with `q` (full-text search in the output).

use serde_json::{Value, json};

use crate::util::{TestHub, Ws};

/// Starts a run of `prompt` and waits for its end; returns its id.
async fn run_to_end(ws: &mut Ws, project_id: &str, prompt: &str) -> String {
    let started = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": prompt}),
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_string();
    ws.run_output(&run_id).await;
    run_id
}

#[tokio::test]
async fn project_runs_lists_status_duration_cost_and_prompt_newest_first() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let ok = run_to_end(&mut ws, &project_id, "success").await;
    let failed = run_to_end(&mut ws, &project_id, "error").await;

    let page = ws
        .ok("project.runs", json!({"project_id": project_id}))
        .await;
    assert_eq!(page["has_more"], false, "{page}");
    let runs = page["runs"].as_array().unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [failed.as_str(), ok.as_str()], "newest first");
    let (last, first) = (&runs[0], &runs[1]);
    assert_eq!(
        (&first["status"], &first["prompt"], &first["cost_usd"]),
        (&json!("succeeded"), &json!("success"), &json!(0.0123))
    );
    assert_eq!(first["prompt_truncated"], false);
    assert!(first["duration_ms"].as_i64().unwrap() >= 0, "{first}");
    assert!(
        first["ended_at"].is_string() && first["reason"].is_null(),
        "{first}"
    );
    assert_eq!(last["status"], "failed");
    assert!(
        last["reason"].as_str().unwrap().contains("fake failure"),
        "{last}"
    );

    // Paging: one at a time, then the older one after the first page's last id.
    let one = ws
        .ok(
            "project.runs",
            json!({"project_id": project_id, "limit": 1}),
        )
        .await;
    assert_eq!(
        (one["runs"][0]["id"].as_str(), &one["has_more"]),
        (Some(failed.as_str()), &json!(true))
    );
    let next = ws
        .ok(
            "project.runs",
            json!({"project_id": project_id, "limit": 1, "before": failed}),
        )
        .await;
    assert_eq!(
        (next["runs"][0]["id"].as_str(), &next["has_more"]),
        (Some(ok.as_str()), &json!(false))
    );

    for (params, kind) in [
        (json!({"project_id": "nope"}), "PROJECT_NOT_FOUND"),
        (
            json!({"project_id": project_id, "limit": 0}),
            "INVALID_PARAMS",
        ),
        (
            json!({"project_id": project_id, "limit": 201}),
            "INVALID_PARAMS",
        ),
        (
            json!({"project_id": project_id, "bogus": 1}),
            "INVALID_PARAMS",
        ),
    ] {
        let err = ws.err("project.runs", params.clone()).await;
        assert_eq!(err["data"]["kind"], kind, "{params}: {err}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn messages_list_q_searches_the_output() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let ok = run_to_end(&mut ws, &project_id, "success").await;
    let failed = run_to_end(&mut ws, &project_id, "error").await;
    let search = |q: &str| json!({"project_id": project_id, "q": q});
    let lines = |page: &Value| -> Vec<(String, String)> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["run_id"].as_str().unwrap_or_default().to_string(),
                    l["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // A word of the agent's text, whatever its case: only the lines that hold it.
    let found = ws.ok("messages.list", search("WORKING")).await;
    assert_eq!(
        lines(&found),
        [(ok.clone(), "assistant".to_string())],
        "{found}"
    );
    // Every word must appear; with kinds, only those kinds.
    let found = ws
        .ok(
            "messages.list",
            json!({"project_id": project_id, "q": "fake failure", "kinds": ["result"]}),
        )
        .await;
    assert_eq!(
        lines(&found),
        [(failed.clone(), "result".to_string())],
        "{found}"
    );
    let none = ws.ok("messages.list", search("working failure")).await;
    assert!(lines(&none).is_empty(), "{none}");
    // FTS5 operators are only text.
    let none = ws.ok("messages.list", search("working OR \"x")).await;
    assert!(lines(&none).is_empty(), "{none}");
    for q in ["", "   ", &"x".repeat(257)] {
        let err = ws.err("messages.list", search(q)).await;
        assert_eq!(err["data"]["kind"], "INVALID_PARAMS", "{q:?}: {err}");
    }
    hub.stop().await;
}

/// Each interactive run's end reaches the desktop app's event stream (which shows it as
/// a notification), with the project's name, the state it left and the reason.
#[tokio::test]
async fn a_run_that_ends_is_announced_to_the_desktop() {
    use semantest_hub::hub::HubEvent;
    let hub = TestHub::start().await;
    let mut events = hub.hub().events();
    let mut ws = hub.client().await;
    let dir = tempfile::tempdir().unwrap();
    let project = ws
        .ok(
            "project.create",
            json!({"path": dir.path(), "name": "notified"}),
        )
        .await;
    let project_id = project["id"].as_str().unwrap().to_string();
    ws.subscribe(&project_id).await;
    let mut next_end = async || loop {
        let event = tokio::time::timeout(crate::util::WAIT, events.recv())
            .await
            .expect("a desktop event within the wait")
            .unwrap();
        if let HubEvent::RunFinished {
            project_name,
            run_id,
            state,
            reason,
            ..
        } = event
        {
            return (project_name, run_id, state.as_str(), reason);
        }
    };
    let ok = run_to_end(&mut ws, &project_id, "success").await;
    assert_eq!(next_end().await, ("notified".into(), ok, "idle", None));
    let failed = run_to_end(&mut ws, &project_id, "error").await;
    let (name, run, state, reason) = next_end().await;
    assert_eq!((name.as_str(), run, state), ("notified", failed, "failed"));
    assert!(reason.unwrap().contains("fake failure"));
    // A new session changes the state without a run: no notification.
    ws.ok("agent.new_session", json!({"project_id": project_id}))
        .await;
    let started = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": "hang"}),
        )
        .await;
    ws.ok("agent.kill", json!({"project_id": project_id})).await;
    let (_, run, state, _) = next_end().await;
    assert_eq!(
        (run.as_str(), state),
        (started["run_id"].as_str().unwrap(), "killed")
    );
    hub.stop().await;
}
