//! A real PostgreSQL server for the tests, started and stopped by them: `initdb` and
//! `pg_ctl` in a temporary directory, listening on a free loopback port, with password
//! (SCRAM) authentication for the hub's user.
//!
//! PostgreSQL refuses to run as root, and the tests often do: then the server runs as
//! `nobody`, which owns the temporary directory. The binaries come from `PATH`, else
//! from the newest `/usr/lib/postgresql/*/bin` (Debian's layout). PostgreSQL must be
//! told its port, so it gets one the kernel does not hand out to other sockets
//! ([`free_port`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::free_port;

/// The hub's database user.
pub const USER: &str = "semantest";
/// The hub's database.
pub const DATABASE: &str = "semantest";
/// The hub's database password (only the tests' throwaway server knows it).
pub const PASSWORD: &str = "test-password-not-a-secret";

/// How long `pg_ctl` waits for a start or stop.
const PG_CTL_WAIT_S: &str = "30";

/// A running PostgreSQL server in a temporary directory; stopped when dropped.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    run_as: Option<&'static str>,
    /// More `postgres` command-line options (`-c name=value ...`).
    options: String,
}

/// Where the PostgreSQL server binaries are.
fn bin_dir() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pg_ctl").is_file() && dir.join("initdb").is_file() {
                return dir;
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (no pg_ctl on PATH, no /usr/lib/postgresql); run scripts/deps.sh")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl PostgresServer {
    /// A fresh cluster with user [`USER`] (password [`PASSWORD`]) owning database
    /// [`DATABASE`], started.
    pub async fn start() -> Self {
        Self::start_with("", |_| {}).await
    }

    /// As [`PostgresServer::start`], with more server `options` (`-c name=value ...`),
    /// and `prepare` called with the server's directory before the first start (to
    /// write files the options name; they are handed to the server's user after).
    pub async fn start_with(options: &str, prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("semantest-pg-")
            .tempdir()
            .unwrap();
        let run_as = running_as_root().then_some("nobody");
        let server = Self {
            dir,
            bin: bin_dir(),
            port: free_port(),
            run_as,
            options: options.to_string(),
        };
        prepare(server.dir.path());
        let password_file = server.dir.path().join("password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        if let Some(user) = run_as {
            for entry in std::fs::read_dir(server.dir.path()).unwrap() {
                chown(&entry.unwrap().path(), user);
            }
            chown(server.dir.path(), user);
        }
        server
            .run(
                "initdb",
                &[
                    "-D",
                    server.data().to_str().unwrap(),
                    "-U",
                    USER,
                    "--pwfile",
                    password_file.to_str().unwrap(),
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
            )
            .await;
        server.start_again().await;
        server
            .run(
                "createdb",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &server.port.to_string(),
                    "-U",
                    USER,
                    "--no-password",
                    DATABASE,
                ],
            )
            .await;
        server
    }

    /// The server's log so far (with `-c log_statement=all`, every statement run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://semantest@127.0.0.1:<port>/semantest`: no password, as the hub
    /// requires (the password goes to the hub's secret store).
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// Starts the server (again) on the same port and data, waiting until it accepts
    /// connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off {}",
            self.port,
            self.dir.path().display(),
            self.options
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                PG_CTL_WAIT_S,
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
            ],
        )
        .await;
    }

    /// Stops the server, closing every connection at once (`-m fast`).
    pub async fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-w",
                "-t",
                PG_CTL_WAIT_S,
                "-m",
                "fast",
                "-D",
                self.data().to_str().unwrap(),
            ],
        )
        .await;
    }

    fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
        // Client programs (createdb) may live elsewhere on PATH than the server ones;
        // the PGPASSWORD only reaches this child.
        let beside = self.bin.join(program);
        let program = if beside.is_file() {
            beside
        } else {
            PathBuf::from(program)
        };
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => std::process::Command::new(program),
        };
        command
            .args(args)
            .env("PGPASSWORD", PASSWORD)
            .current_dir(self.dir.path());
        command
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let mut command = tokio::process::Command::from(self.command(program, args));
        let output = tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .unwrap_or_else(|_| panic!("{program} took over a minute"))
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}

fn chown(path: &Path, user: &str) {
    let status = std::process::Command::new("chown")
        .arg(user)
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chown {user} {}", path.display());
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Best effort: a server already stopped makes this fail, which is fine.
        let _ = self
            .command(
                "pg_ctl",
                &[
                    "stop",
                    "-m",
                    "immediate",
                    "-D",
                    self.data().to_str().unwrap(),
                ],
            )
            .output();
    }
}
