//! Projects, their runs and their agent sessions, and each project's agent choice.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    CHUNK_ROWS, ProjectRow, RUN_PROMPT_CHARS, RunOutcome, RunSummary, Store, StoreError,
    UnfinishedRun, stored,
};
use crate::protocol::ProjectState;
use crate::protocol::agents::AgentKind;
use crate::support::timestamp::format_ms;

/// The agent choice: each project's agent and model (`project.configure`), and the
/// session each agent other than Claude Code resumes (Claude Code's stays in
/// `projects.session_id`, where it has always been).
pub(super) const AGENT_MIGRATION: &str =
    "ALTER TABLE projects ADD COLUMN agent TEXT NOT NULL DEFAULT 'claude';
    ALTER TABLE projects ADD COLUMN model TEXT;
    CREATE TABLE project_agent_sessions (
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        agent TEXT NOT NULL,
        session_id TEXT NOT NULL,
        PRIMARY KEY (project_id, agent)
    );
    ALTER TABLE tasks ADD COLUMN agent TEXT;";

impl Store {
    /// Inserts a project.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], including a UNIQUE violation when the path is taken.
    pub async fn insert_project(&self, row: &ProjectRow) -> Result<(), StoreError> {
        let row = row.clone();
        self.write(move |conn| insert_project(conn, &row)).await
    }

    /// [`Store::insert_project`] for the sync setup of the storage tests and of the
    /// criterion benches (`benches/hot_paths.rs`).
    ///
    /// # Errors
    /// As [`Store::insert_project`].
    #[cfg(any(test, feature = "bench-internals"))]
    pub fn insert_project_blocking(&self, row: &ProjectRow) -> Result<(), StoreError> {
        let row = row.clone();
        self.write_blocking(move |conn| insert_project(conn, &row))
    }

