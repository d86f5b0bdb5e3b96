//! Attacks on the command-line client and the hub's files: a squatter on the port a
//! crashed hub recorded in `server.json`, a relay to the real hub, a data directory other
//! users can read, and passwords echoed in configuration errors.

use std::path::Path;
use std::sync::{Arc, Mutex};

use semantest_hub::security::{challenge_proof, new_token, token_hash};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::util::{WAIT, free_port, hub_bin, hub_command_on, hub_started, spawn_hub};

/// Runs the real CLI binary on `data_dir`, without blocking the runtime that serves the
/// squatter.
async fn cli(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let output = tokio::process::Command::new(hub_bin())
        .args(["--secret-store", "file", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(WAIT, output)
        .await
        .expect("the CLI finishes")
        .unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// How the squatter answers the signature challenge.
#[derive(Clone, Copy)]
enum Answer {
    /// A copy of the plain signature, with `challenge: null`.
    NoProof,
    /// A proof of the right shape under a key that is not the owner token's hash.
    WrongProof,
    /// Relays every byte to the real hub on this port (rewriting Host so the real hub's
    /// Host allowlist lets it through), and back.
    Relay(u16),
}

/// A program that took the hub's recorded port, recording every byte sent to it.
struct Squatter {
    received: Arc<Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Squatter {
    async fn start(port: u16, answer: Answer) -> Self {
        // The port is free once the hub is dead (outside the ephemeral range, so no
        // other socket took it since); the dead hub's connections may linger in
        // TIME_WAIT, which SO_REUSEADDR allows.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(([127, 0, 0, 1], port).into())
            .unwrap_or_else(|err| panic!("cannot bind the squatter to {port}: {err}"));
        let listener: TcpListener = socket.listen(16).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    match answer {
                        Answer::Relay(real) => relay(stream, port, real, log).await,
                        _ => impersonate(stream, port, answer, log).await,
                    }
                });
            }
        });
        Self {
            received,
            task: Some(task),
        }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    /// Closes the listener (it lives in the accept task), so the port is free again.
    async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Answers `/semantest-signature` the way a hub does (without or with a wrong proof),
/// and 401 to anything else, recording all it reads.
async fn impersonate(mut stream: TcpStream, port: u16, answer: Answer, log: Arc<Mutex<Vec<u8>>>) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                    pending.extend_from_slice(&buf[..n]);
                    continue;
                }
            }
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        pending.drain(..end + 4);
        let target = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        if let Some(query) = target.strip_prefix("/semantest-signature") {
            let field = |name: &str| {
                query
                    .trim_start_matches('?')
                    .split('&')
                    .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                    .map(str::to_string)
            };
            let mut body = serde_json::json!({
                "service": "semantest", "product": "semantest-hub", "version": "0.1.0",
                "protocol": 1, "mode": "local", "instance_id": "squatter",
                "ws_path": "/ws", "capabilities": ["events"], "challenge": null,
            });
            if let (Answer::WrongProof, Some(nonce), Some(client)) =
                (answer, field("challenge"), field("client"))
            {
                let endpoint = format!("127.0.0.1:{port}");
                body["challenge"] = serde_json::json!({
                    "nonce": nonce, "client": client, "endpoint": endpoint,
                    "proof": challenge_proof(&token_hash(&new_token()), &nonce, &client, &endpoint),
                });
            }
            let body = body.to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        } else {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            // Keep recording whatever else the client sends until it hangs up.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                log.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            return;
        }
    }
}

/// Passes bytes both ways between the client and the real hub, rewriting the Host the
/// client sent so the real hub accepts it, and recording what the client sends.
async fn relay(client: TcpStream, port: u16, real: u16, log: Arc<Mutex<Vec<u8>>>) {
    let Ok(hub) = TcpStream::connect(("127.0.0.1", real)).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut hub_read, mut hub_write) = hub.into_split();
    let (from, to) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{real}"));
    let upstream = async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = client_read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            log.lock().unwrap().extend_from_slice(&buf[..n]);
            let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
            let bytes = if chunk.as_bytes() == &buf[..n] {
                chunk.replace(&from, &to).into_bytes()
            } else {
                buf[..n].to_vec()
            };
            if hub_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut hub_read, &mut client_write).await;
    };
    tokio::join!(upstream, downstream);
}

