//! Helpers shared by the integration tests: a hub on port 0 with a temporary data
//! directory, a JSON-RPC WebSocket test client, a bare WebSocket for frame-level
//! checks, and [`eventually`] for state that can only be polled. [`cluster`] starts
//! instances sharing a real PostgreSQL server and a real nats-server; [`real_cli`] sets up
//! the real agent CLIs against fake model APIs.

#![allow(dead_code)]

pub mod cluster;
pub mod git_repo;
mod nats_server;
mod postgres_server;
pub mod real_cli;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use semantest_hub::config::{Config, LoadedConfig, Overrides, SecretStoreKind};
use semantest_hub::server::HubServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Request};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The deterministic fake Claude Code CLI.
pub fn fake_cli() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-claude")
}

/// The hub binary.
pub fn hub_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_semantest-hub"))
}

/// A configuration for a test hub in `data_dir`: port 0, file secret store, fake CLI,
/// short kill grace.
pub fn test_config(data_dir: &Path) -> LoadedConfig {
    let overrides = Overrides {
        port: Some(0),
        data_dir: Some(data_dir.to_path_buf()),
        secret_store: Some(SecretStoreKind::File),
        ..Default::default()
    };
    let mut loaded = Config::load(None, &overrides).expect("test config");
    loaded.config.agent.cli_path = Some(fake_cli());
    loaded.config.agent.kill_grace_ms = 500;
    loaded
}

/// A running hub with its own temporary data directory.
pub struct TestHub {
    pub server: Option<HubServer>,
    pub dir: tempfile::TempDir,
    pub token: String,
    pub port: u16,
}

impl TestHub {
    /// Runs the `semantest-hub` command on this hub's data directory, without blocking
    /// the runtime that serves the hub.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(hub_bin())
            .args([
                "--data-dir",
                self.dir.path().to_str().unwrap(),
                "--secret-store",
                "file",
            ])
            .args(args)
            .output()
            .await
            .unwrap()
    }

    /// A hub with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A hub whose configuration `edit` may change first.
    pub async fn start_with(edit: impl FnOnce(&mut LoadedConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        edit(&mut config);
        Self::start_in(dir, config).await
    }

    /// A hub on an existing directory (for restarts).
    pub async fn start_in(dir: tempfile::TempDir, config: LoadedConfig) -> Self {
        let server = semantest_hub::start(config).await.expect("hub starts");
        let token = std::fs::read_to_string(dir.path().join("secrets/owner-token")).unwrap();
        let port = server.port();
        Self {
            server: Some(server),
            dir,
            token: token.trim().to_string(),
            port,
        }
    }

    /// Shuts down and returns the data directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.dir
    }

    /// Stops and starts again on the same data directory, on any free port: the old
    /// one went back to the kernel's ephemeral pool when the hub stopped, where any
    /// connection a concurrent test opens may take it as its local port first.
    pub async fn restart(self) -> Self {
        let dir = self.stop().await;
        let config = test_config(dir.path());
        Self::start_in(dir, config).await
    }

    pub fn hub(&self) -> &semantest_hub::Hub {
        self.server.as_ref().unwrap().hub()
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// A WebSocket upgrade request with the owner token as a bearer token.
    pub fn ws_request(&self) -> Request<()> {
        let mut request = self.ws_url().into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", self.token)).unwrap(),
        );
        request
    }

    /// A WebSocket upgrade request with `token` as a bearer token and, if given, an
    /// Origin header (as a browser extension sends it).
    pub fn ws_request_as(&self, token: &str, origin: Option<&str>) -> Request<()> {
        let mut request = self.ws_url().into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        if let Some(origin) = origin {
            headers.insert("origin", HeaderValue::from_str(origin).unwrap());
        }
        request
    }

    /// The HTTP status of a WebSocket upgrade with `token` from `origin` (101 when it
    /// succeeded).
    pub async fn upgrade_status_as(&self, token: &str, origin: Option<&str>) -> u16 {
        match Ws::connect(self.ws_request_as(token, origin)).await {
            Ok(_) => 101,
            Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    /// A connected JSON-RPC client.
    pub async fn client(&self) -> Ws {
        Ws::connect(self.ws_request())
            .await
            .expect("client connects")
    }

    /// Creates a project in a new temporary directory and returns `(id, dir)`.
    pub async fn project(&self, ws: &mut Ws) -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let project = ws.ok("project.create", json!({"path": dir.path()})).await;
        (project["id"].as_str().unwrap().to_string(), dir)
    }
}

/// A JSON-RPC client over a WebSocket, keeping notifications that arrive while it waits
/// for a response.
pub struct Ws {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    pub notifications: VecDeque<Value>,
}