    /// Deletes a project with its runs, sessions, tasks and log. Returns whether it
    /// existed. The log and the tasks go first, [`CHUNK_ROWS`] rows per write, so a
    /// project with 100,000 lines never holds the writer for long; the project row
    /// goes last, so a crash half-way leaves the project listed with part of its log,
    /// and deleting it again finishes the job.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn delete_project(&self, id: &str) -> Result<bool, StoreError> {
        for table in ["messages", "tasks"] {
            loop {
                let id = id.to_string();
                let deleted = self
                    .write(move |conn| delete_chunk(conn, table, &id))
                    .await?;
                if deleted < CHUNK_ROWS {
                    break;
                }
            }
        }
        let id = id.to_string();
        self.write(move |conn| Ok(conn.execute("DELETE FROM projects WHERE id = ?1", [id])? > 0))
            .await
    }

    /// Every project, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        self.read_blocking(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, path, created_at, state, reason, session_id, last_seq, agent, model
             FROM projects ORDER BY created_at, id",
            )?;
            let mut sessions = conn.prepare_cached(
                "SELECT project_id, agent, session_id FROM project_agent_sessions",
            )?;
            let mut by_project: std::collections::HashMap<String, std::collections::BTreeMap<AgentKind, String>> =
                std::collections::HashMap::new();
            for row in sessions.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
            })? {
                let (project_id, agent, session_id) = row?;
                if let Some(agent) = AgentKind::parse(&agent) {
                    by_project.entry(project_id).or_default().insert(agent, session_id);
                }
            }
            let rows = stmt.query_map([], |row| {
                Ok(ProjectRow {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    path: PathBuf::from(row.get::<_, String>(2)?),
                    created_at: row.get(3)?,
                    state: stored(&row.get::<_, String>(4)?, ProjectState::Failed),
                    reason: row.get(5)?,
                    session_id: row.get(6)?,
                    last_seq: row.get::<_, i64>(7)? as u64,
                    // An unknown name (a newer hub's agent) falls back to the default.
                    agent: AgentKind::parse(&row.get::<_, String>(8)?).unwrap_or_default(),
                    model: row.get(9)?,
                    agent_sessions: Default::default(),
                })
            })?;
            let mut rows = rows.collect::<Result<Vec<ProjectRow>, _>>()?;
            for row in &mut rows {
                row.agent_sessions = by_project.remove(&row.id).unwrap_or_default();
            }
            Ok(rows)
        })
    }

    /// Records a project's state and the reason for it.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn set_project_state(
        &self,
        id: &str,
        state: ProjectState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let (id, reason) = (id.to_string(), reason.map(str::to_string));
        self.write(move |conn| set_project_state(conn, &id, state, reason.as_deref()))
            .await
    }

    /// [`Store::set_project_state`] for sync code off the runtime (the registry's load).
    ///
    /// # Errors
    /// As [`Store::set_project_state`].
    pub fn set_project_state_blocking(
        &self,
        id: &str,
        state: ProjectState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let (id, reason) = (id.to_string(), reason.map(str::to_string));
        self.write_blocking(move |conn| set_project_state(conn, &id, state, reason.as_deref()))
    }

    /// Sets (or with `None`, forgets) the session the next run resumes, and records the
    /// session itself.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn set_session(
        &self,
        project_id: &str,
        session_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (project_id, session_id) = (project_id.to_string(), session_id.map(str::to_string));
        self.write(move |conn| {
            conn.execute(
                "UPDATE projects SET session_id = ?2 WHERE id = ?1",
                params![project_id, session_id],
            )?;
            if let Some(session_id) = session_id {
                conn.execute(
                    "INSERT INTO sessions (id, project_id, created_at, last_used_at) VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT(id) DO UPDATE SET last_used_at = excluded.last_used_at",
                    params![session_id, project_id, now],
                )?;
            }
            Ok(())
        })
            .await
    }

    /// Records a project's agent and model (`project.configure`).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn set_project_agent(
        &self,
        project_id: &str,
        agent: AgentKind,
        model: Option<&str>,
    ) -> Result<(), StoreError> {
        let (project_id, model) = (project_id.to_string(), model.map(str::to_string));
        self.write(move |conn| {
            conn.execute(
                "UPDATE projects SET agent = ?2, model = ?3 WHERE id = ?1",
                params![project_id, agent.as_str(), model],
            )?;
            Ok(())
        })
        .await
    }

    /// Sets (or with `None`, forgets) the session an agent other than Claude Code
    /// resumes in a project, and records the session itself (Claude Code's:
    /// [`Store::set_session`]).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn set_agent_session(
        &self,
        project_id: &str,
        agent: AgentKind,
        session_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (project_id, session_id) = (project_id.to_string(), session_id.map(str::to_string));
        self.write(move |conn| {
            match &session_id {
                Some(session_id) => {
                    conn.execute(
                        "INSERT INTO project_agent_sessions (project_id, agent, session_id)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT(project_id, agent) DO UPDATE SET session_id = excluded.session_id",
                        params![project_id, agent.as_str(), session_id],
                    )?;
                    conn.execute(
                        "INSERT INTO sessions (id, project_id, created_at, last_used_at) VALUES (?1, ?2, ?3, ?3)
                         ON CONFLICT(id) DO UPDATE SET last_used_at = excluded.last_used_at",
                        params![session_id, project_id, now],
                    )?;
                }
                None => {
                    conn.execute(
                        "DELETE FROM project_agent_sessions WHERE project_id = ?1 AND agent = ?2",
                        params![project_id, agent.as_str()],
                    )?;
                }
            }
            Ok(())
        })
            .await
    }

    /// Records a started run.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn insert_run(
        &self,
        run_id: &str,
        project_id: &str,
        prompt: &str,
        resumed_session: Option<&str>,
        started_at: i64,
    ) -> Result<(), StoreError> {
        let (run_id, project_id, prompt, resumed_session) = (
            run_id.to_string(),
            project_id.to_string(),
            prompt.to_string(),
            resumed_session.map(str::to_string),
        );
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO runs (id, project_id, prompt, resumed_session, started_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
                params![run_id, project_id, prompt, resumed_session, started_at],
            )?;
            Ok(())
        })
        .await
    }

    /// Records the process group of a run, so that a crash can be cleaned up later.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn set_run_pgid(&self, run_id: &str, pgid: i32) -> Result<(), StoreError> {
        let run_id = run_id.to_string();
        self.write(move |conn| {
            conn.execute(
                "UPDATE runs SET pgid = ?2 WHERE id = ?1",
                params![run_id, pgid],
            )?;
            Ok(())
        })
        .await
    }

    /// Records how a run ended and adds its cost to its session.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn finish_run(
        &self,
        run_id: &str,
        outcome: &RunOutcome,
        ended_at: i64,
    ) -> Result<(), StoreError> {
        let (run_id, outcome) = (run_id.to_string(), outcome.clone());
        self.write(move |conn| finish_run(conn, &run_id, &outcome, ended_at))
            .await
    }

    /// [`Store::finish_run`] for sync code off the runtime (the start-up clean-up of
    /// orphaned runs).
    ///
    /// # Errors
    /// As [`Store::finish_run`].
    pub fn finish_run_blocking(
        &self,
        run_id: &str,
        outcome: &RunOutcome,
        ended_at: i64,
    ) -> Result<(), StoreError> {
        let (run_id, outcome) = (run_id.to_string(), outcome.clone());
        self.write_blocking(move |conn| finish_run(conn, &run_id, &outcome, ended_at))
    }

    /// A project's runs, newest first: at most `limit`, older than the run `before` when
    /// given (an unknown `before` yields none). Reads one more to say whether more exist.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn runs(
        &self,
        project_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<RunSummary>, bool), StoreError> {
        let (project_id, before) = (project_id.to_string(), before.map(str::to_string));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, status, started_at, ended_at, cost_usd, num_turns, error,
                        substr(prompt, 1, ?4), length(prompt) > ?4,
                        (SELECT worktree_id FROM run_worktrees WHERE run_id = runs.id)
                 FROM runs
                 WHERE project_id = ?1
                   AND (?2 IS NULL OR (started_at, id) <
                        (SELECT started_at, id FROM runs WHERE id = ?2 AND project_id = ?1))
                 ORDER BY started_at DESC, id DESC
                 LIMIT ?3",
            )?;
            let mut runs = stmt
                .query_map(
                    params![
                        project_id,
                        before,
                        i64::from(limit) + 1,
                        RUN_PROMPT_CHARS as i64
                    ],
                    |row| {
                        let started: i64 = row.get(2)?;
                        let ended: Option<i64> = row.get(3)?;
                        Ok(RunSummary {
                            id: row.get(0)?,
                            status: row.get(1)?,
                            started_at: format_ms(started),
                            ended_at: ended.map(format_ms),
                            duration_ms: ended.map(|ended| ended - started),
                            cost_usd: row.get(4)?,
                            num_turns: row.get(5)?,
                            reason: row.get(6)?,
                            prompt: row.get(7)?,
                            prompt_truncated: row.get(8)?,
                            worktree: row.get(9)?,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let more = runs.len() > limit as usize;
            runs.truncate(limit as usize);
            Ok((runs, more))
        })
        .await
    }

    /// Runs still marked `running`: at start, these were orphaned by a crash.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        self.read_blocking(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, project_id, pgid, started_at FROM runs WHERE status = 'running'",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(UnfinishedRun {
                    id: row.get(0)?,
                    project_id: row.get(1)?,
                    pgid: row.get(2)?,
                    started_at: row.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A run's recorded status, for tests and the CLI.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn run_status(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        let run_id = run_id.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row("SELECT status FROM runs WHERE id = ?1", [run_id], |row| {
                    row.get(0)
                })
                .optional()?)
        })
        .await
    }
}

