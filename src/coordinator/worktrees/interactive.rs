//! An interactive run in a git worktree of its own: `agent.run {isolation: "worktree"}`
//! makes it, `agent.run {worktree: RUN}` follows up there, `agent.run_worktree` reads
//! it, and `agent.run_merge` / `agent.run_discard` settle it.
//!
//! The worktree is keyed by the id of the run that made it (owner `run`), on the
//! branch `semantest/run-<run-id>` in `<data dir>/worktrees/<project-id>/run-<run-id>`,
//! from the project's `HEAD` when it is made. Every run that works in it (the first and
//! each follow-up) is linked to it in the store, so any of their ids names it. A
//! follow-up resumes the session the worktree's last run left, with that run's agent,
//! in the same directory, which is where the agent keeps its session. When a run ends
//! the hub commits what it left there (titled with the prompt's first line) and records
//! the diff against the starting commit, as for a task. The rules of [`super`] hold
//! the same: nothing is removed while a run works there, the directory goes after the
//! retention (the branch stays), and a worktree whose run was in progress when the hub
//! stopped is committed and recorded at the next start ([`Worktrees::reconcile_runs`]).

use tracing::{Instrument, info, info_span, warn};

use super::{BRANCH_PREFIX, Spec, WorktreeError, WorktreeState, Worktrees, label};
use crate::coordinator::Coordinator;
use crate::protocol::agents::AgentKind;
use crate::protocol::error::{ErrorChain, RpcError};
use crate::protocol::worktrees::{RunDiscarded, RunMerged, RunWorktree};
use crate::runner::slots::Permit;
use crate::runner::{RunMode, RunRequest};
use crate::storage::sqlite::OWNER_RUN;

/// The branch of the worktree made by run `run_id`.
fn run_branch(run_id: &str) -> String {
    format!("{BRANCH_PREFIX}run-{run_id}")
}

/// An isolated interactive run to start ([`Coordinator::start_isolated_run`]).
#[derive(Debug, Clone)]
pub struct IsolatedRun {
    /// The project.
    pub project_id: String,
    /// The prompt.
    pub prompt: String,
    /// A run that worked in the worktree to follow up in; `None` makes a new one.
    pub follow_up: Option<String>,
    /// With `follow_up`: start a fresh session there instead of resuming.
    pub new_session: bool,
    /// Seconds a turn may run; the configured default when `None`.
    pub timeout_s: Option<u64>,
    /// The agent; the worktree's (follow-up) or the project's when `None`.
    pub agent: Option<AgentKind>,
}

/// A started isolated run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IsolatedStarted {
    /// The run that made the worktree (the new run's own id for a new worktree).
    pub run_id: String,
    /// `semantest/run-<run_id>`.
    pub branch: String,
    /// The directory the agent works in.
    pub path: String,
}

impl Worktrees {
    /// Makes the worktree of the new run `run_id`, or takes up the one run `run_id`
    /// made (`follow_up`), and marks it in use until [`Worktrees::finish_run`].
    ///
    /// # Errors
    /// `NOT_A_REPOSITORY`; for a follow-up `NO_WORKTREE` (merged, discarded, or in
    /// another project) and `WORKTREE_BUSY` (a run works there); `GIT_FAILED`.
    async fn prepare_run(
        &self,
        project_id: &str,
        run_id: &str,
        follow_up: bool,
    ) -> Result<super::Workdir, WorktreeError> {
        if follow_up {
            let row = self.finished_of(OWNER_RUN, run_id).await?;
            if row.project_id != project_id {
                return Err(WorktreeError::NoWorktree(format!(
                    "{} in project {project_id}",
                    label(OWNER_RUN, run_id)
                )));
            }
        }
        self.make(Spec {
            owner: OWNER_RUN,
            id: run_id,
            project_id,
            branch: run_branch(run_id),
            dir_name: format!("run-{run_id}"),
            existing_only: follow_up,
        })
        .await
    }

    /// A run in run `worktree_id`'s worktree ended: commits what it left (titled with
    /// `prompt`'s first line) and records the diff; the worktree is no longer in use.
    ///
    /// # Errors
    /// `GIT_FAILED`, the store's.
    async fn finish_run(
        &self,
        worktree_id: &str,
        project_id: &str,
        run_id: &str,
        prompt: &str,
    ) -> Result<(), WorktreeError> {
        let title: String = prompt
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("Agent run")
            .trim()
            .chars()
            .take(72)
            .collect();
        let message = format!("{title}\n\nRun {run_id} (Semantest Hub)");
        let result = self
            .record_finish(OWNER_RUN, worktree_id, project_id, &message)
            .await;
        self.busy().remove(&(OWNER_RUN, worktree_id.to_string()));
        result
    }