impl Ws {
    pub async fn connect(request: Request<()>) -> Result<Self, tungstenite::Error> {
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self {
            socket,
            next_id: 0,
            notifications: VecDeque::new(),
        })
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// The next JSON text frame.
    pub async fn next_json(&mut self) -> Value {
        self.next_json_within(WAIT)
            .await
            .expect("a message within the wait")
    }

    /// The next JSON text frame, or `None` when none comes within `limit`.
    pub async fn next_json_within(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?
                .expect("the connection is open")
                .expect("a frame");
            match message {
                Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
                Message::Close(frame) => panic!("connection closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Sends a request and returns the whole response object.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let frame = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(&frame.to_string()).await;
        self.response(id).await
    }

    /// Waits for the response with `id`.
    pub async fn response(&mut self, id: u64) -> Value {
        loop {
            let message = self.next_json().await;
            if message["id"] == id {
                return message;
            }
            if message.get("method").is_some() {
                self.notifications.push_back(message);
            } else {
                panic!("unexpected frame while waiting for response {id}: {message}");
            }
        }
    }

    /// Sends a request that must succeed and returns its result.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    /// Sends a request that must fail and returns its error object.
    pub async fn err(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        assert!(
            response.get("result").is_none(),
            "{method} unexpectedly succeeded: {response}"
        );
        response["error"].clone()
    }

    /// The next notification of `method`, as its params. Other notifications stay queued
    /// for later calls.
    pub async fn notification(&mut self, method: &str) -> Value {
        self.notification_within(method, WAIT)
            .await
            .unwrap_or_else(|| panic!("no message within the wait while waiting for {method}"))
    }

    /// [`Ws::notification`], or `None` when no message at all comes within `limit`
    /// (each message starts the wait again).
    pub async fn notification_within(&mut self, method: &str, limit: Duration) -> Option<Value> {
        if let Some(i) = self
            .notifications
            .iter()
            .position(|m| m["method"] == method)
        {
            return Some(self.notifications.remove(i).unwrap()["params"].clone());
        }
        loop {
            let message = self.next_json_within(limit).await?;
            if message["method"] == method {
                return Some(message["params"].clone());
            }
            self.notifications.push_back(message);
        }
    }

    /// Waits for the next `project.output` line of `kind` and returns it.
    pub async fn output_of_kind(&mut self, kind: &str) -> Value {
        loop {
            let line = self.notification("project.output").await;
            if line["kind"] == kind {
                return line;
            }
        }
    }

    /// Subscribes to a project's live output.
    pub async fn subscribe(&mut self, project_id: &str) {
        self.ok("project.subscribe", json!({"project_id": project_id}))
            .await;
    }

    /// Collects `project.output` lines of a run until its `run_finished` line.
    pub async fn run_output(&mut self, run_id: &str) -> Vec<Value> {
        let mut lines = Vec::new();
        loop {
            let output = self.notification("project.output").await;
            if output["run_id"] != run_id {
                continue;
            }
            let done = output["kind"] == "run_finished";
            lines.push(output);
            if done {
                return lines;
            }
        }
    }

    /// Reads until the server closes; returns the close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("close within the wait")
            {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// Starts a run and returns its id.
pub async fn run(ws: &mut Ws, project_id: &str, prompt: &str) -> String {
    let started = ws
        .ok(
            "agent.run",
            json!({"project_id": project_id, "prompt": prompt}),
        )
        .await;
    started["run_id"].as_str().unwrap().to_string()
}

/// Starts a run of the fake CLI that leaves a background grandchild in its process
/// group (writing its pid to `grandchild.pid` in `dir`, the project directory), waits
/// until the agent says it runs, and returns the run's id and the grandchild's pid.
/// The project must be subscribed on `ws`.
pub async fn run_with_grandchild(ws: &mut Ws, project_id: &str, dir: &Path) -> (String, i32) {
    let pid_file = dir.join("grandchild.pid");
    let run_id = run(
        ws,
        project_id,
        &format!("grandchild {}", pid_file.display()),
    )
    .await;
    ws.output_of_kind("assistant").await;
    let grandchild = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (run_id, grandchild)
}

/// A configuration edit for [`TestHub::start_with`]: the fake CLI records each of its
/// invocations (arguments, environment) into the directory `record`
/// (`FAKE_CLAUDE_RECORD`).
pub fn recording(record: &Path) -> impl FnOnce(&mut LoadedConfig) + '_ {
    move |c| {
        c.config.agent.env = [(
            "FAKE_CLAUDE_RECORD".to_string(),
            record.to_str().unwrap().to_string(),
        )]
        .into_iter()
        .collect();
    }
}

/// Whether a process exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// How long [`eventually`] waits by default: generous, because the suite runs on a 2-core
/// machine shared with builds and with the other tests of this binary, where a state
/// change that takes milliseconds alone can take seconds.
pub const EVENTUALLY: Duration = Duration::from_secs(60);

/// Polls `probe` until it answers `Ok(value)`, and returns that value. `Err(seen)` means
/// "not yet"; the last `seen` is part of the failure message, so a timeout says what was
/// awaited and how far it got. Polls quickly at first, then every 200 ms, and fails after
/// [`EVENTUALLY`]; a probe that itself hangs past the deadline fails the same way.
///
/// Only for state that can be observed but not awaited (a counter, a file, /health);
/// a notification or a reply is awaited directly ([`Ws::notification`]).
pub async fn eventually<T, S: std::fmt::Debug>(
    what: &str,
    probe: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    eventually_within(EVENTUALLY, what, probe).await
}

/// [`eventually`] with another deadline than [`EVENTUALLY`].
pub async fn eventually_within<T, S: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, probe()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(seen)) => last = Some(format!("{seen:?}")),
            Err(_) => panic!(
                "timed out after {limit:?} waiting for {what}: the last probe did not answer \
                 (the one before saw {})",
                last.as_deref().unwrap_or("nothing")
            ),
        }
        let now = tokio::time::Instant::now();
        assert!(
            now < deadline,
            "timed out after {limit:?} waiting for {what}; last seen: {}",
            last.as_deref().unwrap_or("nothing")
        );
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `Ok(value)` if `done(&value)`, else `Err(value)`: the answer of an [`eventually`]
/// probe that waits for `value` to satisfy `done` and reports it when it never does.
pub fn when<T>(value: T, done: impl FnOnce(&T) -> bool) -> Result<T, T> {
    if done(&value) { Ok(value) } else { Err(value) }
}

/// A loopback TCP port that is free now and that the kernel will not hand out by itself:
/// one below the ephemeral range (`net.ipv4.ip_local_port_range`), for servers that must
/// be told their port before they start (PostgreSQL, a nats-server restarted after an
/// outage). A port found free with `bind(…:0)` and released goes back to the ephemeral
/// pool, where any `connect()` of a concurrent test may take it as its local port before
/// the server binds it. Ports are handed out in turn from a random start, so tests of
/// this process never get the same one, and other processes doing the same are unlikely
/// to pick it in the same moment.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 10_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768)
        .max(LOW + 1_000);
    let span = ephemeral_start - LOW;
    let _ = NEXT.compare_exchange(
        0,
        1 + fastrand::u16(..span - 1),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let port = LOW + NEXT.fetch_add(1, Ordering::Relaxed) % span;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{ephemeral_start}");
}

/// Reports a timing figure beside its target, as a line `TARGET <name>: <figure>;
/// target <target>: met|MISSED` (seen with `--nocapture`). Timings depend on the machine
/// and on what else runs on it, so the test suite asserts behaviour and leaves targets to
/// the runs that report figures: with `SEMANTEST_TIMING_TARGETS=1` (the fault and
/// figure runs of docs/reliability.md), a missed target fails the test.
pub fn timing_target(name: &str, figure: &str, target: &str, met: bool) {
    let outcome = if met { "met" } else { "MISSED" };
    println!("TARGET {name}: {figure}; target {target}: {outcome}");
    let enforced = std::env::var("SEMANTEST_TIMING_TARGETS").is_ok_and(|v| v == "1");
    assert!(
        met || !enforced,
        "timing target missed: {name}: {figure}; target {target}"
    );
}

/// A bare WebSocket over TCP that never answers pings, for heartbeat and idle tests.
pub struct RawWs {
    pub stream: TcpStream,
}

/// A frame as read by [`RawWs`].
#[derive(Debug, PartialEq)]
pub enum RawFrame {
    Ping,
    Close(u16),
    Other(u8),
}

impl RawWs {
    pub async fn connect(port: u16, token: &str) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.unwrap());
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        Self { stream }
    }

    /// Reads the next frame (server frames are unmasked, RFC 6455 section 5.1).
    pub async fn frame(&mut self) -> Option<RawFrame> {
        let first = self.stream.read_u8().await.ok()?;
        let second = self.stream.read_u8().await.ok()?;
        let len = match second & 0x7f {
            126 => u64::from(self.stream.read_u16().await.ok()?),
            127 => self.stream.read_u64().await.ok()?,
            n => u64::from(n),
        };
        let mut payload = vec![0; len as usize];
        self.stream.read_exact(&mut payload).await.ok()?;
        Some(match first & 0x0f {
            0x9 => RawFrame::Ping,
            0x8 => RawFrame::Close(u16::from_be_bytes([payload[0], payload[1]])),
            op => RawFrame::Other(op),
        })
    }
}

