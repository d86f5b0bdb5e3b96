//! Approvals: the tool calls agents ask permission for, the policy and remembered rules
//! that answer some of them, and the pending ones a person answers.
//!
//! A permission request ([`PermissionRequest`]) from a session is answered at once when
//! the policy or a rule covers it, in this order: a tool in `always_ask` always asks; a
//! tool in `never_ask` is allowed; a rule remembered for the session (the agent process),
//! then one remembered for the project (stored, so it survives a restart) answers as it
//! says when it matches the call ([`Rule`]: the tool and, in Claude Code's rule syntax,
//! what of its input it covers; a matching `deny` rule wins); anything else becomes a pending approval, announced with
//! `agent.approval_requested`, until a client answers it, nobody answers within
//! `agent.approvals.timeout_s` (then it is denied with `timeout_message`), or it is
//! withdrawn (the agent cancelled it, the turn was interrupted, the process ended).
//!
//! **The first answer wins.** Taking a pending approval out of the map and recording how
//! it ended happen under one lock, so of two answers racing, one gets the approval and
//! the other [`ApprovalError::Resolved`] with that resolution. The last 1024
//! resolutions are kept for that error.
//!
//! Lock: one std `Mutex` over map operations only, never held across `.await`; the
//! answer is written to the agent's stdin after the lock is released.

mod policies;
mod remembered;
mod rule;

use rule::Rule;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, warn};

use super::driver::{Command, PermissionAnswer, PermissionRequest};
use super::session::Input;
use crate::config::ApprovalsConfig;
use crate::events::{Event, EventSink};
use crate::projects::feed::{Feed, Line};
use crate::protocol::Stream;
use crate::protocol::agents::{
    AnswerParams, AnsweredBy, ApprovalOutcome, ApprovalResolved, ApprovalView, DecisionKind,
    PolicyOverride, Resolution, RuleScope,
};
use crate::protocol::error::{ErrorChain, ErrorKind, RpcError};
use crate::storage::sqlite::{RuleRow, Store, StoreError};
use crate::support::timestamp::{format_ms, now_ms};
use remembered::{Behavior, Remembered, RuleSet};

/// Resolutions remembered for late answers.
const RESOLVED_KEPT: usize = 1024;

/// The default message of a denial.
const DENIED: &str = "The user denied this tool call.";