    /// A new worktree whose run could not start: removed with its branch.
    async fn abandon_run(&self, worktree_id: &str) {
        let key = (OWNER_RUN, worktree_id.to_string());
        let removed = async {
            let Some(row) = self
                .store()
                .worktree(OWNER_RUN, worktree_id.to_string())
                .await?
            else {
                return Ok(());
            };
            let lock = self.lock_of(&row.project_id);
            let _held = lock.lock().await;
            let repo = self.project_path(&row.project_id)?;
            self.remove(&repo, row, WorktreeState::Discarded).await
        }
        .await;
        self.busy().remove(&key);
        if let Err(err) = removed {
            warn!(run_id = worktree_id, error = %ErrorChain(&err), "cannot remove the worktree of a run that did not start");
        }
    }

    /// The id of the run that made the worktree `run_id` worked in.
    ///
    /// # Errors
    /// `NO_WORKTREE` when the run did not work in one.
    async fn worktree_of(&self, run_id: &str) -> Result<(String, String), WorktreeError> {
        self.store()
            .run_worktree_link(run_id.to_string())
            .await?
            .ok_or_else(|| WorktreeError::NoWorktree(label(OWNER_RUN, run_id)))
    }

    /// `agent.run_worktree`: the worktree run `run_id` worked in, with its diff.
    ///
    /// # Errors
    /// `NO_WORKTREE`, the store's.
    pub async fn run_view(&self, run_id: &str) -> Result<RunWorktree, WorktreeError> {
        let (worktree_id, _) = self.worktree_of(run_id).await?;
        let worktree = self
            .view_of(OWNER_RUN, &worktree_id)
            .await?
            .ok_or_else(|| WorktreeError::NoWorktree(label(OWNER_RUN, run_id)))?;
        Ok(RunWorktree {
            run_id: worktree_id,
            worktree,
        })
    }

    /// `agent.run_merge`: merges the branch of the worktree run `run_id` worked in into
    /// its base branch (fast-forward, else a merge commit), then removes the worktree
    /// and the branch.
    ///
    /// # Errors
    /// `NO_WORKTREE`, `WORKTREE_BUSY`, `MERGE_CONFLICT`, `UNCOMMITTED_CHANGES`,
    /// `GIT_FAILED`; on any of them nothing changed.
    pub async fn merge_run(&self, run_id: &str) -> Result<RunMerged, WorktreeError> {
        let (worktree_id, _) = self.worktree_of(run_id).await?;
        let row = self.finished_of(OWNER_RUN, &worktree_id).await?;
        let message = format!("Merge run {worktree_id}");
        let (base, merged) = self.merge_row(row, &message).await?;
        info!(run_id = %worktree_id, base = %base, commit = %merged.commit, kind = ?merged.kind, "run merged");
        Ok(RunMerged {
            run_id: worktree_id,
            merge: merged.kind,
            base_branch: base,
            commit: merged.commit,
        })
    }

    /// `agent.run_discard`: removes the worktree run `run_id` worked in and its branch,
    /// unmerged.
    ///
    /// # Errors
    /// `NO_WORKTREE`, `WORKTREE_BUSY`, `GIT_FAILED`.
    pub async fn discard_run(&self, run_id: &str) -> Result<RunDiscarded, WorktreeError> {
        let (worktree_id, _) = self.worktree_of(run_id).await?;
        let row = self.finished_of(OWNER_RUN, &worktree_id).await?;
        let branch = self.discard_row(OWNER_RUN, row).await?;
        info!(run_id = %worktree_id, branch, "run discarded");
        Ok(RunDiscarded {
            run_id: worktree_id,
            branch,
        })
    }

