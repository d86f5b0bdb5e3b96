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

/// `semantest-hub` with `home` as HOME (no XDG overrides, so the default config file and
/// the autostart entries are looked for under it), on `data_dir`, the file secret store,
/// and `env` set.
async fn cli_at_home(
    home: &std::path::Path,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    tokio::process::Command::new(hub_bin())
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_STATE_HOME")
        .envs(env.iter().copied())
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .args(["--secret-store", "file"])
        .args(args)
        .output()
        .await
        .unwrap()
}

/// The completion scripts and the man page are generated from the command definition:
/// they name every subcommand, the bash script is valid bash, and they are printed even
/// when the configuration cannot be loaded.
#[test]
fn completions_and_the_man_page_name_every_command() {
    let run = |args: &[&str]| {
        let output = Command::new(hub_bin())
            .args(["--config", "/definitely/not/here.toml"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        stdout(&output)
    };
    let commands = [
        "serve",
        "token",
        "project",
        "agent",
        "logs",
        "pair",
        "config",
        "doctor",
        "completions",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for command in commands {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let bash = dir.path().join("semantest-hub.bash");
    std::fs::write(&bash, run(&["completions", "bash"])).unwrap();
    let check = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(check.status.success(), "bash -n: {check:?}");

    let page = run(&["man"]);
    assert!(
        page.lines()
            .any(|line| line.starts_with(".TH semantest-hub 1")),
        "{page}"
    );
    assert!(
        page.contains(".SH NAME") && page.contains(".SH SUBCOMMANDS"),
        "{page}"
    );
    for command in commands {
        assert!(
            page.contains(&format!("semantest\\-hub\\-{command}(1)")),
            "{command}"
        );
    }

    // --dir: the page of every command the main page refers to, nested ones too.
    let pages = dir.path().join("man1");
    let listed = run(&["man", "--dir", pages.to_str().unwrap()]);
    for name in [
        "semantest-hub",
        "semantest-hub-doctor",
        "semantest-hub-project-add",
    ] {
        let file = pages.join(format!("{name}.1"));
        assert!(
            listed.contains(&format!("{}\n", file.display())),
            "{listed}"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!(".TH {name} 1"))),
            "{text}"
        );
    }
}

/// `config path` names the file in use (or the one that would be read) and the
/// directories; `config get` prints effective values, a section, and refuses an unknown
/// key naming the valid ones.
#[tokio::test]
async fn config_path_and_get_show_the_loaded_configuration() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = home.path().join("custom.toml");
    std::fs::write(&file, "[limits]\nmax_projects = 7\n").unwrap();
    let with_file = |args: &'static [&'static str], env: &'static [(&str, &str)]| {
        let file = file.to_str().unwrap().to_string();
        let (home, data) = (home.path().to_path_buf(), data.path().to_path_buf());
        async move {
            let mut all = vec!["--config", file.as_str()];
            all.extend_from_slice(args);
            cli_at_home(&home, &data, env, &all).await
        }
    };
    let paths = with_file(&["config", "path"], &[]).await;
    assert!(paths.status.success(), "{paths:?}");
    assert_eq!(
        stdout(&paths),
        format!(
            "config_file: {}\ndata_dir: {}\nlog_dir: {}\n",
            file.display(),
            data.path().display(),
            data.path().join("logs").display()
        )
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(
        &with_file(&["config", "path", "--json"], &[]).await,
    ))
    .unwrap();
    assert_eq!(json["config_file"], file.to_str().unwrap());
    assert_eq!(json["config_file_exists"], true);
    assert_eq!(json["data_dir"], data.path().to_str().unwrap());

    // Without --config and without a file: the one that would be read.
    let default = cli_at_home(home.path(), data.path(), &[], &["config", "path"]).await;
    let expected = home.path().join(".config/semantest-hub/config.toml");
    assert!(
        stdout(&default).starts_with(&format!("config_file: {}\n", expected.display())),
        "{default:?}"
    );

    let get = with_file(&["config", "get", "limits.max_projects"], &[]).await;
    assert_eq!(stdout(&get), "7\n", "{get:?}");
    // The environment overrides the file, as for the hub itself.
    let env = with_file(
        &["config", "get", "limits.max_projects"],
        &[("SEMANTEST_HUB_LIMITS__MAX_PROJECTS", "9")],
    )
    .await;
    assert_eq!(stdout(&env), "9\n", "{env:?}");
    let unset = with_file(&["config", "get", "agent.cli_path"], &[]).await;
    assert_eq!(stdout(&unset), "null\n");
    let quoted = with_file(&["config", "get", "secret_store", "--json"], &[]).await;
    assert_eq!(stdout(&quoted), "\"file\"\n", "{quoted:?}");
    let object: serde_json::Value = serde_json::from_str(&stdout(
        &with_file(&["config", "get", "limits", "--json"], &[]).await,
    ))
    .unwrap();
    assert_eq!(object["limits.max_projects"], 7);
    let section = stdout(&with_file(&["config", "get", "limits"], &[]).await);
    assert!(
        section
            .lines()
            .any(|line| line == "limits.max_projects = 7"),
        "{section}"
    );
    assert!(
        section.lines().all(|line| line.starts_with("limits.")),
        "{section}"
    );

    let unknown = with_file(&["config", "get", "limits.max_project"], &[]).await;
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("`limits.max_project` is not a setting")
            && stderr.contains("limits.max_projects")
            && stderr.contains("secret_store"),
        "{stderr}"
    );
}