/// A hub killed with SIGKILL, leaving its `server.json` behind; returns the data
/// directory, the recorded port and the owner token.
async fn crashed_hub() -> (tempfile::TempDir, u16, String) {
    let dir = tempfile::tempdir().unwrap();
    // A port the kernel does not hand out by itself: once the hub is dead, no client
    // socket of a concurrent test can take it before the squatter does.
    let port = free_port();
    let command = hub_command_on(std::process::Command::new(hub_bin()), dir.path(), port);
    let (mut hub, recorded) = hub_started(command, dir.path()).await;
    assert_eq!(recorded, port);
    hub.kill();
    assert!(
        dir.path().join("server.json").exists(),
        "a killed hub leaves its runtime file"
    );
    let token = std::fs::read_to_string(dir.path().join("secrets/owner-token")).unwrap();
    (dir, port, token.trim().to_string())
}

#[tokio::test]
async fn the_cli_never_sends_the_owner_token_to_a_squatter_on_the_recorded_port() {
    let (dir, port, token) = crashed_hub().await;
    for (answer, reason) in [
        (Answer::NoProof, "sent no signature proof"),
        (Answer::WrongProof, "signature proof is wrong"),
    ] {
        let squatter = Squatter::start(port, answer).await;
        for args in [&["status"][..], &["token", "list"], &["dashboard"]] {
            let output = cli(dir.path(), args).await;
            let text = stderr(&output);
            assert!(!output.status.success(), "{args:?} {output:?}");
            assert!(
                text.contains("did not prove it is this hub")
                    && text.contains(reason)
                    && text.contains("the owner token was not sent"),
                "{args:?}: {text}"
            );
            assert!(output.stdout.is_empty(), "{args:?} printed {output:?}");
        }
        let received = squatter.received();
        assert!(
            received.contains("GET /semantest-signature?challenge="),
            "the CLI asks for the proof first: {received}"
        );
        assert!(
            !received.contains(&token),
            "the squatter received the owner token: {received}"
        );
        assert!(!received.contains("Bearer"), "{received}");
        squatter.stop().await;
    }
}

#[tokio::test]
async fn the_cli_refuses_a_relay_to_the_real_hub() {
    let (dir, port, token) = crashed_hub().await;
    // The real hub, holding the same owner token, runs on another port.
    let real_dir = tempfile::tempdir().unwrap();
    let secrets = real_dir.path().join("secrets");
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&secrets)
            .unwrap();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(secrets.join("owner-token"))
            .unwrap();
        std::io::Write::write_all(&mut file, token.as_bytes()).unwrap();
    }
    let (_real, real_port) = spawn_hub(real_dir.path()).await;
    // The real hub answers the CLI directly on its own port...
    let direct = cli(real_dir.path(), &["status"]).await;
    assert!(direct.status.success(), "{direct:?}");

    // ...but not through a relay on the port the stale runtime file records: the proof
    // is for the real hub's endpoint, not the one the CLI contacted.
    let relay = Squatter::start(port, Answer::Relay(real_port)).await;
    for args in [&["status"][..], &["token", "list"], &["dashboard"]] {
        let output = cli(dir.path(), args).await;
        let text = stderr(&output);
        assert!(!output.status.success(), "{args:?} {output:?}");
        assert!(
            text.contains("did not prove it is this hub")
                && text.contains("signature proof is wrong")
                && text.contains("the owner token was not sent"),
            "{args:?}: {text}"
        );
    }
    let received = relay.received();
    assert!(
        received.contains("GET /semantest-signature?challenge="),
        "{received}"
    );
    assert!(
        !received.contains(&token),
        "the relay received the owner token: {received}"
    );
}

