//! The Codex driver: `codex app-server`, JSON-RPC lines on stdio without the `jsonrpc`
//! member (the Codex app server README, and the schemas the CLI writes with
//! `codex app-server generate-json-schema`; checked against `@openai/codex` 0.171.0).
//!
//! One app-server process per run, one thread in it:
//!
//! 1. `initialize {clientInfo, capabilities: null}`, then the `initialized` notification;
//! 2. `thread/start {cwd, approvalPolicy: "untrusted", sandbox, model?}`, or
//!    `thread/resume {threadId, …}` to resume; the thread id is the session the project
//!    resumes next ([`AgentEvent::SessionStarted`]). `untrusted` makes every command
//!    that is not known to be read-only ask;
//! 3. each prompt: `turn/start {threadId, input: [{type: "text", text}]}` when no turn
//!    runs, else `turn/steer {threadId, expectedTurnId, input}`, which folds it into the
//!    running turn (a follow-up queued by the hub waits for `turn/completed` instead);
//! 4. an interrupt: `turn/interrupt {threadId, turnId}`; the turn then completes with
//!    status `interrupted`.
//!
//! The app server asks the hub with `item/commandExecution/requestApproval` and
//! `item/fileChange/requestApproval`. Each becomes a [`PermissionRequest`] whose id is the
//! JSON-RPC id's text; the answer is `{decision}`: `accept`, `acceptForSession` (an
//! "always" answer), `decline` (the command does not run; the turn goes on) or `cancel`
//! (a rejection that also ends the turn). Codex cannot take an edited command or a
//! reason, so those parts of an answer are not passed on. `serverRequest/resolved` for a
//! request the hub has not answered (the turn was interrupted) withdraws it. Requests the
//! hub does not serve (user input, MCP elicitation, legacy approvals) get a JSON-RPC
//! error, so the agent never waits on them.
//!
//! A turn's end (`turn/completed`) maps its status onto a stop reason: `completed` →
//! `end_turn`, `interrupted` → `cancelled`, `failed` → `error`. Token usage comes from
//! `thread/tokenUsage/updated`, whose `total` is cumulative for the thread: a turn's
//! figure is the total at its end minus the total at the previous turn's end.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::{
    AgentEvent, Command, Link, PermissionAnswer, PermissionRequest, StopReason, TurnEnd, TurnTokens,
};
use crate::runner::peer::{Incoming, Peer, PeerError, RequestId};
use crate::runner::session::Input;

/// The CLI arguments: the app server speaks on stdio; everything else goes in requests.
pub fn args() -> Vec<String> {
    vec!["app-server".into()]
}

/// The approval policy of every thread: commands ask unless Codex knows them to be
/// read-only, and the hub (its policy, its rules, a person) answers.
pub const APPROVAL_POLICY: &str = "untrusted";

/// The key of the thread's cumulative usage in a turn's stored totals.
const TOTALS_KEY: &str = "codex_thread_total";

/// JSON-RPC's "method not found".
const METHOD_NOT_FOUND: i64 = -32601;

/// `TokenUsageBreakdown`: cumulative or per call, as the app server reports it. Input
/// tokens include the cached ones (as in the Responses API's `usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Breakdown {
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// The part of `input_tokens` read from the cache.
    pub cached_input_tokens: u64,
    /// Input tokens written to the cache.
    pub cache_write_input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// The reasoning part of `output_tokens`.
    pub reasoning_output_tokens: u64,
}

