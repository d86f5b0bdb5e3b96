//! Wire types of live agent sessions: approvals of tool calls, follow-up messages and
//! interrupts (`agent.approvals.*`, `agent.send`, `agent.queue.*`, `agent.interrupt`
//! and their notifications; docs/protocol.md, "Agent sessions", and docs/agents.md).
//!
//! Data only, like the rest of [`crate::protocol`]; the behaviour is in
//! [`crate::runner`]. The vocabulary follows the Agent Client Protocol where it fits: a
//! permission request is answered with one of the option kinds `allow_once`,
//! `allow_always`, `reject_once` and `reject_always`, and a turn ends with a stop reason.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Method and notification names.
pub mod method {
    /// Request: the pending approvals → `{approvals: [ApprovalView]}`.
    pub const AGENT_APPROVALS_LIST: &str = "agent.approvals.list";
    /// Request: answer a pending approval → `{approval: ApprovalView, resolution}`.
    pub const AGENT_APPROVALS_ANSWER: &str = "agent.approvals.answer";
    /// Request: a follow-up message for a project's session → `{run_id, delivery, message?}`.
    pub const AGENT_SEND: &str = "agent.send";
    /// Request: interrupt the running turn → `{interrupted: true, run_id}`.
    pub const AGENT_INTERRUPT: &str = "agent.interrupt";
    /// Request: a project's queued follow-ups → `{messages: [QueuedMessage]}`.
    pub const AGENT_QUEUE_LIST: &str = "agent.queue.list";
    /// Request: edit a queued follow-up → `{message: QueuedMessage}`.
    pub const AGENT_QUEUE_UPDATE: &str = "agent.queue.update";
    /// Request: cancel a queued follow-up → `{message: QueuedMessage}`.
    pub const AGENT_QUEUE_CANCEL: &str = "agent.queue.cancel";
    /// Request: a project's approval policy in force → `Policy`.
    pub const AGENT_POLICY_GET: &str = "agent.policy.get";
    /// Request: set a project's approval policy → `Policy`.
    pub const AGENT_POLICY_SET: &str = "agent.policy.set";
    /// Request: a project's stored "always" rules → `{rules: [RuleView]}`.
    pub const AGENT_APPROVALS_RULES_LIST: &str = "agent.approvals.rules.list";
    /// Request: forget one of a project's stored rules → `{deleted: bool}`.
    pub const AGENT_APPROVALS_RULES_DELETE: &str = "agent.approvals.rules.delete";

    /// Notification (to `agents` connections): `{approval: ApprovalView}`.
    pub const AGENT_APPROVAL_REQUESTED: &str = "agent.approval_requested";
    /// Notification (to `agents` connections): `{approval_id, project_id, run_id, resolution}`.
    pub const AGENT_APPROVAL_RESOLVED: &str = "agent.approval_resolved";
    /// Notification (to `agents` connections): `{message: QueuedMessage}`, whenever a
    /// queued follow-up is added, edited, cancelled or delivered.
    pub const AGENT_QUEUE_CHANGED: &str = "agent.queue_changed";
}

/// Which agent CLI runs a project's turns: `project.configure {agent}`, a task's
/// `agent`, `agent.run {agent}` (docs/agents.md).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Claude Code (`claude`, its stream-json control protocol).
    #[default]
    Claude,
    /// OpenAI's Codex CLI (`codex app-server`).
    Codex,
    /// Google's Gemini CLI (`gemini --acp`, the Agent Client Protocol).
    Gemini,
}

impl AgentKind {
    /// Every agent, in the order the dashboard lists them.
    pub const ALL: [AgentKind; 3] = [Self::Claude, Self::Codex, Self::Gemini];

    /// The wire and stored name: `claude`, `codex`, `gemini`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Codex => "codex",
            Self::Gemini => "gemini",
        }
    }

    /// The agent of a stored name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The product's name, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Self::Claude => "Claude Code",
            Self::Codex => "Codex CLI",
            Self::Gemini => "Gemini CLI",
        }
    }
}

