//! The Gemini driver's state between messages: one `gemini --acp` process, one ACP
//! session in it, at most one prompt running.
//!
//! Pure transitions, no I/O: each input (the start, a response to one of the driver's
//! requests, a request or notification from the agent, a hub [`Command`]) gives a list of
//! [`Effect`]s, which the driver's task ([`super::drive`]) carries out on the JSON-RPC
//! peer, in order. The driver's own requests are told apart by what they were for
//! ([`Purpose`]), so the transitions need no JSON-RPC ids of their own.
//!
//! The flow: `initialize`, then `session/new` (or `session/load` to resume; if the load
//! fails, `session/new`), then one `session/prompt` per turn. A prompt that arrives
//! before the session is open waits for it; one that arrives while a prompt runs waits
//! for its end, because a second `session/prompt` would cancel the first (ACP v1 has no
//! queue), so a "steer" becomes the next turn. An interrupt sends `session/cancel` and
//! answers every permission request still open `cancelled`, withdrawing it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::super::{AgentEvent, Command, PermissionAnswer};
use super::{
    AcpPermission, PROTOCOL_VERSION, acp_method, cancel_params, cancelled, failed_turn_end,
    initialize_params, load_session_params, new_session_params, permission_outcome,
    permission_request, prompt_params, session_id_of, turn_end,
};
use crate::runner::peer::RequestId;

/// What one of the driver's requests was for; its response comes back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `initialize`.
    Initialize,
    /// `session/new` or, with `load`, `session/load`.
    Open {
        /// Whether it reopens a saved session.
        load: bool,
    },
    /// `session/prompt`.
    Prompt,
}

/// The JSON-RPC error code for a method the hub does not serve (JSON-RPC 2.0, 5.1).
pub const METHOD_NOT_FOUND: i64 = -32601;

/// Something the driver's task does, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a request; its response comes back as [`GeminiSession::on_response`] with
    /// `purpose`.
    Request {
        /// What it is for.
        purpose: Purpose,
        /// The method.
        method: &'static str,
        /// Its params.
        params: Value,
    },
    /// Send a notification.
    Notify {
        /// The method.
        method: &'static str,
        /// Its params.
        params: Value,
    },
    /// Answer the agent's request `id` with `result`.
    Respond {
        /// The agent's id.
        id: RequestId,
        /// The result.
        result: Value,
    },
    /// Answer the agent's request `id` with an error.
    RespondError {
        /// The agent's id.
        id: RequestId,
        /// The JSON-RPC error code.
        code: i64,
        /// Why.
        message: String,
    },
    /// Hand this to the hub's session.
    Event(AgentEvent),
}

/// Where the process is in the ACP flow.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Before `initialize`'s answer.
    Initializing,
    /// Before `session/new`'s or `session/load`'s answer.
    Opening,
    /// The session is open.
    Open(String),
    /// The process cannot be used (the handshake failed).
    Failed,
}

/// The driver's state for one `gemini --acp` process.
#[derive(Debug)]
pub struct GeminiSession {
    cwd: PathBuf,
    resume: Option<String>,
    phase: Phase,
    /// A prompt is running (its `session/prompt` is unanswered).
    running: bool,
    /// Prompts waiting for the session to open or the running prompt to end, in order.
    waiting: Vec<String>,
    /// Permission requests not answered yet, by the hub's request id (the JSON-RPC id's
    /// text, [`RequestId::to_text`]).
    permissions: BTreeMap<String, (RequestId, AcpPermission)>,
    /// The running prompt's `agent_message_chunk`s.
    text: String,
}

impl GeminiSession {
    /// A process in `cwd` (absolute) that opens a new session, or reopens `resume`.
    pub fn new(cwd: PathBuf, resume: Option<String>) -> Self {
        Self {
            cwd,
            resume,
            phase: Phase::Initializing,
            running: false,
            waiting: Vec::new(),
            permissions: BTreeMap::new(),
            text: String::new(),
        }
    }

    /// The open session's id, once it is open.
    pub fn session_id(&self) -> Option<&str> {
        match &self.phase {
            Phase::Open(id) => Some(id),
            _ => None,
        }
    }

    /// The first effects: `initialize`.
    pub fn start(&mut self) -> Vec<Effect> {
        vec![Effect::Request {
            purpose: Purpose::Initialize,
            method: acp_method::INITIALIZE,
            params: initialize_params(),
        }]
    }