/// One turn's tokens: `now` minus `before` (cumulative thread totals, also across a
/// resume: the app server carries them). Totals below `before` can only have restarted
/// from zero, so `now` is then the turn's own.
pub fn turn_tokens(before: &Breakdown, now: &Breakdown, model: Option<&str>) -> TurnTokens {
    let restarted = now.input_tokens < before.input_tokens
        || now.output_tokens < before.output_tokens
        || now.cached_input_tokens < before.cached_input_tokens;
    let zero = Breakdown::default();
    let before = if restarted { &zero } else { before };
    let input = now.input_tokens.saturating_sub(before.input_tokens);
    let cached = now
        .cached_input_tokens
        .saturating_sub(before.cached_input_tokens);
    TurnTokens {
        model: model.map(str::to_string),
        input: input.saturating_sub(cached),
        cache_read: cached,
        cache_write: now
            .cache_write_input_tokens
            .saturating_sub(before.cache_write_input_tokens),
        output: now.output_tokens.saturating_sub(before.output_tokens),
        reasoning: now
            .reasoning_output_tokens
            .saturating_sub(before.reasoning_output_tokens),
    }
}

/// The `decision` that answers an approval request.
pub fn decision(answer: &PermissionAnswer) -> &'static str {
    match answer {
        PermissionAnswer::Allow {
            for_session: true, ..
        } => "acceptForSession",
        PermissionAnswer::Allow { .. } => "accept",
        PermissionAnswer::Deny {
            interrupt: true, ..
        } => "cancel",
        PermissionAnswer::Deny { .. } => "decline",
    }
}

/// The stop reason of a `turn/completed` status.
pub fn stop_reason(status: &str) -> StopReason {
    match status {
        "completed" => StopReason::EndTurn,
        "interrupted" => StopReason::Cancelled,
        _ => StopReason::Error,
    }
}

/// What a response the driver waits for was for.
#[derive(Debug)]
enum Asked {
    Initialize,
    Thread,
    TurnStart,
    Steer,
    Interrupt,
}

/// The turn, as far as the driver knows.
#[derive(Debug, Clone, PartialEq)]
enum Turn {
    /// None runs.
    Idle,
    /// `turn/start` was sent; its id is not known yet.
    Starting,
    /// This turn runs.
    Running(String),
}

struct Driver {
    peer: Peer,
    events: tokio::sync::mpsc::Sender<AgentEvent>,
    start: super::Start,
    responses: JoinSet<(Asked, Result<Value, PeerError>)>,
    thread: Option<String>,
    /// The thread's model, for pricing.
    model: Option<String>,
    turn: Turn,
    /// Prompts that arrived before the thread existed or while a turn was starting.
    waiting: Vec<String>,
    /// An interrupt asked while the turn's id was not known yet.
    interrupt_waiting: bool,
    /// The agent's approval requests not answered yet, by their id's text.
    asked: HashMap<String, RequestId>,
    /// The thread's cumulative usage at the end of the last turn, and now.
    usage_before: Breakdown,
    usage_now: Breakdown,
    /// The turn's last agent message.
    last_text: Option<String>,
    /// The changes of file-change items, by item id, for their approval requests.
    changes: HashMap<String, Value>,
}

