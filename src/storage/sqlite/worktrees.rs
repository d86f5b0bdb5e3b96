//! Task isolation: each project's `isolation` setting and the git worktree of each task
//! that ran in one (`src/coordinator/worktrees.rs` keeps them).
//!
//! A worktree row lives from the task's first isolated run until the task's branch is
//! merged or discarded; its `state` only moves forward: `active` (a run uses it) →
//! `finished` (the run ended; `diff` holds the changes) → `merged` or `discarded`. A
//! task run again after a failed attempt takes its row back to `active`. `removed` says
//! the directory is gone (retention, merge or discard) while the branch may remain.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// The schema of this file.
pub(super) const MIGRATION: &str = "CREATE TABLE project_isolation (
    project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    isolation TEXT NOT NULL
);
CREATE TABLE worktrees (
    task_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    branch TEXT NOT NULL,
    base_branch TEXT,
    base_commit TEXT NOT NULL,
    state TEXT NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0,
    head_commit TEXT,
    diff TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE INDEX worktrees_by_state ON worktrees(state, finished_at);";

/// A task's worktree as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreeRow {
    /// The task.
    pub task_id: String,
    /// Its project.
    pub project_id: String,
    /// The worktree's directory.
    pub path: String,
    /// `semantest/<task-id>`.
    pub branch: String,
    /// The branch checked out when the worktree was made, which a merge goes into;
    /// `None` when `HEAD` was detached.
    pub base_branch: Option<String>,
    /// The commit the branch started from.
    pub base_commit: String,
    /// `active`, `finished`, `merged` or `discarded`.
    pub state: String,
    /// Whether the directory is gone.
    pub removed: bool,
    /// The branch's commit after the hub's commit of the run's work.
    pub head_commit: Option<String>,
    /// The diff against `base_commit`, as JSON (`projects::git::Diff`).
    pub diff: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms when the last run ended.
    pub finished_at: Option<i64>,
    /// Unix ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "task_id, project_id, path, branch, base_branch, base_commit, state, \
                       removed, head_commit, diff, created_at, finished_at, updated_at";

fn worktree_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WorktreeRow> {
    Ok(WorktreeRow {
        task_id: row.get(0)?,
        project_id: row.get(1)?,
        path: row.get(2)?,
        branch: row.get(3)?,
        base_branch: row.get(4)?,
        base_commit: row.get(5)?,
        state: row.get(6)?,
        removed: row.get(7)?,
        head_commit: row.get(8)?,
        diff: row.get(9)?,
        created_at: row.get(10)?,
        finished_at: row.get(11)?,
        updated_at: row.get(12)?,
    })
}

impl Store {
    /// Sets a project's isolation (`none` or `worktree`).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] (a missing project fails its foreign key).
    pub async fn set_isolation(
        &self,
        project_id: String,
        isolation: &'static str,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO project_isolation (project_id, isolation) VALUES (?1, ?2)
                 ON CONFLICT (project_id) DO UPDATE SET isolation = excluded.isolation",
                params![project_id, isolation],
            )?;
            Ok(())
        })
        .await
    }

    /// A project's isolation, `None` when never set.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn isolation(&self, project_id: String) -> Result<Option<String>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT isolation FROM project_isolation WHERE project_id = ?1",
                    [project_id],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    /// Writes a worktree row whole (insert or replace).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn save_worktree(&self, row: WorktreeRow) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO worktrees ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                params![
                    row.task_id,
                    row.project_id,
                    row.path,
                    row.branch,
                    row.base_branch,
                    row.base_commit,
                    row.state,
                    row.removed,
                    row.head_commit,
                    row.diff,
                    row.created_at,
                    row.finished_at,
                    row.updated_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// A task's worktree row.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn worktree(&self, task_id: String) -> Result<Option<WorktreeRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM worktrees WHERE task_id = ?1"
            ))?;
            Ok(stmt.query_row([task_id], worktree_row).optional()?)
        })
        .await
    }

    /// Every worktree row of a project, in every state, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn project_worktrees(
        &self,
        project_id: String,
    ) -> Result<Vec<WorktreeRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM worktrees WHERE project_id = ?1 ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([project_id], worktree_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Every worktree whose directory may still exist (`removed` is false), oldest
    /// first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn live_worktrees(&self) -> Result<Vec<WorktreeRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM worktrees WHERE removed = 0 ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([], worktree_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