/// A hub process, killed with SIGKILL when dropped so a failing test leaves none behind.
pub struct HubProcess(pub std::process::Child);

impl HubProcess {
    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the hub binary on `data_dir` and returns it with its port.
pub async fn spawn_hub(data_dir: &Path) -> (HubProcess, u16) {
    spawn_hub_with(data_dir, &[]).await
}

/// Starts the hub binary on `data_dir` with extra `SEMANTEST_HUB_*` settings in `env`
/// (see docs/configuration.md) and returns it with its port.
pub async fn spawn_hub_with(data_dir: &Path, env: &[(&str, &str)]) -> (HubProcess, u16) {
    let mut command = hub_command(std::process::Command::new(hub_bin()), data_dir);
    command
        .env("SEMANTEST_HUB_AGENT__KILL_GRACE_MS", "300")
        .envs(env.iter().copied());
    hub_started(command, data_dir).await
}

/// `launcher` (the hub binary itself, or a program that runs it: `prlimit`, `sh -c`)
/// with the hub's `serve` arguments as the tests use them, appended: any free port, the
/// file secret store, warnings only, `data_dir`, and the fake agent CLI. Stdout and stderr
/// are discarded; set them again to keep them.
pub fn hub_command(launcher: std::process::Command, data_dir: &Path) -> std::process::Command {
    hub_command_on(launcher, data_dir, 0)
}

/// [`hub_command`] on `port` instead of any free one.
pub fn hub_command_on(
    mut launcher: std::process::Command,
    data_dir: &Path,
    port: u16,
) -> std::process::Command {
    let port = port.to_string();
    launcher
        .args([
            "serve",
            "--port",
            &port,
            "--secret-store",
            "file",
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("SEMANTEST_HUB_AGENT__CLI_PATH", fake_cli())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    launcher
}

/// Spawns `command`, a hub on `data_dir` (see [`hub_command`]), and returns it with its
/// port once it has written its runtime file.
pub async fn hub_started(mut command: std::process::Command, data_dir: &Path) -> (HubProcess, u16) {
    let runtime = data_dir.join("server.json");
    let _ = std::fs::remove_file(&runtime);
    let child = HubProcess(command.spawn().unwrap());
    (child, runtime_port(data_dir).await)
}

/// The port in the runtime file a hub writes in `data_dir` once it listens, waiting for
/// the file to appear (it is written whole, through a rename).
pub async fn runtime_port(data_dir: &Path) -> u16 {
    let runtime = data_dir.join("server.json");
    let info: Value = eventually(
        "the hub's runtime file",
        async || match std::fs::read_to_string(&runtime) {
            Ok(text) => Ok(serde_json::from_str::<Value>(&text).unwrap()),
            Err(err) => Err(err.kind()),
        },
    )
    .await;
    info["port"].as_u64().unwrap() as u16
}

/// A JSON-RPC client of a hub process started by [`spawn_hub`], with its owner token.
pub async fn connect(port: u16, data_dir: &Path) -> Ws {
    let token = std::fs::read_to_string(data_dir.join("secrets/owner-token")).unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token.trim())).unwrap(),
    );
    Ws::connect(request).await.unwrap()
}

/// Resident memory of `pid` in KiB (`VmRSS` in /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// The resident memory of every process in group `pgid`, in KiB (an agent CLI's npm
/// launcher and the processes it starts).
pub fn group_rss_kib(pgid: i32) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command name (which may hold spaces) start after ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) {
            total += rss_kib(pid);
        }
    }
    total
}

/// Open file descriptors of `pid` (entries of /proc/PID/fd).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Open sockets of `pid` (entries of /proc/PID/fd that link to `socket:[…]`).
pub fn socket_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// The `q` quantile (0..=1) of `samples` (nearest rank), e.g. 0.99 for p99.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// Reads `semantest_hub_<name>` (a counter, `_total` included) from the hub's /metrics.
pub async fn metric(port: u16, name: &str) -> f64 {
    let text = tokio::time::timeout(
        WAIT,
        reqwest::get(format!("http://127.0.0.1:{port}/metrics")),
    )
    .await
    .expect("/metrics in time")
    .unwrap()
    .text()
    .await
    .unwrap();
    let prefix = format!("semantest_hub_{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}
