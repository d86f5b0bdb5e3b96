//! A git worktree per task: where an isolated task run works, what it changed, and
//! merging or discarding that work.
//!
//! With `project.configure {isolation: "worktree"}`, each task run by an agent worker
//! works in `<data dir>/worktrees/<project-id>/<task-id>`, a `git worktree` on the
//! branch `semantest/<task-id>` made from the project's `HEAD` at the task's first run
//! (a run after a failed attempt takes up the same worktree and branch). When the run
//! ends the hub commits what the agent left there (a commit titled with the task's
//! title) and records the diff against the starting commit ([`MAX_PATCH_BYTES`] of
//! unified diff at most). The branch is then merged into the branch that was checked
//! out (`task.merge`) or thrown away (`task.discard`).
//!
//! # Rules
//!
//! - Nothing is removed while a run works in a worktree (the `busy` set and the
//!   `active` state, which a hub restart keeps: the task is queued again and its next
//!   run takes the worktree up).
//! - Worktrees of finished tasks are removed after `coordination.worktree_retention_s`;
//!   their branch stays, so they can still be merged or discarded.
//! - The git operations on one repository run one at a time (an async mutex per
//!   project): `git worktree add` and `prune` must not race each other.
//! - A merge that would conflict, or would overwrite uncommitted changes in the base
//!   branch's checkout, changes nothing ([`crate::projects::git::merge`]).
//!
//! An interactive run started with `agent.run {isolation: "worktree"}` gets a worktree
//! of its own the same way, under the same rules ([`interactive`]): keyed by its run id, on the
//! branch `semantest/run-<run-id>` in `<data dir>/worktrees/<project-id>/run-<run-id>`,
//! - A deleted project takes its worktrees and their branches with it
//!   ([`Worktrees::claim_project`]); its deletion is refused while a run works in one.
//!   At start, the directories of projects that no longer exist (deleted while a
//!   removal failed, or by an older hub) are removed ([`Worktrees::remove_orphans`]).
//!   Nothing outside `<data dir>/worktrees` is ever removed as a directory.
//!
//! An interactive run started with `agent.run {isolation: "worktree"}` gets a worktree
//! of its own the same way, under the same rules ([`interactive`]): keyed by its run id, on the
//! branch `semantest/run-<run-id>` in `<data dir>/worktrees/<project-id>/run-<run-id>`,
//! merged or discarded with `agent.run_merge` / `agent.run_discard`.

mod cleanup;
mod interactive;

pub use interactive::{IsolatedRun, IsolatedStarted};

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::projects::Projects;
use crate::projects::git::{self, GitError};
use crate::protocol::coordination::TaskState;
use crate::protocol::error::{ErrorChain, ErrorKind, RpcError};
use crate::protocol::worktrees::{
    Diff, Isolation, TaskDiscarded, TaskMerged, WorktreeState, WorktreeView,
};
use crate::storage::sqlite::{OWNER_RUN, OWNER_TASK, Store, StoreError, TaskRow, WorktreeRow};
use crate::support::timestamp::{format_ms, now_ms};

/// The most unified diff kept per task, in bytes (256 KiB); the file list and line
/// counts are always whole.
pub const MAX_PATCH_BYTES: usize = 256 * 1024;

/// The prefix of a task's branch.
pub const BRANCH_PREFIX: &str = "semantest/";

