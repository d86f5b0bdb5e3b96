//! Isolation: each project's `isolation` setting, the git worktree of each task that ran
//! in one and of each interactive run started with `isolation: "worktree"`
//! (`src/coordinator/worktrees.rs` keeps them), and which runs worked in a run's
//! worktree.
//!
//! A worktree row is keyed by its owner (`task` or `run`) and the owner's id (the task
//! id, or the id of the run that made it). It lives from the first run in it until its
//! branch is merged or discarded; its `state` only moves forward: `active` (a run uses it) →
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

/// The second schema step: worktrees are keyed by owner and id (a task's, or an
/// interactive run's), and `run_worktrees` says which runs worked in a run's worktree
/// (the run that made it and its follow-ups) and with which agent.
pub(super) const RUNS_MIGRATION: &str = "CREATE TABLE worktrees_by_owner (
    owner TEXT NOT NULL,
    task_id TEXT NOT NULL,
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
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (owner, task_id)
);
INSERT INTO worktrees_by_owner (owner, task_id, project_id, path, branch, base_branch,
    base_commit, state, removed, head_commit, diff, created_at, finished_at, updated_at)
    SELECT 'task', task_id, project_id, path, branch, base_branch, base_commit, state,
           removed, head_commit, diff, created_at, finished_at, updated_at
    FROM worktrees;
DROP TABLE worktrees;
ALTER TABLE worktrees_by_owner RENAME TO worktrees;
CREATE INDEX worktrees_by_state ON worktrees(state, finished_at);
CREATE TABLE run_worktrees (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    worktree_id TEXT NOT NULL,
    agent TEXT NOT NULL
);
CREATE INDEX run_worktrees_by_worktree ON run_worktrees(worktree_id);";

/// Whose a worktree is, as stored in `owner`.
pub const OWNER_TASK: &str = "task";
/// See [`OWNER_TASK`]: an interactive run's worktree.
pub const OWNER_RUN: &str = "run";

/// A task's or an interactive run's worktree as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreeRow {
    /// [`OWNER_TASK`] or [`OWNER_RUN`].
    pub owner: String,
    /// The task, or the run that made the worktree (by `owner`).
    pub task_id: String,
    /// Its project.
    pub project_id: String,
    /// The worktree's directory.
    pub path: String,
    /// `semantest/<task-id>`, or `semantest/run-<run-id>`.
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

const COLUMNS: &str = "owner, task_id, project_id, path, branch, base_branch, base_commit, state, \
                       removed, head_commit, diff, created_at, finished_at, updated_at";

fn worktree_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WorktreeRow> {
    Ok(WorktreeRow {
        owner: row.get(0)?,
        task_id: row.get(1)?,
        project_id: row.get(2)?,
        path: row.get(3)?,
        branch: row.get(4)?,
        base_branch: row.get(5)?,
        base_commit: row.get(6)?,
        state: row.get(7)?,
        removed: row.get(8)?,
        head_commit: row.get(9)?,
        diff: row.get(10)?,
        created_at: row.get(11)?,
        finished_at: row.get(12)?,
        updated_at: row.get(13)?,
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
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ),
                params![
                    row.owner,
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

    /// The worktree row of a task ([`OWNER_TASK`]) or of the run that made it
    /// ([`OWNER_RUN`]).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn worktree(
        &self,
        owner: &'static str,
        id: String,
    ) -> Result<Option<WorktreeRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM worktrees WHERE owner = ?1 AND task_id = ?2"
            ))?;
            Ok(stmt.query_row([owner, &id], worktree_row).optional()?)
        })
        .await
    }

    /// Records that `run_id` works in the worktree made by run `worktree_id`, with
    /// `agent`. The run's row must exist.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn link_run_worktree(
        &self,
        run_id: String,
        worktree_id: String,
        agent: &'static str,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO run_worktrees (run_id, worktree_id, agent)
                 VALUES (?1, ?2, ?3)",
                params![run_id, worktree_id, agent],
            )?;
            Ok(())
        })
        .await
    }

    /// The worktree a run worked in: the id of the run that made it, and the agent.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn run_worktree_link(
        &self,
        run_id: String,
    ) -> Result<Option<(String, String)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT worktree_id, agent FROM run_worktrees WHERE run_id = ?1")?;
            Ok(stmt
                .query_row([run_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?)
        })
        .await
    }

    /// The agent session the newest run in a run's worktree left, which a follow-up
    /// there resumes.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn worktree_session(
        &self,
        worktree_id: String,
    ) -> Result<Option<String>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT runs.session_id FROM run_worktrees JOIN runs ON runs.id = run_worktrees.run_id
                 WHERE run_worktrees.worktree_id = ?1 AND runs.session_id IS NOT NULL
                 ORDER BY runs.started_at DESC, runs.id DESC LIMIT 1",
            )?;
            Ok(stmt
                .query_row([worktree_id], |row| row.get(0))
                .optional()?)
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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// The step that keys worktrees by owner carries the task worktrees recorded before
    /// it, and then a task and a run may share an id without sharing a row.
    #[test]
    fn the_owner_step_keeps_the_task_worktrees_recorded_before_it() {
        let migrations = super::super::migrations::migrations();
        // The version that made `run_worktrees` is this step, wherever later steps go.
        let mut scratch = Connection::open_in_memory().unwrap();
        let step = (1..100)
            .find(|&version| {
                migrations.to_version(&mut scratch, version).unwrap();
                scratch
                    .query_row(
                        "SELECT count(*) FROM sqlite_master WHERE name = 'run_worktrees'",
                        [],
                        |row| row.get::<_, i64>(0),
                    )
                    .unwrap()
                    == 1
            })
            .expect("a step makes run_worktrees");
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        migrations.to_version(&mut conn, step - 1).unwrap();
        conn.execute_batch(
            "INSERT INTO projects (id, name, path, created_at) VALUES ('p', 'p', '/p', 1);
             INSERT INTO worktrees (task_id, project_id, path, branch, base_branch,
                 base_commit, state, removed, head_commit, diff, created_at, finished_at,
                 updated_at)
             VALUES ('t1', 'p', '/w/t1', 'semantest/t1', 'main', 'abc', 'finished', 0,
                 'def', '{}', 1, 2, 3);",
        )
        .unwrap();
        migrations.to_latest(&mut conn).unwrap();
        let row = conn
            .query_row(
                &format!(
                    "SELECT {} FROM worktrees WHERE owner = 'task' AND task_id = 't1'",
                    super::COLUMNS
                ),
                [],
                super::worktree_row,
            )
            .unwrap();
        assert_eq!(
            (
                row.path.as_str(),
                row.state.as_str(),
                row.head_commit.as_deref()
            ),
            ("/w/t1", "finished", Some("def"))
        );
        conn.execute(
            "INSERT INTO worktrees (owner, task_id, project_id, path, branch, base_commit,
                 state, created_at, updated_at)
             VALUES ('run', 't1', 'p', '/w/run-t1', 'semantest/run-t1', 'abc', 'active', 4, 4)",
            [],
        )
        .unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM worktrees", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 2);
    }
}