/// Starts the hub binary under `umask 022` (the common default that makes new files
/// world-readable) on `data_dir`, with `XDG_CONFIG_HOME` set to `xdg_config`, stderr
/// going to `stderr_file`; returns it with its port once it has written its runtime file.
async fn spawn_hub_umask_022(
    data_dir: &Path,
    xdg_config: &Path,
    stderr_file: &Path,
) -> (crate::util::HubProcess, u16) {
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", "umask 022; exec \"$0\" \"$@\""])
        .arg(hub_bin());
    let mut command = crate::util::hub_command(sh, data_dir);
    command
        .env("XDG_CONFIG_HOME", xdg_config)
        .stderr(std::fs::File::create(stderr_file).unwrap());
    crate::util::hub_started(command, data_dir).await
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every directory and file the hub keeps in `data_dir` (logs included, in
/// `<data_dir>/logs`) and in the app's config folder under `xdg_config`, with its mode.
fn hub_paths(data_dir: &Path, xdg_config: &Path) -> Vec<(std::path::PathBuf, u32)> {
    fn walk(path: &Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
        out.push((path.to_path_buf(), mode(path)));
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                walk(&entry.unwrap().path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(data_dir, &mut out);
    let config = xdg_config.join("semantest-hub");
    if config.exists() {
        walk(&config, &mut out);
    }
    out
}

fn assert_private(paths: &[(std::path::PathBuf, u32)]) {
    for (path, mode) in paths {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:o}, want {want:o}", path.display());
    }
}

#[tokio::test]
async fn the_data_directory_and_logs_are_private_whatever_the_umask() {
    let root = tempfile::tempdir().unwrap();
    let (data, xdg) = (root.path().join("data"), root.path().join("xdg"));
    let (mut hub, port) = spawn_hub_umask_022(&data, &xdg, &root.path().join("err")).await;
    // A write through the hub, so the WAL and shared-memory files exist.
    let mut ws = crate::util::connect(port, &data).await;
    let project = tempfile::tempdir().unwrap();
    ws.ok(
        "project.create",
        serde_json::json!({"path": project.path()}),
    )
    .await;
    let paths = hub_paths(&data, &xdg);
    let names: Vec<String> = paths
        .iter()
        .map(|(path, _)| {
            path.strip_prefix(&data)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    for expected in [
        "hub.sqlite3",
        "hub.sqlite3-wal",
        "hub.sqlite3-shm",
        "hub.lock",
        "server.json",
        "secrets",
        "secrets/owner-token",
        "logs",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("logs/hub.")),
        "a log file: {names:?}"
    );
    assert_private(&paths);
    hub.kill();
}

#[tokio::test]
async fn a_data_directory_left_readable_is_repaired_at_start_and_logged() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let (data, xdg) = (root.path().join("data"), root.path().join("xdg"));
    // The app's own config folder, with its config file, as an editor leaves them.
    let config_dir = xdg.join("semantest-hub");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("config.toml"), "# defaults\n").unwrap();
    let (mut hub, _) = spawn_hub_umask_022(&data, &xdg, &root.path().join("first")).await;
    hub.kill();
    // What an older version under umask 022 left: everything readable by all.
    for (path, _) in hub_paths(&data, &xdg) {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let before = hub_paths(&data, &xdg);
    assert!(before.iter().any(|(p, _)| p.ends_with("hub.sqlite3")));

    let log = root.path().join("second");
    let (mut hub, _) = spawn_hub_umask_022(&data, &xdg, &log).await;
    assert_private(&hub_paths(&data, &xdg));
    let text = std::fs::read_to_string(&log).unwrap();
    for repaired in [
        data.clone(),
        data.join("hub.sqlite3"),
        data.join("secrets/owner-token"),
        data.join("logs"),
        config_dir.join("config.toml"),
    ] {
        assert!(
            text.lines()
                .any(|line| line.contains("repaired permissions")
                    && line.contains(&format!("path={} ", repaired.display()))),
            "no repair line for {}: {text}",
            repaired.display()
        );
    }
    hub.kill();
}

/// Runs `serve --public` with `[public]` `setting` in a config file, and returns what it
/// printed on stderr; it must fail on the configuration.
fn public_config_error(setting: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("public.toml");
    std::fs::write(
        &config,
        format!("[public]\nhosts = [\"hub.example.com\"]\n{setting}\n"),
    )
    .unwrap();
    let output = std::process::Command::new(hub_bin())
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .args([
            "serve",
            "--public",
            "--behind-proxy",
            "--bind",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success(), "{setting}: {output:?}");
    stderr(&output)
}

#[test]
fn configuration_errors_never_echo_a_broker_or_database_password() {
    const SECRET: &str = "s3cr3t-pw";
    for (setting, key) in [
        (
            "broker = \"nats://hub:s3cr3t-pw@127.0.0.1:4222\"",
            "public.broker",
        ),
        (
            "broker = \"nats://hub:s3cr3t-pw@127.0.0.1:99999\"",
            "public.broker",
        ),
        (
            "broker = \"nats://h:4222,,tls://hub:s3cr3t-pw@h:4443\"",
            "public.broker",
        ),
        ("broker = \"http://hub:s3cr3t-pw@h:4222\"", "public.broker"),
        (
            "database = \"postgres://hub:s3cr3t-pw@db:notaport/hub\"",
            "public.database",
        ),
        (
            "database = \"mysql://hub:s3cr3t-pw@db/hub\"",
            "public.database",
        ),
        (
            "database = \"postgres://hub@db:notaport/hub?password=s3cr3t-pw\"",
            "public.database",
        ),
        (
            "database = \"host=db password=s3cr3t-pw user=hub\"",
            "public.database",
        ),
    ] {
        let text = public_config_error(setting);
        assert!(text.contains(key), "{setting}: {text}");
        assert!(!text.contains(SECRET), "{setting} echoed: {text}");
        assert!(text.contains("***"), "{setting}: {text}");
    }
}