/// Why a worktree operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    /// The project is not a git repository (isolation, or a run's worktree).
    #[error(
        "project {project_id} is not in a git repository with a commit; worktree isolation needs one"
    )]
    NotARepository {
        /// The project.
        project_id: String,
    },
    /// No task has the id.
    #[error("no task with id {0}")]
    TaskNotFound(String),
    /// The task or run (named, e.g. `task t1`) has no branch left to merge or discard.
    #[error("{0} has no worktree branch (it did not run isolated, or was merged or discarded)")]
    NoWorktree(String),
    /// The task is queued or running, or a run works in the worktree (named as in
    /// [`WorktreeError::NoWorktree`]).
    #[error("{0} is not finished; its worktree is in use")]
    Busy(String),
    /// The worktree was made on a detached `HEAD` (named as in
    /// [`WorktreeError::NoWorktree`]).
    #[error("{0} started from a detached HEAD; merge its branch by hand")]
    NoBaseBranch(String),
    /// A git operation failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The project is missing.
    #[error(transparent)]
    Project(#[from] crate::projects::ProjectError),
    /// The store failed.
    #[error("worktree store failed")]
    Store(#[from] StoreError),
}

impl From<WorktreeError> for RpcError {
    fn from(err: WorktreeError) -> Self {
        let kind = match &err {
            WorktreeError::NotARepository { .. } => ErrorKind::NotARepository,
            WorktreeError::TaskNotFound(_) => ErrorKind::TaskNotFound,
            WorktreeError::NoWorktree(_) => ErrorKind::NoWorktree,
            WorktreeError::Busy(_) => ErrorKind::WorktreeBusy,
            WorktreeError::NoBaseBranch(_) => ErrorKind::NoWorktree,
            WorktreeError::Git(GitError::Conflict(files)) => {
                return RpcError::new(ErrorKind::MergeConflict, err.to_string())
                    .with_details(serde_json::json!({ "files": files }));
            }
            WorktreeError::Git(GitError::Uncommitted(files)) => {
                return RpcError::new(ErrorKind::UncommittedChanges, err.to_string())
                    .with_details(serde_json::json!({ "files": files }));
            }
            WorktreeError::Git(GitError::NotARepository(_)) => ErrorKind::NotARepository,
            WorktreeError::Git(_) => ErrorKind::GitFailed,
            WorktreeError::Project(_) => {
                let WorktreeError::Project(inner) = err else {
                    unreachable!()
                };
                return inner.into();
            }
            WorktreeError::Store(source) => return RpcError::internal("worktree store", source),
        };
        RpcError::new(kind, err.to_string())
    }
}

/// What [`Worktrees`] uses.
pub struct WorktreesParts {
    /// Settings and worktree rows.
    pub store: Store,
    /// Project directories.
    pub projects: Projects,
    /// `<data dir>/worktrees`.
    pub root: PathBuf,
    /// `coordination.worktree_retention_s`.
    pub retention: Duration,
}

struct Inner {
    parts: WorktreesParts,
    /// Worktrees a run works in now, by owner ([`OWNER_TASK`], [`OWNER_RUN`]) and id. A
    /// std `Mutex`: set operations only.
    busy: Mutex<HashSet<(&'static str, String)>>,
    /// One lock per project, so git operations on a repository run one at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The worktrees of isolated tasks; cheap to clone.
#[derive(Clone)]
pub struct Worktrees {
    inner: Arc<Inner>,
}

/// Where a task run works, from [`Worktrees::prepare`].
#[derive(Debug, Clone)]
pub struct Workdir {
    /// The directory to run the agent in (the project's place inside the worktree).
    pub dir: PathBuf,
}

/// The stored owner as one of the two names.
fn owner_of(row: &WorktreeRow) -> &'static str {
    if row.owner == OWNER_RUN {
        OWNER_RUN
    } else {
        OWNER_TASK
    }
}

fn branch_of(task_id: &str) -> String {
    format!("{BRANCH_PREFIX}{task_id}")
}

/// How errors name a worktree's owner: `task t1`, `run 0190…`.
fn label(owner: &str, id: &str) -> String {
    format!("{owner} {id}")
}

/// A worktree to make or take up: whose, on which branch, in which directory below the
/// project's folder of worktrees.
struct Spec<'a> {
    owner: &'static str,
    id: &'a str,
    project_id: &'a str,
    branch: String,
    dir_name: String,
    /// Only take up a worktree that is there (a follow-up): checked under the project's
    /// lock, so a merge or discard that went first is not undone by a new worktree.
    existing_only: bool,
}

impl Worktrees {
    /// A handle over `parts`.
    pub fn new(parts: WorktreesParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                busy: Mutex::new(HashSet::new()),
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn busy(&self) -> MutexGuard<'_, HashSet<(&'static str, String)>> {
        self.inner
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_of(&self, project_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(project_id.to_string())
            .or_default()
            .clone()
    }

    fn store(&self) -> &Store {
        &self.inner.parts.store
    }

    fn project_path(&self, project_id: &str) -> Result<PathBuf, WorktreeError> {
        Ok(PathBuf::from(
            self.inner.parts.projects.get(project_id)?.path,
        ))
    }

    /// A project's isolation setting.
    ///
    /// # Errors
    /// The store's.
    pub async fn isolation(&self, project_id: &str) -> Result<Isolation, WorktreeError> {
        Ok(self
            .store()
            .isolation(project_id.to_string())
            .await?
            .map_or(Isolation::None, |name| Isolation::parse(&name)))
    }

    /// `project.configure {isolation}`: `worktree` needs the project to be in a git
    /// repository with a commit.
    ///
    /// # Errors
    /// [`WorktreeError::NotARepository`], `PROJECT_NOT_FOUND`, the store's.
    pub async fn set_isolation(
        &self,
        project_id: &str,
        isolation: Isolation,
    ) -> Result<(), WorktreeError> {
        if isolation == Isolation::Worktree {
            let path = self.project_path(project_id)?;
            if !git::is_repository(&path).await {
                return Err(WorktreeError::NotARepository {
                    project_id: project_id.to_string(),
                });
            }
        }
        self.store()
            .set_isolation(project_id.to_string(), isolation.as_str())
            .await?;
        info!(
            project_id,
            isolation = isolation.as_str(),
            "isolation configured"
        );
        Ok(())
    }

    /// Where a run of `task` works: `None` for the project directory (no isolation),
    /// else the task's worktree, made (or taken up again) here. The worktree is marked
    /// in use until [`Worktrees::finish`].
    ///
    /// # Errors
    /// [`WorktreeError::NotARepository`], [`WorktreeError::Git`], the store's.
    pub async fn prepare(&self, task: &TaskRow) -> Result<Option<Workdir>, WorktreeError> {
        if self.isolation(&task.project_id).await? != Isolation::Worktree {
            return Ok(None);
        }
        let spec = Spec {
            owner: OWNER_TASK,
            id: task.id.as_str(),
            project_id: &task.project_id,
            branch: branch_of(task.id.as_str()),
            dir_name: task.id.to_string(),
            existing_only: false,
        };
        self.make(spec).await.map(Some)
    }

    /// Makes a worktree (or takes up its existing one) and marks it in use; see
    /// [`Worktrees::prepare`].
    async fn make(&self, spec: Spec<'_>) -> Result<Workdir, WorktreeError> {
        let Spec {
            owner,
            id,
            project_id,
            branch,
            dir_name,
            existing_only,
        } = spec;
        let project = self.project_path(project_id)?;
        let lock = self.lock_of(project_id);
        let _held = lock.lock().await;
        // Checked again under the lock: a project deleted meanwhile gets no worktree.
        self.project_path(project_id)?;
        let info = git::repo_info(&project)
            .await
            .map_err(|_| WorktreeError::NotARepository {
                project_id: project_id.to_string(),
            })?;
        let now = now_ms();
        let existing = self
            .store()
            .worktree(owner, id.to_string())
            .await?
            .filter(|row| {
                matches!(
                    WorktreeState::parse(&row.state),
                    WorktreeState::Active | WorktreeState::Finished
                )
            });
        let path = match &existing {
            Some(row) => PathBuf::from(&row.path),
            None if existing_only => return Err(WorktreeError::NoWorktree(label(owner, id))),
            None => self.inner.parts.root.join(project_id).join(&dir_name),
        };
        let key = (owner, id.to_string());
        if !self.busy().insert(key.clone()) {
            return Err(WorktreeError::Busy(label(owner, id)));
        }
        let made = async {
            if existing.is_none() && path.exists() {
                // Another owner's worktree (a task named `run-<id>`, say) is not shared.
                return Err(WorktreeError::Git(GitError::Failed {
                    command: "worktree add".into(),
                    message: format!("{} already exists", path.display()),
                }));
            }
            if !git::is_worktree_on(&path, &branch).await {
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|err| GitError::Failed {
                            command: "worktree add".into(),
                            message: format!("cannot create {}: {err}", parent.display()),
                        })?;
                }
                if existing.is_none() {
                    // A branch left from a merged or discarded worktree row is gone; one
                    // of the same name made by hand is the user's and is not reused.
                    if git::branch_exists(&info.toplevel, &branch).await? {
                        return Err(WorktreeError::Git(GitError::Failed {
                            command: "worktree add".into(),
                            message: format!("a branch {branch} already exists"),
                        }));
                    }
                }
                git::add_worktree(&info.toplevel, &path, &branch, &info.head).await?;
            }
            let row = match existing {
                Some(row) => WorktreeRow {
                    state: WorktreeState::Active.as_str().into(),
                    removed: false,
                    updated_at: now,
                    ..row
                },
                None => WorktreeRow {
                    owner: owner.to_string(),
                    task_id: id.to_string(),
                    project_id: project_id.to_string(),
                    path: path.display().to_string(),
                    branch: branch.clone(),
                    base_branch: info.branch.clone(),
                    base_commit: info.head.clone(),
                    state: WorktreeState::Active.as_str().into(),
                    removed: false,
                    head_commit: None,
                    diff: None,
                    created_at: now,
                    finished_at: None,
                    updated_at: now,
                },
            };
            self.store().save_worktree(row).await?;
            Ok::<_, WorktreeError>(())
        }
        .await;
        if let Err(err) = made {
            self.busy().remove(&key);
            return Err(err);
        }
        info!(owner, id, path = %path.display(), branch, "worktree ready");
        Ok(Workdir {
            dir: path.join(&info.prefix),
        })
    }

    /// A run in the task's worktree ended: commits what it left (titled with the
    /// task's title) and records the diff against the starting commit.
    ///
    /// # Errors
    /// [`WorktreeError::Git`], the store's; the worktree is no longer in use either way.
    pub async fn finish(&self, task: &TaskRow) -> Result<(), WorktreeError> {
        let message = format!("{}\n\nTask {} (Semantest Hub)", task.title, task.id);
        let result = self
            .record_finish(OWNER_TASK, task.id.as_str(), &task.project_id, &message)
            .await;
        self.busy().remove(&(OWNER_TASK, task.id.to_string()));
        result
    }

    /// Commits what a run left in the worktree with `message` and records the diff;
    /// the worktree becomes `finished`.
    async fn record_finish(
        &self,
        owner: &'static str,
        id: &str,
        project_id: &str,
        message: &str,
    ) -> Result<(), WorktreeError> {
        let lock = self.lock_of(project_id);
        let _held = lock.lock().await;
        let Some(row) = self.store().worktree(owner, id.to_string()).await? else {
            return Err(WorktreeError::NoWorktree(label(owner, id)));
        };
        let path = PathBuf::from(&row.path);
        git::commit_all(&path, message).await?;
        let head = git::head_of(&path).await?;
        let diff = git::diff(&path, &row.base_commit, &head, MAX_PATCH_BYTES).await?;
        let diff_json = serde_json::to_string(&diff).ok();
        let now = now_ms();
        info!(
            owner,
            id,
            files = diff.files.len(),
            added = diff.added,
            removed = diff.removed,
            "worktree committed"
        );
        self.store()
            .save_worktree(WorktreeRow {
                state: WorktreeState::Finished.as_str().into(),
                head_commit: (head != row.base_commit).then_some(head),
                diff: diff_json,
                finished_at: Some(now),
                updated_at: now,
                ..row
            })
            .await?;
        Ok(())
    }

    /// A task's worktree for `task.get`, if it ran isolated.
    ///
    /// # Errors
    /// The store's.
    pub async fn view(&self, task_id: &str) -> Result<Option<WorktreeView>, WorktreeError> {
        self.view_of(OWNER_TASK, task_id).await
    }

    async fn view_of(
        &self,
        owner: &'static str,
        id: &str,
    ) -> Result<Option<WorktreeView>, WorktreeError> {
        let Some(row) = self.store().worktree(owner, id.to_string()).await? else {
            return Ok(None);
        };
        let diff: Option<Diff> = row
            .diff
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        Ok(Some(WorktreeView {
            state: WorktreeState::parse(&row.state),
            path: (!row.removed).then_some(row.path),
            branch: row.branch,
            base_branch: row.base_branch,
            base_commit: row.base_commit,
            commit: row.head_commit,
            diff,
            finished_at: row.finished_at.map(format_ms),
        }))
    }

    /// The task's row, checked to be a finished task with a branch left.
    async fn finished_row(&self, task_id: &str) -> Result<(WorktreeRow, TaskRow), WorktreeError> {
        let task = self
            .store()
            .task_of(task_id.into())
            .await?
            .ok_or_else(|| WorktreeError::TaskNotFound(task_id.to_string()))?;
        let row = self.finished_of(OWNER_TASK, task_id).await?;
        if !matches!(
            task.state,
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled
        ) {
            return Err(WorktreeError::Busy(label(OWNER_TASK, task_id)));
        }
        Ok((row, task))
    }

    /// The worktree row, checked to be `finished`, not in use, with a branch left.
    async fn finished_of(
        &self,
        owner: &'static str,
        id: &str,
    ) -> Result<WorktreeRow, WorktreeError> {
        let row = self
            .store()
            .worktree(owner, id.to_string())
            .await?
            .ok_or_else(|| WorktreeError::NoWorktree(label(owner, id)))?;
        match WorktreeState::parse(&row.state) {
            WorktreeState::Merged | WorktreeState::Discarded => {
                return Err(WorktreeError::NoWorktree(label(owner, id)));
            }
            WorktreeState::Active => return Err(WorktreeError::Busy(label(owner, id))),
            WorktreeState::Finished => {}
        }
        if self.busy().contains(&(owner, id.to_string())) {
            return Err(WorktreeError::Busy(label(owner, id)));
        }
        Ok(row)
    }

    /// `task.merge`: merges the task's branch into its base branch (fast-forward, else a
    /// merge commit), then removes the worktree and the branch.
    ///
    /// # Errors
    /// `TASK_NOT_FOUND`, `NO_WORKTREE`, `WORKTREE_BUSY`, `MERGE_CONFLICT`,
    /// `UNCOMMITTED_CHANGES`, `GIT_FAILED`; on any of them nothing changed.
    pub async fn merge(&self, task_id: &str) -> Result<TaskMerged, WorktreeError> {
        let (row, task) = self.finished_row(task_id).await?;
        let message = format!("Merge task {}: {}", task.id, task.title);
        let (base, merged) = self.merge_row(row, &message).await?;
        info!(task_id, base = %base, commit = %merged.commit, kind = ?merged.kind, "task merged");
        Ok(TaskMerged {
            task_id: task_id.to_string(),
            merge: merged.kind,
            base_branch: base,
            commit: merged.commit,
        })
    }

    /// Merges a finished worktree's branch into its base branch with `message`, then
    /// removes the worktree and the branch. Returns the base branch and the outcome.
    async fn merge_row(
        &self,
        row: WorktreeRow,
        message: &str,
    ) -> Result<(String, git::Merged), WorktreeError> {
        let owner = owner_of(&row);
        let lock = self.lock_of(&row.project_id);
        let _held = lock.lock().await;
        // Checked again under the lock: a second merge may have finished meanwhile.
        let row = match self.store().worktree(owner, row.task_id.clone()).await? {
            Some(now) if now.state == row.state => now,
            _ => return Err(WorktreeError::NoWorktree(label(owner, &row.task_id))),
        };
        let Some(base) = row.base_branch.clone() else {
            return Err(WorktreeError::NoBaseBranch(label(owner, &row.task_id)));
        };
        let repo = self.project_path(&row.project_id)?;
        let merged = git::merge(&repo, &base, &row.branch, message).await?;
        self.remove(&repo, row, WorktreeState::Merged).await?;
        Ok((base, merged))
    }

    /// `task.discard`: removes the task's worktree and branch, unmerged.
    ///
    /// # Errors
    /// `TASK_NOT_FOUND`, `NO_WORKTREE`, `WORKTREE_BUSY`, `GIT_FAILED`.
    pub async fn discard(&self, task_id: &str) -> Result<TaskDiscarded, WorktreeError> {
        let (row, _) = self.finished_row(task_id).await?;
        let branch = self.discard_row(OWNER_TASK, row).await?;
        info!(task_id, branch, "task discarded");
        Ok(TaskDiscarded {
            task_id: task_id.to_string(),
            branch,
        })
    }

    /// Removes a finished worktree and its branch, unmerged; returns the branch.
    async fn discard_row(
        &self,
        owner: &'static str,
        row: WorktreeRow,
    ) -> Result<String, WorktreeError> {
        let lock = self.lock_of(&row.project_id);
        let _held = lock.lock().await;
        let row = match self.store().worktree(owner, row.task_id.clone()).await? {
            Some(now) if now.state == row.state => now,
            _ => return Err(WorktreeError::NoWorktree(label(owner, &row.task_id))),
        };
        let repo = self.project_path(&row.project_id)?;
        let branch = row.branch.clone();
        self.remove(&repo, row, WorktreeState::Discarded).await?;
        Ok(branch)
    }

    /// Removes a worktree and its branch and records `state`. Called under the
    /// project's lock.
    async fn remove(
        &self,
        repo: &Path,
        row: WorktreeRow,
        state: WorktreeState,
    ) -> Result<(), WorktreeError> {
        git::remove_worktree(repo, Path::new(&row.path)).await?;
        git::delete_branch(repo, &row.branch).await?;
        self.store()
            .save_worktree(WorktreeRow {
                state: state.as_str().into(),
                removed: true,
                updated_at: now_ms(),
                ..row
            })
            .await?;
        Ok(())
    }

    /// Removes the directories of finished tasks' worktrees older than the retention
    /// (their branches stay), and records directories that are gone. A worktree in use
    /// or `active` (its run was in progress when the hub stopped) is kept. Returns how
    /// many were removed.
    ///
    /// # Errors
    /// The store's; a git failure on one worktree is logged and the others go on.
    pub async fn sweep(&self) -> Result<usize, WorktreeError> {
        let retention_ms =
            i64::try_from(self.inner.parts.retention.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let mut removed = 0;
        for row in self.store().live_worktrees().await? {
            let state = WorktreeState::parse(&row.state);
            let gone = !Path::new(&row.path).exists();
            let expired = state == WorktreeState::Finished
                && row
                    .finished_at
                    .is_some_and(|at| now.saturating_sub(at) >= retention_ms);
            let leftover = matches!(state, WorktreeState::Merged | WorktreeState::Discarded);
            let key = (owner_of(&row), row.task_id.clone());
            if state == WorktreeState::Active || self.busy().contains(&key) {
                continue;
            }
            if !(gone || expired || leftover) {
                continue;
            }
            let lock = self.lock_of(&row.project_id);
            let _held = lock.lock().await;
            if self.busy().contains(&key) {
                continue;
            }
            if !gone {
                let repo = match self.project_path(&row.project_id) {
                    Ok(repo) => repo,
                    Err(_) => continue,
                };
                if let Err(err) = git::remove_worktree(&repo, Path::new(&row.path)).await {
                    warn!(owner = %row.owner, id = %row.task_id, error = %ErrorChain(&err), "cannot remove an expired worktree");
                    continue;
                }
                removed += 1;
                info!(owner = %row.owner, id = %row.task_id, path = %row.path, "expired worktree removed");
            }
            self.store()
                .save_worktree(WorktreeRow {
                    removed: true,
                    updated_at: now_ms(),
                    ..row
                })
                .await?;
        }
        Ok(removed)
    }

    /// Removes the worktrees of deleted projects ([`Worktrees::remove_orphans`]), then
    /// sweeps at start and every tenth of the retention (between 1 s and 1 h), until
    /// `shutdown`.
    pub async fn run_retention(self, shutdown: CancellationToken) {
        let period = (self.inner.parts.retention / 10)
            .clamp(Duration::from_secs(1), Duration::from_secs(3600));
        match self.reconcile_runs().await {
            Ok(0) => {}
            Ok(count) => info!(count, "run worktrees reconciled"),
            Err(err) => warn!(error = %ErrorChain(&err), "cannot reconcile run worktrees"),
        }
        self.remove_orphans().await;
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(err) = self.sweep().await {
                warn!(error = %ErrorChain(&err), "cannot sweep worktrees");
            }
        }
    }
}
