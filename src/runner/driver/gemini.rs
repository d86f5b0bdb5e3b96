//! The Gemini CLI driver's protocol: the Agent Client Protocol v1 messages that
//! `gemini --acp` speaks, and how they map onto the hub's agent model.
//!
//! The CLI runs as `gemini --acp [--model=M]` and speaks JSON-RPC 2.0, one message a line
//! (ACP v1, `agentclientprotocol/agent-client-protocol` `schema/v1`; checked against
//! Gemini CLI 0.61.0 driven by `tests/fixtures/fake-gemini.mjs`). The hub is the ACP
//! *client*:
//!
//! - requests it sends: `initialize {protocolVersion: 1, clientCapabilities}` (no file
//!   system or terminal capability: the CLI reads and writes files and runs commands
//!   itself, and asks before it does), `session/new {cwd, mcpServers: []}`,
//!   `session/load {sessionId, cwd, mcpServers: []}` (resume), and `session/prompt
//!   {sessionId, prompt: [{type: "text", text}]}`, whose result ends the turn:
//!   `{stopReason, _meta?: {quota: {token_count, model_usage}}}`;
//! - a notification it sends: `session/cancel {sessionId}` (interrupt);
//! - the request it answers: `session/request_permission {sessionId, toolCall, options}`,
//!   answered `{outcome: {outcome: "selected", optionId}}` or `{outcome: {outcome:
//!   "cancelled"}}`;
//! - notifications it reads: `session/update` (message chunks, tool calls and their
//!   updates, available commands); they go to the log as they are.
//!
//! Rules the CLI imposes, each seen on 0.61.0:
//!
//! - **Options by kind, never by position.** Gemini lists `allow_always` first; taking
//!   the first option would allow every later call of the tool without asking. The hub
//!   answers `allow_once` or `reject_once`, and `allow_always` only when a person allowed
//!   the tool for the session (the hub keeps that rule too).
//! - **No edited input, no deny reason.** ACP answers with an option id only; an
//!   approval that edits the input cannot be honoured ([`permission_outcome`] refuses
//!   it).
//! - **No queue.** A second `session/prompt` during a turn cancels the first
//!   (`stopReason: "cancelled"`), so follow-ups wait in the hub until the turn ends.
//! - **Interrupt** is `session/cancel`, then the pending permission request (if any) is
//!   answered `cancelled`; the prompt then ends `cancelled` without usage.
//! - **Usage** is per prompt, in the result's `_meta.quota` ([`prompt_usage`]): input
//!   tokens (prompt tokens, cached ones included) and output tokens (candidates, thoughts
//!   excluded), by model, summed over the turn's model calls. A cancelled prompt reports
//!   none. No cost: the hub prices the tokens.

pub mod session;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use tokio::task::JoinSet;
use tracing::debug;

use self::session::{Effect, GeminiSession, Purpose};
use super::{
    AgentEvent, Link, PermissionAnswer, PermissionRequest, Start, StopReason, TurnEnd, TurnTokens,
};
use crate::runner::peer::{Incoming, Peer};
use crate::runner::session::Input;

/// The ACP major version the hub speaks (`initialize`'s `protocolVersion`).
pub const PROTOCOL_VERSION: u64 = 1;

/// The JSON-RPC method names of ACP v1 the hub uses.
pub mod acp_method {
    /// Client → agent request: protocol version and capabilities.
    pub const INITIALIZE: &str = "initialize";
    /// Client → agent request: a new session in a working directory.
    pub const SESSION_NEW: &str = "session/new";
    /// Client → agent request: reopen a saved session (its history is replayed as
    /// `session/update`s before the result).
    pub const SESSION_LOAD: &str = "session/load";
    /// Client → agent request: one user turn; its result ends the turn.
    pub const SESSION_PROMPT: &str = "session/prompt";
    /// Client → agent notification: stop the running turn.
    pub const SESSION_CANCEL: &str = "session/cancel";
    /// Agent → client request: may this tool call run?
    pub const REQUEST_PERMISSION: &str = "session/request_permission";
    /// Agent → client notification: progress of the session.
    pub const SESSION_UPDATE: &str = "session/update";
}

