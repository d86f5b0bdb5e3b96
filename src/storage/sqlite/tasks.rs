//! The coordinator's tables: tasks, workers and per-project settings.
//!
//! A task row is written whenever the task changes hands (created, assigned, completed,
//! failed, requeued, cancelled), each change one statement or one transaction, before
//! the hub acknowledges it. Leases are not stored: after a restart every task that was
//! `running` goes back to the queue, so a lease could never outlive the hub anyway.
//! JSON columns (`context`, `acceptance`, `report`, `failures`, `capabilities`) hold
//! the values as the client sent them.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{CHUNK_ROWS, Store, StoreError, stored};
use crate::protocol::agents::AgentKind;
use crate::protocol::coordination::{
    CompletedBy, Failure, TaskState, TaskView, WorkerKind, WorkerStatus,
};
use crate::protocol::ids::{TaskId, WorkerId};
use crate::support::timestamp::format_ms;

/// A task as stored, and as the coordinator keeps queued and running tasks in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// The task id.
    pub id: TaskId,
    /// Its project.
    pub project_id: String,
    /// Creation order across the hub, from 1.
    pub seq: i64,
    /// The title.
    pub title: String,
    /// The type, matched against workers' capabilities.
    pub kind: Option<String>,
    /// The context.
    pub context: Option<Value>,
    /// The instructions.
    pub prompt: Option<String>,
    /// The acceptance criteria.
    pub acceptance: Option<Value>,
    /// Higher runs first.
    pub priority: i64,
    /// The state.
    pub state: TaskState,
    /// The worker holding or having completed it.
    pub worker_id: Option<WorkerId>,
    /// Failed attempts.
    pub attempts: u32,
    /// Every failed attempt.
    pub failures: Vec<Failure>,
    /// The report that completed it.
    pub report: Option<Value>,
    /// What completed it.
    pub completed_by: Option<CompletedBy>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
    /// The agent that must run it on an agent worker; `None`: the project's.
    pub agent: Option<AgentKind>,
}

impl TaskRow {
    /// A new queued task with only its identity and title; the rest is empty.
    pub fn pending(id: TaskId, project_id: String, seq: i64, title: String, now: i64) -> Self {
        Self {
            id,
            project_id,
            seq,
            title,
            kind: None,
            context: None,
            prompt: None,
            acceptance: None,
            priority: 0,
            state: TaskState::Pending,
            worker_id: None,
            attempts: 0,
            failures: Vec::new(),
            report: None,
            completed_by: None,
            created_at: now,
            updated_at: now,
            agent: None,
        }
    }

    /// The wire form.
    pub fn view(&self) -> TaskView {
        TaskView {
            id: self.id.clone(),
            project_id: self.project_id.clone(),
            seq: self.seq,
            title: self.title.clone(),
            kind: self.kind.clone(),
            context: self.context.clone(),
            prompt: self.prompt.clone(),
            acceptance: self.acceptance.clone(),
            priority: self.priority,
            state: self.state,
            worker_id: self.worker_id.clone(),
            attempts: self.attempts,
            failures: self.failures.clone(),
            report: self.report.clone(),
            completed_by: self.completed_by,
            created_at: format_ms(self.created_at),
            updated_at: format_ms(self.updated_at),
            agent: self.agent,
        }
    }
}

/// A worker as stored. Every worker is stored `offline` when the hub starts.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// The worker id.
    pub id: WorkerId,
    /// Display name.
    pub name: String,
    /// Client or agent.
    pub kind: WorkerKind,
    /// Task types it takes.
    pub capabilities: Vec<String>,
    /// The project of an agent worker.
    pub project_id: Option<String>,
    /// Its status.
    pub status: WorkerStatus,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// Ids are stored as their text.
macro_rules! id_column {
    ($($ty:ty),+) => {$(
        impl rusqlite::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                String::column_result(value).map(Self::from)
            }
        }
    )+};
}

id_column!(TaskId, WorkerId);

const TASK_COLUMNS: &str = "id, project_id, seq, title, type, context, prompt, acceptance, priority, \
     state, worker_id, attempts, failures, report, completed_by, created_at, updated_at, agent";

fn json_text(value: &Option<Value>) -> Option<String> {
    value.as_ref().map(Value::to_string)
}

