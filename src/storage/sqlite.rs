//! The store: one SQLite file in the data directory, in WAL mode, with migrations.
//!
//! It holds projects, runs, Claude Code sessions, the per-project message log and
//! dashboard sign-in sessions. Each write is one transaction, committed before the hub
//! acknowledges it, so killing the process at any instant loses nothing acknowledged:
//! with `journal_mode=WAL` a committed transaction is in the WAL file before `COMMIT`
//! returns, and the next open replays it (<https://www.sqlite.org/wal.html>).
//! `synchronous=NORMAL` keeps that guarantee for process crashes; only a power cut may
//! lose the newest transactions, never corrupt the file.
//!
//! The connection sits behind a std `Mutex`: every statement is short (the message log
//! appends one indexed row), so callers lock, run and unlock without awaiting, as in
//! mini-redis's `Db`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use rusqlite_migration::{M, Migrations};
use serde_json::value::RawValue;

use crate::protocol::{Output, ProjectState, RunStatus, Stream};
use crate::support::timestamp::format_ms;

mod client_tokens;
mod tasks;
pub use client_tokens::ClientTokenRow;
pub use tasks::{TaskRow, WorkerRow};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or migrated.
    #[error("cannot open store {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A statement failed.
    #[error("store query failed")]
    Sqlite(#[from] rusqlite::Error),
    /// A value could not be encoded as JSON for its column.
    #[error("cannot encode a stored value")]
    Encode(#[from] serde_json::Error),
}

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

/// How a run ended, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// How it ended.
    pub status: RunStatus,
    /// The process's exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// The Claude Code session id reported by the run.
    pub session_id: Option<String>,
    /// `total_cost_usd` from the `result` line, in US dollars.
    pub cost_usd: Option<f64>,
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
            duration_ms: None,
            num_turns: None,
            error,
        }
    }
}

/// Reads a name stored for an enum. An unknown one (written by a newer hub, or a damaged
/// row) is logged and read as `fallback`, chosen per column so that the row is looked at
/// again rather than lost: a project reads as `failed`, a task as `pending`.
pub(crate) fn stored<T>(name: &str, fallback: T) -> T
where
    T: std::str::FromStr<Err = crate::protocol::UnknownName> + std::fmt::Debug,
{
    name.parse()
        .unwrap_or_else(|err: crate::protocol::UnknownName| {
            tracing::warn!(error = %err, fallback = ?fallback, "unknown name in the store");
            fallback
        })
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

/// The handle to the SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE projects (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            path TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'idle',
            reason TEXT,
            session_id TEXT,
            last_seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            prompt TEXT NOT NULL,
            resumed_session TEXT,
            started_at INTEGER NOT NULL,
            ended_at INTEGER,
            status TEXT NOT NULL,
            pgid INTEGER,
            exit_code INTEGER,
            session_id TEXT,
            cost_usd REAL,
            duration_ms INTEGER,
            num_turns INTEGER,
            error TEXT
        );
        CREATE INDEX runs_by_status ON runs(status);
        CREATE INDEX runs_by_project ON runs(project_id, started_at);
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            created_at INTEGER NOT NULL,
            last_used_at INTEGER NOT NULL,
            runs INTEGER NOT NULL DEFAULT 0,
            total_cost_usd REAL NOT NULL DEFAULT 0
        );
        CREATE TABLE messages (
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            run_id TEXT,
            stream TEXT NOT NULL,
            kind TEXT NOT NULL,
            is_json INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (project_id, seq)
        );
        CREATE INDEX messages_by_time ON messages(project_id, ts);
        CREATE TABLE dashboard_sessions (
            hash BLOB PRIMARY KEY,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );",
        ),
        // The coordinator (src/storage/sqlite/tasks.rs): tasks, workers, per-project settings.
        M::up(
            "CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL UNIQUE,
            title TEXT NOT NULL,
            type TEXT,
            context TEXT,
            prompt TEXT,
            acceptance TEXT,
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'pending',
            worker_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            failures TEXT NOT NULL DEFAULT '[]',
            report TEXT,
            completed_by TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX tasks_by_project ON tasks(project_id, seq);
        CREATE INDEX tasks_by_state ON tasks(state);
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            capabilities TEXT NOT NULL DEFAULT '[]',
            project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
            status TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL
        );
        CREATE TABLE coordination (
            project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
            agent_workers INTEGER NOT NULL DEFAULT 0
        );",
        ),
        // Client tokens (src/storage/sqlite/client_tokens.rs).
        M::up(client_tokens::MIGRATION),
    ])
}