/// The CLI's arguments: ACP mode, and the model when the project names one.
///
/// `--model=M` keeps a model that starts with `-` from being read as an option (the CLI
/// parses its command line with yargs, which takes everything after `=` as the value).
/// Without a model the CLI's own default (`auto`, its model router) chooses per prompt.
/// The session to resume is not an argument: it is reopened with `session/load`.
pub fn args(start: &Start) -> Vec<String> {
    build_args(start.model.as_deref())
}

/// [`args`] from the model alone.
pub fn build_args(model: Option<&str>) -> Vec<String> {
    let mut args = vec!["--acp".to_string()];
    if let Some(model) = model {
        args.push(format!("--model={model}"));
    }
    args
}

/// Runs the Gemini driver until the session closes its input or the agent's output ends:
/// the transitions of [`GeminiSession`], carried out on the peer. Responses are awaited
/// in a [`JoinSet`], off the loop, so a prompt that runs for minutes never holds up a
/// permission request or an interrupt.
pub async fn drive(link: Link) {
    let Link {
        peer,
        mut incoming,
        mut inputs,
        events,
        start,
    } = link;
    let mut state = GeminiSession::new(start.cwd.clone(), start.resume.clone());
    let mut responses: JoinSet<(Purpose, Result<Value, String>)> = JoinSet::new();
    let effects = state.start();
    apply(&peer, &events, &mut responses, effects).await;
    loop {
        let effects = tokio::select! {
            message = incoming.recv() => match message {
                Some(Incoming::Request { id, method, params }) => {
                    state.on_request(id, &method, &params)
                }
                Some(Incoming::Notification { method, params }) => {
                    state.on_notification(&method, &params);
                    Vec::new()
                }
                Some(Incoming::Malformed { reason }) => {
                    vec![Effect::Event(AgentEvent::Malformed { reason })]
                }
                None => break,
            },
            input = inputs.recv() => match input {
                Some(Input::Command(command)) => state.command(command),
                // The session is over: dropping the peer closes stdin (once the lines
                // already queued are written), and the CLI exits; it ignores SIGTERM
                // while its stdin is open.
                Some(Input::Close) | None => break,
            },
            Some(done) = responses.join_next(), if !responses.is_empty() => match done {
                Ok((purpose, response)) => state.on_response(purpose, response),
                Err(err) => {
                    debug!(error = %err, "a response waiter ended without an answer");
                    Vec::new()
                }
            },
        };
        apply(&peer, &events, &mut responses, effects).await;
    }
}

/// Carries out `effects` in order.
async fn apply(
    peer: &Peer,
    events: &tokio::sync::mpsc::Sender<AgentEvent>,
    responses: &mut JoinSet<(Purpose, Result<Value, String>)>,
    effects: Vec<Effect>,
) {
    for effect in effects {
        let sent = match effect {
            Effect::Request {
                purpose,
                method,
                params,
            } => match peer.request(method, params).await {
                Ok(response) => {
                    responses.spawn(async move {
                        let result = response.result().await.map_err(|err| err.to_string());
                        (purpose, result)
                    });
                    Ok(())
                }
                Err(err) => Err(err),
            },
            Effect::Notify { method, params } => peer.notify(method, params).await,
            Effect::Respond { id, result } => peer.respond(&id, result).await,
            Effect::RespondError { id, code, message } => {
                peer.respond_error(&id, code, &message).await
            }
            Effect::Event(event) => {
                // The session is gone only when the run ends; nothing is left to tell.
                let _ = events.send(event).await;
                Ok(())
            }
        };
        if let Err(err) = sent {
            debug!(error = %err, "the agent's input is closed");
        }
    }
}

/// `initialize`'s params: ACP v1, and no client capability (the agent uses its own file
/// system and terminal).
pub fn initialize_params() -> Value {
    json!({
        "protocolVersion": PROTOCOL_VERSION,
        "clientCapabilities": {
            "fs": {"readTextFile": false, "writeTextFile": false},
            "terminal": false,
        },
    })
}