fn parse_json(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn task_from_row(row: &rusqlite::Row<'_>) -> Result<TaskRow, rusqlite::Error> {
    let failures: String = row.get(12)?;
    Ok(TaskRow {
        id: row.get(0)?,
        project_id: row.get(1)?,
        seq: row.get(2)?,
        title: row.get(3)?,
        kind: row.get(4)?,
        context: parse_json(row.get(5)?),
        prompt: row.get(6)?,
        acceptance: parse_json(row.get(7)?),
        priority: row.get(8)?,
        state: stored(&row.get::<_, String>(9)?, TaskState::Pending),
        worker_id: row.get(10)?,
        attempts: row.get(11)?,
        failures: serde_json::from_str(&failures).unwrap_or_default(),
        report: parse_json(row.get(13)?),
        completed_by: row
            .get::<_, Option<String>>(14)?
            .as_deref()
            .and_then(|name| {
                name.parse::<CompletedBy>()
                    .inspect_err(|err| tracing::warn!(error = %err, "unknown name in the store"))
                    .ok()
            }),
        created_at: row.get(15)?,
        updated_at: row.get(16)?,
        agent: row
            .get::<_, Option<String>>(17)?
            .as_deref()
            .and_then(AgentKind::parse),
    })
}

impl Store {
    /// The projects owning those of `ids` that exist: task id → project id.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn task_owners(&self, ids: &[&TaskId]) -> Result<HashMap<TaskId, String>, StoreError> {
        self.read_blocking(|conn| task_owners(conn, ids))
    }

    /// [`Store::task_owners`] on a read connection on the blocking pool.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn task_owners_of(
        &self,
        ids: Vec<TaskId>,
    ) -> Result<HashMap<TaskId, String>, StoreError> {
        self.read(move |conn| {
            let ids: Vec<&TaskId> = ids.iter().collect();
            task_owners(conn, &ids)
        })
        .await
    }

    /// Inserts one chunk of tasks (at most [`CHUNK_ROWS`]) in one write: all or none.
    ///
    /// # Errors
    /// As [`Store::insert_tasks`].
    pub async fn insert_task_chunk(&self, rows: Vec<TaskRow>) -> Result<(), StoreError> {
        debug_assert!(rows.len() <= CHUNK_ROWS);
        self.write(move |conn| insert_tasks(conn, &rows)).await
    }

    /// Inserts tasks, [`CHUNK_ROWS`] per write, so a `task.create` of 10,000 tasks
    /// never holds the writer for long. Returns once every chunk is committed. A failed
    /// chunk stops the insert: the chunks before it stay, which a retry of the same
    /// `task.create` (idempotent by task id) completes.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], including a UNIQUE violation for an id that exists;
    /// [`StoreError::Encode`] for failures that cannot be encoded.
    pub fn insert_tasks(&self, rows: &[TaskRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK_ROWS) {
            let chunk = chunk.to_vec();
            self.write_blocking(move |conn| insert_tasks(conn, &chunk))?;
        }
        Ok(())
    }

    /// Writes the mutable part of a task: state, worker, attempts, failures, report.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], or [`StoreError::Encode`] for failures that cannot be encoded.
    pub fn update_task(&self, row: &TaskRow) -> Result<(), StoreError> {
        let row = row.clone();
        self.write_blocking(move |conn| update_task(conn, &row))
    }
}

fn update_task(conn: &Connection, row: &TaskRow) -> Result<(), StoreError> {
    {
        conn.prepare_cached(
            "UPDATE tasks SET state = ?2, worker_id = ?3, attempts = ?4, failures = ?5,
                     report = ?6, completed_by = ?7, updated_at = ?8
                 WHERE id = ?1",
        )?
        .execute(params![
            row.id,
            row.state.as_str(),
            row.worker_id,
            row.attempts,
            serde_json::to_string(&row.failures)?,
            json_text(&row.report),
            row.completed_by.map(CompletedBy::as_str),
            row.updated_at,
        ])?;
    }
    Ok(())
}