    /// At start: each run worktree still `active` had its run in progress when the hub
    /// stopped; no run works there now, so what it left is committed and recorded, and
    /// it can be followed up, merged or discarded. Returns how many.
    ///
    /// # Errors
    /// The store's; a git failure on one worktree is logged and the others go on.
    pub async fn reconcile_runs(&self) -> Result<usize, WorktreeError> {
        let mut done = 0;
        for row in self.store().live_worktrees().await? {
            let key = (OWNER_RUN, row.task_id.clone());
            if row.owner != OWNER_RUN
                || WorktreeState::parse(&row.state) != WorktreeState::Active
                || self.busy().contains(&key)
            {
                continue;
            }
            let message = format!(
                "Run {} (Semantest Hub), in progress when the hub stopped",
                row.task_id
            );
            match self
                .record_finish(OWNER_RUN, &row.task_id, &row.project_id, &message)
                .await
            {
                Ok(()) => {
                    done += 1;
                    info!(run_id = %row.task_id, "run worktree reconciled");
                }
                Err(err) => {
                    warn!(run_id = %row.task_id, error = %ErrorChain(&err), "cannot reconcile a run's worktree");
                }
            }
        }
        Ok(done)
    }
}

impl Coordinator {
    /// Starts an interactive run in a worktree of its own (or, for a follow-up, in the
    /// worktree of an earlier run), holding `permit`. When the run ends its work is
    /// committed and its diff recorded; at shutdown the worktree stays `active` and is
    /// reconciled at the next start.
    ///
    /// # Errors
    /// As [`Worktrees::prepare_run`] and [`crate::runner::Runner::start`].
    pub async fn start_isolated_run(
        &self,
        run: IsolatedRun,
        permit: Permit,
    ) -> Result<(String, IsolatedStarted), RpcError> {
        let parts = self.parts();
        let worktrees = parts.worktrees.clone();
        let run_id = uuid::Uuid::now_v7().to_string();
        let project = parts.projects.get(&run.project_id)?;
        let (worktree_id, resume, agent) = match &run.follow_up {
            Some(earlier) => {
                let (worktree_id, agent) = worktrees.worktree_of(earlier).await?;
                let resume = if run.new_session {
                    None
                } else {
                    parts
                        .store
                        .worktree_session(worktree_id.clone())
                        .await
                        .map_err(|err| RpcError::internal("worktree session", &err))?
                };
                let agent = run
                    .agent
                    .or_else(|| AgentKind::parse(&agent))
                    .unwrap_or(project.agent);
                (worktree_id, resume, agent)
            }
            None => (run_id.clone(), None, run.agent.unwrap_or(project.agent)),
        };
        let workdir = worktrees
            .prepare_run(&run.project_id, &worktree_id, run.follow_up.is_some())
            .await?;
        let request = RunRequest {
            project_id: run.project_id.clone(),
            prompt: run.prompt.clone(),
            mode: RunMode::Isolated { resume },
            timeout_s: run.timeout_s,
            keep_open: false,
            agent: Some(agent),
            workdir: Some(workdir.dir.clone()),
            run_id: Some(run_id.clone()),
        };
        let handle = match parts.runner.start(request, permit).await {
            Ok(handle) => handle,
            Err(err) => {
                if run.follow_up.is_some() {
                    if let Err(err) = worktrees
                        .finish_run(&worktree_id, &run.project_id, &run_id, &run.prompt)
                        .await
                    {
                        warn!(run_id, error = %ErrorChain(&err), "cannot record the run's worktree");
                    }
                } else {
                    worktrees.abandon_run(&worktree_id).await;
                }
                return Err(err.into());
            }
        };
        if let Err(err) = parts
            .store
            .link_run_worktree(run_id.clone(), worktree_id.clone(), agent.as_str())
            .await
        {
            // Without the link the run's worktree cannot be found: stop it now.
            warn!(run_id, error = %ErrorChain(&err), "cannot link the run to its worktree");
            handle.stop.cancel();
        }
        let shutdown = parts.shutdown.clone();
        let (project_id, prompt) = (run.project_id.clone(), run.prompt);
        let waiter_worktrees = worktrees.clone();
        let waiter_id = worktree_id.clone();
        let span =
            info_span!(parent: None, "isolated_run", run_id = %run_id, worktree = %worktree_id);
        let ended_run = run_id.clone();
        parts.tracker.spawn(
            async move {
                let _ = handle.ended.await;
                // At shutdown the worktree stays `active`: reconciled at the next start.
                if shutdown.is_cancelled() {
                    return;
                }
                if let Err(err) = waiter_worktrees
                    .finish_run(&waiter_id, &project_id, &ended_run, &prompt)
                    .await
                {
                    warn!(error = %ErrorChain(&err), "cannot record the run's worktree");
                }
            }
            .instrument(span),
        );
        Ok((
            run_id,
            IsolatedStarted {
                branch: run_branch(&worktree_id),
                run_id: worktree_id,
                path: workdir.dir.display().to_string(),
            },
        ))
    }
}