    /// A response to one of the driver's requests: its result, or why there is none (an
    /// error the agent answered, or the connection closed).
    pub fn on_response(
        &mut self,
        purpose: Purpose,
        response: Result<Value, String>,
    ) -> Vec<Effect> {
        match (purpose, response) {
            (Purpose::Initialize, Ok(result)) => {
                let version = result.get("protocolVersion").and_then(Value::as_u64);
                if version != Some(PROTOCOL_VERSION) {
                    return self.fail(format!(
                        "the agent speaks ACP version {}, not {PROTOCOL_VERSION}",
                        result.get("protocolVersion").unwrap_or(&Value::Null)
                    ));
                }
                self.phase = Phase::Opening;
                vec![self.open(self.resume.is_some())]
            }
            (Purpose::Initialize, Err(why)) => {
                self.fail(format!("the agent did not initialize: {why}"))
            }
            (Purpose::Open { load }, Ok(result)) => {
                let opened = match (load, &self.resume) {
                    (true, Some(id)) => Ok(id.clone()),
                    _ => session_id_of(&result),
                };
                match opened {
                    Ok(session_id) => {
                        self.phase = Phase::Open(session_id.clone());
                        let mut effects =
                            vec![Effect::Event(AgentEvent::SessionStarted { session_id })];
                        effects.extend(self.next_prompt());
                        effects
                    }
                    Err(why) => self.fail(why),
                }
            }
            // The saved session is gone or unreadable (see the Gemini CLI's session
            // bugs in docs/agents.md): go on in a new one rather than fail every run.
            (Purpose::Open { load: true }, Err(why)) => vec![
                Effect::Event(AgentEvent::Malformed {
                    reason: format!(
                        "the agent could not resume its session ({why}); a new one starts"
                    ),
                }),
                self.open(false),
            ],
            (Purpose::Open { load: false }, Err(why)) => {
                self.fail(format!("the agent did not open a session: {why}"))
            }
            (Purpose::Prompt, response) => {
                self.running = false;
                let text = std::mem::take(&mut self.text);
                let text = (!text.is_empty()).then_some(text);
                let end = match response {
                    Ok(result) => turn_end(result, text),
                    Err(why) => failed_turn_end(why),
                };
                // Requests of a finished prompt can no longer be answered usefully.
                let mut effects = self.withdraw_all();
                effects.push(Effect::Event(AgentEvent::TurnEnded(end)));
                effects.extend(self.next_prompt());
                effects
            }
        }
    }

    /// A request from the agent.
    pub fn on_request(&mut self, id: RequestId, method_name: &str, params: &Value) -> Vec<Effect> {
        if method_name != acp_method::REQUEST_PERMISSION {
            return vec![Effect::RespondError {
                id,
                code: METHOD_NOT_FOUND,
                message: format!("the client does not serve {method_name}"),
            }];
        }
        let request_id = id.to_text();
        match permission_request(request_id.clone(), params) {
            Ok(permission) => {
                let event = AgentEvent::PermissionRequested(permission.request.clone());
                self.permissions.insert(request_id, (id, permission));
                vec![Effect::Event(event)]
            }
            // Nothing to show a person: the call does not run.
            Err(reason) => vec![
                Effect::Respond {
                    id,
                    result: cancelled(),
                },
                Effect::Event(AgentEvent::Malformed { reason }),
            ],
        }
    }

    /// A notification from the agent: the running prompt's message chunks are kept for
    /// its [`TurnEnd::text`]; everything else is only logged (the raw lines are).
    pub fn on_notification(&mut self, method_name: &str, params: &Value) {
        if method_name != acp_method::SESSION_UPDATE || !self.running {
            return;
        }
        let update = &params["update"];
        if update["sessionUpdate"] == "agent_message_chunk"
            && let Some(text) = update["content"]["text"].as_str()
        {
            self.text.push_str(text);
        }
    }

    /// A hub command.
    pub fn command(&mut self, command: Command) -> Vec<Effect> {
        match command {
            Command::Prompt { text } => {
                if self.phase == Phase::Failed {
                    return vec![Effect::Event(AgentEvent::TurnEnded(failed_turn_end(
                        "the agent's session did not open".into(),
                    )))];
                }
                self.waiting.push(text);
                self.next_prompt()
            }
            Command::Answer { request_id, answer } => self.answer(&request_id, &answer),
            Command::Interrupt { .. } => self.interrupt(),
        }
    }

    fn open(&self, load: bool) -> Effect {
        match (load, &self.resume) {
            (true, Some(id)) => Effect::Request {
                purpose: Purpose::Open { load: true },
                method: acp_method::SESSION_LOAD,
                params: load_session_params(id, &self.cwd),
            },
            _ => Effect::Request {
                purpose: Purpose::Open { load: false },
                method: acp_method::SESSION_NEW,
                params: new_session_params(&self.cwd),
            },
        }
    }