/// `session/new`'s params. `cwd` must be absolute (ACP requires it).
pub fn new_session_params(cwd: &Path) -> Value {
    json!({"cwd": cwd, "mcpServers": []})
}

/// `session/load`'s params: reopen `session_id` in `cwd`.
pub fn load_session_params(session_id: &str, cwd: &Path) -> Value {
    json!({"sessionId": session_id, "cwd": cwd, "mcpServers": []})
}

/// `session/prompt`'s params: one text block.
pub fn prompt_params(session_id: &str, text: &str) -> Value {
    json!({"sessionId": session_id, "prompt": [{"type": "text", "text": text}]})
}

/// `session/cancel`'s params.
pub fn cancel_params(session_id: &str) -> Value {
    json!({"sessionId": session_id})
}

/// The session id in `session/new`'s result.
///
/// # Errors
/// A message when the result has no non-empty string `sessionId`.
pub fn session_id_of(result: &Value) -> Result<String, String> {
    result
        .get("sessionId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .map(str::to_string)
        .ok_or_else(|| "session/new answered without a sessionId".to_string())
}

/// What a permission option does (ACP `PermissionOptionKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionKind {
    /// Allow this call.
    AllowOnce,
    /// Allow this call and later ones like it.
    AllowAlways,
    /// Refuse this call.
    RejectOnce,
    /// Refuse this call and later ones like it.
    RejectAlways,
}

/// One option of a permission request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionOption {
    /// The id the answer names.
    pub option_id: String,
    /// A label for a person.
    #[serde(default)]
    pub name: String,
    /// What it does; an unknown kind is kept as `None` and never chosen.
    #[serde(default, deserialize_with = "lenient_kind")]
    pub kind: Option<OptionKind>,
}

fn lenient_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OptionKind>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// The tool call a permission request is about (ACP `ToolCallUpdate`; the fields Gemini
/// sends).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolCall {
    tool_call_id: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    locations: Vec<Value>,
    #[serde(default)]
    raw_input: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PermissionParams {
    tool_call: ToolCall,
    options: Vec<PermissionOption>,
}

/// A permission request read from `session/request_permission`: the hub's request and
/// the options its answer is chosen from.
#[derive(Debug, Clone, PartialEq)]
pub struct AcpPermission {
    /// The request for the hub's approvals.
    pub request: PermissionRequest,
    /// The agent's options, in its order.
    pub options: Vec<PermissionOption>,
}

/// The hub's name for a Gemini function, so policies and rules treat a shell command or
/// an edit the same whichever agent proposes it (Claude Code's tool names, as the Codex
/// driver uses them too); other functions keep their own name.
fn hub_tool_name(function: &str) -> Option<&'static str> {
    Some(match function {
        "run_shell_command" => "Bash",
        "write_file" => "Write",
        "replace" => "Edit",
        "web_fetch" => "WebFetch",
        "google_web_search" => "WebSearch",
        "read_file" | "read_many_files" => "Read",
        "list_directory" => "LS",
        "glob" => "Glob",
        "grep_search" | "search_file_content" => "Grep",
        _ => return None,
    })
}

/// The hub's name for an ACP tool call's `kind` when the function is not known.
fn kind_tool_name(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "execute" => "Bash",
        "edit" => "Edit",
        "fetch" => "WebFetch",
        "read" => "Read",
        "search" => "Grep",
        _ => return None,
    })
}

/// The tool name the hub's approvals see for an ACP tool call. Gemini's call ids are
/// `<function>__<function>_<time>_<n>` (e.g.
/// `run_shell_command__run_shell_command_1796652954178_0`): the function, mapped by
/// [`hub_tool_name`] or kept as it is; else the call's `kind` mapped by
/// [`kind_tool_name`], or kept; else `tool`.
fn tool_name(call: &ToolCall) -> String {
    if let Some((function, _)) = call.tool_call_id.split_once("__")
        && !function.is_empty()
        && function.len() <= 128
        && function
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return hub_tool_name(function).unwrap_or(function).to_string();
    }
    match call.kind.as_deref().filter(|k| !k.is_empty()) {
        Some(kind) => kind_tool_name(kind).unwrap_or(kind).to_string(),
        None => "tool".into(),
    }
}

