//! The Codex driver against a scripted app server, and its pure mappings.

use super::*;
use crate::runner::peer::{self, Dialect, Inbox};
use tokio::sync::mpsc;

/// The driver against a scripted app server: what it writes, a way to answer.
struct Script {
    inbox: Inbox,
    written: mpsc::Receiver<String>,
    incoming: mpsc::Sender<Incoming>,
    inputs: mpsc::Sender<Input>,
    events: mpsc::Receiver<AgentEvent>,
}

impl Script {
    fn start(resume: Option<&str>) -> Self {
        let (out, written) = mpsc::channel(16);
        let (peer, inbox) = peer::pair(Dialect::NoVersion, out);
        let (incoming, incoming_rx) = mpsc::channel(16);
        let (inputs, inputs_rx) = mpsc::channel(16);
        let (events_tx, events) = mpsc::channel(16);
        tokio::spawn(drive(Link {
            peer,
            incoming: incoming_rx,
            inputs: inputs_rx,
            events: events_tx,
            start: super::super::Start {
                cwd: "/w".into(),
                resume: resume.map(str::to_string),
                model: None,
                permission_mode: "default".into(),
                sandbox: "workspace-write".into(),
                totals: None,
            },
        }));
        Self {
            inbox,
            written,
            incoming,
            inputs,
            events,
        }
    }

    async fn sent(&mut self) -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), self.written.recv())
            .await
            .expect("a line in time")
            .expect("a line");
        serde_json::from_str(&line).unwrap()
    }

    /// The agent writes `line`: responses go to the driver's requests, the rest to it.
    async fn say(&self, line: Value) {
        if let Some(message) = self.inbox.receive(&line.to_string()) {
            self.incoming.send(message).await.unwrap();
        }
    }

    async fn event(&mut self) -> AgentEvent {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.events.recv())
            .await
            .expect("an event in time")
            .expect("an event")
    }

    /// Answers `initialize` and the thread request; returns the thread request.
    async fn handshake(&mut self) -> Value {
        let init = self.sent().await;
        assert_eq!(init["method"], "initialize");
        self.say(json!({"id": init["id"], "result": {}})).await;
        assert_eq!(self.sent().await, json!({"method": "initialized"}));
        let thread = self.sent().await;
        self.say(
            json!({"id": thread["id"], "result": {"thread": {"id": "01a2-t"}, "model": "gpt-5"}}),
        )
        .await;
        assert_eq!(
            self.event().await,
            AgentEvent::SessionStarted {
                session_id: "01a2-t".into()
            }
        );
        thread
    }
}

#[tokio::test]
async fn a_prompt_waits_for_the_thread_then_steers_once_the_turn_runs() {
    let mut script = Script::start(None);
    script
        .inputs
        .send(Input::Command(Command::Prompt {
            text: "first".into(),
        }))
        .await
        .unwrap();
    let thread = script.handshake().await;
    assert_eq!(thread["method"], "thread/start");
    assert_eq!(thread["params"]["approvalPolicy"], "untrusted");
    assert_eq!(thread["params"]["sandbox"], "workspace-write");
    let turn = script.sent().await;
    assert_eq!(turn["method"], "turn/start");
    assert_eq!(turn["params"]["input"][0]["text"], "first");
    // A prompt and an interrupt while the turn's id is unknown wait for it.
    for command in [
        Command::Prompt {
            text: "more".into(),
        },
        Command::Interrupt {
            request_id: "i".into(),
        },
    ] {
        script.inputs.send(Input::Command(command)).await.unwrap();
    }
    script
        .say(json!({"id": turn["id"], "result": {"turn": {"id": "u1", "status": "inProgress"}}}))
        .await;
    let interrupt = script.sent().await;
    assert_eq!(interrupt["method"], "turn/interrupt");
    assert_eq!(
        interrupt["params"],
        json!({"threadId": "01a2-t", "turnId": "u1"})
    );
    let steer = script.sent().await;
    assert_eq!(steer["method"], "turn/steer");
    assert_eq!(steer["params"]["expectedTurnId"], "u1");
    assert_eq!(steer["params"]["input"][0]["text"], "more");
}

