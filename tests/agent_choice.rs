//! The agent choice with the fake Claude Code CLI: `project.configure {agent, model}`,
//! resume kept per project and per agent, `agent.run {agent}`, the CLIs in `/health`.

use serde_json::json;

use crate::util::{TestHub, run};

#[tokio::test]
async fn project_configure_stores_the_agent_and_model_and_refuses_bad_values() {
    let hub = TestHub::start_with(|c| {
        c.config.agent.codex.cli_path = Some("/nonexistent/codex".into());
    })
    .await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(
        (&project["agent"], &project["model"], &project["sessions"]),
        (&json!("claude"), &json!(null), &json!({}))
    );

    let configured = ws
        .ok(
            "project.configure",
            json!({"project_id": project_id, "agent": "codex", "model": "gpt-5"}),
        )
        .await;
    assert_eq!(configured["agent"], "codex");
    assert_eq!(configured["model"], "gpt-5");
    assert_eq!(configured["agent_workers"], 0);
    let listed = ws.ok("project.list", json!({})).await;
    let shown = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == project_id)
        .unwrap()
        .clone();
    assert_eq!(
        (&shown["agent"], &shown["model"]),
        (&json!("codex"), &json!("gpt-5"))
    );

    for (params, why) in [
        (json!({"project_id": project_id}), "nothing to set"),
        (
            json!({"project_id": project_id, "agent": "cursor"}),
            "an unknown agent",
        ),
        (
            json!({"project_id": project_id, "model": "--yolo"}),
            "an option-shaped model",
        ),
        (
            json!({"project_id": project_id, "model": "m".repeat(201)}),
            "a long model",
        ),
        (
            json!({"project_id": project_id, "model": "a\nb"}),
            "a control character",
        ),
    ] {
        let err = ws.err("project.configure", params).await;
        assert_eq!(err["data"]["kind"], "INVALID_PARAMS", "{why}: {err}");
    }
    // Agent workers need the project's agent's CLI, which is missing here.
    let err = ws
        .err(
            "project.configure",
            json!({"project_id": project_id, "agent_workers": 1}),
        )
        .await;
    assert_eq!(err["data"]["kind"], "AGENT_UNAVAILABLE", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("agent.codex.cli_path"),
        "{err}"
    );
    // So does a run of it, which leaves the project as it was.
    let err = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "hello"}),
        )
        .await;
    assert_eq!(err["data"]["kind"], "AGENT_UNAVAILABLE", "{err}");
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(project["state"], "idle");

    // "" clears the model; the choice survives a restart.
    ws.ok(
        "project.configure",
        json!({"project_id": project_id, "model": ""}),
    )
    .await;
    let hub = hub.restart().await;
    let mut ws = hub.client().await;
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(
        (&project["agent"], &project["model"]),
        (&json!("codex"), &json!(null))
    );
    hub.stop().await;
}

#[tokio::test]
async fn each_agent_resumes_its_own_session_of_the_project() {
    let hub = TestHub::start_with(|c| {
        c.config.agent.codex.cli_path = Some("/nonexistent/codex".into());
    })
    .await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let run_id = run(&mut ws, &project_id, "success").await;
    let lines = ws.run_output(&run_id).await;
    assert_eq!(
        lines.last().unwrap()["event"]["status"],
        "succeeded",
        "{lines:?}"
    );
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    let claude = project["session_id"].as_str().unwrap().to_string();
    assert_eq!(project["sessions"], json!({"claude": claude}));

    // Another agent has no session of its own yet; Claude Code's is kept.
    let configured = ws
        .ok(
            "project.configure",
            json!({"project_id": project_id, "agent": "codex"}),
        )
        .await;
    assert_eq!(configured["agent"], "codex");
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(project["session_id"], json!(null));
    assert_eq!(project["sessions"]["claude"], claude);

    // The command line: the project's agent (Codex) is missing, so `agent run` cannot
    // start it (126); `--agent claude` runs Claude Code for this run only.
    let dir = project["path"].as_str().unwrap().to_string();
    let missing = hub.cli(&["agent", "run", &dir, "success"]).await;
    assert_eq!(missing.status.code(), Some(126), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("agent.codex.cli_path"),
        "{missing:?}"
    );
    let claude_run = hub
        .cli(&["agent", "run", "--agent", "claude", &dir, "success"])
        .await;
    assert_eq!(claude_run.status.code(), Some(0), "{claude_run:?}");
    let bad = hub
        .cli(&["agent", "run", "--agent", "cursor", &dir, "x"])
        .await;
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap refuses an unknown agent: {bad:?}"
    );

    // A one-off Claude Code run resumes Claude Code's session, not the project's agent's.
    let started = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": "success", "agent": "claude"}),
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let lines = ws.run_output(&run_id).await;
    let first = lines.iter().find(|l| l["kind"] == "run_started").unwrap();
    assert_eq!(first["event"]["resume"], claude, "{first}");

    // Back to Claude Code: its session is the project's again. new_session forgets all.
    ws.ok(
        "project.configure",
        json!({"project_id": project_id, "agent": "claude"}),
    )
    .await;
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert!(project["session_id"].is_string());
    let cleared = ws
        .ok("agent.new_session", json!({"project_id": project_id}))
        .await;
    assert_eq!(cleared["sessions"], json!({}));
    hub.stop().await;
}

#[tokio::test]
async fn health_and_status_list_every_agent_cli() {
    let hub = TestHub::start_with(|c| {
        c.config.agent.codex.cli_path = Some("/nonexistent/codex".into());
        c.config.agent.gemini.cli_path = Some("/nonexistent/gemini".into());
    })
    .await;
    let mut ws = hub.client().await;
    let health = ws.ok("hub.health", json!({})).await;
    let clis = &health["agent_clis"];
    assert_eq!(clis["claude"]["found"], true, "{health}");
    assert!(clis["claude"]["path"].is_string());
    for agent in ["codex", "gemini"] {
        assert_eq!(clis[agent]["found"], false, "{agent}: {health}");
        assert_eq!(clis[agent]["state"], "missing");
    }
    let status = ws.ok("hub.status", json!({})).await;
    // The version probe may finish in between: compare what does not change.
    for agent in ["claude", "codex", "gemini"] {
        for field in ["found", "path"] {
            assert_eq!(
                status["agent_clis"][agent][field], clis[agent][field],
                "{agent}"
            );
        }
    }
    hub.stop().await;
}