/// The lines of `doctor` output whose check is `name`: `(level, text)`.
fn doctor_line(output: &std::process::Output, name: &str) -> (String, String) {
    let text = stdout(output);
    let line = text
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} check in {text}"));
    let mut words = line.split_whitespace();
    let level = words.next().unwrap().to_string();
    (level, line.to_string())
}

/// With no hub running `doctor` says so; the port check tells a free port, another
/// program and another hub apart and fails (exit 1) when the only port is taken; a
/// runtime file left by a crashed hub fails; the autostart check finds the desktop app's
/// XDG entry.
#[tokio::test]
async fn doctor_without_a_hub_says_so_and_checks_the_port() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let doctor = |env: &'static [(&str, &str)], port: Option<u16>| {
        let (home, data) = (home.path().to_path_buf(), data.path().to_path_buf());
        async move {
            let port = port.map(|port| port.to_string());
            let mut env = env.to_vec();
            if let Some(port) = &port {
                env.push(("SEMANTEST_HUB_PORT", port.as_str()));
            }
            cli_at_home(&home, &data, &env, &["doctor"]).await
        }
    };

    let free = doctor(&[("SEMANTEST_HUB_PORT", "0")], None).await;
    assert_eq!(free.status.code(), Some(0), "{free:?}");
    let (level, line) = doctor_line(&free, "hub");
    assert!(
        level == "warn" && line.contains("no hub is running"),
        "{line}"
    );
    assert_eq!(doctor_line(&free, "port").0, "ok");
    assert_eq!(doctor_line(&free, "secrets").0, "ok");
    let (level, line) = doctor_line(&free, "autostart");
    assert!(
        level == "warn" && line.contains("nothing starts the hub"),
        "{line}"
    );
    assert!(stdout(&free).contains("fix: turn on \"Start at login\""));

    // Another program on the port: it accepts and answers 404.
    let squatter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = squatter.local_addr().unwrap().port();
    let serving = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut stream, _) = squatter.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let taken = doctor(&[], Some(port)).await;
    serving.abort();
    assert_eq!(taken.status.code(), Some(1), "{taken:?}");
    let (level, line) = doctor_line(&taken, "port");
    assert!(
        level == "fail" && line.contains(&format!("{port} is taken by another program")),
        "{line}"
    );

    // Another hub (another data directory) on the port.
    let other = TestHub::start().await;
    let by_hub = doctor(&[], Some(other.port)).await;
    assert_eq!(by_hub.status.code(), Some(1), "{by_hub:?}");
    let (_, line) = doctor_line(&by_hub, "port");
    assert!(line.contains("taken by another Semantest hub"), "{line}");
    other.stop().await;

    // A runtime file left by a hub that crashed: nothing answers on its port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let runtime = data.path().join("server.json");
    std::fs::write(
        &runtime,
        format!(r#"{{"url":"http://127.0.0.1:{dead}","secret_store":"file"}}"#),
    )
    .unwrap();
    let crashed = doctor(&[], None).await;
    assert_eq!(crashed.status.code(), Some(1), "{crashed:?}");
    let (level, line) = doctor_line(&crashed, "hub");
    assert!(
        level == "fail" && line.contains("no hub answers there"),
        "{line}"
    );
    assert!(stdout(&crashed).contains("start it again with `semantest-hub serve`"));
    std::fs::remove_file(&runtime).unwrap();

    let autostart = home.path().join(".config/autostart/Semantest Hub.desktop");
    std::fs::create_dir_all(autostart.parent().unwrap()).unwrap();
    std::fs::write(&autostart, "[Desktop Entry]\n").unwrap();
    let enabled = doctor(&[("SEMANTEST_HUB_PORT", "0")], None).await;
    let (level, line) = doctor_line(&enabled, "autostart");
    assert!(
        level == "ok" && line.contains("Semantest Hub.desktop"),
        "{line}"
    );
}

