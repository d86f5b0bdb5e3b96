//! Attacks on the command-line client and the hub's files: a squatter on the port a
//! crashed hub recorded in `server.json`, a relay to the real hub, a data directory other
//! users can read, and passwords echoed in configuration errors.

use std::path::Path;
use std::sync::{Arc, Mutex};

use semantest_hub::security::{challenge_proof, new_token, token_hash};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::util::{WAIT, hub_bin, spawn_hub};

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
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], port).into()).unwrap();
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
    let (mut hub, port) = spawn_hub(dir.path()).await;
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