impl Store {
    /// One task.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn task(&self, id: &TaskId) -> Result<Option<TaskRow>, StoreError> {
        self.read_blocking(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?;
            Ok(stmt.query_row([id], task_from_row).optional()?)
        })
    }

    /// [`Store::task`] on a read connection on the blocking pool.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn task_of(&self, id: TaskId) -> Result<Option<TaskRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?;
            Ok(stmt.query_row([id], task_from_row).optional()?)
        })
        .await
    }

    /// A page of a project's tasks by `seq`, optionally in one state, after `after_seq`.
    /// Returns at most `limit + 1` rows so the caller can tell whether there are more.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub async fn tasks(
        &self,
        project_id: &str,
        state: Option<TaskState>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<TaskRow>, StoreError> {
        let project_id = project_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks
             WHERE project_id = ?1 AND seq > ?2 AND (?3 IS NULL OR state = ?3)
             ORDER BY seq LIMIT ?4"
            ))?;
            let rows = stmt.query_map(
                params![
                    project_id,
                    after_seq,
                    state.map(TaskState::as_str),
                    i64::from(limit) + 1
                ],
                task_from_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Every task still `pending` or `running`, for the coordinator's start.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn unfinished_tasks(&self) -> Result<Vec<TaskRow>, StoreError> {
        self.read_blocking(|conn| {
            let mut stmt = conn.prepare(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ('pending', 'running') ORDER BY seq"
        ))?;
            let rows = stmt.query_map([], task_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// `(project id, state, count)` for every project with tasks.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn task_counts(&self) -> Result<Vec<(String, TaskState, u64)>, StoreError> {
        self.read_blocking(|conn| {
            let mut stmt = conn.prepare(
                "SELECT project_id, state, COUNT(*) FROM tasks GROUP BY project_id, state",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    stored(&row.get::<_, String>(1)?, TaskState::Pending),
                    row.get::<_, i64>(2)? as u64,
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The highest task `seq` used so far (0 when there is none).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn max_task_seq(&self) -> Result<i64, StoreError> {
        self.read_blocking(|conn| {
            Ok(
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM tasks", [], |row| {
                    row.get(0)
                })?,
            )
        })
    }

    /// Inserts or replaces a worker.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn upsert_worker(&self, row: &WorkerRow, now: i64) -> Result<(), StoreError> {
        let row = row.clone();
        self.write_blocking(move |conn| upsert_worker(conn, &row, now))
    }

    /// Records a worker's status.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn set_worker_status(
        &self,
        id: &WorkerId,
        status: WorkerStatus,
        now: i64,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        self.write_blocking(move |conn| set_worker_status(conn, &id, status, now))
    }

    /// Deletes a worker (an agent worker a project no longer runs).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn delete_worker(&self, id: &WorkerId) -> Result<(), StoreError> {
        let id = id.clone();
        self.write_blocking(move |conn| delete_worker(conn, &id))
    }

    /// At start: marks every worker offline and forgets client workers not seen since
    /// `forget_before` (epoch ms). Returns the number forgotten.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn reset_workers(&self, now: i64, forget_before: i64) -> Result<usize, StoreError> {
        self.write_blocking(move |conn| {
            let forgotten = conn.execute(
                "DELETE FROM workers WHERE kind = 'client' AND last_seen_at < ?1",
                [forget_before],
            )?;
            conn.execute(
            "UPDATE workers SET status = 'offline', last_seen_at = ?1 WHERE status != 'offline'",
            [now],
        )?;
            Ok(forgotten)
        })
    }

    /// `(project id, agent workers)` for every project that set it.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn agent_worker_settings(&self) -> Result<Vec<(String, u32)>, StoreError> {
        self.read_blocking(|conn| {
            let mut stmt = conn.prepare("SELECT project_id, agent_workers FROM coordination")?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Records how many agent workers a project runs.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`]; a foreign key violation when the project does not exist.
    pub fn set_agent_workers(&self, project_id: &str, count: u32) -> Result<(), StoreError> {
        let project_id = project_id.to_string();
        self.write_blocking(move |conn| set_agent_workers(conn, &project_id, count))
    }

    /// What the coordinator rebuilds its memory from after a failed commit: the
    /// unfinished tasks, the counts, the highest `seq`, the `agent_workers` settings and
    /// the ids of the stored workers, read in one read transaction.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], [`StoreError::Join`].
    pub async fn coordination_snapshot(&self) -> Result<CoordinationSnapshot, StoreError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let tasks = tx
                .prepare(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ('pending', 'running') ORDER BY seq"
                ))?
                .query_map([], task_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let counts = tx
                .prepare("SELECT project_id, state, COUNT(*) FROM tasks GROUP BY project_id, state")?
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        stored(&row.get::<_, String>(1)?, TaskState::Pending),
                        row.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let max_seq = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM tasks", [], |row| {
                row.get(0)
            })?;
            let agent_workers = tx
                .prepare("SELECT project_id, agent_workers FROM coordination")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let workers = tx
                .prepare("SELECT id FROM workers")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            tx.finish()?;
            Ok(CoordinationSnapshot {
                tasks,
                counts,
                max_seq,
                agent_workers,
                workers,
            })
        })
        .await
    }
}

/// The coordinator's part of the store, as read by [`Store::coordination_snapshot`].
#[derive(Debug, Default)]
pub struct CoordinationSnapshot {
    /// The `pending` and `running` tasks, by `seq`.
    pub tasks: Vec<TaskRow>,
    /// `(project id, state, count)`.
    pub counts: Vec<(String, TaskState, u64)>,
    /// The highest task `seq` (0 when there is none).
    pub max_seq: i64,
    /// `(project id, agent workers)`.
    pub agent_workers: Vec<(String, u32)>,
    /// The ids of the stored workers.
    pub workers: Vec<WorkerId>,
}

/// One of the coordinator's writes. A transition's writes are applied together, in
/// order, in one write job ([`apply_task_writes`]): all of them or none.
#[derive(Debug, Clone)]
pub enum TaskWrite {
    /// [`Store::update_task`].
    UpdateTask(TaskRow),
    /// [`Store::upsert_worker`], at the given time (epoch ms).
    UpsertWorker(WorkerRow, i64),
    /// [`Store::set_worker_status`], at the given time (epoch ms).
    SetWorkerStatus(WorkerId, WorkerStatus, i64),
    /// [`Store::delete_worker`].
    DeleteWorker(WorkerId),
    /// [`Store::set_agent_workers`].
    SetAgentWorkers(String, u32),
}

/// Applies a transition's writes in order, on the writer's connection.
///
/// # Errors
/// The first failed statement's; the job's savepoint then rolls back all of them.
pub fn apply_task_writes(conn: &Connection, writes: &[TaskWrite]) -> Result<(), StoreError> {
    for write in writes {
        match write {
            TaskWrite::UpdateTask(row) => update_task(conn, row)?,
            TaskWrite::UpsertWorker(row, now) => upsert_worker(conn, row, *now)?,
            TaskWrite::SetWorkerStatus(id, status, now) => {
                set_worker_status(conn, id, *status, *now)?;
            }
            TaskWrite::DeleteWorker(id) => delete_worker(conn, id)?,
            TaskWrite::SetAgentWorkers(project_id, count) => {
                set_agent_workers(conn, project_id, *count)?;
            }
        }
    }
    Ok(())
}

fn upsert_worker(conn: &Connection, row: &WorkerRow, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO workers (id, name, kind, capabilities, project_id, status, created_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, capabilities = excluded.capabilities,
             status = excluded.status, last_seen_at = excluded.last_seen_at",
    )?
    .execute(params![
        row.id,
        row.name,
        row.kind.as_str(),
        serde_json::to_string(&row.capabilities)?,
        row.project_id,
        row.status.as_str(),
        row.created_at,
        now
    ])?;
    Ok(())
}

fn set_worker_status(
    conn: &Connection,
    id: &WorkerId,
    status: WorkerStatus,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE workers SET status = ?2, last_seen_at = ?3 WHERE id = ?1")?
        .execute(params![id, status.as_str(), now])?;
    Ok(())
}

fn delete_worker(conn: &Connection, id: &WorkerId) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM workers WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

fn set_agent_workers(conn: &Connection, project_id: &str, count: u32) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO coordination (project_id, agent_workers) VALUES (?1, ?2)
         ON CONFLICT(project_id) DO UPDATE SET agent_workers = excluded.agent_workers",
    )?
    .execute(params![project_id, count])?;
    Ok(())
}

fn task_owners(conn: &Connection, ids: &[&TaskId]) -> Result<HashMap<TaskId, String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT project_id FROM tasks WHERE id = ?1")?;
    let mut owners = HashMap::new();
    for id in ids {
        let owner: Option<String> = stmt.query_row([id], |row| row.get(0)).optional()?;
        if let Some(owner) = owner {
            owners.insert((*id).clone(), owner);
        }
    }
    Ok(owners)
}

fn insert_tasks(conn: &Connection, rows: &[TaskRow]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO tasks ({TASK_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    ))?;
    for row in rows {
        stmt.execute(params![
            row.id,
            row.project_id,
            row.seq,
            row.title,
            row.kind,
            json_text(&row.context),
            row.prompt,
            json_text(&row.acceptance),
            row.priority,
            row.state.as_str(),
            row.worker_id,
            row.attempts,
            serde_json::to_string(&row.failures)?,
            json_text(&row.report),
            row.completed_by.map(CompletedBy::as_str),
            row.created_at,
            row.updated_at,
            row.agent.map(AgentKind::as_str),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::storage::sqlite::tests::wait;
    use std::path::PathBuf;

    use super::*;
    use crate::protocol::ProjectState;
    use crate::storage::sqlite::ProjectRow;

    fn store_with_project(dir: &std::path::Path) -> Store {
        let store = Store::open(dir).unwrap();
        store
            .insert_project_blocking(&ProjectRow {
                id: "p".into(),
                name: "p".into(),
                path: PathBuf::from("/tmp/p"),
                created_at: 1,
                state: ProjectState::Idle,
                reason: None,
                session_id: None,
                last_seq: 0,
                agent: Default::default(),
                model: None,
                agent_sessions: Default::default(),
            })
            .unwrap();
        store
    }

    fn task(id: &str, seq: i64) -> TaskRow {
        TaskRow {
            kind: Some("code".into()),
            context: Some(serde_json::json!({"files": ["a.rs"]})),
            acceptance: Some(serde_json::json!(["builds"])),
            priority: 1,
            ..TaskRow::pending(id.into(), "p".into(), seq, format!("task {id}"), 5)
        }
    }

    #[test]
    fn tasks_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store_with_project(dir.path());
            store.insert_tasks(&[task("a", 1), task("b", 2)]).unwrap();
            // A batch with a taken id is refused whole.
            assert!(store.insert_tasks(&[task("c", 3), task("a", 4)]).is_err());
            let mut done = task("a", 1);
            done.state = TaskState::Completed;
            done.report = Some(serde_json::json!({"summary": "ok"}));
            done.completed_by = Some(CompletedBy::Report);
            done.failures.push(Failure {
                attempt: 1,
                worker_id: Some("w".into()),
                reason: "lease expired".into(),
                at: "x".into(),
            });
            store.update_task(&done).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let a = store.task(&"a".into()).unwrap().unwrap();
        assert_eq!(a.state, TaskState::Completed);
        assert_eq!(a.completed_by, Some(CompletedBy::Report));
        assert_eq!(a.failures.len(), 1);
        assert_eq!(a.context, task("a", 1).context);
        assert!(store.task(&"c".into()).unwrap().is_none());
        assert_eq!(store.max_task_seq().unwrap(), 2);
        assert_eq!(store.unfinished_tasks().unwrap().len(), 1);
        let page = wait(store.tasks("p", None, 0, 1)).unwrap();
        assert_eq!(
            page.len(),
            2,
            "limit + 1 rows tell the caller there is more"
        );
        assert_eq!(
            wait(store.tasks("p", Some(TaskState::Pending), 0, 10)).unwrap()[0].id,
            "b"
        );
        let (a, zzz) = (TaskId::from("a"), TaskId::from("zzz"));
        let owners = store.task_owners(&[&a, &zzz]).unwrap();
        assert_eq!(owners.get(&a).map(String::as_str), Some("p"));
        assert!(!owners.contains_key(&zzz));
        let mut counts = store.task_counts().unwrap();
        counts.sort_by_key(|(_, state, _)| state.as_str());
        assert_eq!(
            counts,
            vec![
                ("p".into(), TaskState::Completed, 1),
                ("p".into(), TaskState::Pending, 1)
            ]
        );
        // Deleting the project deletes its tasks.
        crate::storage::sqlite::tests::block_on(store.delete_project("p")).unwrap();
        assert!(store.task(&"b".into()).unwrap().is_none());
    }

    #[test]
    fn workers_go_offline_at_start_and_old_clients_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_project(dir.path());
        let worker = |id: &str, kind| WorkerRow {
            id: id.into(),
            name: id.into(),
            kind,
            capabilities: vec!["code".into()],
            project_id: (kind == WorkerKind::Agent).then(|| "p".to_string()),
            status: WorkerStatus::Idle,
            created_at: 1,
        };
        store
            .upsert_worker(&worker("old", WorkerKind::Client), 10)
            .unwrap();
        store
            .upsert_worker(&worker("new", WorkerKind::Client), 1000)
            .unwrap();
        store
            .upsert_worker(&worker("agent", WorkerKind::Agent), 10)
            .unwrap();
        assert_eq!(store.reset_workers(2000, 500).unwrap(), 1);
        let statuses: Vec<(String, String)> = store
            .read_blocking(|conn| {
                Ok(conn
                    .prepare("SELECT id, status FROM workers ORDER BY id")?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<_, _>>()?)
            })
            .unwrap();
        assert_eq!(
            statuses,
            vec![
                ("agent".into(), "offline".into()),
                ("new".into(), "offline".into())
            ]
        );
        store.set_agent_workers("p", 3).unwrap();
        store.set_agent_workers("p", 2).unwrap();
        assert_eq!(
            store.agent_worker_settings().unwrap(),
            vec![("p".into(), 2)]
        );
        assert!(store.set_agent_workers("missing", 1).is_err());
    }
}
