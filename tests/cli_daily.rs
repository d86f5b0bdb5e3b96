//! The command line in daily use: a closed stdout, colour, `--version`, `agent run`'s
//! progress and exit codes, and TLS to a public hub.

use std::process::{Command, Output, Stdio};

use crate::util::{TestHub, WAIT, eventually, hub_bin, test_config};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `semantest-hub` on `hub`'s data directory with `args`, its stdout a pipe whose reader
/// is already closed (as after `| head -1` has read its line): every write to it fails
/// with EPIPE.
async fn with_closed_stdout(hub: &TestHub, env: &[(&str, &str)], args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = tokio::process::Command::new(hub_bin());
    command
        .args(["--data-dir", hub.dir.path().to_str().unwrap()])
        .args(["--secret-store", "file"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(writer)))
        .stderr(Stdio::piped());
    // Not `output()`, which would capture stdout in a pipe of its own.
    let child = command.spawn().unwrap();
    drop(command);
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the command ends")
        .unwrap()
}

/// `semantest-hub project list | head -1` and the like: the command stops quietly with
/// 0, whatever it prints (tables, JSON, ids, logs, generated scripts), never a panic.
#[tokio::test]
async fn a_closed_stdout_ends_every_command_quietly() {
    let hub = TestHub::start().await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    assert!(
        hub.cli(&["project", "add", dir, "--name", "demo"])
            .await
            .status
            .success()
    );
    assert!(
        hub.cli(&["agent", "run", dir, "success"])
            .await
            .status
            .success()
    );
    for args in [
        &["project", "list"][..],
        &["project", "list", "--json"],
        &["project", "list", "-q"],
        &["project", "show", dir],
        &["logs", dir],
        &["logs", dir, "--json"],
        &["token", "list"],
        &["token"],
        &["status"],
        &["events", "publish", "demo.x", "{}"],
        &["completions", "bash"],
        &["man"],
        &["config", "path"],
        &["--version"],
    ] {
        let output = with_closed_stdout(&hub, &[], args).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            !stderr(&output).contains("panicked"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    hub.stop().await;
}

/// Colour only on request: piped output, `NO_COLOR` and `--color never` have no escape
/// codes; `--color always` has them (the table header in bold).
#[tokio::test]
async fn colour_only_on_a_terminal_never_with_no_color() {
    let hub = TestHub::start().await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    assert!(hub.cli(&["project", "add", dir]).await.status.success());
    let escapes = |output: &Output| output.stdout.contains(&0x1b) || output.stderr.contains(&0x1b);
    let forced = hub.cli(&["project", "list", "--color", "always"]).await;
    assert!(stdout(&forced).starts_with("\x1b[1mID"), "{forced:?}");
    for args in [
        &["project", "list"][..],
        &["project", "list", "--color", "never"],
        &["--color", "never", "agent", "run", dir, "success"],
        &["agent", "run", dir, "success"],
        &["agent", "run", dir, "error"],
    ] {
        let output = hub.cli(args).await;
        assert!(!escapes(&output), "{args:?} piped: {output:?}");
    }
    // NO_COLOR (any non-empty value) wins over a terminal-less `auto`, and so does
    // `--color never` over CLICOLOR_FORCE.
    let run = |env: &'static [(&'static str, &'static str)], args: &'static [&'static str]| {
        let data = hub.dir.path().to_str().unwrap().to_string();
        async move {
            tokio::process::Command::new(hub_bin())
                .args(["--data-dir", &data, "--secret-store", "file"])
                .args(args)
                .envs(env.iter().copied())
                .output()
                .await
                .unwrap()
        }
    };
    let output = run(
        &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
        &["project", "list"],
    )
    .await;
    assert!(!escapes(&output), "NO_COLOR: {output:?}");
    let output = run(
        &[("CLICOLOR_FORCE", "1")],
        &["project", "list", "--color", "never"],
    )
    .await;
    assert!(!escapes(&output), "--color never: {output:?}");
    hub.stop().await;
}

/// `--version` says this command's version and the running hub's, or that none runs.
#[tokio::test]
async fn version_names_the_running_hub_or_says_none_runs() {
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(hub_bin())
        .args(["--data-dir", empty.path().to_str().unwrap(), "--version"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        stdout(&output),
        format!(
            "semantest-hub {version}\nhub: none running for {}\n",
            empty.path().display()
        )
    );

    let hub = TestHub::start().await;
    let output = hub.cli(&["--version"]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        format!(
            "semantest-hub {version}\nhub: semantest-hub {version} at http://127.0.0.1:{} (local mode)\n",
            hub.port
        )
    );
    // `-V` is the same flag.
    assert_eq!(stdout(&hub.cli(&["-V"]).await), stdout(&output));
    // A runtime file left behind by a hub that stopped.
    let dir = hub.stop().await;
    std::fs::write(
        dir.path().join("server.json"),
        r#"{"url":"http://127.0.0.1:9","port":9,"pid":1}"#,
    )
    .unwrap();
    let output = Command::new(hub_bin())
        .args(["--data-dir", dir.path().to_str().unwrap(), "--version"])
        .output()
        .unwrap();
    assert!(
        stdout(&output).contains("hub: none answers at http://127.0.0.1:9"),
        "{output:?}"
    );
}

/// `agent run` names its run, reports the elapsed time, and exits with a code per
/// outcome: 0 succeeded, 1 failed, 125 refused, 126 could not start.
#[tokio::test]
async fn agent_run_exit_codes_tell_failed_refused_and_could_not_start() {
    let hub = TestHub::start().await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    assert!(hub.cli(&["project", "add", dir]).await.status.success());

    let ok = hub.cli(&["agent", "run", dir, "success"]).await;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let said = stderr(&ok);
    let run_id = said
        .lines()
        .find_map(|line| line.strip_prefix("run ")?.strip_suffix(" started"))
        .unwrap_or_else(|| panic!("the run id first: {said}"))
        .to_string();
    assert!(
        said.lines().any(
            |line| line.starts_with(&format!("run {run_id} succeeded after "))
                && line.ends_with(" s")
        ),
        "{said}"
    );
    assert!(stdout(&ok).contains("Working on it."), "{ok:?}");

    let failed = hub.cli(&["agent", "run", dir, "error"]).await;
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(stderr(&failed).contains("failed after"), "{failed:?}");

    // Refused: a blank prompt, an unknown project, a project already running.
    for args in [
        &["agent", "run", dir, "   "][..],
        &["agent", "run", "no-such-project", "success"],
    ] {
        let refused = hub.cli(args).await;
        assert_eq!(refused.status.code(), Some(125), "{args:?}: {refused:?}");
        assert!(
            stderr(&refused).starts_with("the hub refused the run: "),
            "{refused:?}"
        );
    }
    let mut hanging = tokio::process::Command::new(hub_bin())
        .args(["--data-dir", hub.dir.path().to_str().unwrap()])
        .args(["--secret-store", "file", "agent", "run", dir, "hang"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Probing with runs of its own would race the hanging run for the project: wait
    // until that run holds it, then ask for a second one.
    eventually("the hanging run to hold the project", async || {
        let shown = hub.cli(&["project", "show", dir, "--json"]).await;
        let view: serde_json::Value =
            serde_json::from_slice(&shown.stdout).unwrap_or(serde_json::Value::Null);
        if view["state"] == "running" {
            Ok(())
        } else {
            Err(view)
        }
    })
    .await;
    let busy = hub.cli(&["agent", "run", dir, "success"]).await;
    assert!(stderr(&busy).contains("PROJECT_BUSY"), "{busy:?}");
    assert_eq!(busy.status.code(), Some(125), "{busy:?}");
    assert!(hub.cli(&["agent", "kill", dir]).await.status.success());
    let killed = tokio::time::timeout(WAIT, hanging.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(killed.code(), Some(130));
    hub.stop().await;

    // Could not start: no hub runs, or the hub has no agent CLI to start.
    let none = tempfile::tempdir().unwrap();
    let output = Command::new(hub_bin())
        .args(["--data-dir", none.path().to_str().unwrap()])
        .args(["--secret-store", "file", "agent", "run", dir, "success"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(126), "{output:?}");
    assert!(
        stderr(&output).contains("the run could not start: no hub is running"),
        "{output:?}"
    );
    let hub = TestHub::start_with(|config| {
        config.config.agent.cli_path = Some("/nonexistent/claude".into());
    })
    .await;
    assert!(hub.cli(&["project", "add", dir]).await.status.success());
    let output = hub.cli(&["agent", "run", dir, "success"]).await;
    assert_eq!(output.status.code(), Some(126), "{output:?}");
    assert!(stderr(&output).contains("AGENT_UNAVAILABLE"), "{output:?}");
    hub.stop().await;
}

/// The public name of the TLS hub below.
const NAME: &str = "hub.test";

/// A public hub with TLS under [`NAME`], its certificate (self-signed, made here) in
/// `cert.pem` of its data directory, and another certificate for another name.
async fn tls_hub() -> (TestHub, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["other.test".to_string()]).unwrap();
    let other_cert = dir.path().join("other.pem");
    std::fs::write(&other_cert, other.cert.pem()).unwrap();
    let mut config = test_config(dir.path());
    config.config.public = semantest_hub::config::PublicConfig {
        enabled: true,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        hosts: vec![NAME.into()],
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..Default::default()
    };
    (TestHub::start_in(dir, config).await, cert, other_cert)
}

/// `token create` (and the other client commands) reach a public hub that speaks TLS:
/// over TLS under its public name, trusting `--tls-ca`, and never a certificate that is
/// not trusted or not for that name.
#[tokio::test]
async fn token_create_reaches_a_public_hub_over_tls() {
    let (hub, cert, other) = tls_hub().await;
    let cert = cert.to_str().unwrap();
    let created = hub
        .cli(&[
            "--tls-ca", cert, "token", "create", "--name", "ci", "--scope", "events",
        ])
        .await;
    assert!(created.status.success(), "{created:?}");
    let token = stdout(&created).trim().to_string();
    assert_eq!(token.len(), 64, "{created:?}");
    let list = hub
        .cli(&["--tls-ca", cert, "token", "list", "--json"])
        .await;
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["clients"][0]["name"], "ci", "{list}");
    let version = hub.cli(&["--tls-ca", cert, "--version"]).await;
    assert!(
        stdout(&version).contains(&format!("at https://127.0.0.1:{} (public mode)", hub.port)),
        "{version:?}"
    );
    // Not trusted (a self-signed certificate and no --tls-ca), or trusted for another
    // name: no connection, and the reason says how to trust it.
    for args in [
        &["token", "list"][..],
        &["--tls-ca", other.to_str().unwrap(), "token", "list"],
    ] {
        let refused = hub.cli(args).await;
        assert!(!refused.status.success(), "{args:?}: {refused:?}");
        assert!(
            stderr(&refused).contains("--tls-ca FILE"),
            "{args:?}: {refused:?}"
        );
    }
    hub.stop().await;
}

/// Without `--tls-ca`, the CLI trusts the system's roots (rustls-native-certs), which
/// honour `SSL_CERT_FILE` as OpenSSL does: pointed at the hub's certificate, `token
/// create` reaches the public hub; pointed elsewhere, it does not.
#[tokio::test]
async fn the_system_roots_are_trusted_through_ssl_cert_file() {
    let (hub, cert, other) = tls_hub().await;
    let with_roots = |roots: &std::path::Path| {
        let data = hub.dir.path().to_path_buf();
        let roots = roots.to_path_buf();
        async move {
            tokio::process::Command::new(hub_bin())
                .args([
                    "--data-dir",
                    data.to_str().unwrap(),
                    "--secret-store",
                    "file",
                ])
                .args(["token", "create", "--name", "roots", "--scope", "events"])
                .env("SSL_CERT_FILE", roots)
                .env_remove("SSL_CERT_DIR")
                .output()
                .await
                .unwrap()
        }
    };
    let created = with_roots(&cert).await;
    assert!(created.status.success(), "{created:?}");
    assert_eq!(stdout(&created).trim().len(), 64, "{created:?}");
    let refused = with_roots(&other).await;
    assert!(!refused.status.success(), "{refused:?}");
    assert!(stderr(&refused).contains("--tls-ca FILE"), "{refused:?}");
    hub.stop().await;
}

/// `agent run` on a terminal shows a spinner with the elapsed time and what the agent
/// does; piped, never (no spinner text, no carriage return, no escape codes).
#[tokio::test]
async fn agent_run_shows_a_spinner_on_a_terminal_only() {
    let hub = TestHub::start().await;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    assert!(hub.cli(&["project", "add", dir]).await.status.success());
    // `script` runs the command on a pseudo-terminal (stdin, stdout and stderr) and
    // copies what the terminal shows to its stdout. "slow 10" takes two seconds, many
    // ticks of the spinner.
    let command = format!(
        "{} --data-dir {} --secret-store file agent run {dir} 'slow 10'",
        hub_bin().display(),
        hub.dir.path().display(),
    );
    let shown = tokio::time::timeout(
        WAIT * 3,
        tokio::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the run ends")
    .unwrap();
    let text = stdout(&shown);
    assert!(shown.status.success(), "{text}");
    // The spinner's line: a frame of the spinner, the elapsed seconds, the activity.
    let frames = ['⠁', '⠂', '⠄', '⡀', '⢀', '⠠', '⠐', '⠈'];
    let spinner_lines: Vec<&str> = text
        .split(['\r', '\n'])
        .filter(|line| line.contains("thinking") && line.contains(&frames[..]))
        .collect();
    assert!(!spinner_lines.is_empty(), "no spinner: {text:?}");
    assert!(
        spinner_lines
            .iter()
            .any(|line| line.contains("0s") || line.contains("1s")),
        "no elapsed time: {spinner_lines:?}"
    );
    assert!(text.contains("slow line 10"), "{text:?}");

    let piped = hub.cli(&["agent", "run", dir, "slow 10"]).await;
    assert!(piped.status.success(), "{piped:?}");
    let said = stderr(&piped);
    assert!(
        !said.contains("thinking") && !said.contains('\r') && !said.contains('\x1b'),
        "a spinner without a terminal: {said:?}"
    );
    assert!(!said.contains(&frames[..]), "{said:?}");
    hub.stop().await;
}