/// The text blocks of a tool call's `content` (`{type: "content", content: {type:
/// "text", text}}`), joined by newlines.
fn content_text(content: &[Value]) -> Option<String> {
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|c| c.get("content")?.get("text")?.as_str())
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// Reads `session/request_permission`'s params. `request_id` is the JSON-RPC id as text,
/// echoed back with the answer.
///
/// The input the approvals show is the call's `rawInput` when the agent sends one;
/// Gemini 0.61 sends none, so it is built from what it does send: for an `execute` call
/// `{"command": <title>}` (Gemini's title is the command line), else `{"title": …}`, with
/// `kind`, `locations` and the content's text beside it. A shell command then looks the
/// same in an approval whichever agent proposed it.
///
/// # Errors
/// A message for params without a `toolCall` with an id, or without options.
pub fn permission_request(request_id: String, params: &Value) -> Result<AcpPermission, String> {
    let params: PermissionParams = serde_json::from_value(params.clone())
        .map_err(|err| format!("session/request_permission params: {err}"))?;
    if params.options.is_empty() {
        return Err("session/request_permission without options".into());
    }
    let call = params.tool_call;
    let description = content_text(&call.content);
    let input = match &call.raw_input {
        Some(raw @ Value::Object(_)) => raw.clone(),
        _ => {
            let mut input = serde_json::Map::new();
            let title = call.title.clone().unwrap_or_default();
            if call.kind.as_deref() == Some("execute") {
                input.insert("command".into(), Value::String(title));
            } else {
                input.insert("title".into(), Value::String(title));
            }
            if let Some(kind) = &call.kind {
                input.insert("kind".into(), Value::String(kind.clone()));
            }
            if !call.locations.is_empty() {
                input.insert("locations".into(), Value::Array(call.locations.clone()));
            }
            if let Some(text) = &description {
                input.insert("description".into(), Value::String(text.clone()));
            }
            Value::Object(input)
        }
    };
    Ok(AcpPermission {
        request: PermissionRequest {
            request_id,
            tool_name: tool_name(&call),
            input,
            suggestions: json!([]),
            tool_use_id: Some(call.tool_call_id),
            description: description.or(call.title),
            takes_edited_input: false,
        },
        options: params.options,
    })
}

/// The first option of `kind`, by kind, never by position.
fn option_of(options: &[PermissionOption], kind: OptionKind) -> Option<&PermissionOption> {
    options.iter().find(|o| o.kind == Some(kind))
}

/// The answer (the JSON-RPC result) to a permission request, its option chosen by kind:
/// an allow is `allow_once`, or `allow_always` when the person allowed the tool for the
/// session (Gemini then stops asking about it; the hub keeps the same rule); a denial is
/// `reject_once`. When the agent offers no such option the answer is `cancelled`: an
/// "always" option is never taken for a one-time answer.
///
/// # Errors
/// A message when the answer allows an edited input: ACP cannot carry one, and the
/// unedited call must not run in its place.
pub fn permission_outcome(
    permission: &AcpPermission,
    answer: &PermissionAnswer,
) -> Result<Value, String> {
    let kinds: &[OptionKind] = match answer {
        PermissionAnswer::Allow { input, for_session } => {
            if *input != permission.request.input {
                return Err("this agent cannot run a tool call with an edited input".into());
            }
            if *for_session {
                &[OptionKind::AllowAlways, OptionKind::AllowOnce]
            } else {
                &[OptionKind::AllowOnce]
            }
        }
        PermissionAnswer::Deny { .. } => &[OptionKind::RejectOnce],
    };
    Ok(kinds
        .iter()
        .find_map(|kind| option_of(&permission.options, *kind))
        .map_or_else(cancelled, |option| selected(&option.option_id)))
}

/// `{outcome: {outcome: "selected", optionId}}`.
fn selected(option_id: &str) -> Value {
    json!({"outcome": {"outcome": "selected", "optionId": option_id}})
}