/// Runs the Codex driver until the session closes its input or the app server's output
/// ends.
pub async fn drive(link: Link) {
    let Link {
        peer,
        mut incoming,
        mut inputs,
        events,
        start,
    } = link;
    // A resumed thread's totals go on from where its last recorded turn left them.
    let baseline = start
        .totals
        .as_ref()
        .and_then(|totals| totals.get(TOTALS_KEY))
        .and_then(|total| serde_json::from_value::<Breakdown>(total.clone()).ok())
        .unwrap_or_default();
    let mut driver = Driver {
        peer,
        events,
        start,
        responses: JoinSet::new(),
        thread: None,
        model: None,
        turn: Turn::Idle,
        waiting: Vec::new(),
        interrupt_waiting: false,
        asked: HashMap::new(),
        usage_before: baseline,
        usage_now: baseline,
        last_text: None,
        changes: HashMap::new(),
    };
    let init = json!({
        "clientInfo": {
            "name": "semantest-hub",
            "title": "Semantest Hub",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "capabilities": null,
    });
    driver.ask(Asked::Initialize, "initialize", init).await;
    loop {
        tokio::select! {
            message = incoming.recv() => match message {
                Some(message) => driver.on_message(message).await,
                None => break,
            },
            input = inputs.recv() => match input {
                Some(Input::Command(command)) => driver.on_command(command).await,
                // The session is over: dropping the peer closes stdin (once the lines
                // already queued are written), and the app server exits.
                Some(Input::Close) | None => break,
            },
            Some(done) = driver.responses.join_next(), if !driver.responses.is_empty() => {
                if let Ok((asked, result)) = done {
                    driver.on_response(asked, result).await;
                }
            }
        }
    }
}

impl Driver {
    async fn emit(&self, event: AgentEvent) {
        // The session is gone only when the run ends; nothing is left to tell then.
        let _ = self.events.send(event).await;
    }

    async fn fatal(&self, reason: String) {
        self.emit(AgentEvent::Fatal { reason }).await;
    }

    /// Sends a request whose response comes back through [`Driver::on_response`].
    async fn ask(&mut self, asked: Asked, method: &str, params: Value) {
        match self.peer.request(method, params).await {
            Ok(response) => {
                self.responses
                    .spawn(async move { (asked, response.result().await) });
            }
            Err(err) => debug!(error = %err, "the app server's input is closed"),
        }
    }

    fn input(text: &str) -> Value {
        json!([{"type": "text", "text": text, "text_elements": []}])
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Prompt { text } => self.prompt(text).await,
            Command::Interrupt { .. } => match (&self.turn, &self.thread) {
                (Turn::Running(turn), Some(thread)) => {
                    let params = json!({"threadId": thread, "turnId": turn});
                    self.ask(Asked::Interrupt, "turn/interrupt", params).await;
                }
                (Turn::Starting, _) => self.interrupt_waiting = true,
                _ => debug!("interrupt with no turn running; ignored"),
            },
            Command::Answer { request_id, answer } => {
                let Some(id) = self.asked.remove(&request_id) else {
                    debug!(request_id, "answer to a request no longer pending; ignored");
                    return;
                };
                let result = json!({"decision": decision(&answer)});
                if let Err(err) = self.peer.respond(&id, result).await {
                    debug!(error = %err, "the app server's input is closed");
                }
            }
        }
    }

    async fn prompt(&mut self, text: String) {
        let Some(thread) = self.thread.clone() else {
            self.waiting.push(text);
            return;
        };
        match &self.turn {
            Turn::Idle => {
                self.turn = Turn::Starting;
                self.last_text = None;
                let params = json!({"threadId": thread, "input": Self::input(&text)});
                self.ask(Asked::TurnStart, "turn/start", params).await;
            }
            Turn::Starting => self.waiting.push(text),
            Turn::Running(turn) => {
                let params = json!({
                    "threadId": thread,
                    "expectedTurnId": turn,
                    "input": Self::input(&text),
                });
                self.ask(Asked::Steer, "turn/steer", params).await;
            }
        }
    }

    async fn on_response(&mut self, asked: Asked, result: Result<Value, PeerError>) {
        match (asked, result) {
            (Asked::Initialize, Ok(_)) => {
                if let Err(err) = self.peer.notify("initialized", Value::Null).await {
                    debug!(error = %err, "the app server's input is closed");
                    return;
                }
                let mut params = json!({
                    "cwd": self.start.cwd,
                    "approvalPolicy": APPROVAL_POLICY,
                    "sandbox": self.start.sandbox,
                });
                if let Some(model) = &self.start.model {
                    params["model"] = json!(model);
                }
                let method = match &self.start.resume {
                    Some(thread) => {
                        params["threadId"] = json!(thread);
                        "thread/resume"
                    }
                    None => "thread/start",
                };
                self.ask(Asked::Thread, method, params).await;
            }
            (Asked::Thread, Ok(result)) => {
                let Some(thread) = result
                    .pointer("/thread/id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                else {
                    self.fatal("the Codex app server started a thread without an id".into())
                        .await;
                    return;
                };
                self.model = result
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| self.start.model.clone());
                self.thread = Some(thread.clone());
                self.emit(AgentEvent::SessionStarted { session_id: thread })
                    .await;
                self.flush_waiting().await;
            }
            (Asked::Initialize, Err(err)) => {
                self.fatal(format!("the Codex app server did not initialize: {err}"))
                    .await;
            }
            (Asked::Thread, Err(err)) => {
                let why = match &self.start.resume {
                    Some(thread) => format!(
                        "the Codex app server could not resume thread {thread}: {err}; \
                         start a new session with agent.new_session"
                    ),
                    None => format!("the Codex app server did not start a thread: {err}"),
                };
                self.fatal(why).await;
            }
            (Asked::TurnStart, Ok(result)) => {
                if let Some(turn) = result.pointer("/turn/id").and_then(Value::as_str) {
                    self.turn_running(turn.to_string()).await;
                }
            }
            (Asked::TurnStart, Err(err)) => {
                // No turn runs: end it here, so the session moves on.
                self.turn = Turn::Idle;
                self.emit(AgentEvent::TurnEnded(TurnEnd {
                    stop_reason: StopReason::Error,
                    raw: json!({"error": err.to_string()}),
                    tokens: None,
                    text: Some(err.to_string()),
                    totals: None,
                }))
                .await;
            }
            (Asked::Steer | Asked::Interrupt, Ok(_)) => {}
            (Asked::Steer, Err(err)) => {
                warn!(error = %err, "the Codex app server refused a follow-up");
            }
            (Asked::Interrupt, Err(err)) => {
                warn!(error = %err, "the Codex app server refused an interrupt");
            }
        }
    }

    /// The thread exists: the first prompt starts a turn; any others steer it.
    async fn flush_waiting(&mut self) {
        for text in std::mem::take(&mut self.waiting) {
            Box::pin(self.prompt(text)).await;
        }
    }

    async fn turn_running(&mut self, turn: String) {
        if self.turn != Turn::Starting {
            return;
        }
        self.turn = Turn::Running(turn);
        if std::mem::take(&mut self.interrupt_waiting) {
            self.on_command(Command::Interrupt {
                request_id: String::new(),
            })
            .await;
        }
        self.flush_waiting().await;
    }

    async fn on_message(&mut self, message: Incoming) {
        match message {
            Incoming::Request { id, method, params } => self.on_request(id, &method, params).await,
            Incoming::Notification { method, params } => {
                self.on_notification(&method, params).await
            }
            Incoming::Malformed { reason } => self.emit(AgentEvent::Malformed { reason }).await,
        }
    }

    async fn on_request(&mut self, id: RequestId, method: &str, params: Value) {
        let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_string);
        let (tool_name, input) = match method {
            "item/commandExecution/requestApproval" => {
                let Some(command) = text("command") else {
                    self.refuse(&id, "a command approval without a command")
                        .await;
                    return;
                };
                let mut input = json!({"command": command});
                if let Some(cwd) = text("cwd") {
                    input["cwd"] = json!(cwd);
                }
                ("Bash", input)
            }
            "item/fileChange/requestApproval" => {
                let mut input = json!({});
                if let Some(changes) = text("itemId").and_then(|item| self.changes.remove(&item)) {
                    input["changes"] = changes;
                }
                for (key, name) in [("itemId", "item_id"), ("grantRoot", "grant_root")] {
                    if let Some(value) = text(key) {
                        input[name] = json!(value);
                    }
                }
                ("Edit", input)
            }
            other => {
                let why = format!("{other} is not served by this client");
                if let Err(err) = self.peer.respond_error(&id, METHOD_NOT_FOUND, &why).await {
                    debug!(error = %err, "the app server's input is closed");
                }
                return;
            }
        };
        let request_id = id.to_text();
        self.asked.insert(request_id.clone(), id);
        self.emit(AgentEvent::PermissionRequested(PermissionRequest {
            request_id,
            tool_name: tool_name.into(),
            input,
            suggestions: json!([]),
            tool_use_id: text("itemId"),
            description: text("reason"),
        }))
        .await;
    }

    /// Answers a request the hub cannot read with an error, and says so in the log.
    async fn refuse(&self, id: &RequestId, reason: &str) {
        if let Err(err) = self.peer.respond_error(id, -32602, reason).await {
            debug!(error = %err, "the app server's input is closed");
        }
        self.emit(AgentEvent::Malformed {
            reason: reason.into(),
        })
        .await;
    }

    async fn on_notification(&mut self, method: &str, params: Value) {
        match method {
            "turn/started" => {
                if let Some(turn) = params.pointer("/turn/id").and_then(Value::as_str) {
                    self.turn_running(turn.to_string()).await;
                }
            }
            "serverRequest/resolved" => {
                let Some(id) = params
                    .get("requestId")
                    .and_then(|id| RequestId::parse(&id.to_string()))
                else {
                    return;
                };
                if let Some(id) = self.asked.remove(&id.to_text()) {
                    self.emit(AgentEvent::PermissionCancelled {
                        request_id: id.to_text(),
                    })
                    .await;
                }
            }
            "thread/tokenUsage/updated" => {
                match params
                    .pointer("/tokenUsage/total")
                    .cloned()
                    .map(serde_json::from_value::<Breakdown>)
                {
                    Some(Ok(total)) => self.usage_now = total,
                    _ => {
                        self.emit(AgentEvent::Malformed {
                            reason: "thread/tokenUsage/updated without a readable total".into(),
                        })
                        .await;
                    }
                }
            }
            "item/started" => {
                if params.pointer("/item/type").and_then(Value::as_str) == Some("fileChange")
                    && let (Some(id), Some(changes)) = (
                        params.pointer("/item/id").and_then(Value::as_str),
                        params.pointer("/item/changes"),
                    )
                {
                    self.changes.insert(id.to_string(), changes.clone());
                }
            }
            "item/completed" => {
                if params.pointer("/item/type").and_then(Value::as_str) == Some("agentMessage")
                    && let Some(text) = params.pointer("/item/text").and_then(Value::as_str)
                {
                    self.last_text = Some(text.to_string());
                }
            }
            "turn/completed" => self.on_turn_completed(params).await,
            _ => {}
        }
    }

    async fn on_turn_completed(&mut self, params: Value) {
        let status = params
            .pointer("/turn/status")
            .and_then(Value::as_str)
            .unwrap_or("failed");
        let stop_reason = stop_reason(status);
        let error = params
            .pointer("/turn/error/message")
            .and_then(Value::as_str)
            .map(str::to_string);
        let tokens = turn_tokens(&self.usage_before, &self.usage_now, self.model.as_deref());
        self.usage_before = self.usage_now;
        let totals = json!({ TOTALS_KEY: self.usage_now });
        self.turn = Turn::Idle;
        self.interrupt_waiting = false;
        self.changes.clear();
        // Requests of the ended turn can no longer be answered.
        for (request_id, _) in std::mem::take(&mut self.asked) {
            self.emit(AgentEvent::PermissionCancelled { request_id })
                .await;
        }
        let text = match stop_reason {
            StopReason::Error => error.or_else(|| Some("the Codex turn failed".into())),
            _ => self.last_text.take(),
        };
        self.emit(AgentEvent::TurnEnded(TurnEnd {
            stop_reason,
            raw: params,
            tokens: Some(tokens),
            text,
            totals: Some(totals),
        }))
        .await;
        // Prompts that came while the turn was starting and could not steer it.
        self.flush_waiting().await;
    }
}

#[cfg(test)]
mod tests;