fn insert_project(conn: &Connection, row: &ProjectRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO projects (id, name, path, created_at, state, session_id, last_seq, agent, model)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            row.id,
            row.name,
            row.path.to_string_lossy(),
            row.created_at,
            row.state.as_str(),
            row.session_id,
            row.last_seq as i64,
            row.agent.as_str(),
            row.model,
        ],
    )?;
    Ok(())
}

/// Deletes up to [`CHUNK_ROWS`] of a project's rows in `table` (`messages` or `tasks`);
/// returns how many.
fn delete_chunk(conn: &Connection, table: &str, project_id: &str) -> Result<usize, StoreError> {
    let sql = format!(
        "DELETE FROM {table} WHERE rowid IN
             (SELECT rowid FROM {table} WHERE project_id = ?1 LIMIT ?2)"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .execute(params![project_id, CHUNK_ROWS as i64])?)
}

fn finish_run(
    conn: &Connection,
    run_id: &str,
    outcome: &RunOutcome,
    ended_at: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE runs SET status = ?2, exit_code = ?3, session_id = ?4, cost_usd = ?5,
             duration_ms = ?6, num_turns = ?7, error = ?8, ended_at = ?9
         WHERE id = ?1",
        params![
            run_id,
            outcome.status.as_str(),
            outcome.exit_code,
            outcome.session_id,
            outcome.cost_usd,
            outcome.duration_ms,
            outcome.num_turns,
            outcome.error,
            ended_at
        ],
    )?;
    if let Some(session_id) = &outcome.session_id {
        conn.execute(
            "UPDATE sessions SET runs = runs + 1, total_cost_usd = total_cost_usd + ?2,
                 last_used_at = ?3 WHERE id = ?1",
            params![session_id, outcome.cost_usd.unwrap_or(0.0), ended_at],
        )?;
    }
    Ok(())
}

fn set_project_state(
    conn: &Connection,
    id: &str,
    state: ProjectState,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE projects SET state = ?2, reason = ?3 WHERE id = ?1",
        params![id, state.as_str(), reason],
    )?;
    Ok(())
}
