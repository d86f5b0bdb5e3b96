//! The ACP contract the Gemini driver relies on, checked on the real `gemini --acp`
//! driven by hand (no hub): the handshake, a shell call that asks, options chosen by
//! kind, a rejection and a cancel that run nothing, the usage in the prompt's result.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::real_cli::{Agent, CLI_WAIT, FakeApi};

/// `gemini --acp` driven by hand: JSON-RPC lines in and out, read by a thread.
struct Acp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    next_id: u64,
    /// Everything read so far, in order.
    seen: Vec<Value>,
}

impl Acp {
    fn spawn(api: &FakeApi, home: &Path, cwd: &Path) -> Self {
        let mut child = Command::new(Agent::Gemini.cli())
            .arg("--acp")
            .current_dir(cwd)
            .envs(Agent::Gemini.env(api, home))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gemini starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("not JSON from gemini --acp ({err}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            next_id: 0,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// The next message that satisfies `want`; the others are kept in `seen`.
    fn until(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + CLI_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} from gemini --acp; seen: {:?}", self.seen));
            self.seen.push(message.clone());
            if want(&message) {
                return message;
            }
        }
    }

    fn response(&mut self, id: u64) -> Value {
        self.until(&format!("response {id}"), |m| {
            m["id"] == id && m.get("method").is_none()
        })
    }

    fn permission_request(&mut self) -> Value {
        self.until("permission request", |m| {
            m["method"] == "session/request_permission"
        })
    }

    /// Closes stdin (the CLI ignores SIGTERM while it is open) and waits for the exit.
    fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + CLI_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gemini did not exit after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Acp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The option of `kind` in a permission request.
fn option_id(request: &Value, kind: &str) -> String {
    request["params"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} option in {request}"))["optionId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The contract the hub's Gemini driver relies on, checked on the real CLI: the ACP v1
/// handshake, a shell call that asks, options chosen by kind, a rejection that runs
/// nothing, a cancel while a permission request waits, and the usage in the prompt's
/// result.
#[test]
fn gemini_acp_asks_before_a_shell_command_and_runs_only_what_was_allowed() {
    let api = FakeApi::start(Agent::Gemini);
    let home = Agent::Gemini.home(&api);
    let work = tempfile::tempdir().unwrap();
    let mut acp = Acp::spawn(&api, home.path(), work.path());

    let id = acp.request(
        "initialize",
        json!({"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": false, "writeTextFile": false}, "terminal": false}}),
    );
    let init = acp.response(id);
    assert_eq!(init["result"]["protocolVersion"], 1, "{init}");
    assert_eq!(init["result"]["agentCapabilities"]["loadSession"], true);
    let id = acp.request("session/new", json!({"cwd": work.path(), "mcpServers": []}));
    let session = acp.response(id)["result"]["sessionId"]
        .as_str()
        .expect("a session id")
        .to_string();

    // Allowed: the command runs once the answer names the allow_once option.
    let prompt = acp.request(
        "session/prompt",
        json!({"sessionId": session, "prompt": [{"type": "text", "text": "SHELL echo hi > allowed.txt"}]}),
    );
    let ask = acp.permission_request();
    let call = &ask["params"]["toolCall"];
    assert_eq!(call["kind"], "execute", "{ask}");
    assert_eq!(call["title"], "echo hi > allowed.txt");
    assert!(
        call["toolCallId"]
            .as_str()
            .unwrap()
            .starts_with("run_shell_command__")
    );
    // The first option is not the one to take.
    assert_eq!(ask["params"]["options"][0]["kind"], "allow_always", "{ask}");
    assert!(!work.path().join("allowed.txt").exists());
    let allow = option_id(&ask, "allow_once");
    acp.send(json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"outcome": {"outcome": "selected", "optionId": allow}}}));
    let end = acp.response(prompt);
    assert_eq!(end["result"]["stopReason"], "end_turn", "{end}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("allowed.txt")).unwrap(),
        "hi\n"
    );
    // Two main calls of the fake: 100 input and 10 output tokens each.
    assert_eq!(
        end["result"]["_meta"]["quota"]["token_count"],
        json!({"input_tokens": 200, "output_tokens": 20}),
        "{end}"
    );

    // Rejected: nothing runs, the turn goes on to its end.
    let prompt = acp.request(
        "session/prompt",
        json!({"sessionId": session, "prompt": [{"type": "text", "text": "SHELL echo no > rejected.txt"}]}),
    );
    let ask = acp.permission_request();
    let reject = option_id(&ask, "reject_once");
    acp.send(json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"outcome": {"outcome": "selected", "optionId": reject}}}));
    assert_eq!(acp.response(prompt)["result"]["stopReason"], "end_turn");
    assert!(!work.path().join("rejected.txt").exists());

    // Cancelled while the permission request waits: the prompt ends cancelled.
    let prompt = acp.request(
        "session/prompt",
        json!({"sessionId": session, "prompt": [{"type": "text", "text": "SHELL echo no > cancelled.txt"}]}),
    );
    let ask = acp.permission_request();
    acp.send(
        json!({"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": session}}),
    );
    acp.send(
        json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"outcome": {"outcome": "cancelled"}}}),
    );
    assert_eq!(acp.response(prompt)["result"]["stopReason"], "cancelled");
    assert!(!work.path().join("cancelled.txt").exists());

    assert!(acp.close().success());
}
