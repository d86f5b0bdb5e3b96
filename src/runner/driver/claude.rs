//! The Claude Code driver: the CLI's stream-json control protocol, the one its Agent
//! SDKs speak.
//!
//! The CLI runs as `claude -p --input-format stream-json --output-format stream-json
//! --verbose --permission-prompt-tool stdio --permission-mode <mode> [--model M]
//! [--resume <session>]`. Input lines (stdin):
//!
//! - a prompt: `{"type":"user","message":{"role":"user","content":"…"},
//!   "parent_tool_use_id":null,"session_id":""}`; one sent while a turn runs is folded
//!   into it at the next model call;
//! - an answer: `{"type":"control_response","response":{"subtype":"success",
//!   "request_id":"…","response":{"behavior":"allow","updatedInput":{…}}}}` or
//!   `{…"behavior":"deny","message":"…","interrupt":false}`;
//! - an interrupt: `{"type":"control_request","request_id":"…",
//!   "request":{"subtype":"interrupt"}}`.
//!
//! Output lines the session acts on: `control_request` with subtype `can_use_tool`
//! (`tool_name`, `input`, `permission_suggestions`, `tool_use_id`, `description`),
//! `control_cancel_request` (the CLI dropped a pending request, e.g. after an
//! interrupt) and `result` (a turn ended; `subtype` `success` or `error_*`,
//! `is_error`, `terminal_reason`). Sources: `@anthropic-ai/claude-agent-sdk`'s
//! `sdk.d.ts` (`SDKControlPermissionRequest`, `PermissionResult`, `SDKUserMessage`) and
//! the Python SDK's `query.py`, checked against the CLI 2.1.197 and 2.1.337. Keys are
//! read by name, never by position: 2.1.337 moved `type` away from the front.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{AgentEvent, Command, PermissionAnswer, PermissionRequest, StopReason, TurnEnd};