/// The answer to a permission request the turn no longer waits for (after
/// `session/cancel`): `{outcome: {outcome: "cancelled"}}`.
pub fn cancelled() -> Value {
    json!({"outcome": {"outcome": "cancelled"}})
}

/// Why a prompt ended, mapped onto the hub's stop reasons (ACP `StopReason`): `end_turn`
/// ends the turn; `cancelled` is an interrupt; `max_tokens`, `max_turn_requests` (Gemini
/// also uses it for a detected loop) and `refusal` end it in an error, as does anything
/// unknown.
pub fn stop_reason(result: &Value) -> StopReason {
    match result.get("stopReason").and_then(Value::as_str) {
        Some("end_turn") => StopReason::EndTurn,
        Some("cancelled") => StopReason::Cancelled,
        _ => StopReason::Error,
    }
}

/// The end of a turn from `session/prompt`'s result (`raw`), with the agent's message
/// of the turn (`text`, its `agent_message_chunk`s joined) and the tokens of
/// `_meta.quota`, priced at the model that produced the most output.
pub fn turn_end(result: Value, text: Option<String>) -> TurnEnd {
    let tokens = prompt_usage(&result).map(|usage| TurnTokens {
        model: usage.model,
        input: usage.tokens.input_tokens,
        output: usage.tokens.output_tokens,
        ..TurnTokens::default()
    });
    TurnEnd {
        stop_reason: stop_reason(&result),
        raw: result,
        tokens,
        text,
        totals: None,
    }
}

/// The end of a turn whose `session/prompt` failed (Gemini answers an API failure or a
/// rate limit with a JSON-RPC error): an error, `why` as its text.
pub fn failed_turn_end(why: String) -> TurnEnd {
    TurnEnd {
        stop_reason: StopReason::Error,
        raw: json!({ "error": why }),
        tokens: None,
        text: Some(why),
        totals: None,
    }
}

/// Tokens as ACP's `_meta.quota.token_count` gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TokenCount {
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: u64,
    /// Output (candidate) tokens.
    pub output_tokens: u64,
}

#[derive(Deserialize)]
struct ModelCount {
    model: String,
    #[serde(default)]
    token_count: TokenCount,
}

#[derive(Deserialize)]
struct Quota {
    #[serde(default)]
    token_count: Option<TokenCount>,
    #[serde(default)]
    model_usage: Vec<ModelCount>,
}

/// One prompt's usage, as Gemini reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptUsage {
    /// The prompt's tokens, every model call of the turn summed.
    pub tokens: TokenCount,
    /// By model (`auto` is the router's name for a call it made before it chose).
    pub models: BTreeMap<String, TokenCount>,
    /// The model that produced the most output (a named model before `auto`), the one
    /// to price the turn at.
    pub model: Option<String>,
}

