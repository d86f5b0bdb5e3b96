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

/// `semantest-hub` with this hub's data directory, as a child to drive while it runs.
fn cli_child(hub: &TestHub, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(hub_bin())
        .args(["--data-dir", hub.dir.path().to_str().unwrap()])
        .args(["--secret-store", "file"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The everyday commands: `project show`, `logs` (text, JSON, by run, followed), `ps`,
/// `agent kill|new-session` by directory, `events tail|publish`, `project rm` by path.
#[tokio::test]
async fn the_everyday_commands_show_logs_runs_and_events() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let hub = TestHub::start().await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    let ok = |output: &std::process::Output| {
        assert!(output.status.success(), "{output:?}");
        stdout(output)
    };
    ok(&hub.cli(&["project", "add", dir, "--name", "demo"]).await);
    assert_eq!(ok(&hub.cli(&["ps"]).await), "", "nothing runs yet");
    ok(&hub.cli(&["agent", "run", dir, "success"]).await);

    // `logs`: the stored lines as a person reads them, or as JSON lines.
    let text = ok(&hub.cli(&["logs", dir]).await);
    assert!(
        text.contains("Working on it.") && text.contains("$0.0123"),
        "{text}"
    );
    let lines: Vec<serde_json::Value> = ok(&hub.cli(&["logs", dir, "--json"]).await)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(lines.len() >= 4, "{lines:?}");
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ascending: {seqs:?}");
    let run_id = lines[0]["run_id"].as_str().unwrap().to_string();
    let show = ok(&hub.cli(&["project", "show", dir]).await);
    assert!(
        show.contains("state    idle")
            && show.contains(&format!("lines    {}", seqs.last().unwrap())),
        "{show}"
    );
    assert_eq!(
        ok(&hub
            .cli(&["logs", dir, "--run", "no-such-run", "--json"])
            .await),
        ""
    );

    // A second run, followed live by `logs -f` from the start: every line once, in order.
    let mut follow = cli_child(&hub, &["logs", dir, "-f", "--json"]);
    let mut followed = BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut running = cli_child(&hub, &["agent", "run", dir, "hang", "--timeout", "60"]);
    // `ps` shows the running agent, with its project.
    let row = crate::util::eventually("ps to show the run", async || {
        let table = stdout(&hub.cli(&["ps"]).await);
        table.lines().nth(1).map(str::to_string).ok_or(table)
    })
    .await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cells[1], cells[2]), ("agent", "demo"), "{row}");
    let hang_run = cells[0].to_string();
    assert_ne!(hang_run, run_id);
    // `agent kill` by directory stops it; `agent run` exits 130.
    assert!(ok(&hub.cli(&["agent", "kill", dir]).await).starts_with("stopping the agent"));
    let status = tokio::time::timeout(crate::util::WAIT, running.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let mut seen = Vec::new();
    while let Some(line) = tokio::time::timeout(crate::util::WAIT, followed.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(line["seq"].as_u64().unwrap());
        if line["kind"] == "run_finished" && line["run_id"] == hang_run.as_str() {
            break;
        }
    }
    assert_eq!(&seen[..seqs.len()], seqs.as_slice(), "history first, once");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats: {seen:?}"
    );
    follow.kill().await.unwrap();
    let only_hang = ok(&hub.cli(&["logs", dir, "--run", &hang_run, "--json"]).await);
    assert!(only_hang.lines().all(|l| l.contains(&hang_run)) && !only_hang.contains(&run_id));

    assert!(ok(&hub.cli(&["agent", "new-session", dir]).await).contains("new session"));
    let show: serde_json::Value =
        serde_json::from_str(&ok(&hub.cli(&["project", "show", dir, "--json"]).await)).unwrap();
    assert!(show["session_id"].is_null(), "{show}");

    // `events tail` prints what another client publishes; `events publish` says how many
    // subscribers it reached.
    let mut tail = cli_child(&hub, &["events", "tail", "demo.*"]);
    let mut tail_err = BufReader::new(tail.stderr.take().unwrap()).lines();
    let listening = tokio::time::timeout(crate::util::WAIT, tail_err.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(listening.starts_with("listening for demo.*"), "{listening}");
    let published = ok(&hub
        .cli(&["events", "publish", "demo.message", r#"{"text":"hi"}"#])
        .await);
    assert_eq!(
        published.trim(),
        "published demo.message to 1 subscriber(s)"
    );
    let mut tailed = BufReader::new(tail.stdout.take().unwrap()).lines();
    let event: serde_json::Value = serde_json::from_str(
        &tokio::time::timeout(crate::util::WAIT, tailed.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&event["type"], &event["payload"]["text"]),
        (&"demo.message".into(), &"hi".into())
    );
    tail.kill().await.unwrap();
    let bad = hub
        .cli(&["events", "publish", "demo.message", "{not json"])
        .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the payload is not JSON"));

    // `project rm` takes the directory too.
    assert!(ok(&hub.cli(&["project", "rm", dir]).await).starts_with("removed "));
    assert_eq!(ok(&hub.cli(&["project", "list", "-q"]).await), "");
    hub.stop().await;
}