/// Why an answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No pending or recent approval has this id.
    #[error("no pending approval has id {0}")]
    NotFound(String),
    /// It was already answered or withdrawn.
    #[error("approval {id} was already {}", match .resolution.outcome {
        ApprovalOutcome::Allowed => "allowed",
        ApprovalOutcome::Denied => "denied",
        ApprovalOutcome::Withdrawn => "withdrawn",
    })]
    Resolved {
        /// The approval.
        id: String,
        /// How it ended.
        resolution: Box<Resolution>,
    },
    /// The answer does not fit the request.
    #[error("{0}")]
    Invalid(String),
    /// A policy setting is out of bounds; `param` names it, so a form can show the
    /// message next to its field.
    #[error("{message}")]
    InvalidPolicy {
        /// The `agent.policy.set` param at fault.
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A project rule could not be stored.
    #[error("cannot store the rule")]
    Store(#[from] StoreError),
}

impl From<ApprovalError> for RpcError {
    fn from(err: ApprovalError) -> Self {
        match &err {
            ApprovalError::NotFound(id) => {
                RpcError::new(ErrorKind::ApprovalNotFound, err.to_string())
                    .with_details(serde_json::json!({"approval_id": id}))
            }
            ApprovalError::Resolved { id, resolution } => {
                RpcError::new(ErrorKind::ApprovalResolved, err.to_string())
                    .with_details(serde_json::json!({"approval_id": id, "resolution": resolution}))
            }
            ApprovalError::Invalid(_) => RpcError::new(ErrorKind::InvalidParams, err.to_string()),
            ApprovalError::InvalidPolicy { param, .. } => {
                RpcError::new(ErrorKind::InvalidParams, err.to_string())
                    .with_details(serde_json::json!({ "param": param }))
            }
            ApprovalError::Store(source) => RpcError::internal("store approval rule", source),
        }
    }
}

/// The session a request comes from.
#[derive(Clone)]
pub struct Asker {
    /// The project.
    pub project_id: String,
    /// The run (agent process).
    pub run_id: String,
    /// The task, when the run is a task run ([`super::RunMode::Task`]).
    pub task_id: Option<String>,
    /// The session's stdin.
    pub input: mpsc::Sender<Input>,
}

struct Pending {
    view: ApprovalView,
    request_id: String,
    /// Whether the agent can run an edited input ([`PermissionRequest::takes_edited_input`]).
    takes_edited_input: bool,
    /// The project's `timeout_message` when it was asked.
    timeout_message: String,
    input: mpsc::Sender<Input>,
    /// Cancelled when resolved, so the timeout task ends at once.
    timer: CancellationToken,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    resolved: HashMap<String, Resolution>,
    resolved_order: VecDeque<String>,
    /// Rules by project.
    project_rules: HashMap<String, RuleSet>,
    /// Rules by run; dropped when the run ends.
    session_rules: HashMap<String, RuleSet>,
    /// Each project's own policy settings (`agent.policy.set`), by project.
    policies: HashMap<String, PolicyOverride>,
}

impl State {
    fn record(&mut self, id: &str, resolution: &Resolution) {
        self.resolved.insert(id.to_string(), resolution.clone());
        self.resolved_order.push_back(id.to_string());
        while self.resolved_order.len() > RESOLVED_KEPT {
            if let Some(old) = self.resolved_order.pop_front() {
                self.resolved.remove(&old);
            }
        }
    }
}

struct Inner {
    policy: ApprovalsConfig,
    store: Store,
    feed: Feed,
    sink: Arc<dyn EventSink>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    state: Mutex<State>,
}

/// The approvals of every session; cheap to clone.
#[derive(Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

/// What [`Approvals::open`] needs.
pub struct ApprovalsParts {
    /// `[agent.approvals]`.
    pub policy: ApprovalsConfig,
    /// Project rules.
    pub store: Store,
    /// The project log, for the `approval_requested`/`approval_resolved` lines.
    pub feed: Feed,
    /// `agent.approval_requested` and `agent.approval_resolved`.
    pub sink: Arc<dyn EventSink>,
    /// Runs the timeout tasks.
    pub tracker: TaskTracker,
    /// Ends the timeout tasks at shutdown.
    pub shutdown: CancellationToken,
}

/// The log line of an approval event.
#[derive(Serialize)]
struct ApprovalLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    run_id: &'a str,
    approval_id: &'a str,
    tool_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_use_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<&'a Resolution>,
}

