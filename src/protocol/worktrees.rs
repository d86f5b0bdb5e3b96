//! Isolation on the wire: `project.configure {isolation}`, a task's worktree and diff in
//! `task.get`, and `task.merge` / `task.discard` (`docs/coordination.md`, "Isolation");
//! an interactive run's worktree (`agent.run {isolation: "worktree"}`) with
//! `agent.run_worktree`, `agent.run_merge` and `agent.run_discard` (`docs/agents.md`).

use serde::{Deserialize, Serialize};

use super::coordination::TaskView;

/// Where a project's task runs work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// In the project directory, all together (the default).
    #[default]
    None,
    /// Each task in its own git worktree on a branch `semantest/<task-id>`.
    Worktree,
}

impl Isolation {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Worktree => "worktree",
        }
    }

    /// The setting named `name`; anything unknown is `none`.
    pub fn parse(name: &str) -> Self {
        match name {
            "worktree" => Self::Worktree,
            _ => Self::None,
        }
    }
}

/// Where a task's worktree is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorktreeState {
    /// A run is working in it.
    Active,
    /// The last run ended; its work is committed on the branch and `diff` holds it.
    Finished,
    /// The branch was merged into its base; worktree and branch are gone.
    Merged,
    /// The worktree and the branch were removed unmerged.
    Discarded,
}

impl WorktreeState {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Finished => "finished",
            Self::Merged => "merged",
            Self::Discarded => "discarded",
        }
    }

    /// The state named `name` (`active` for anything unknown, which nothing removes).
    pub fn parse(name: &str) -> Self {
        match name {
            "finished" => Self::Finished,
            "merged" => Self::Merged,
            "discarded" => Self::Discarded,
            _ => Self::Active,
        }
    }
}

/// One file of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// The path in the repository (the new path of a rename).
    pub path: String,
    /// Lines added; `null` for a binary file.
    pub added: Option<u64>,
    /// Lines removed; `null` for a binary file.
    pub removed: Option<u64>,
}

/// A task branch's changes against the commit it started from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// Every file changed, in git's order.
    pub files: Vec<FileChange>,
    /// Lines added over all text files.
    pub added: u64,
    /// Lines removed over all text files.
    pub removed: u64,
    /// The unified diff (`git diff -M`), at most `MAX_PATCH_BYTES` of the coordinator
    /// (256 KiB), cut at a line end.
    pub patch: String,
    /// Whether `patch` was cut.
    pub truncated: bool,
}

/// A task's worktree, in `task.get` as `worktree`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorktreeView {
    /// Where it is in its life.
    pub state: WorktreeState,
    /// `semantest/<task-id>`.
    pub branch: String,
    /// The branch a merge goes into (the one checked out when the worktree was made);
    /// `null` when `HEAD` was detached, and then the task cannot be merged by the hub.
    pub base_branch: Option<String>,
    /// The commit the branch started from.
    pub base_commit: String,
    /// The worktree's directory, `null` once it is removed (merge, discard,
    /// retention; the branch stays until merge or discard).
    pub path: Option<String>,
    /// The branch's commit with the run's work, `null` before the run ended or when
    /// the run changed nothing.
    pub commit: Option<String>,
    /// The changes, once the run ended.
    pub diff: Option<Diff>,
    /// RFC 3339 time the last run ended.
    pub finished_at: Option<String>,
}

/// `task.get` result: the task and, when it ran isolated, its worktree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDetail {
    /// The task's fields.
    #[serde(flatten)]
    pub task: TaskView,
    /// Present when the task ran in a worktree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree: Option<WorktreeView>,
}

/// How a merge went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeKind {
    /// The base branch moved forward to the task's branch.
    FastForward,
    /// A merge commit joins the base branch and the task's branch.
    MergeCommit,
    /// The base branch already held every commit of the task's branch.
    UpToDate,
}

/// `task.merge` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskMerged {
    /// The task.
    pub task_id: String,
    /// How.
    pub merge: MergeKind,
    /// The branch merged into.
    pub base_branch: String,
    /// Its commit now.
    pub commit: String,
}

/// `task.discard` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDiscarded {
    /// The task.
    pub task_id: String,
    /// The branch removed.
    pub branch: String,
}

/// The names of the methods on an interactive run's worktree.
pub mod method {
    /// Request: the worktree a run worked in, with its diff → [`super::RunWorktree`].
    pub const AGENT_RUN_WORKTREE: &str = "agent.run_worktree";
    /// Request: merge a run's worktree branch into its base branch →
    /// [`super::RunMerged`].
    pub const AGENT_RUN_MERGE: &str = "agent.run_merge";
    /// Request: remove a run's worktree and branch, unmerged → [`super::RunDiscarded`].
    pub const AGENT_RUN_DISCARD: &str = "agent.run_discard";
}

/// `agent.run_worktree`, `agent.run_merge` and `agent.run_discard` params.
#[derive(Debug, Clone, Deserialize)]
pub struct RunRef {
    /// A run that worked in the worktree: the one that made it or a follow-up there.
    pub run_id: String,
}

/// `agent.run_worktree` result: the worktree and the run that made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunWorktree {
    /// The run that made the worktree (its branch is `semantest/run-<run_id>`); a
    /// follow-up there is `agent.run {worktree: run_id}`.
    pub run_id: String,
    /// The worktree.
    #[serde(flatten)]
    pub worktree: WorktreeView,
}

/// `agent.run_merge` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunMerged {
    /// The run that made the worktree.
    pub run_id: String,
    /// How.
    pub merge: MergeKind,
    /// The branch merged into.
    pub base_branch: String,
    /// Its commit now.
    pub commit: String,
}

/// `agent.run_discard` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDiscarded {
    /// The run that made the worktree.
    pub run_id: String,
    /// The branch removed.
    pub branch: String,
}