/// With a hub running, `doctor` verifies it through its signature proof.
#[tokio::test]
async fn doctor_finds_the_running_hub_and_its_port() {
    let hub = TestHub::start().await;
    let output = hub.cli(&["doctor"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let (level, line) = doctor_line(&output, "hub");
    assert!(
        level == "ok" && line.contains(&format!("running at http://127.0.0.1:{}", hub.port)),
        "{line}"
    );
    assert_eq!(doctor_line(&output, "port").0, "ok");
    // The agent CLI, found and asked for its version as the hub does.
    let fake = crate::util::fake_cli();
    let with_cli = doctor_on(
        &hub,
        &[("SEMANTEST_HUB_AGENT__CLI_PATH", fake.to_str().unwrap())],
    )
    .await;
    let (level, line) = doctor_line(&with_cli, "claude");
    assert!(
        level == "ok" && line.contains("9.9.9 (Fake Claude Code)") && line.contains("fake-claude"),
        "{line}"
    );
    let missing = doctor_on(
        &hub,
        &[("SEMANTEST_HUB_AGENT__CLI_PATH", "/definitely/not/claude")],
    )
    .await;
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert_eq!(doctor_line(&missing, "claude").0, "fail");
    let json = hub.cli(&["doctor", "--json"]).await;
    assert_eq!(json.status.code(), Some(0), "{json:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let all = [
        "cli",
        "claude",
        "codex",
        "gemini",
        "secrets",
        "hub",
        "port",
        "autostart",
    ];
    assert_eq!(names, all);
    assert_eq!(checks[5]["level"], "ok");
    assert!(checks[5]["fix"].is_null());
    hub.stop().await;
}

/// `config set` changes one value in place (comments kept), validates the new file as
/// the hub would before replacing the old one, leaves the file untouched (and no
/// temporary file behind) when the value is refused, and creates the default file.
#[tokio::test]
async fn config_set_validates_then_writes_keeping_comments() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let original = "# mine\n[limits]\nmax_projects = 7 # seven\n";
    std::fs::write(&file, original).unwrap();
    let run = |args: Vec<&str>| {
        let file = file.to_str().unwrap().to_string();
        let (home, data) = (home.path().to_path_buf(), data.path().to_path_buf());
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        async move {
            let mut all = vec!["--config", file.as_str(), "config"];
            all.extend(args.iter().map(String::as_str));
            cli_at_home(&home, &data, &[], &all).await
        }
    };

    let set = run(vec!["set", "limits.max_projects", "500"]).await;
    assert!(set.status.success(), "{set:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# mine\n[limits]\nmax_projects = 500 # seven\n"
    );
    let get = run(vec!["get", "limits.max_projects"]).await;
    assert_eq!(stdout(&get), "500\n");
    // Unquoted text is a string.
    assert!(
        run(vec!["set", "log_level", "debug"])
            .await
            .status
            .success()
    );
    assert_eq!(stdout(&run(vec!["get", "log_level"]).await), "debug\n");

    let before = std::fs::read_to_string(&file).unwrap();
    // Refused by the hub's validation, by type, and as an unknown key: nothing written.
    for (args, expected) in [
        (
            vec!["set", "limits.idle_timeout_s", "1"],
            "limits.idle_timeout_s: must be longer than limits.ping_interval_s",
        ),
        (vec!["set", "limits.max_projects", "many"], "max_projects"),
        (
            vec!["set", "limits.max_project", "3"],
            "`limits.max_project` is not a setting",
        ),
    ] {
        let refused = run(args.clone()).await;
        assert!(!refused.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains(".config-"),
            "names the real file: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "{args:?}");
    }
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["config.toml"], "no temporary file left");

    // Without a file: the default one is created.
    let created = cli_at_home(
        home.path(),
        data.path(),
        &[],
        &["config", "set", "retention.max_age_days", "3"],
    )
    .await;
    assert!(created.status.success(), "{created:?}");
    let default = home.path().join(".config/semantest-hub/config.toml");
    assert_eq!(
        std::fs::read_to_string(&default).unwrap(),
        "[retention]\nmax_age_days = 3\n"
    );
}

/// `semantest-hub doctor` on `hub`'s data directory with `env` set.
async fn doctor_on(hub: &TestHub, env: &[(&str, &str)]) -> std::process::Output {
    tokio::process::Command::new(hub_bin())
        .envs(env.iter().copied())
        .args(["--data-dir", hub.dir.path().to_str().unwrap()])
        .args(["--secret-store", "file", "doctor"])
        .output()
        .await
        .unwrap()
}

/// `doctor` checks each agent's CLI: a found one with its version and path, a missing
/// one with how to install it, as a warning while no project runs that agent and as a
/// failure (exit 1) once one does.
#[tokio::test]
async fn doctor_checks_every_agent_cli_and_fails_for_a_missing_one_in_use() {
    let home = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let codex = bin.path().join("codex");
    std::fs::write(&codex, "#!/bin/sh\necho 'codex-cli 9.8.7'\n").unwrap();
    std::fs::set_permissions(&codex, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = bin.path().to_str().unwrap();
    let doctor = |data: std::path::PathBuf| {
        let home = home.path().to_path_buf();
        async move { cli_at_home(&home, &data, &[("PATH", path)], &["doctor"]).await }
    };

    let fresh = tempfile::tempdir().unwrap();
    let output = doctor(fresh.path().to_path_buf()).await;
    let (level, line) = doctor_line(&output, "codex");
    assert!(
        level == "ok" && line.contains("codex-cli 9.8.7") && line.contains(codex.to_str().unwrap()),
        "{line}"
    );
    let (level, line) = doctor_line(&output, "gemini");
    assert!(
        level == "warn" && line.contains("no project runs this agent"),
        "{line}"
    );
    assert!(
        stdout(&output).contains("npm install -g @google/gemini-cli"),
        "{output:?}"
    );
    assert_eq!(doctor_line(&output, "claude").0, "warn", "{output:?}");

    // A project that runs Gemini: its missing CLI fails the check.
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let (project_id, _dir) = hub.project(&mut ws).await;
    ws.ok(
        "project.configure",
        serde_json::json!({"project_id": project_id, "agent": "gemini"}),
    )
    .await;
    drop(ws);
    let data = hub.stop().await;
    let output = doctor(data.path().to_path_buf()).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let (level, line) = doctor_line(&output, "gemini");
    assert!(
        level == "fail" && line.contains("a project runs this agent"),
        "{line}"
    );
    assert_eq!(doctor_line(&output, "codex").0, "ok", "{output:?}");
}
