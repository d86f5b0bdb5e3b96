//! The two servers under test, each its own process: the real hub (a release build of
//! `semantest-hub serve`) and the bare tokio-tungstenite server (`bench bare-server`).
//! Also what `/proc` says about them: resident memory and CPU time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Which server a measurement ran against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The hub.
    Hub,
    /// The bare tokio-tungstenite server.
    Bare,
}

/// How to reach a running server.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Hub or bare.
    pub kind: Kind,
    /// `ws://127.0.0.1:<port>/ws`.
    pub ws_url: String,
    /// The owner token (hub only).
    pub token: Option<String>,
}

/// A server process; killed when dropped.
pub struct Server {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// How to reach it.
    pub endpoint: Endpoint,
    /// The hub's data directory (kept alive as long as the process).
    _data: Option<tempfile::TempDir>,
}

/// How to start the hub.
#[derive(Debug, Clone)]
pub struct HubSpec {
    /// The `semantest-hub` binary.
    pub binary: PathBuf,
    /// The agent CLI the hub runs (the benchmark's own fake, through a wrapper script).
    pub cli: PathBuf,
    /// Extra `SEMANTEST_HUB_*` settings.
    pub env: Vec<(String, String)>,
}

impl HubSpec {
    /// The environment every benchmark hub gets: limits meant to stop one misbehaving
    /// client are raised so that they do not cap the measurement.
    fn base_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("SEMANTEST_HUB_LIMITS__MAX_CONNECTIONS", "20000"),
            ("SEMANTEST_HUB_LIMITS__RATE_LIMIT_PER_S", "1000000"),
            ("SEMANTEST_HUB_LIMITS__RATE_LIMIT_BURST", "1000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.push((
            "SEMANTEST_HUB_AGENT__CLI_PATH".into(),
            self.cli.display().to_string(),
        ));
        env.extend(self.env.iter().cloned());
        env
    }

    /// The command line `semantest-hub serve` on `port` (0 = any) in `data`.
    pub fn command(&self, data: &Path, port: u16) -> Command {
        let mut command = self.serve(data);
        command.arg("--port").arg(port.to_string());
        command
    }

    /// `semantest-hub serve` in `data`, without a port (public mode takes `--bind`).
    fn serve(&self, data: &Path) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(["serve", "--secret-store", "file", "--log-level", "warn"])
            .arg("--data-dir")
            .arg(data)
            .envs(self.base_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }
}

