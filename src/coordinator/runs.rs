//! Task runs of built-in agent workers: the worktree made first for an isolated
//! project, the run, then the worktree's commit and diff, the agent's report file, and
//! the run's end handed back to the queue.

use tracing::{Instrument, debug, info_span, warn};

use super::{Coordinator, prompt, reports, worktrees};
use crate::protocol::RunStatus;
use crate::protocol::error::ErrorChain;
use crate::protocol::ids::{TaskId, WorkerId};
use crate::runner::{RunEnd, RunMode, RunRequest};

impl Coordinator {
    /// Starts a task run: in the task's worktree when its project is isolated (made
    /// first, off the lock), else in the project directory.
    pub(super) fn start_run(
        &self,
        worker_id: WorkerId,
        task: crate::storage::sqlite::TaskRow,
        permit: crate::runner::slots::Permit,
    ) {
        let this = self.clone();
        let span = info_span!(parent: None, "task", task_id = %task.id, worker_id = %worker_id);
        self.parts()
            .tracker
            .spawn(this.run_task(worker_id, task, permit).instrument(span));
    }

    async fn run_task(
        self,
        worker_id: WorkerId,
        task: crate::storage::sqlite::TaskRow,
        permit: crate::runner::slots::Permit,
    ) {
        let worktrees = self.parts().worktrees.clone();
        let workdir = match worktrees.prepare(&task).await {
            Ok(workdir) => workdir,
            Err(err) => {
                warn!(%worker_id, task_id = %task.id, error = %ErrorChain(&err), "cannot prepare the task's worktree");
                drop(permit);
                self.run_detached(|txn| {
                    txn.run_not_started(
                        &worker_id,
                        &task.id,
                        &format!("cannot prepare the task's worktree: {err}"),
                    );
                });
                return;
            }
        };
        let request = RunRequest {
            project_id: task.project_id.clone(),
            prompt: prompt::agent_prompt(&task),
            mode: RunMode::Task {
                task_id: task.id.to_string(),
                worker_id: worker_id.to_string(),
            },
            timeout_s: None,
            keep_open: false,
            agent: task.agent,
            workdir: workdir.as_ref().map(|w| w.dir.clone()),
            run_id: None,
        };
        let handle = match self.parts().runner.start(request, permit).await {
            Ok(handle) => handle,
            Err(err) => {
                warn!(%worker_id, task_id = %task.id, error = %err, "cannot start a task run");
                if workdir.is_some() {
                    finish_worktree(&worktrees, &task).await;
                }
                self.run_detached(|txn| {
                    txn.run_not_started(&worker_id, &task.id, &err.to_string());
                });
                return;
            }
        };
        // Cancelled between the assignment and the start.
        if !self.lock().holds(&worker_id, &task.id) {
            handle.stop.cancel();
        }
        let end = handle.ended.await.unwrap_or_else(|_| RunEnd {
            run_id: handle.run_id,
            status: RunStatus::Failed,
            reason: Some("the run's supervisor ended unexpectedly".into()),
            result_text: None,
            session_id: None,
            cost_usd: None,
            duration_ms: None,
        });
        let stopping = self.parts().shutdown.is_cancelled();
        // At shutdown the worktree stays `active`: the task is queued again at the next
        // start and its next run takes the worktree up.
        if workdir.is_some() && !stopping {
            finish_worktree(&worktrees, &task).await;
        }
        if end.status == RunStatus::Succeeded && !stopping {
            let root = match &workdir {
                Some(workdir) => Some(workdir.dir.clone()),
                None => self
                    .parts()
                    .projects
                    .get(&task.project_id)
                    .ok()
                    .map(|project| std::path::PathBuf::from(project.path)),
            };
            if let Some(root) = root {
                self.apply_agent_report(&task.id, root).await;
            }
        }
        self.run_ended(&worker_id, &task.id, end);
    }

    fn run_ended(&self, worker_id: &WorkerId, task_id: &TaskId, end: RunEnd) {
        if self.parts().shutdown.is_cancelled() {
            // The task stays `running` in the store and is requeued at the next start.
            return;
        }
        self.run_detached(|txn| txn.run_ended(worker_id, task_id, &end));
    }

    /// The agent was asked to write `reports/<task-id>.json`. When it did, that report
    /// is the task's outcome whether the watcher or the run's end sees it first, so a
    /// run's generic result never overtakes the agent's own report. The file is read as
    /// the watcher reads it ([`reports::read_report_file`]: a regular file only, no
    /// symlink, at most 1 MiB), on a blocking thread.
    ///
    /// `root` is where the run worked: the project directory, or the task's worktree.
    async fn apply_agent_report(&self, task_id: &TaskId, root: std::path::PathBuf) {
        let Ok(Some(task)) = self.parts().store.task_of(task_id.clone()).await else {
            return;
        };
        let name = format!("{task_id}.json");
        let read = tokio::task::spawn_blocking(move || reports::read_report_file(&root, &name));
        let bytes = match read.await {
            Ok(Ok(bytes)) => bytes,
            // Missing, oversized, not a regular file: left to the watcher, which reports
            // what is wrong with it as `task.report_invalid`.
            Ok(Err(err)) => {
                debug!(%task_id, error = %err, "no usable agent report");
                return;
            }
            Err(err) => {
                warn!(%task_id, error = %err, "the report reader ended unexpectedly");
                return;
            }
        };
        match reports::parse_report(&bytes, task_id.as_str()) {
            Ok(parsed) => {
                self.report(&task.project_id, task_id, parsed).await;
            }
            // Left to the watcher, which reports it as invalid once it is stable.
            Err(err) => debug!(%task_id, error = %err, "agent report not usable yet"),
        }
    }
}

/// Commits and records a task's worktree after its run; a failure is logged (the task's
/// outcome does not depend on it).
async fn finish_worktree(worktrees: &worktrees::Worktrees, task: &crate::storage::sqlite::TaskRow) {
    if let Err(err) = worktrees.finish(task).await {
        warn!(task_id = %task.id, error = %ErrorChain(&err), "cannot record the task's worktree");
    }
}
