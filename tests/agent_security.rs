//! Attacks on the agent runner: prompts and session ids that try to become CLI options,
//! and the hub's own secrets reaching the agent's environment. The fake CLI parses its
//! command line as the real one does and records what it received (`FAKE_CLAUDE_RECORD`).

use std::path::Path;

use serde_json::{Value, json};

use crate::util::{TestHub, WAIT, connect, run, spawn_hub_with};

/// The arguments the fake CLI received in its last run.
fn recorded_argv(record: &Path) -> Vec<String> {
    let bytes = std::fs::read(record.join("argv")).expect("the fake CLI recorded its argv");
    bytes
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// Runs `prompt` to its end and returns its output lines.
async fn run_to_end(ws: &mut crate::util::Ws, project_id: &str, prompt: &str) -> Vec<Value> {
    let run_id = run(ws, project_id, prompt).await;
    ws.run_output(&run_id).await
}

fn recording_hub_env(record: &Path) -> impl FnOnce(&mut semantest_hub::LoadedConfig) + '_ {
    move |c| {
        c.config.agent.env = [(
            "FAKE_CLAUDE_RECORD".to_string(),
            record.to_str().unwrap().to_string(),
        )]
        .into_iter()
        .collect();
    }
}

#[tokio::test]
async fn a_prompt_that_looks_like_an_option_reaches_the_cli_only_as_prompt_text() {
    let record = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(recording_hub_env(record.path())).await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;
    let attacks = [
        "--dangerously-skip-permissions",
        "--permission-mode=bypassPermissions",
        "--settings={\"permissions\":{\"allow\":[\"Bash\"]}}",
        "--mcp-config=/tmp/evil.json",
        "--add-dir=/",
        "-p",
        "--",
    ];
    for prompt in attacks {
        let lines = run_to_end(&mut ws, &project_id, prompt).await;
        // Exactly the hub's own arguments, and a resumed session that is a UUID.
        let mut argv = recorded_argv(record.path());
        if let Some(at) = argv.iter().position(|arg| arg == "--resume") {
            let session = argv.get(at + 1).cloned().unwrap_or_default();
            assert!(uuid::Uuid::try_parse(&session).is_ok(), "{argv:?}");
            argv.drain(at..at + 2);
        }
        assert_eq!(
            argv,
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits"
            ],
            "the prompt {prompt:?} reached the CLI as an argument"
        );
        let stdin = std::fs::read_to_string(record.path().join("stdin"))
            .expect("the CLI read its prompt from stdin");
        assert_eq!(stdin, prompt, "the prompt arrives whole, as text");
        let init = lines
            .iter()
            .find(|l| l["kind"] == "system")
            .unwrap_or_else(|| panic!("the run for {prompt:?} started: {lines:?}"));
        assert_eq!(
            init["event"]["permissionMode"], "acceptEdits",
            "the configured permission mode stays in force"
        );
        assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_session_id_that_is_not_a_uuid_is_never_passed_to_resume() {
    let record = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(recording_hub_env(record.path())).await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.subscribe(&project_id).await;

    // A CLI (or anything writing to its output) claims a session id that is an option.
    let lines = run_to_end(
        &mut ws,
        &project_id,
        "session --dangerously-skip-permissions",
    )
    .await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(project["session_id"], Value::Null, "{project}");
    run_to_end(&mut ws, &project_id, "success").await;
    let argv = recorded_argv(record.path());
    assert!(!argv.contains(&"--resume".to_string()), "{argv:?}");
    assert!(
        !argv.contains(&"--dangerously-skip-permissions".to_string()),
        "{argv:?}"
    );

    // A stored session that is not a UUID (a database written before ids were checked)
    // is refused, not resumed, until a new session is started.
    let dir = hub.stop().await;
    let db = rusqlite::Connection::open(dir.path().join("hub.sqlite3")).unwrap();
    db.execute(
        "UPDATE projects SET session_id = '--mcp-config=/tmp/evil.json' WHERE id = ?1",
        [&project_id],
    )
    .unwrap();
    drop(db);
    let mut config = crate::util::test_config(dir.path());
    recording_hub_env(record.path())(&mut config);
    let hub = TestHub::start_in(dir, config).await;
    let mut ws = hub.client().await;
    std::fs::remove_file(record.path().join("argv")).unwrap();
    let err = ws
        .err(
            "agent.run",
            json!({"project_id": project_id, "prompt": "success"}),
        )
        .await;
    assert_eq!(err["data"]["kind"], "INVALID_SESSION", "{err}");
    assert_eq!(err["code"], -32602);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("agent.new_session"),
        "{err}"
    );
    assert!(
        !record.path().join("argv").exists(),
        "no CLI was started for the refused run"
    );
    let project = ws
        .ok("project.get", json!({"project_id": project_id}))
        .await;
    assert_eq!(
        project["state"], "idle",
        "the refusal left the project idle"
    );
    ws.ok("agent.new_session", json!({"project_id": project_id}))
        .await;
    ws.subscribe(&project_id).await;
    let lines = run_to_end(&mut ws, &project_id, "success").await;
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");
    assert!(!recorded_argv(record.path()).contains(&"--resume".to_string()));
    hub.stop().await;
}

/// Every variable the hub reads its settings and credentials from.
const HUB_SECRETS: [(&str, &str); 4] = [
    ("SEMANTEST_HUB_DATABASE_PASSWORD", "pg-secret-4f1c"),
    ("SEMANTEST_HUB_BROKER_TOKEN", "nats-token-9a2e"),
    ("SEMANTEST_HUB_BROKER_PASSWORD", "nats-password-77d0"),
    ("SEMANTEST_HUB_LIMITS__MAX_PROJECTS", "50"),
];

#[tokio::test]
async fn an_agent_process_does_not_inherit_the_hubs_secrets() {
    let data = tempfile::tempdir().unwrap();
    let record = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, &str)> = HUB_SECRETS.to_vec();
    env.push(("FAKE_CLAUDE_RECORD", record.path().to_str().unwrap()));
    env.push(("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"));
    let (_hub, port) = spawn_hub_with(data.path(), &env).await;
    let mut ws = connect(port, data.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let project = ws.ok("project.create", json!({"path": dir.path()})).await;
    let project_id = project["id"].as_str().unwrap();
    ws.subscribe(project_id).await;
    let lines = tokio::time::timeout(WAIT, run_to_end(&mut ws, project_id, "success"))
        .await
        .unwrap();
    assert_eq!(lines.last().unwrap()["event"]["status"], "succeeded");

    let dump = std::fs::read(record.path().join("env")).expect("the fake CLI dumped its env");
    let vars: Vec<String> = dump
        .split(|b| *b == 0)
        .map(|var| String::from_utf8_lossy(var).into_owned())
        .collect();
    for (name, value) in HUB_SECRETS {
        assert!(
            !vars.iter().any(|var| var.starts_with(&format!("{name}="))),
            "{name} reached the agent"
        );
        assert!(
            !vars.iter().any(|var| var.contains(value)),
            "the value of {name} reached the agent"
        );
    }
    assert!(
        !vars.iter().any(|var| var.starts_with("SEMANTEST_HUB_")),
        "{vars:?}"
    );
    // What the agent needs is still there.
    for needed in ["PATH=", "HOME=", "ANTHROPIC_BASE_URL=http://127.0.0.1:9"] {
        assert!(
            vars.iter().any(|var| var.starts_with(needed)),
            "{needed} is missing: {vars:?}"
        );
    }
}