#[tokio::test]
async fn approvals_are_asked_answered_withdrawn_and_others_refused() {
    let mut script = Script::start(Some("01a2-t"));
    script
        .inputs
        .send(Input::Command(Command::Prompt { text: "go".into() }))
        .await
        .unwrap();
    let thread = script.handshake().await;
    assert_eq!(thread["method"], "thread/resume");
    assert_eq!(thread["params"]["threadId"], "01a2-t");
    let turn = script.sent().await;
    script
        .say(json!({"id": turn["id"], "result": {"turn": {"id": "u1"}}}))
        .await;
    script
        .say(json!({"method": "item/started", "params": {"item": {"type": "fileChange", "id": "f1", "changes": [{"path": "a.rs"}]}}}))
        .await;
    script
        .say(json!({"method": "item/fileChange/requestApproval", "id": 7, "params": {"itemId": "f1", "reason": "edit a.rs"}}))
        .await;
    let AgentEvent::PermissionRequested(edit) = script.event().await else {
        panic!("not a permission request");
    };
    assert_eq!(edit.tool_name, "Edit");
    assert_eq!(edit.input["changes"][0]["path"], "a.rs");
    assert_eq!(edit.description.as_deref(), Some("edit a.rs"));
    script
        .inputs
        .send(Input::Command(Command::Answer {
            request_id: edit.request_id.clone(),
            answer: PermissionAnswer::Allow {
                input: json!({}),
                for_session: true,
            },
        }))
        .await
        .unwrap();
    assert_eq!(
        script.sent().await,
        json!({"id": 7, "result": {"decision": "acceptForSession"}})
    );
    // A request the hub does not serve is refused at once.
    script
        .say(json!({"method": "item/tool/requestUserInput", "id": "q", "params": {}}))
        .await;
    let refused = script.sent().await;
    assert_eq!(
        (&refused["id"], &refused["error"]["code"]),
        (&json!("q"), &json!(-32601))
    );
    // The app server resolves a command request itself (the turn was interrupted).
    script
        .say(json!({"method": "item/commandExecution/requestApproval", "id": 8, "params": {"itemId": "c1", "command": "ls"}}))
        .await;
    let AgentEvent::PermissionRequested(command) = script.event().await else {
        panic!("not a permission request");
    };
    assert_eq!(command.input, json!({"command": "ls"}));
    script
        .say(json!({"method": "serverRequest/resolved", "params": {"threadId": "01a2-t", "requestId": 8}}))
        .await;
    assert_eq!(
        script.event().await,
        AgentEvent::PermissionCancelled {
            request_id: command.request_id
        }
    );
    script
        .say(json!({"method": "turn/completed", "params": {"threadId": "01a2-t", "turn": {"id": "u1", "status": "interrupted"}}}))
        .await;
    let AgentEvent::TurnEnded(end) = script.event().await else {
        panic!("not a turn end");
    };
    assert_eq!(end.stop_reason, StopReason::Cancelled);
    assert_eq!(end.tokens.unwrap().model.as_deref(), Some("gpt-5"));
}

#[test]
fn turn_tokens_are_differences_of_thread_totals() {
    // Two turns of 100 in (20 cached) and 10 out each: totals 100/20/10, then 200/40/20.
    let first = Breakdown {
        input_tokens: 100,
        cached_input_tokens: 20,
        output_tokens: 10,
        ..Breakdown::default()
    };
    let second = Breakdown {
        input_tokens: 200,
        cached_input_tokens: 40,
        output_tokens: 20,
        reasoning_output_tokens: 4,
        ..Breakdown::default()
    };
    let turn = turn_tokens(&first, &second, Some("gpt-5"));
    assert_eq!(
        (turn.input, turn.cache_read, turn.output, turn.reasoning),
        (80, 20, 10, 4)
    );
    assert_eq!(turn.model.as_deref(), Some("gpt-5"));
    // Totals below the baseline restarted from zero: they are the turn's own.
    let restarted = turn_tokens(&second, &first, None);
    assert_eq!((restarted.input, restarted.output), (80, 10));
}

#[test]
fn answers_and_statuses_map_onto_the_app_server_vocabulary() {
    let allow = |for_session| PermissionAnswer::Allow {
        input: json!({}),
        for_session,
    };
    let deny = |interrupt| PermissionAnswer::Deny {
        message: "no".into(),
        interrupt,
    };
    assert_eq!(decision(&allow(false)), "accept");
    assert_eq!(decision(&allow(true)), "acceptForSession");
    assert_eq!(decision(&deny(false)), "decline");
    assert_eq!(decision(&deny(true)), "cancel");
    assert_eq!(stop_reason("completed"), StopReason::EndTurn);
    assert_eq!(stop_reason("interrupted"), StopReason::Cancelled);
    assert_eq!(stop_reason("failed"), StopReason::Error);
}
