//! The rows the store reads and writes, as plain data.

use std::path::PathBuf;

use crate::protocol::{Output, ProjectState, RunStatus, Stream};

/// A registered project as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRow {
    /// Stable id (UUID v7).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Canonical absolute path.
    pub path: PathBuf,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Last known state.
    pub state: ProjectState,
    /// Why the last run failed or was killed.
    pub reason: Option<String>,
    /// The session the next run resumes.
    pub session_id: Option<String>,
    /// The newest output line's seq.
    pub last_seq: u64,
    /// The agent that runs the project's turns (`project.configure`).
    pub agent: crate::protocol::agents::AgentKind,
    /// The model its runs ask for; `None` lets the agent's setting or CLI choose.
    pub model: Option<String>,
    /// The session each agent but Claude Code resumes (Claude Code's is `session_id`).
    pub agent_sessions: std::collections::BTreeMap<crate::protocol::agents::AgentKind, String>,
}

/// A run that was still marked running when the hub stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct UnfinishedRun {
    /// The run id.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// The process group the run's processes belong to.
    pub pgid: Option<i32>,
    /// Epoch milliseconds.
    pub started_at: i64,
}

/// One run of a project, as `project.runs` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// The run id.
    pub id: String,
    /// `running`, `succeeded`, `failed`, `timed_out` or `killed`.
    pub status: String,
    /// When it started, RFC 3339 (UTC, milliseconds).
    pub started_at: String,
    /// When it ended; `None` while it runs.
    pub ended_at: Option<String>,
    /// Wall-clock milliseconds from start to end; `None` while it runs.
    pub duration_ms: Option<i64>,
    /// What it cost in US dollars, as the agent reported it.
    pub cost_usd: Option<f64>,
    /// The agent's turns.
    pub num_turns: Option<i64>,
    /// Why it failed, was killed or timed out.
    pub reason: Option<String>,
    /// The prompt, cut to its first [`RUN_PROMPT_CHARS`] characters.
    pub prompt: String,
    /// Whether `prompt` was cut.
    pub prompt_truncated: bool,
    /// The run worked in a git worktree (`agent.run {isolation: "worktree"}`): the id
    /// of the run that made it, which `agent.run_worktree` reads; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
}

/// How much of a prompt [`RunSummary`] carries, in characters.
pub const RUN_PROMPT_CHARS: usize = 2000;

/// How a run ended, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// How it ended.
    pub status: RunStatus,
    /// The process's exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// The Claude Code session id reported by the run.
    pub session_id: Option<String>,
    /// The run's own cost in US dollars: the sum of its turns' (`crate::runner::usage`),
    /// else `total_cost_usd` from the `result` line. Stored with the run and added to
    /// its session's total.
    pub cost_usd: Option<f64>,
    /// `total_cost_usd` from the last `result` line as the CLI reported it (cumulative
    /// for the process, and on recent versions across `--resume`); not stored.
    pub reported_total_usd: Option<f64>,
    /// `duration_ms` from the `result` line.
    pub duration_ms: Option<i64>,
    /// `num_turns` from the `result` line.
    pub num_turns: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl RunOutcome {
    /// An outcome with only a status and a reason; the figures are unknown.
    pub fn new(status: RunStatus, error: Option<String>) -> Self {
        Self {
            status,
            exit_code: None,
            session_id: None,
            cost_usd: None,
            reported_total_usd: None,
            duration_ms: None,
            num_turns: None,
            error,
        }
    }
}

/// A line to append to a project's log.
#[derive(Debug, Clone, Copy)]
pub struct NewLine<'a> {
    /// The run that produced it.
    pub run_id: Option<&'a str>,
    /// Epoch milliseconds.
    pub ts: i64,
    /// Its stream.
    pub stream: Stream,
    /// Its kind (see [`Output::kind`]).
    pub kind: &'a str,
    /// The line's text (a JSON object's text when `is_json`).
    pub body: &'a str,
    /// Whether `body` is a JSON object.
    pub is_json: bool,
}

/// A message log query (`messages.list`), all bounds exclusive except `since`.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// The project id.
    pub project_id: String,
    /// seq > after_seq.
    pub after_seq: Option<u64>,
    /// seq < before_seq; the page is then the newest lines below it.
    pub before_seq: Option<u64>,
    /// ts >= since (epoch ms).
    pub since: Option<i64>,
    /// ts < until (epoch ms).
    pub until: Option<i64>,
    /// kind IN kinds.
    pub kinds: Vec<String>,
    /// Full-text search: only lines whose text holds every word of `q`, whole words,
    /// case-insensitive (FTS5's `unicode61` tokenizer).
    pub q: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Stop adding lines once their bodies exceed this many bytes (at least one is kept).
    pub max_bytes: usize,
}

/// A page of the message log, ascending by seq.
#[derive(Debug)]
pub struct MessagePage {
    /// The lines.
    pub messages: Vec<Output>,
    /// Whether more lines match beyond this page (in the direction of the query).
    pub has_more: bool,
}