    fn answer(&mut self, request_id: &str, answer: &PermissionAnswer) -> Vec<Effect> {
        let Some((id, permission)) = self.permissions.remove(request_id) else {
            // Already answered, or withdrawn by an interrupt.
            return Vec::new();
        };
        if let PermissionAnswer::Deny {
            interrupt: true, ..
        } = answer
        {
            let mut effects = self.cancel_notification();
            effects.push(Effect::Respond {
                id,
                result: cancelled(),
            });
            effects.extend(self.withdraw_all());
            return effects;
        }
        match permission_outcome(&permission, answer) {
            Ok(result) => vec![Effect::Respond { id, result }],
            // An edited input cannot be passed on: the call is rejected rather than run
            // unedited.
            Err(reason) => {
                let deny = PermissionAnswer::Deny {
                    message: reason.clone(),
                    interrupt: false,
                };
                let result = permission_outcome(&permission, &deny).unwrap_or_else(|_| cancelled());
                vec![
                    Effect::Respond { id, result },
                    Effect::Event(AgentEvent::Malformed { reason }),
                ]
            }
        }
    }

    fn interrupt(&mut self) -> Vec<Effect> {
        if !self.running {
            return Vec::new();
        }
        let mut effects = self.cancel_notification();
        effects.extend(self.withdraw_all());
        effects
    }

    fn cancel_notification(&self) -> Vec<Effect> {
        match self.session_id() {
            Some(session_id) => vec![Effect::Notify {
                method: acp_method::SESSION_CANCEL,
                params: cancel_params(session_id),
            }],
            None => Vec::new(),
        }
    }

    /// Answers every open permission request `cancelled` and tells the hub it is gone.
    fn withdraw_all(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (request_id, (id, _)) in std::mem::take(&mut self.permissions) {
            effects.push(Effect::Respond {
                id,
                result: cancelled(),
            });
            effects.push(Effect::Event(AgentEvent::PermissionCancelled {
                request_id,
            }));
        }
        effects
    }

    /// The next waiting prompt, if the session is open and none runs.
    fn next_prompt(&mut self) -> Vec<Effect> {
        let Some(session_id) = self.session_id().map(str::to_string) else {
            return Vec::new();
        };
        if self.running || self.waiting.is_empty() {
            return Vec::new();
        }
        let text = self.waiting.remove(0);
        self.running = true;
        self.text.clear();
        vec![Effect::Request {
            purpose: Purpose::Prompt,
            method: acp_method::SESSION_PROMPT,
            params: prompt_params(&session_id, &text),
        }]
    }

