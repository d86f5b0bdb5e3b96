//! A deleted project's worktrees: removed with it ([`Worktrees::claim_project`], then
//! [`ProjectClaim::remove`]), and at start those of projects that no longer exist
//! ([`Worktrees::remove_orphans`]). Nothing outside `<data dir>/worktrees` is ever
//! removed as a directory.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::{Worktrees, branch_of};
use crate::projects::ProjectError;
use crate::projects::git;
use crate::protocol::error::ErrorChain;
use crate::protocol::worktrees::WorktreeState;
use crate::storage::sqlite::WorktreeRow;

impl Worktrees {
    /// `<data dir>/worktrees/<project-id>`, or `None` for an id that is not one plain
    /// path component.
    fn project_dir(&self, project_id: &str) -> Option<PathBuf> {
        let mut parts = Path::new(project_id).components();
        match (parts.next(), parts.next()) {
            (Some(std::path::Component::Normal(_)), None) => {
                Some(self.inner.parts.root.join(project_id))
            }
            _ => None,
        }
    }

    /// Removes `dir` with what is in it, if it is inside `<data dir>/worktrees`; a
    /// failure is logged.
    async fn remove_dir(&self, dir: &Path) {
        let root = &self.inner.parts.root;
        if dir == root.as_path() || !dir.starts_with(root) {
            warn!(path = %dir.display(), "not removed: outside the worktrees directory");
            return;
        }
        match tokio::fs::remove_dir_all(dir).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                warn!(path = %dir.display(), error = %err, "cannot remove a worktree directory")
            }
        }
    }

    /// Claims a project's worktrees before the project is deleted: holds its git lock
    /// (no run makes a worktree meanwhile) and lists its worktrees, which
    /// [`ProjectClaim::remove`] removes once the project is gone. Dropped instead, it
    /// removes nothing.
    ///
    /// # Errors
    /// [`ProjectError::Busy`] while a run works in one of its worktrees,
    /// [`ProjectError::NotFound`], the store's.
    pub async fn claim_project(&self, project_id: &str) -> Result<ProjectClaim, ProjectError> {
        let repo = PathBuf::from(self.inner.parts.projects.get(project_id)?.path);
        let held = self.lock_of(project_id).lock_owned().await;
        let rows = self
            .store()
            .project_worktrees(project_id.to_string())
            .await?;
        let busy = self.busy();
        let in_use = rows.iter().any(|row| {
            busy.iter()
                .any(|(owner, id)| *owner == row.owner && *id == row.task_id)
        });
        drop(busy);
        if in_use {
            return Err(ProjectError::Busy(project_id.to_string()));
        }
        Ok(ProjectClaim {
            worktrees: self.clone(),
            project_id: project_id.to_string(),
            repo,
            rows,
            _held: held,
        })
    }

    /// Removes the linked worktree at `dir` (a task's directory of a project that no
    /// longer exists) from the repository it belongs to when that still exists, with
    /// its branch when it is the task's (`semantest/<dir name>`), then the directory.
    async fn remove_orphan_worktree(&self, dir: &Path) {
        if let Some((common, branch)) = git::worktree_owner(dir).await {
            if let Err(err) = git::remove_worktree(&common, dir).await {
                warn!(path = %dir.display(), error = %ErrorChain(&err), "cannot remove an orphaned worktree from its repository");
            }
            let own = dir
                .file_name()
                .and_then(|name| name.to_str())
                .map(branch_of);
            if let Some(branch) = branch.filter(|branch| Some(branch) == own.as_ref())
                && let Err(err) = git::delete_branch(&common, &branch).await
            {
                warn!(path = %dir.display(), branch, error = %ErrorChain(&err), "cannot delete an orphaned worktree's branch");
            }
        }
        self.remove_dir(dir).await;
    }

    /// Removes the worktree directories of projects that no longer exist (each
    /// `<data dir>/worktrees/<project-id>` whose project is not registered), and their
    /// worktrees and task branches from repositories that still exist. Returns how many
    /// projects' directories were removed.
    pub async fn remove_orphans(&self) -> usize {
        let root = self.inner.parts.root.clone();
        let Ok(mut entries) = tokio::fs::read_dir(&root).await else {
            return 0;
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Some(project_id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !entry.file_type().await.is_ok_and(|t| t.is_dir())
                || self.inner.parts.projects.get(&project_id).is_ok()
            {
                continue;
            }
            let lock = self.lock_of(&project_id);
            let _held = lock.lock().await;
            // Checked again under the lock.
            if self.inner.parts.projects.get(&project_id).is_ok() {
                continue;
            }
            if let Ok(mut tasks) = tokio::fs::read_dir(entry.path()).await {
                while let Ok(Some(task)) = tasks.next_entry().await {
                    if task.file_type().await.is_ok_and(|t| t.is_dir()) {
                        self.remove_orphan_worktree(&task.path()).await;
                    }
                }
            }
            self.remove_dir(&entry.path()).await;
            removed += 1;
            info!(project_id, "worktrees of a deleted project removed");
        }
        removed
    }
}

/// A project's worktrees, claimed for its deletion by [`Worktrees::claim_project`].
pub struct ProjectClaim {
    worktrees: Worktrees,
    project_id: String,
    /// The project's directory, in its repository.
    repo: PathBuf,
    rows: Vec<WorktreeRow>,
    /// The project's git lock, held until the worktrees are gone.
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl ProjectClaim {
    /// The project is deleted: removes each of its worktrees (`git worktree remove
    /// --force`) and the branch of each not merged or discarded, while its repository
    /// exists, then `<data dir>/worktrees/<project-id>` in any case. A failure is logged
    /// and the rest goes on. Returns how many worktrees the project had.
    pub async fn remove(self) -> usize {
        let worktrees = &self.worktrees;
        let in_repo = git::is_repository(&self.repo).await;
        for row in &self.rows {
            let path = Path::new(&row.path);
            let state = WorktreeState::parse(&row.state);
            if in_repo {
                if let Err(err) = git::remove_worktree(&self.repo, path).await {
                    warn!(task_id = %row.task_id, error = %ErrorChain(&err), "cannot remove a deleted project's worktree");
                }
                if matches!(state, WorktreeState::Active | WorktreeState::Finished)
                    && let Err(err) = git::delete_branch(&self.repo, &row.branch).await
                {
                    warn!(task_id = %row.task_id, branch = %row.branch, error = %ErrorChain(&err), "cannot delete a deleted project's task branch");
                }
            }
            worktrees.remove_dir(path).await;
        }
        if let Some(dir) = worktrees.project_dir(&self.project_id) {
            worktrees.remove_dir(&dir).await;
        }
        info!(project_id = %self.project_id, worktrees = self.rows.len(), in_repo, "deleted project's worktrees removed");
        self.rows.len()
    }
}