/// A tool call waiting for a person's answer, as `agent.approvals.list` and
/// `agent.approval_requested` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApprovalView {
    /// `ap_` and a UUIDv7: the hub's id for the request.
    pub id: String,
    /// The project whose agent asks.
    pub project_id: String,
    /// The run (the agent process) that asks.
    pub run_id: String,
    /// The task the run works on, when an agent worker started it for a task
    /// (`None` for the project's own runs). Omitted from the JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The tool, e.g. `Bash`, `Write`, `mcp__server__tool`.
    pub tool_name: String,
    /// The tool's input as the agent proposes it, e.g. `{"command": "npm test"}`.
    pub input: Value,
    /// The agent's own suggestions for an "always" answer (Claude Code's
    /// `permission_suggestions`), shown for information; `[]` when none.
    pub suggestions: Value,
    /// The id of the tool call in the streamed `assistant` line this request is about.
    pub tool_use_id: Option<String>,
    /// A line for a person, when the agent gave one.
    pub description: Option<String>,
    /// RFC 3339 UTC.
    pub asked_at: String,
    /// RFC 3339 UTC: when nobody answering denies it.
    pub expires_at: String,
}

/// The kind of an answer (ACP's permission option kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Run the tool this time.
    AllowOnce,
    /// Run it, and answer the same tool so from now on (see [`RuleScope`]).
    AllowAlways,
    /// Refuse this time.
    RejectOnce,
    /// Refuse, and refuse the same tool so from now on (see [`RuleScope`]).
    RejectAlways,
}

/// What an `allow_always` or `reject_always` rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// The live session (the agent process) only.
    #[default]
    Session,
    /// Every session of the project, stored by the hub (it survives a restart).
    Project,
}

/// `agent.approvals.answer` params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerParams {
    /// The approval's id.
    pub approval_id: String,
    /// The answer.
    pub decision: DecisionKind,
    /// For `allow_*`: the input the tool runs with instead of the proposed one (an
    /// object). The agent runs exactly this.
    #[serde(default)]
    pub updated_input: Option<Value>,
    /// For `reject_*`: what the agent is told; a default message when absent.
    #[serde(default)]
    pub message: Option<String>,
    /// For `reject_*`: also stop the running turn.
    #[serde(default)]
    pub interrupt: bool,
    /// For `*_always`: the rule's reach; `session` when absent.
    #[serde(default)]
    pub scope: Option<RuleScope>,
    /// For `*_always`: the rule to remember, in Claude Code's permission-rule syntax
    /// (`Bash(npm test:*)`, `Read(/w/app/**)`, a bare `Bash` for every call), for the
    /// request's own tool; the person may have edited it. When absent, the rule the
    /// agent suggested (Claude Code's `addRules` suggestion), else the bare tool name
    /// (agents that suggest none). docs/agents.md, "Rules".
    #[serde(default)]
    pub rule: Option<String>,
}

/// Who or what answered an approval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AnsweredBy {
    /// A connected client.
    Client {
        /// The connection id.
        connection_id: u64,
        /// Its declared role (`dashboard`, `cli`, ...).
        role: String,
        /// Its declared name.
        name: Option<String>,
        /// Its client token (`cl_…`); null for the owner.
        client_id: Option<String>,
        /// The Origin of its connection, if any.
        origin: Option<String>,
    },
    /// The project's policy (`never_ask`).
    Policy,
    /// A remembered `*_always` answer.
    Rule {
        /// `session` or `project`.
        scope: RuleScope,
    },
    /// Nobody answered in time.
    Timeout,
    /// The request went away unanswered: the agent withdrew it, was interrupted or
    /// exited.
    Withdrawn,
}

/// How an approval ended, in `agent.approval_resolved` and the answer's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resolution {
    /// `allowed`, `denied` or `withdrawn`.
    pub outcome: ApprovalOutcome,
    /// The answer's kind; null when withdrawn.
    pub decision: Option<DecisionKind>,
    /// The reach of the rule stored with an `*_always` answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<RuleScope>,
    /// The rule stored with an `*_always` answer, or the remembered rule that answered
    /// (`by.kind` `rule`), e.g. `Bash(npm test:*)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a denial: what the agent was told. For a withdrawal: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether the input was edited.
    pub edited: bool,
    /// Who answered.
    pub by: AnsweredBy,
    /// RFC 3339 UTC.
    pub at: String,
}

