use std::process::Command;

use crate::util::{TestHub, hub_bin};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_command_line_client_drives_a_running_hub() {
    let hub = TestHub::start().await;
    let token = hub.cli(&["token"]).await;
    assert!(token.status.success());
    assert_eq!(stdout(&token).trim(), hub.token);

    let status = hub.cli(&["status"]).await;
    assert!(status.status.success(), "{status:?}");
    assert!(stdout(&status).contains("\"product\": \"semantest-hub\""));

    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    let added = hub.cli(&["project", "add", dir, "--name", "demo"]).await;
    assert!(added.status.success(), "{added:?}");
    let id = stdout(&added)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // `project list`: an aligned table with a header; `-q` ids; `--json` the result.
    let table = stdout(&hub.cli(&["project", "list"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "STATE", "NAME", "PATH"], "{table}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row, [id.as_str(), "idle", "demo", dir], "{table}");
    assert_eq!(
        lines[0].find("NAME"),
        lines[1].find("demo"),
        "columns line up: {table}"
    );
    assert_eq!(
        stdout(&hub.cli(&["project", "list", "-q"]).await),
        format!("{id}\n")
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&hub.cli(&["project", "list", "--json"]).await)).unwrap();
    assert_eq!(json["projects"][0]["id"], id.as_str());

    // `agent run` accepts the directory, streams the output and exits with the status.
    let ok = hub.cli(&["agent", "run", dir, "success"]).await;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let text = stdout(&ok);
    assert!(
        text.contains("Working on it.") && text.contains("▶ Write") && text.contains("$0.0123"),
        "{text}"
    );
    let failed = hub.cli(&["agent", "run", &id, "error"]).await;
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("fake failure"));
    let timed_out = hub
        .cli(&["agent", "run", &id, "hang", "--timeout", "1"])
        .await;
    assert_eq!(timed_out.status.code(), Some(124));

    let missing = hub.cli(&["project", "add", "/definitely/not/here"]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist (INVALID_PATH)"));

    let link = hub.cli(&["dashboard", "--print"]).await;
    assert!(stdout(&link).starts_with(&format!("http://127.0.0.1:{}/login?code=", hub.port)));

    assert!(hub.cli(&["project", "rm", &id]).await.status.success());
    assert!(!stdout(&hub.cli(&["project", "list"]).await).contains("demo"));
    hub.stop().await;
}

#[test]
fn client_commands_without_a_hub_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(hub_bin())
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--secret-store",
            "file",
            "status",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no hub is running"));
}

#[test]
fn invalid_configuration_is_reported_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[limits]\nmax_connections = 0\n").unwrap();
    let output = Command::new(hub_bin())
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "serve",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("limits.max_connections"),
        "{output:?}"
    );
}

#[tokio::test]
async fn a_second_hub_on_the_same_data_directory_is_refused() {
    let hub = TestHub::start().await;
    let second = semantest_hub::start(crate::util::test_config(hub.dir.path())).await;
    let error = second
        .err()
        .expect("the second hub must not start")
        .to_string();
    assert!(error.contains("already running"), "{error}");
    // After a clean stop the directory is free again.
    let hub = hub.restart().await;
    hub.stop().await;
}

#[test]
fn a_mistyped_environment_variable_stops_every_command_and_others_pass() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        Command::new(hub_bin())
            .args(["--data-dir", dir.path().to_str().unwrap(), "status"])
            .env(name, "3005")
            .output()
            .unwrap()
    };
    // A typo of SEMANTEST_HUB_PORT: refused, naming the variable, before anything runs.
    let typo = run("SEMANTEST_HUB_PROT");
    assert!(!typo.status.success());
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        stderr.contains("environment variable SEMANTEST_HUB_PROT is not a setting"),
        "{stderr}"
    );
    // A variable the project uses for something else reaches the command, which fails
    // only because no hub runs for this data directory.
    let token = run("SEMANTEST_HUB_TOKEN");
    let stderr = String::from_utf8_lossy(&token.stderr);
    assert!(!stderr.contains("not a setting"), "{stderr}");
    assert!(stderr.contains("no hub is running"), "{stderr}");
}