    /// The handshake failed: the agent cannot be used, and the run fails with `why`.
    fn fail(&mut self, why: String) -> Vec<Effect> {
        self.phase = Phase::Failed;
        self.waiting.clear();
        vec![Effect::Event(AgentEvent::Fatal { reason: why })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::driver::{StopReason, TurnEnd};
    use serde_json::json;

    fn n(id: i64) -> RequestId {
        RequestId::Number(id)
    }

    const SHELL: &str = r#"{"sessionId":"s1","options":[{"optionId":"proceed_always","name":"Allow for this session","kind":"allow_always"},{"optionId":"proceed_once","name":"Allow","kind":"allow_once"},{"optionId":"cancel","name":"Reject","kind":"reject_once"}],"toolCall":{"toolCallId":"run_shell_command__run_shell_command_1_0","status":"pending","title":"echo hi > out.txt","content":[],"locations":[],"kind":"execute"}}"#;

    fn requests(effects: &[Effect]) -> Vec<&'static str> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Request { method, .. } => Some(*method),
                _ => None,
            })
            .collect()
    }

    /// A session past its handshake, with the first prompt running.
    fn open(resume: Option<&str>) -> GeminiSession {
        let mut s = GeminiSession::new("/w".into(), resume.map(str::to_string));
        assert_eq!(requests(&s.start()), ["initialize"]);
        assert!(
            s.command(Command::Prompt {
                text: "first".into()
            })
            .is_empty()
        );
        let effects = s.on_response(Purpose::Initialize, Ok(json!({"protocolVersion": 1})));
        let open = if resume.is_some() {
            "session/load"
        } else {
            "session/new"
        };
        assert_eq!(requests(&effects), [open]);
        let effects = s.on_response(
            Purpose::Open {
                load: resume.is_some(),
            },
            Ok(json!({"sessionId": "s1"})),
        );
        assert!(
            matches!(&effects[0], Effect::Event(AgentEvent::SessionStarted { session_id }) if session_id == resume.unwrap_or("s1")),
            "{effects:?}"
        );
        assert_eq!(requests(&effects), ["session/prompt"]);
        assert!(s.running);
        s
    }

    fn ask(s: &mut GeminiSession, id: i64) -> String {
        let effects = s.on_request(
            n(id),
            "session/request_permission",
            &serde_json::from_str(SHELL).unwrap(),
        );
        match &effects[..] {
            [Effect::Event(AgentEvent::PermissionRequested(r))] => r.request_id.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_first_prompt_waits_for_the_session() {
        let s = open(None);
        assert_eq!(s.session_id(), Some("s1"));
        let s = open(Some("s0"));
        // A loaded session keeps its id, whatever the result says.
        assert_eq!(s.session_id(), Some("s0"));
    }

    #[test]
    fn a_prompt_during_a_turn_waits_for_its_end() {
        let mut s = open(None);
        assert!(
            s.command(Command::Prompt {
                text: "second".into()
            })
            .is_empty()
        );
        let effects = s.on_response(Purpose::Prompt, Ok(json!({"stopReason": "end_turn"})));
        assert!(matches!(
            &effects[0],
            Effect::Event(AgentEvent::TurnEnded(TurnEnd {
                stop_reason: StopReason::EndTurn,
                ..
            }))
        ));
        match &effects[1] {
            Effect::Request { params, .. } => assert_eq!(params["prompt"][0]["text"], "second"),
            other => panic!("{other:?}"),
        }
        assert!(s.running);
    }

    #[test]
    fn an_answer_selects_the_option_of_its_kind() {
        let mut s = open(None);
        let request_id = ask(&mut s, 0);
        assert_eq!(request_id, "0");
        let input = json!({"command": "echo hi > out.txt", "kind": "execute"});
        let effects = s.command(Command::Answer {
            request_id: request_id.clone(),
            answer: PermissionAnswer::Allow {
                input,
                for_session: false,
            },
        });
        assert_eq!(
            effects,
            [Effect::Respond {
                id: n(0),
                result: json!({"outcome": {"outcome": "selected", "optionId": "proceed_once"}})
            }]
        );
        // A second answer finds nothing to answer.
        let deny = PermissionAnswer::Deny {
            message: "no".into(),
            interrupt: false,
        };
        assert!(
            s.command(Command::Answer {
                request_id,
                answer: deny
            })
            .is_empty()
        );
    }

    #[test]
    fn an_edited_input_is_rejected_not_run_unedited() {
        let mut s = open(None);
        let request_id = ask(&mut s, 3);
        let effects = s.command(Command::Answer {
            request_id,
            answer: PermissionAnswer::Allow {
                input: json!({"command": "rm -rf /"}),
                for_session: false,
            },
        });
        assert_eq!(
            effects[0],
            Effect::Respond {
                id: n(3),
                result: json!({"outcome": {"outcome": "selected", "optionId": "cancel"}})
            }
        );
    }

    #[test]
    fn an_interrupt_cancels_then_withdraws_the_waiting_requests() {
        let mut s = open(None);
        let request_id = ask(&mut s, 5);
        let effects = s.command(Command::Interrupt {
            request_id: "i1".into(),
        });
        assert_eq!(
            effects,
            [
                Effect::Notify {
                    method: "session/cancel",
                    params: json!({"sessionId": "s1"})
                },
                Effect::Respond {
                    id: n(5),
                    result: json!({"outcome": {"outcome": "cancelled"}})
                },
                Effect::Event(AgentEvent::PermissionCancelled { request_id }),
            ]
        );
        let effects = s.on_response(Purpose::Prompt, Ok(json!({"stopReason": "cancelled"})));
        assert!(matches!(
            &effects[..],
            [Effect::Event(AgentEvent::TurnEnded(TurnEnd {
                stop_reason: StopReason::Cancelled,
                ..
            }))]
        ));
        // No turn: nothing to interrupt.
        assert!(
            s.command(Command::Interrupt {
                request_id: "i2".into()
            })
            .is_empty()
        );
    }

    #[test]
    fn deny_and_interrupt_cancels_the_turn() {
        let mut s = open(None);
        let request_id = ask(&mut s, 1);
        let effects = s.command(Command::Answer {
            request_id,
            answer: PermissionAnswer::Deny {
                message: "stop".into(),
                interrupt: true,
            },
        });
        assert!(matches!(
            &effects[0],
            Effect::Notify {
                method: "session/cancel",
                ..
            }
        ));
        assert_eq!(
            effects[1],
            Effect::Respond {
                id: n(1),
                result: json!({"outcome": {"outcome": "cancelled"}})
            }
        );
    }

    #[test]
    fn a_failed_load_goes_on_in_a_new_session() {
        let mut s = GeminiSession::new("/w".into(), Some("gone".into()));
        s.start();
        s.command(Command::Prompt {
            text: "first".into(),
        });
        s.on_response(Purpose::Initialize, Ok(json!({"protocolVersion": 1})));
        let effects = s.on_response(
            Purpose::Open { load: true },
            Err("the agent answered session/load with error -32603: Internal error".into()),
        );
        assert!(matches!(
            &effects[0],
            Effect::Event(AgentEvent::Malformed { .. })
        ));
        assert_eq!(requests(&effects), ["session/new"]);
        let effects = s.on_response(
            Purpose::Open { load: false },
            Ok(json!({"sessionId": "s2"})),
        );
        assert_eq!(
            effects[0],
            Effect::Event(AgentEvent::SessionStarted {
                session_id: "s2".into()
            })
        );
        assert_eq!(requests(&effects), ["session/prompt"]);
    }

    #[test]
    fn a_failed_handshake_is_fatal_and_later_prompts_end_at_once() {
        let mut s = GeminiSession::new("/w".into(), None);
        s.start();
        s.command(Command::Prompt {
            text: "first".into(),
        });
        let effects = s.on_response(Purpose::Initialize, Ok(json!({"protocolVersion": 2})));
        assert!(matches!(
            &effects[..],
            [Effect::Event(AgentEvent::Fatal { .. })]
        ));
        assert!(matches!(
            &s.command(Command::Prompt {
                text: "again".into()
            })[..],
            [Effect::Event(AgentEvent::TurnEnded(TurnEnd {
                stop_reason: StopReason::Error,
                ..
            }))]
        ));
        let mut s = GeminiSession::new("/w".into(), None);
        s.start();
        let effects = s.on_response(Purpose::Initialize, Ok(json!({"protocolVersion": 1})));
        assert_eq!(requests(&effects), ["session/new"]);
        let effects = s.on_response(Purpose::Open { load: false }, Err("closed".into()));
        assert!(matches!(
            &effects[..],
            [Effect::Event(AgentEvent::Fatal { .. })]
        ));
    }

    #[test]
    fn the_turn_text_is_the_agent_message_chunks() {
        let mut s = open(None);
        for chunk in ["Do", "ne."] {
            s.on_notification(
                "session/update",
                &json!({"sessionId": "s1", "update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": chunk}}}),
            );
        }
        let result = json!({"stopReason": "end_turn", "_meta": {"quota": {"token_count": {"input_tokens": 200, "output_tokens": 20}, "model_usage": [{"model": "gemini-3.8-flash", "token_count": {"input_tokens": 200, "output_tokens": 20}}]}}});
        let effects = s.on_response(Purpose::Prompt, Ok(result));
        let Effect::Event(AgentEvent::TurnEnded(end)) = &effects[0] else {
            panic!("{effects:?}");
        };
        assert_eq!(end.text.as_deref(), Some("Done."));
        let tokens = end.tokens.as_ref().unwrap();
        assert_eq!((tokens.input, tokens.output), (200, 20));
        assert_eq!(tokens.model.as_deref(), Some("gemini-3.8-flash"));
    }

    #[test]
    fn other_agent_requests_are_refused_and_bad_permission_requests_cancelled() {
        let mut s = open(None);
        let effects = s.on_request(n(9), "fs/read_text_file", &json!({}));
        assert!(matches!(
            &effects[..],
            [Effect::RespondError {
                code: METHOD_NOT_FOUND,
                ..
            }]
        ));
        let effects = s.on_request(
            n(10),
            "session/request_permission",
            &json!({"toolCall": {}}),
        );
        assert_eq!(
            effects[0],
            Effect::Respond {
                id: n(10),
                result: cancelled()
            }
        );
        assert!(matches!(
            &effects[1],
            Effect::Event(AgentEvent::Malformed { .. })
        ));
    }

    #[test]
    fn a_failed_prompt_ends_the_turn_in_an_error_and_the_next_one_runs() {
        let mut s = open(None);
        s.command(Command::Prompt {
            text: "next".into(),
        });
        let effects = s.on_response(
            Purpose::Prompt,
            Err("the agent answered session/prompt with error 429: Rate limit exceeded.".into()),
        );
        assert!(matches!(
            &effects[0],
            Effect::Event(AgentEvent::TurnEnded(TurnEnd {
                stop_reason: StopReason::Error,
                ..
            }))
        ));
        assert_eq!(requests(&effects), ["session/prompt"]);
    }
}