/// The CLI arguments of a session (Claude Code CLI reference, "CLI flags"); every prompt
/// goes on stdin as a `user` line.
///
/// The prompt is never an argument: `-p`/`--print` is a flag (the CLI parses its command
/// line with commander.js), so a prompt placed after it that starts with `-` would be
/// read as an option (`--dangerously-skip-permissions`, `--settings=…`, `--add-dir=/`);
/// on stdin it also stays out of the process list. `resume` must be a session id that
/// passed [`crate::projects::valid_session_id`], so it cannot be an option either.
/// `--permission-prompt-tool stdio` sends every tool call the permission mode does not
/// settle to the hub as a `can_use_tool` request.
pub fn build_args(resume: Option<&str>, permission_mode: &str, model: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-prompt-tool",
        "stdio",
        "--permission-mode",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    args.push(permission_mode.into());
    if let Some(model) = model {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(session) = resume {
        args.extend(["--resume".into(), session.into()]);
    }
    args
}

/// Whether a line's `type` (the feed's `kind`) may matter to the session: the parser is
/// only run on these.
pub fn is_protocol_kind(kind: &str) -> bool {
    matches!(
        kind,
        "control_request" | "control_cancel_request" | "result"
    )
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    request_id: Option<Value>,
    request: Option<Value>,
}

/// Reads one stdout line; `None` for lines the session does not act on (`assistant`,
/// `user`, `system`, `control_response`, anything unknown).
pub fn parse_line(text: &str) -> Option<AgentEvent> {
    let value: Value = serde_json::from_str(text).ok()?;
    let line: Line = match serde_json::from_value(value.clone()) {
        Ok(line) => line,
        Err(_) => return None,
    };
    match line.kind.as_str() {
        "result" => {
            let is_error = value
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let subtype = value.get("subtype").and_then(Value::as_str).unwrap_or("");
            let aborted = value
                .get("terminal_reason")
                .and_then(Value::as_str)
                .is_some_and(|r| r.starts_with("aborted"));
            let stop_reason = match (is_error, subtype) {
                (false, _) => StopReason::EndTurn,
                _ if aborted => StopReason::Cancelled,
                (true, "error_during_execution") => StopReason::Cancelled,
                (true, _) => StopReason::Error,
            };
            Some(AgentEvent::TurnEnded(TurnEnd {
                stop_reason,
                raw: value,
                tokens: None,
                text: None,
                totals: None,
            }))
        }
        "control_cancel_request" => match id_text(line.request_id.as_ref()) {
            Some(request_id) => Some(AgentEvent::PermissionCancelled { request_id }),
            None => Some(malformed("control_cancel_request without a request_id")),
        },
        "control_request" => {
            let Some(request_id) = id_text(line.request_id.as_ref()) else {
                return Some(malformed("control_request without a request_id"));
            };
            let Some(request) = line.request.as_ref().filter(|r| r.is_object()) else {
                return Some(malformed("control_request without a request object"));
            };
            match request.get("subtype").and_then(Value::as_str) {
                Some("can_use_tool") => can_use_tool(request_id, request),
                // Other requests (hook callbacks, MCP messages) are for SDK features the
                // hub does not register, so the CLI does not send them.
                _ => Some(malformed("control_request of an unsupported subtype")),
            }
        }
        _ => None,
    }
}

fn can_use_tool(request_id: String, request: &Value) -> Option<AgentEvent> {
    let Some(tool_name) = request
        .get("tool_name")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return Some(malformed("can_use_tool without a tool_name"));
    };
    let input = match request.get("input") {
        Some(input @ Value::Object(_)) => input.clone(),
        _ => return Some(malformed("can_use_tool without an input object")),
    };
    Some(AgentEvent::PermissionRequested(PermissionRequest {
        request_id,
        tool_name: tool_name.to_string(),
        input,
        suggestions: request
            .get("permission_suggestions")
            .filter(|s| s.is_array())
            .cloned()
            .unwrap_or_else(|| json!([])),
        tool_use_id: request
            .get("tool_use_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        description: request
            .get("description")
            .or_else(|| request.get("title"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }))
}

fn malformed(reason: &str) -> AgentEvent {
    AgentEvent::Malformed {
        reason: reason.to_string(),
    }
}

/// A request id as text: the CLI sends strings; a number is accepted and echoed back as
/// the same JSON value by [`encode`], since the id is stored as its JSON text.
fn id_text(id: Option<&Value>) -> Option<String> {
    match id? {
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        _ => None,
    }
}

/// The stdin line (without its newline) for a command.
pub fn encode(command: &Command) -> String {
    let value = match command {
        Command::Prompt { text } => json!({
            "type": "user",
            "message": {"role": "user", "content": text},
            "parent_tool_use_id": null,
            "session_id": "",
        }),
        Command::Answer { request_id, answer } => {
            let response = match answer {
                PermissionAnswer::Allow { input, .. } => {
                    json!({"behavior": "allow", "updatedInput": input})
                }
                PermissionAnswer::Deny { message, interrupt } => {
                    json!({"behavior": "deny", "message": message, "interrupt": interrupt})
                }
            };
            json!({
                "type": "control_response",
                "response": {"subtype": "success", "request_id": request_id, "response": response},
            })
        }
        Command::Interrupt { request_id } => json!({
            "type": "control_request",
            "request_id": request_id,
            "request": {"subtype": "interrupt"},
        }),
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_the_cli_reference() {
        let session = "0190b2c4-8f3e-7abc-9def-0123456789ab";
        assert_eq!(
            build_args(Some(session), "default", Some("sonnet")),
            [
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-prompt-tool",
                "stdio",
                "--permission-mode",
                "default",
                "--model",
                "sonnet",
                "--resume",
                session
            ]
        );
        assert!(!build_args(None, "plan", None).contains(&"--resume".to_string()));
    }

    #[test]
    fn can_use_tool_is_read_as_documented() {
        // Seen from Claude Code 2.1.197 (research notes, section 1.4).
        let line = r#"{"type":"control_request","request_id":"be4a","request":{"subtype":"can_use_tool","tool_name":"Bash","display_name":"Bash","input":{"command":"echo hi > out.txt","description":"scripted"},"description":"scripted","permission_suggestions":[{"type":"addRules","rules":[{"toolName":"Bash","ruleContent":"echo hi *"}],"behavior":"allow","destination":"localSettings"}],"blocked_path":"/w/out.txt","tool_use_id":"toolu_1"}}"#;
        let Some(AgentEvent::PermissionRequested(request)) = parse_line(line) else {
            panic!("not a permission request");
        };
        assert_eq!(request.request_id, "be4a");
        assert_eq!(request.tool_name, "Bash");
        assert_eq!(request.input["command"], "echo hi > out.txt");
        assert_eq!(request.suggestions[0]["type"], "addRules");
        assert_eq!(request.tool_use_id.as_deref(), Some("toolu_1"));
        assert_eq!(request.description.as_deref(), Some("scripted"));
    }

    #[test]
    fn malformed_control_lines_are_named_not_fatal() {
        for line in [
            r#"{"type":"control_request"}"#,
            r#"{"type":"control_request","request_id":7,"request":{"subtype":"can_use_tool"}}"#,
            r#"{"type":"control_request","request_id":"a","request":"x"}"#,
            r#"{"type":"control_request","request_id":"a","request":{"subtype":"can_use_tool","input":{}}}"#,
            r#"{"type":"control_request","request_id":"a","request":{"subtype":"can_use_tool","tool_name":"Bash","input":"rm"}}"#,
            r#"{"type":"control_cancel_request"}"#,
        ] {
            assert!(
                matches!(parse_line(line), Some(AgentEvent::Malformed { .. })),
                "{line}"
            );
        }
        assert_eq!(parse_line("not json"), None);
        assert_eq!(parse_line(r#"{"type":"assistant","message":{}}"#), None);
    }

    #[test]
    fn results_give_the_stop_reason() {
        let end = |line: &str| match parse_line(line) {
            Some(AgentEvent::TurnEnded(end)) => end.stop_reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            end(r#"{"subtype":"success","is_error":false,"type":"result","total_cost_usd":0.1}"#),
            StopReason::EndTurn
        );
        assert_eq!(
            end(
                r#"{"type":"result","subtype":"error_during_execution","is_error":true,"terminal_reason":"aborted_tools"}"#
            ),
            StopReason::Cancelled
        );
        assert_eq!(
            end(r#"{"type":"result","subtype":"error_max_turns","is_error":true}"#),
            StopReason::Error
        );
    }

    #[test]
    fn commands_encode_to_the_sdk_shapes() {
        let prompt: Value = serde_json::from_str(&encode(&Command::Prompt {
            text: "--help".into(),
        }))
        .unwrap();
        assert_eq!(prompt["type"], "user");
        assert_eq!(prompt["message"]["content"], "--help");
        let allow: Value = serde_json::from_str(&encode(&Command::Answer {
            request_id: "r1".into(),
            answer: PermissionAnswer::Allow {
                input: json!({"command": "ls"}),
                for_session: false,
            },
        }))
        .unwrap();
        assert_eq!(allow["response"]["request_id"], "r1");
        assert_eq!(allow["response"]["response"]["behavior"], "allow");
        assert_eq!(
            allow["response"]["response"]["updatedInput"]["command"],
            "ls"
        );
        let deny: Value = serde_json::from_str(&encode(&Command::Answer {
            request_id: "r2".into(),
            answer: PermissionAnswer::Deny {
                message: "no".into(),
                interrupt: true,
            },
        }))
        .unwrap();
        assert_eq!(deny["response"]["response"]["behavior"], "deny");
        assert_eq!(deny["response"]["response"]["interrupt"], true);
        let interrupt: Value = serde_json::from_str(&encode(&Command::Interrupt {
            request_id: "i1".into(),
        }))
        .unwrap();
        assert_eq!(interrupt["request"]["subtype"], "interrupt");
    }
}