/// The usage in `session/prompt`'s result (`_meta.quota`); `None` when it has none (a
/// cancelled prompt).
pub fn prompt_usage(result: &Value) -> Option<PromptUsage> {
    let quota: Quota = serde_json::from_value(result.get("_meta")?.get("quota")?.clone()).ok()?;
    let mut models: BTreeMap<String, TokenCount> = BTreeMap::new();
    for entry in quota.model_usage {
        let sum = models.entry(entry.model).or_default();
        sum.input_tokens += entry.token_count.input_tokens;
        sum.output_tokens += entry.token_count.output_tokens;
    }
    let tokens = quota.token_count.unwrap_or_else(|| TokenCount {
        input_tokens: models.values().map(|t| t.input_tokens).sum(),
        output_tokens: models.values().map(|t| t.output_tokens).sum(),
    });
    let model = models
        .iter()
        .filter(|(_, t)| t.input_tokens + t.output_tokens > 0)
        .max_by(|(a_name, a), (b_name, b)| {
            let named = |n: &str| !n.starts_with("auto");
            named(a_name)
                .cmp(&named(b_name))
                .then(a.output_tokens.cmp(&b.output_tokens))
                .then(b_name.cmp(a_name))
        })
        .map(|(name, _)| name.clone());
    Some(PromptUsage {
        tokens,
        models,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seen from Gemini CLI 0.61.0 (`tests/fixtures/fake-gemini.md`).
    const SHELL_REQUEST: &str = r#"{"sessionId":"d57dd38f","options":[{"optionId":"proceed_always","name":"Allow for this session","kind":"allow_always"},{"optionId":"proceed_once","name":"Allow","kind":"allow_once"},{"optionId":"cancel","name":"Reject","kind":"reject_once"}],"toolCall":{"toolCallId":"run_shell_command__run_shell_command_1796652954178_0","status":"pending","title":"echo hi > out.txt","content":[{"type":"content","content":{"type":"text","text":"[current working directory /w] (scripted)"}}],"locations":[],"kind":"execute"}}"#;

    fn shell() -> AcpPermission {
        permission_request("0".into(), &serde_json::from_str(SHELL_REQUEST).unwrap()).unwrap()
    }

    #[test]
    fn args_put_acp_first_and_the_model_in_one_word() {
        assert_eq!(build_args(None), ["--acp"]);
        assert_eq!(
            build_args(Some("--yolo")),
            ["--acp", "--model=--yolo"],
            "a model can never become an option"
        );
    }

    #[test]
    fn requests_have_the_acp_v1_shapes() {
        assert_eq!(initialize_params()["protocolVersion"], 1);
        assert_eq!(initialize_params()["clientCapabilities"]["terminal"], false);
        let new = new_session_params(Path::new("/w"));
        assert_eq!(new, json!({"cwd": "/w", "mcpServers": []}));
        let load = load_session_params("s1", Path::new("/w"));
        assert_eq!(load["sessionId"], "s1");
        let prompt = prompt_params("s1", "--help");
        assert_eq!(
            prompt["prompt"],
            json!([{"type": "text", "text": "--help"}])
        );
        assert_eq!(cancel_params("s1"), json!({"sessionId": "s1"}));
        assert_eq!(session_id_of(&json!({"sessionId": "abc"})).unwrap(), "abc");
        assert!(session_id_of(&json!({"sessionId": ""})).is_err());
        assert!(session_id_of(&json!({})).is_err());
    }

    #[test]
    fn a_shell_call_reads_as_a_command() {
        let p = shell();
        assert_eq!(p.request.request_id, "0");
        assert_eq!(p.request.tool_name, "Bash");
        assert_eq!(p.request.input["command"], "echo hi > out.txt");
        assert_eq!(p.request.input["kind"], "execute");
        assert_eq!(
            p.request.tool_use_id.as_deref(),
            Some("run_shell_command__run_shell_command_1796652954178_0")
        );
        assert_eq!(
            p.request.description.as_deref(),
            Some("[current working directory /w] (scripted)")
        );
        assert_eq!(p.options.len(), 3);
    }

    #[test]
    fn options_are_chosen_by_kind_never_by_position() {
        let p = shell();
        let input = p.request.input.clone();
        let allow = permission_outcome(
            &p,
            &PermissionAnswer::Allow {
                input,
                for_session: false,
            },
        )
        .unwrap();
        assert_eq!(
            allow,
            json!({"outcome": {"outcome": "selected", "optionId": "proceed_once"}})
        );
        let deny = PermissionAnswer::Deny {
            message: "no".into(),
            interrupt: false,
        };
        assert_eq!(
            permission_outcome(&p, &deny).unwrap()["outcome"]["optionId"],
            "cancel"
        );
        let input = p.request.input.clone();
        let always = PermissionAnswer::Allow {
            input,
            for_session: true,
        };
        assert_eq!(
            permission_outcome(&p, &always).unwrap()["outcome"]["optionId"],
            "proceed_always"
        );
        // Reordered, renamed: the kind still decides.
        let mut reordered = p.clone();
        reordered.options.reverse();
        for o in &mut reordered.options {
            o.option_id = format!("x_{}", o.option_id);
        }
        let input = p.request.input.clone();
        assert_eq!(
            permission_outcome(
                &reordered,
                &PermissionAnswer::Allow {
                    input,
                    for_session: false
                }
            )
            .unwrap()["outcome"]["optionId"],
            "x_proceed_once"
        );
    }

    #[test]
    fn an_always_only_agent_is_answered_cancelled_and_edits_are_refused() {
        let mut p = shell();
        p.options
            .retain(|o| o.kind == Some(OptionKind::AllowAlways));
        let input = p.request.input.clone();
        assert_eq!(
            permission_outcome(
                &p,
                &PermissionAnswer::Allow {
                    input,
                    for_session: false
                }
            )
            .unwrap(),
            cancelled()
        );
        let edited = PermissionAnswer::Allow {
            input: json!({"command": "rm -rf /"}),
            for_session: false,
        };
        assert!(permission_outcome(&shell(), &edited).is_err());
    }

    #[test]
    fn unknown_option_kinds_are_kept_but_never_chosen() {
        let params = json!({
            "toolCall": {"toolCallId": "t1", "title": "x", "kind": "edit"},
            "options": [{"optionId": "o1", "name": "Maybe", "kind": "maybe"}],
        });
        let p = permission_request("7".into(), &params).unwrap();
        assert_eq!(p.options[0].kind, None);
        assert_eq!(p.request.tool_name, "Edit");
        assert_eq!(p.request.input["title"], "x");
        let input = p.request.input.clone();
        assert_eq!(
            permission_outcome(
                &p,
                &PermissionAnswer::Allow {
                    input,
                    for_session: false
                }
            )
            .unwrap(),
            cancelled()
        );
    }

    #[test]
    fn malformed_permission_requests_are_named() {
        for params in [
            json!({}),
            json!({"toolCall": {"title": "x"}, "options": []}),
            json!({"toolCall": {"toolCallId": "t"}, "options": []}),
            json!({"toolCall": {"toolCallId": "t"}, "options": "all"}),
        ] {
            assert!(permission_request("1".into(), &params).is_err(), "{params}");
        }
    }

    #[test]
    fn stop_reasons_map_onto_run_statuses() {
        assert_eq!(
            stop_reason(&json!({"stopReason": "end_turn"})),
            StopReason::EndTurn
        );
        assert_eq!(
            stop_reason(&json!({"stopReason": "cancelled"})),
            StopReason::Cancelled
        );
        for other in ["max_tokens", "max_turn_requests", "refusal", "new_one"] {
            assert_eq!(
                stop_reason(&json!({ "stopReason": other })),
                StopReason::Error
            );
        }
        assert_eq!(stop_reason(&json!({})), StopReason::Error);
        let failed = failed_turn_end("Rate limit exceeded.".into());
        assert_eq!(failed.stop_reason, StopReason::Error);
        assert_eq!(failed.text.as_deref(), Some("Rate limit exceeded."));
    }

    #[test]
    fn usage_is_read_from_the_quota() {
        // Seen from Gemini CLI 0.61.0: two main calls of 100 + 10 tokens.
        let result: Value = serde_json::from_str(r#"{"stopReason":"end_turn","_meta":{"quota":{"token_count":{"input_tokens":200,"output_tokens":20},"model_usage":[{"model":"gemini-3.8-flash","token_count":{"input_tokens":100,"output_tokens":10}},{"model":"auto","token_count":{"input_tokens":100,"output_tokens":10}}]}}}"#).unwrap();
        let usage = prompt_usage(&result).unwrap();
        assert_eq!(
            usage.tokens,
            TokenCount {
                input_tokens: 200,
                output_tokens: 20
            }
        );
        assert_eq!(usage.models.len(), 2);
        assert_eq!(usage.model.as_deref(), Some("gemini-3.8-flash"));
        assert_eq!(prompt_usage(&json!({"stopReason": "cancelled"})), None);
        // No total: the models' sum.
        let partial = json!({"_meta": {"quota": {"model_usage": [
            {"model": "m1", "token_count": {"input_tokens": 5, "output_tokens": 1}},
            {"model": "m1", "token_count": {"input_tokens": 5, "output_tokens": 2}},
        ]}}});
        let usage = prompt_usage(&partial).unwrap();
        assert_eq!(usage.tokens.input_tokens, 10);
        assert_eq!(usage.tokens.output_tokens, 3);
        assert_eq!(usage.model.as_deref(), Some("m1"));
    }
}