/// WAL pages (4 KiB each) after which a commit checkpoints the log into the database:
/// 16,384 pages, 64 MiB. SQLite's default of 1,000 made a checkpoint, with its two
/// fsyncs, every few hundred output lines; a commit's durability does not depend on it
/// (with `synchronous = NORMAL` in WAL mode a commit survives a crash of the process,
/// and a crash of the system may lose the last commits, but never corrupts;
/// <https://www.sqlite.org/pragma.html#pragma_synchronous>).
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// Bytes the WAL file is truncated to after a checkpoint, so a burst does not leave a
/// large file behind (<https://www.sqlite.org/pragma.html#pragma_journal_size_limit>).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The database file in the data directory.
pub const DATABASE_FILE: &str = "hub.sqlite3";

impl Store {
    /// Opens (creating if needed) `<data_dir>/hub.sqlite3` and applies pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Open`] when the directory or file cannot be created, the file is not
    /// a database, or a migration fails.
    ///
    /// The directory is created with mode 0700 and the database file with mode 0600
    /// before SQLite opens it; SQLite gives its `-wal`, `-shm` and `-journal` files the
    /// database file's mode ([`crate::support::file_modes`]), so all of them stay private whatever
    /// the umask.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DATABASE_FILE);
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.clone(),
            source,
        };
        crate::support::file_modes::create_private_dir(data_dir)
            .map_err(|err| open_err(err.into()))?;
        crate::support::file_modes::create_private_file(&path)
            .map_err(|err| open_err(err.into()))?;
        let mut conn = Connection::open(&path).map_err(|err| open_err(err.into()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES))
            .and_then(|()| conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT))
            .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
            .map_err(|err| open_err(err.into()))?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|err| open_err(err.into()))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every write is one
        // transaction), so a poisoned lock is still safe to use.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checkpoints the WAL into the main file; called at shutdown so the next start opens
    /// a compact file.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    // ---- projects ----

    /// Inserts a project.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], including a UNIQUE violation when the path is taken.
    pub fn insert_project(&self, row: &ProjectRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO projects (id, name, path, created_at, state, session_id, last_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.id,
                row.name,
                row.path.to_string_lossy(),
                row.created_at,
                row.state.as_str(),
                row.session_id,
                row.last_seq as i64
            ],
        )?;
        Ok(())
    }

    /// Deletes a project with its runs, sessions and log. Returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn delete_project(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM projects WHERE id = ?1", [id])?
            > 0)
    }

    /// Every project, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, name, path, created_at, state, reason, session_id, last_seq
             FROM projects ORDER BY created_at, id",
        )?;
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
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a project's state and the reason for it.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn set_project_state(
        &self,
        id: &str,
        state: ProjectState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE projects SET state = ?2, reason = ?3 WHERE id = ?1",
            params![id, state.as_str(), reason],
        )?;
        Ok(())
    }

    /// Sets (or with `None`, forgets) the session the next run resumes, and records the
    /// session itself.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn set_session(
        &self,
        project_id: &str,
        session_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE projects SET session_id = ?2 WHERE id = ?1",
            params![project_id, session_id],
        )?;
        if let Some(session_id) = session_id {
            tx.execute(
                "INSERT INTO sessions (id, project_id, created_at, last_used_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT(id) DO UPDATE SET last_used_at = excluded.last_used_at",
                params![session_id, project_id, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    // ---- runs ----

    /// Records a started run.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn insert_run(
        &self,
        run_id: &str,
        project_id: &str,
        prompt: &str,
        resumed_session: Option<&str>,
        started_at: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO runs (id, project_id, prompt, resumed_session, started_at, status)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
            params![run_id, project_id, prompt, resumed_session, started_at],
        )?;
        Ok(())
    }

    /// Records the process group of a run, so that a crash can be cleaned up later.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn set_run_pgid(&self, run_id: &str, pgid: i32) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE runs SET pgid = ?2 WHERE id = ?1",
            params![run_id, pgid],
        )?;
        Ok(())
    }

    /// Records how a run ended and adds its cost to its session.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn finish_run(
        &self,
        run_id: &str,
        outcome: &RunOutcome,
        ended_at: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
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
            tx.execute(
                "UPDATE sessions SET runs = runs + 1, total_cost_usd = total_cost_usd + ?2,
                     last_used_at = ?3 WHERE id = ?1",
                params![session_id, outcome.cost_usd.unwrap_or(0.0), ended_at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Runs still marked `running`: at start, these were orphaned by a crash.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        let conn = self.conn();
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
    }

    /// A run's recorded status, for tests and the CLI.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn run_status(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT status FROM runs WHERE id = ?1", [run_id], |row| {
                row.get(0)
            })
            .optional()?)
    }

    // ---- message log ----

    /// Appends a line to a project's log and returns its seq, the project's `last_seq + 1`.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`]; `QueryReturnedNoRows` when the project does not exist.
    pub fn append(&self, project_id: &str, line: &NewLine<'_>) -> Result<u64, StoreError> {
        Ok(self
            .append_all(project_id, std::slice::from_ref(line))?
            .start)
    }

    /// Appends lines to a project's log in one transaction (one commit, one WAL sync
    /// point, for all of them) and returns their seqs: consecutive, from the project's
    /// `last_seq + 1`, in the order given. Either every line is stored or none is. An
    /// empty slice touches nothing and returns an empty range.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`]; `QueryReturnedNoRows` when the project does not exist.
    pub fn append_all(
        &self,
        project_id: &str,
        lines: &[NewLine<'_>],
    ) -> Result<std::ops::Range<u64>, StoreError> {
        if lines.is_empty() {
            return Ok(0..0);
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let last: i64 = tx
            .prepare_cached(
                "UPDATE projects SET last_seq = last_seq + ?2 WHERE id = ?1 RETURNING last_seq",
            )?
            .query_row(params![project_id, lines.len() as i64], |row| row.get(0))?;
        let first = last - lines.len() as i64 + 1;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (project_id, seq, ts, run_id, stream, kind, is_json, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (seq, line) in (first..).zip(lines) {
                insert.execute(params![
                    project_id,
                    seq,
                    line.ts,
                    line.run_id,
                    line.stream.as_str(),
                    line.kind,
                    line.is_json,
                    line.body
                ])?;
            }
        }
        tx.commit()?;
        Ok(first as u64..last as u64 + 1)
    }

    /// A page of a project's log, ascending by seq.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn messages(&self, query: &MessageQuery) -> Result<MessagePage, StoreError> {
        let mut sql = String::from(
            "SELECT seq, ts, run_id, stream, kind, is_json, body FROM messages WHERE project_id = ?",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![query.project_id.clone().into()];
        if let Some(after) = query.after_seq {
            sql.push_str(" AND seq > ?");
            args.push((after as i64).into());
        }
        if let Some(before) = query.before_seq {
            sql.push_str(" AND seq < ?");
            args.push((before as i64).into());
        }
        if let Some(since) = query.since {
            sql.push_str(" AND ts >= ?");
            args.push(since.into());
        }
        if let Some(until) = query.until {
            sql.push_str(" AND ts < ?");
            args.push(until.into());
        }
        if !query.kinds.is_empty() {
            sql.push_str(" AND kind IN (");
            sql.push_str(&vec!["?"; query.kinds.len()].join(","));
            sql.push(')');
            args.extend(query.kinds.iter().map(|kind| kind.clone().into()));
        }
        // Paging backwards (scrolling up) takes the newest lines below `before_seq`.
        let descending = query.before_seq.is_some() && query.after_seq.is_none();
        sql.push_str(if descending {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq ASC"
        });
        sql.push_str(" LIMIT ?");
        args.push((i64::from(query.limit) + 1).into());

        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        let mut messages = Vec::new();
        let mut bytes = 0usize;
        let mut has_more = false;
        while let Some(row) = rows.next()? {
            if messages.len() == query.limit as usize
                || (bytes >= query.max_bytes && !messages.is_empty())
            {
                has_more = true;
                break;
            }
            let body: String = row.get(6)?;
            bytes += body.len();
            messages.push(to_output(&query.project_id, row, body)?);
        }
        if descending {
            messages.reverse();
        }
        Ok(MessagePage { messages, has_more })
    }

    /// Deletes lines beyond the newest `max_lines` per project and lines older than
    /// `older_than` (epoch ms). Zero disables each rule. Returns the number deleted.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn prune(&self, max_lines: u64, older_than: Option<i64>) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut deleted = 0;
        if max_lines > 0 {
            deleted += tx.execute(
                "DELETE FROM messages WHERE rowid IN (
                     SELECT m.rowid FROM messages m JOIN projects p ON p.id = m.project_id
                     WHERE m.seq <= p.last_seq - ?1)",
                [max_lines as i64],
            )?;
        }
        if let Some(cutoff) = older_than {
            deleted += tx.execute("DELETE FROM messages WHERE ts < ?1", [cutoff])?;
        }
        tx.commit()?;
        Ok(deleted)
    }

    // ---- dashboard sessions ----

    /// Stores a dashboard session's hash.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn insert_dashboard_session(
        &self,
        hash: &[u8; 32],
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM dashboard_sessions WHERE expires_at < ?1",
            [now],
        )?;
        conn.execute(
            "INSERT INTO dashboard_sessions (hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
            params![hash.as_slice(), now, expires_at],
        )?;
        Ok(())
    }

    /// Uses a dashboard session: when an unexpired session has this hash, moves its
    /// expiry to `now + lifetime_ms` (the sliding lifetime) and returns true.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn use_dashboard_session(
        &self,
        hash: &[u8; 32],
        now: i64,
        lifetime_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE dashboard_sessions SET expires_at = ?3 WHERE hash = ?1 AND expires_at > ?2",
            params![hash.as_slice(), now, now.saturating_add(lifetime_ms)],
        )?;
        Ok(changed == 1)
    }

    /// Deletes the dashboard session with this hash (a sign-out); returns whether there
    /// was one.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn delete_dashboard_session(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let deleted = self.conn().execute(
            "DELETE FROM dashboard_sessions WHERE hash = ?1",
            params![hash.as_slice()],
        )?;
        Ok(deleted == 1)
    }

    /// Deletes every dashboard session (sign out everywhere); returns how many were
    /// still live at `now`.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn delete_dashboard_sessions(&self, now: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let live: i64 = tx.query_row(
            "SELECT COUNT(*) FROM dashboard_sessions WHERE expires_at > ?1",
            [now],
            |row| row.get(0),
        )?;
        tx.execute("DELETE FROM dashboard_sessions", [])?;
        tx.commit()?;
        Ok(usize::try_from(live).unwrap_or(0))
    }

    /// Whether an unexpired dashboard session has this hash. The lookup is by primary key
    /// on a SHA-256 of a 256-bit secret, so its timing reveals nothing usable.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn dashboard_session_valid(&self, hash: &[u8; 32], now: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM dashboard_sessions WHERE hash = ?1 AND expires_at > ?2",
                params![hash.as_slice(), now],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

fn to_output(
    project_id: &str,
    row: &rusqlite::Row<'_>,
    body: String,
) -> Result<Output, rusqlite::Error> {
    let stream_name: String = row.get(3)?;
    let is_json: bool = row.get(5)?;
    let (event, text) = if is_json {
        match RawValue::from_string(body) {
            Ok(raw) => (Some(raw), None),
            Err(_) => (None, Some(String::from("<unreadable stored line>"))),
        }
    } else {
        (None, Some(body))
    };
    Ok(Output {
        project_id: project_id.to_string(),
        seq: row.get::<_, i64>(0)? as u64,
        ts: format_ms(row.get(1)?),
        run_id: row.get(2)?,
        stream: stored(&stream_name, Stream::Stdout),
        kind: row.get(4)?,
        event,
        text,
    })
}

#[cfg(test)]
mod tests;