impl Approvals {
    /// Opens the registry with the project rules stored.
    pub async fn open(parts: ApprovalsParts) -> Self {
        let mut state = State::default();
        match parts.store.approval_rules().await {
            Ok(rules) => {
                for row in rules {
                    let rule = Rule::new(row.tool_name, Some(row.rule_content));
                    state
                        .project_rules
                        .entry(row.project_id)
                        .or_default()
                        .insert(Remembered {
                            rule,
                            behavior: Behavior::parse(&row.behavior),
                            created_at: row.created_at,
                        });
                }
            }
            Err(err) => warn!(error = %ErrorChain(&err), "cannot read the approval rules"),
        }
        match parts.store.approval_policies().await {
            Ok(policies) => {
                for (project_id, text) in policies {
                    match serde_json::from_str::<PolicyOverride>(&text) {
                        Ok(policy) => {
                            state.policies.insert(project_id, policy);
                        }
                        Err(err) => {
                            warn!(error = %err, project_id, "a stored approval policy is unreadable; the config applies");
                        }
                    }
                }
            }
            Err(err) => warn!(error = %ErrorChain(&err), "cannot read the approval policies"),
        }
        Self {
            inner: Arc::new(Inner {
                policy: parts.policy,
                store: parts.store,
                feed: parts.feed,
                sink: parts.sink,
                tracker: parts.tracker,
                shutdown: parts.shutdown,
                state: Mutex::new(state),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The pending approvals, oldest first, of one project or all.
    pub fn list(&self, project_id: Option<&str>) -> Vec<ApprovalView> {
        let mut views: Vec<ApprovalView> = self
            .state()
            .pending
            .values()
            .filter(|p| project_id.is_none_or(|id| p.view.project_id == id))
            .map(|p| p.view.clone())
            .collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }

    /// Handles a permission request of a session: answers it from the policy or a rule,
    /// or makes it pending until a person answers.
    pub async fn ask(&self, asker: &Asker, request: PermissionRequest) {
        let tool = request.tool_name.as_str();
        let policy = self.policy(&asker.project_id);
        let automatic = if policy.always_ask.iter().any(|t| t == tool) {
            None
        } else if policy.never_ask.iter().any(|t| t == tool) {
            Some((Behavior::Allow, AnsweredBy::Policy, None))
        } else {
            let state = self.state();
            let rule = |rules: Option<&RuleSet>, scope| {
                rules?.answer(tool, &request.input).map(|r| {
                    (
                        r.behavior,
                        AnsweredBy::Rule { scope },
                        Some(r.rule.to_string()),
                    )
                })
            };
            rule(state.session_rules.get(&asker.run_id), RuleScope::Session).or_else(|| {
                rule(
                    state.project_rules.get(&asker.project_id),
                    RuleScope::Project,
                )
            })
        };
        let now = now_ms();
        let id = format!("ap_{}", uuid::Uuid::now_v7().simple());
        let view = ApprovalView {
            id: id.clone(),
            project_id: asker.project_id.clone(),
            run_id: asker.run_id.clone(),
            task_id: asker.task_id.clone(),
            tool_name: request.tool_name.clone(),
            input: request.input.clone(),
            suggestions: request.suggestions.clone(),
            tool_use_id: request.tool_use_id.clone(),
            description: request.description.clone(),
            asked_at: format_ms(now),
            expires_at: format_ms(now + policy.timeout_s as i64 * 1000),
        };
        if let Some((behavior, by, rule)) = automatic {
            let (answer, outcome, decision) = match behavior {
                Behavior::Allow => (
                    PermissionAnswer::Allow {
                        input: request.input.clone(),
                        for_session: false,
                    },
                    ApprovalOutcome::Allowed,
                    DecisionKind::AllowOnce,
                ),
                Behavior::Deny => (
                    PermissionAnswer::Deny {
                        message: "Denied by a rule the user set for this tool.".into(),
                        interrupt: false,
                    },
                    ApprovalOutcome::Denied,
                    DecisionKind::RejectOnce,
                ),
            };
            send(&asker.input, &request.request_id, answer).await;
            let resolution = Resolution {
                outcome,
                decision: Some(decision),
                scope: None,
                rule,
                message: None,
                edited: false,
                by,
                at: format_ms(now),
            };
            info!(approval_id = %id, tool = %view.tool_name, outcome = ?outcome,
                  rule = resolution.rule.as_deref(), "tool call answered by policy");
            self.log(&view, "approval_resolved", Some(&resolution))
                .await;
            return;
        }
        let timer = self.inner.shutdown.child_token();
        self.state().pending.insert(
            id.clone(),
            Pending {
                view: view.clone(),
                request_id: request.request_id,
                takes_edited_input: request.takes_edited_input,
                timeout_message: policy.timeout_message.clone(),
                input: asker.input.clone(),
                timer: timer.clone(),
            },
        );
        info!(approval_id = %id, tool = %view.tool_name, "approval requested");
        self.inner.sink.emit(Event::ApprovalRequested(view.clone()));
        self.log(&view, "approval_requested", None).await;
        let this = self.clone();
        let timeout = Duration::from_secs(policy.timeout_s);
        self.inner.tracker.spawn(
            async move {
                tokio::select! {
                    () = timer.cancelled() => {}
                    () = tokio::time::sleep(timeout) => this.expire(&id).await,
                }
            }
            .in_current_span(),
        );
    }

    async fn expire(&self, id: &str) {
        let Some(message) = self
            .state()
            .pending
            .get(id)
            .map(|p| p.timeout_message.clone())
        else {
            return;
        };
        let resolution = Resolution {
            outcome: ApprovalOutcome::Denied,
            decision: Some(DecisionKind::RejectOnce),
            scope: None,
            rule: None,
            message: Some(message.clone()),
            edited: false,
            by: AnsweredBy::Timeout,
            at: format_ms(now_ms()),
        };
        if let Ok(pending) = self.take(id, &resolution) {
            let answer = PermissionAnswer::Deny {
                message,
                interrupt: false,
            };
            send(&pending.input, &pending.request_id, answer).await;
            self.finish(pending, resolution).await;
        }
    }

    /// Answers a pending approval: the first answer wins.
    ///
    /// # Errors
    /// [`ApprovalError::NotFound`], [`ApprovalError::Resolved`] (a later answer),
    /// [`ApprovalError::Invalid`] (an `updated_input` that is not an object, comes with
    /// a rejection, or changes the input of an agent that cannot run an edited call; an
    /// `*_always` answer for a tool in `always_ask`), or
    /// [`ApprovalError::Store`] (the project rule was not stored; the answer still went).
    pub async fn answer(
        &self,
        params: AnswerParams,
        by: AnsweredBy,
    ) -> Result<(ApprovalView, Resolution), ApprovalError> {
        let allow = matches!(
            params.decision,
            DecisionKind::AllowOnce | DecisionKind::AllowAlways
        );
        let always = matches!(
            params.decision,
            DecisionKind::AllowAlways | DecisionKind::RejectAlways
        );
        if let Some(input) = &params.updated_input {
            if !allow {
                return Err(ApprovalError::Invalid(
                    "updated_input goes with allow_once or allow_always".into(),
                ));
            }
            if !input.is_object() {
                return Err(ApprovalError::Invalid(
                    "updated_input must be an object".into(),
                ));
            }
        }
        if allow && (params.message.is_some() || params.interrupt) {
            return Err(ApprovalError::Invalid(
                "message and interrupt go with reject_once or reject_always".into(),
            ));
        }
        if !always && (params.scope.is_some() || params.rule.is_some()) {
            return Err(ApprovalError::Invalid(
                "scope and rule go with allow_always or reject_always".into(),
            ));
        }
        let typed = params
            .rule
            .as_deref()
            .map(Rule::parse)
            .transpose()
            .map_err(|err| ApprovalError::Invalid(err.to_string()))?;
        let asked = self.state().pending.get(&params.approval_id).map(|p| {
            let edited = params
                .updated_input
                .as_ref()
                .is_some_and(|i| *i != p.view.input);
            (
                p.view.tool_name.clone(),
                p.view.project_id.clone(),
                edited && !p.takes_edited_input,
                Rule::suggested(&p.view.tool_name, &p.view.suggestions),
            )
        });
        if let Some((tool, _, true, _)) = &asked {
            return Err(ApprovalError::Invalid(format!(
                "this agent cannot run an edited {tool} call; allow it as asked or reject it"
            )));
        }
        if always
            && let Some((tool, project_id, _, _)) = &asked
            && self.policy(project_id).always_ask.iter().any(|t| t == tool)
        {
            return Err(ApprovalError::Invalid(format!(
                "{tool} always asks by this hub's policy (agent.approvals.always_ask); answer it once"
            )));
        }
        if let (Some(typed), Some((tool, ..))) = (&typed, &asked)
            && typed.tool() != tool
        {
            return Err(ApprovalError::Invalid(format!(
                "the rule {typed} is not for {tool}, the tool this approval is about"
            )));
        }
        // The person's own rule, else the agent's suggestion, else the whole tool (what
        // agents that suggest nothing have always had): never wider than suggested
        // unless typed.
        let rule = match (always, typed, asked) {
            (false, ..) => None,
            (true, Some(typed), _) => Some(typed),
            (true, None, Some((tool, _, _, suggested))) => {
                Some(suggested.unwrap_or_else(|| Rule::new(tool, None)))
            }
            (true, None, None) => None,
        };
        let scope = always.then(|| params.scope.unwrap_or_default());
        let message = (!allow).then(|| params.message.clone().unwrap_or_else(|| DENIED.into()));
        let resolution = Resolution {
            outcome: if allow {
                ApprovalOutcome::Allowed
            } else {
                ApprovalOutcome::Denied
            },
            decision: Some(params.decision),
            scope,
            rule: rule.as_ref().map(Rule::to_string),
            message: message.clone(),
            edited: params.updated_input.is_some(),
            by,
            at: format_ms(now_ms()),
        };
        let pending = self.take(&params.approval_id, &resolution)?;
        let answer = match message {
            None => PermissionAnswer::Allow {
                input: params
                    .updated_input
                    .unwrap_or_else(|| pending.view.input.clone()),
                for_session: always,
            },
            Some(message) => PermissionAnswer::Deny {
                message,
                interrupt: params.interrupt,
            },
        };
        send(&pending.input, &pending.request_id, answer).await;
        let view = pending.view.clone();
        let behavior = if allow {
            Behavior::Allow
        } else {
            Behavior::Deny
        };
        let now = now_ms();
        let stored = match (scope, rule) {
            (Some(RuleScope::Session), Some(rule)) => {
                self.state()
                    .session_rules
                    .entry(view.run_id.clone())
                    .or_default()
                    .insert(Remembered {
                        rule,
                        behavior,
                        created_at: now,
                    });
                Ok(())
            }
            (Some(RuleScope::Project), Some(rule)) => {
                let row = RuleRow {
                    project_id: view.project_id.clone(),
                    tool_name: rule.tool().to_string(),
                    rule_content: rule.content().unwrap_or_default().to_string(),
                    behavior: behavior.as_str().into(),
                    created_at: now,
                };
                self.state()
                    .project_rules
                    .entry(view.project_id.clone())
                    .or_default()
                    .insert(Remembered {
                        rule,
                        behavior,
                        created_at: now,
                    });
                self.inner.store.put_approval_rule(row, now).await
            }
            _ => Ok(()),
        };
        self.finish(pending, resolution.clone()).await;
        stored?;
        Ok((view, resolution))
    }

    /// Takes a pending approval and records its resolution, atomically.
    fn take(&self, id: &str, resolution: &Resolution) -> Result<Pending, ApprovalError> {
        let mut state = self.state();
        match state.pending.remove(id) {
            Some(pending) => {
                state.record(id, resolution);
                Ok(pending)
            }
            None => match state.resolved.get(id) {
                Some(resolution) => Err(ApprovalError::Resolved {
                    id: id.to_string(),
                    resolution: Box::new(resolution.clone()),
                }),
                None => Err(ApprovalError::NotFound(id.to_string())),
            },
        }
    }

    /// After [`Approvals::take`]: ends the timer, tells the clients, writes the log line.
    async fn finish(&self, pending: Pending, resolution: Resolution) {
        pending.timer.cancel();
        info!(approval_id = %pending.view.id, outcome = ?resolution.outcome, by = ?resolution.by,
              rule = resolution.rule.as_deref(), "approval resolved");
        self.inner
            .sink
            .emit(Event::ApprovalResolved(ApprovalResolved {
                approval_id: pending.view.id.clone(),
                project_id: pending.view.project_id.clone(),
                run_id: pending.view.run_id.clone(),
                tool_name: pending.view.tool_name.clone(),
                resolution: resolution.clone(),
            }));
        self.log(&pending.view, "approval_resolved", Some(&resolution))
            .await;
    }

    /// Withdraws the pending approvals of a run (all, or the one with the driver's
    /// `request_id`): nobody may answer them any more. Returns how many.
    pub async fn withdraw(&self, run_id: &str, request_id: Option<&str>, why: &str) -> usize {
        let resolution = Resolution {
            outcome: ApprovalOutcome::Withdrawn,
            decision: None,
            scope: None,
            rule: None,
            message: Some(why.to_string()),
            edited: false,
            by: AnsweredBy::Withdrawn,
            at: format_ms(now_ms()),
        };
        let taken: Vec<Pending> = {
            let mut state = self.state();
            let ids: Vec<String> = state
                .pending
                .iter()
                .filter(|(_, p)| {
                    p.view.run_id == run_id && request_id.is_none_or(|r| p.request_id == r)
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| {
                    let pending = state.pending.remove(id)?;
                    state.record(id, &resolution);
                    Some(pending)
                })
                .collect()
        };
        let count = taken.len();
        for pending in taken {
            self.finish(pending, resolution.clone()).await;
        }
        count
    }

    /// Forgets a run's session rules (its process ended).
    pub fn end_run(&self, run_id: &str) {
        self.state().session_rules.remove(run_id);
    }

    async fn log(&self, view: &ApprovalView, kind: &'static str, resolution: Option<&Resolution>) {
        let line = ApprovalLine {
            kind,
            run_id: &view.run_id,
            approval_id: &view.id,
            tool_name: &view.tool_name,
            tool_use_id: view.tool_use_id.as_deref(),
            input: resolution.is_none().then_some(&view.input),
            resolution,
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        let line = Line {
            run_id: Some(&view.run_id),
            stream: Stream::Hub,
            text: &text,
        };
        if let Err(err) = self.inner.feed.append(&view.project_id, line).await {
            warn!(error = %ErrorChain(&err), "cannot store an approval line");
        }
    }
}

/// Writes an answer to a session's stdin; a session that is gone cannot take it, which
/// only matters to it.
async fn send(input: &mpsc::Sender<Input>, request_id: &str, answer: PermissionAnswer) {
    let command = Command::Answer {
        request_id: request_id.to_string(),
        answer,
    };
    if input.send(Input::Command(command)).await.is_err() {
        warn!(
            request_id,
            "the agent's input is closed; the answer was not delivered"
        );
    }
}