/// The end of an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// The tool runs.
    Allowed,
    /// The tool does not run; the agent was told why.
    Denied,
    /// Nobody may answer it any more.
    Withdrawn,
}

/// `agent.approval_resolved` params.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApprovalResolved {
    /// The approval.
    pub approval_id: String,
    /// Its project.
    pub project_id: String,
    /// Its run.
    pub run_id: String,
    /// Its tool.
    pub tool_name: String,
    /// How it ended.
    pub resolution: Resolution,
}

/// How a follow-up joins the session (`agent.send`'s `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SendMode {
    /// Its own turn after the running one (and after the queued ones); editable and
    /// cancellable until then.
    #[default]
    Queue,
    /// Folded into the running turn at the agent's next step.
    Steer,
    /// Stop the running turn, then run this as the next turn.
    Interrupt,
}

/// `agent.send` params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendParams {
    /// The project.
    pub project_id: String,
    /// The message; at most 256 KiB.
    pub text: String,
    /// `queue` when absent.
    #[serde(default)]
    pub mode: SendMode,
}

/// What became of an `agent.send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// It started a turn now (no turn was running).
    Started,
    /// It waits in the queue (`message` in the result).
    Queued,
    /// It went into the running turn.
    Steered,
    /// The running turn is being interrupted; it runs next.
    Interrupting,
}

/// A queued follow-up's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// Waiting; editable and cancellable.
    Queued,
    /// Sent to the agent as a turn.
    Delivered,
    /// Cancelled before delivery.
    Cancelled,
}

/// A queued follow-up, as `agent.queue.*` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueuedMessage {
    /// `qm_` and a UUIDv7.
    pub id: String,
    /// The project.
    pub project_id: String,
    /// The text.
    pub text: String,
    /// Where it is.
    pub state: QueueState,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC: the last edit, cancel or delivery.
    pub updated_at: String,
    /// The run it was delivered to.
    pub run_id: Option<String>,
}

/// `agent.queue.update` params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueUpdateParams {
    /// The queued message.
    pub id: String,
    /// Its new text.
    pub text: String,
}

/// `agent.queue.cancel` params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRef {
    /// The queued message.
    pub id: String,
}

/// `agent.approvals.list` params.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsListParams {
    /// Only this project's.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// A project's approval policy in force: its own settings where it has them, else the
/// hub's `[agent.approvals]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Policy {
    /// The project.
    pub project_id: String,
    /// Tools allowed without asking.
    pub never_ask: Vec<String>,
    /// Tools that always ask (no rule answers them).
    pub always_ask: Vec<String>,
    /// Seconds an approval waits before it is denied.
    pub timeout_s: u64,
    /// What the agent reads when nobody answered.
    pub timeout_message: String,
    /// Whether the project has settings of its own (else all come from the config).
    pub custom: bool,
}

/// A project's own approval settings, as stored; each absent one comes from the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    /// Tools allowed without asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_ask: Option<Vec<String>>,
    /// Tools that always ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ask: Option<Vec<String>>,
    /// Seconds an approval waits, 1..=604800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// What the agent reads when nobody answered; at most 4096 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_message: Option<String>,
}

/// `agent.policy.set` params: the project's own settings replace the ones it had; an
/// absent (or null) one follows the config. `{project_id}` alone goes back to the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySetParams {
    /// The project.
    pub project_id: String,
    /// Tools allowed without asking.
    #[serde(default)]
    pub never_ask: Option<Vec<String>>,
    /// Tools that always ask.
    #[serde(default)]
    pub always_ask: Option<Vec<String>>,
    /// Seconds an approval waits, 1..=604800.
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// What the agent reads when nobody answered; at most 4096 bytes.
    #[serde(default)]
    pub timeout_message: Option<String>,
}

/// A project's stored rule, in `agent.approvals.rules.list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleView {
    /// The rule, e.g. `Bash(npm test:*)` or `Read` (every call of the tool).
    pub rule: String,
    /// Its tool.
    pub tool_name: String,
    /// `allow` or `deny`.
    pub behavior: String,
    /// RFC 3339 UTC: when it was stored.
    pub created_at: String,
}

/// `agent.approvals.rules.delete` params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDeleteParams {
    /// The project.
    pub project_id: String,
    /// The rule as listed (`RuleView.rule`).
    pub rule: String,
}