/// Starts a public-mode hub behind a (pretend) proxy on a free loopback port, with
/// `broker` as its `public.broker` (`None`: the in-process broker), and waits for its
/// runtime file. Per-address limits are raised: every benchmark client comes from
/// 127.0.0.1.
///
/// # Errors
/// When the binary cannot start or the hub does not come up.
pub async fn start_public_hub(spec: &HubSpec, broker: Option<&str>) -> Result<Server> {
    let port = free_port()?;
    let mut spec = spec.clone();
    spec.env.extend(
        [
            ("SEMANTEST_HUB_PUBLIC__HOSTS", "[\"bench.test\"]"),
            ("SEMANTEST_HUB_PUBLIC__PER_ADDRESS_CONNECTIONS", "100000"),
            ("SEMANTEST_HUB_PUBLIC__PER_ADDRESS_RATE_PER_S", "10000000"),
            ("SEMANTEST_HUB_PUBLIC__PER_ADDRESS_BURST", "10000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    if let Some(broker) = broker {
        spec.env
            .push(("SEMANTEST_HUB_PUBLIC__BROKER".into(), broker.to_string()));
    }
    let bind = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir()?;
    let mut command = spec.serve(data.path());
    command.args(["--public", "--bind", bind.as_str(), "--behind-proxy"]);
    spawn_hub(command, data).await
}

/// A `nats-server` on a free loopback port, from PATH; killed when dropped.
pub struct Nats {
    /// Held only to be killed when the `Nats` is dropped.
    _child: Child,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
}

/// Starts `nats-server` on a free port and waits (up to 10 s) until it accepts
/// connections.
///
/// # Errors
/// When it is not installed (`apt-get install nats-server`) or does not come up.
pub async fn start_nats() -> Result<Nats> {
    let port = free_port()?;
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start nats-server (apt-get install nats-server)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        ensure!(
            Instant::now() < deadline,
            "nats-server did not listen in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Nats {
        _child: child,
        url: format!("nats://127.0.0.1:{port}"),
    })
}

/// Starts a hub on a free port and waits (up to 20 s) for its runtime file.
///
/// # Errors
/// When the binary cannot start or the hub does not come up.
pub async fn start_hub(spec: &HubSpec) -> Result<Server> {
    let data = tempfile::tempdir()?;
    let command = spec.command(data.path(), 0);
    spawn_hub(command, data).await
}

/// Runs a `semantest-hub serve` command on `data` and waits for its runtime file.
async fn spawn_hub(mut command: Command, data: tempfile::TempDir) -> Result<Server> {
    let mut child = command
        .spawn()
        .context("cannot start the hub (build it with `cargo build --release`)")?;
    let runtime = data.path().join("server.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    let info: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&runtime)
            && let Ok(value) = serde_json::from_str(&text)
        {
            break value;
        }
        if let Some(status) = child.try_wait()? {
            bail!("the hub exited during start-up with {status}");
        }
        ensure!(Instant::now() < deadline, "the hub did not start in 20 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let port = info["port"].as_u64().context("server.json has no port")?;
    let token = std::fs::read_to_string(data.path().join("secrets/owner-token"))
        .context("read the owner token")?
        .trim()
        .to_string();
    let pid = child.id().context("hub pid")?;
    Ok(Server {
        child,
        pid,
        endpoint: Endpoint {
            kind: Kind::Hub,
            ws_url: format!("ws://127.0.0.1:{port}/ws"),
            token: Some(token),
        },
        _data: Some(data),
    })
}

/// Starts `bench bare-server` and reads the port it prints.
///
/// # Errors
/// When it cannot start or prints no port within 10 s.
pub async fn start_bare() -> Result<Server> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["bare-server", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("start the bare server")?;
    let stdout = child.stdout.take().context("bare server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the bare server printed no port")??
        .context("the bare server exited")?;
    let port: u16 = line
        .strip_prefix("PORT ")
        .context("unexpected first line from the bare server")?
        .parse()?;
    let pid = child.id().context("bare pid")?;
    Ok(Server {
        child,
        pid,
        endpoint: Endpoint {
            kind: Kind::Bare,
            ws_url: format!("ws://127.0.0.1:{port}/ws"),
            token: None,
        },
        _data: None,
    })
}

impl Server {
    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_kib(self.pid) as f64 / 1024.0
    }

    /// Stops the process with SIGTERM, then SIGKILL after 5 s.
    pub async fn stop(mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `VmRSS` of `pid` in KiB (Linux `/proc/PID/status`); 0 when unreadable.
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:").unwrap_or(0)
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU use of every thread of a process, from `/proc/PID/task/*/`.
#[derive(Debug, Default, Clone)]
pub struct CpuSample {
    /// Nanoseconds on a CPU, all threads (`schedstat` field 1).
    pub run_ns: u64,
    /// `utime + stime` in clock ticks, all threads (`stat` fields 14, 15).
    pub ticks: u64,
    /// Per thread name: (wake-ups = voluntary + involuntary context switches, ns on CPU).
    pub threads: std::collections::BTreeMap<String, (u64, u64)>,
}

/// Reads a [`CpuSample`] of `pid`.
///
/// # Errors
/// When `/proc/PID/task` cannot be read (the process is gone, or not Linux).
pub fn cpu_sample(pid: u32) -> Result<CpuSample> {
    let mut sample = CpuSample::default();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = entry?.path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let run_ns: u64 = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let stat = read("stat");
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        sample.ticks += tick(11) + tick(12);
        sample.run_ns += run_ns;
        let status = read("status");
        let switches: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        let name = read("comm").trim().to_string();
        let slot = sample.threads.entry(name).or_default();
        slot.0 += switches;
        slot.1 += run_ns;
    }
    Ok(sample)
}

/// Raises this process's soft open-files limit to its hard limit and returns it.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_nofile() -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// A free loopback port (bound, read, released).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
