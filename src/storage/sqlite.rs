//! The store: one SQLite file in the data directory, in WAL mode, with migrations.
//!
//! It holds projects, runs, Claude Code sessions, the per-project message log,
//! dashboard sign-in sessions, the coordinator's tasks and workers, client tokens, and
//! the agents' usage per turn.
//!
//! # Design
//!
//! SQLite calls block, so none runs on a tokio worker thread:
//!
//! - **One writer thread** ([`writer`]) owns the write connection. Writes are jobs on a
//!   bounded queue; the thread commits what arrived together in one transaction (group
//!   commit), each job in its own savepoint, and answers every job only after `COMMIT`
//!   returns. Async callers await [`Store::write`], or queue with [`Store::submit`] and
//!   await the answer later (the coordinator queues its transitions' writes in order
//!   under its lock and awaits their commits after it, so they share groups); sync
//!   callers (start-up loads, on the blocking pool) block in [`Store::write_blocking`].
//! - **Read connections** ([`reads`]) serve replays and queries on the blocking pool
//!   ([`Store::read`]); in WAL mode they see the last commit and never wait for the writer.
//! - **Big operations** (`task.create` of up to 10,000 rows, deleting a project with its
//!   log, retention) run as jobs of at most [`CHUNK_ROWS`] rows, so a write queued behind
//!   them waits for a chunk, not for the whole operation.
//! - **The output's full-text index** ([`search`]) is kept off the write path: the
//!   writer thread indexes new lines in the background when its queue is idle, and a
//!   search also scans the lines not indexed yet, so it stays exact.
//!
//! The sync core (the SQL in [`projects`], [`messages`], [`tasks`], ...) asserts in
//! debug builds that it runs off the runtime ([`crate::support::blocking`]); the test
//! suites exercise it.
//!
//! # Durability
//!
//! Nothing is acknowledged before its commit: [`Store::write`] returns after the group
//! holding the job committed. With `journal_mode=WAL` a committed transaction is in the
//! WAL file before `COMMIT` returns, and the next open replays it
//! (<https://www.sqlite.org/wal.html>). By default ([`Durability::PowerCut`]) the store
//! runs `synchronous=FULL`: `COMMIT` returns only after the WAL is fsynced, so a commit
//! survives a power cut or a kernel crash too
//! (<https://www.sqlite.org/pragma.html#pragma_synchronous>). Group commit keeps that
//! affordable: one fsync per group, whatever the number of writes that arrived while the
//! previous group was being synced. [`Durability::ProcessCrash`]
//! (`storage.lose_acknowledged_writes_on_power_cut`) runs `synchronous=NORMAL`: no fsync
//! per commit, so a crash of the hub loses nothing acknowledged but a power cut may roll
//! back the newest commits (never corrupting the file). The power-cut campaign
//! (`tests/power_cut.rs`, on the `lazyfs` file system) holds both statements.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

mod client_tokens;
mod dashboard;
mod messages;
mod migrations;
mod projects;
mod reads;
mod rows;
mod search;
mod sessions;
mod tasks;
mod usage;
mod worktrees;
mod writer;
pub(crate) use crate::storage::credentials::stored;
pub use rows::{
    MessagePage, MessageQuery, NewLine, ProjectRow, RUN_PROMPT_CHARS, RunOutcome, RunSummary,
    UnfinishedRun,
};
pub use sessions::{QueuedRow, RuleRow};
pub use tasks::{CoordinationSnapshot, TaskRow, TaskWrite, WorkerRow, apply_task_writes};
pub use usage::{TurnRow, UsageQuery};
pub use worktrees::{OWNER_RUN, OWNER_TASK, WorktreeRow};

/// Rows one write job touches at most in a big operation (inserting tasks, deleting a
/// project's log, retention): about a few milliseconds of writer time each.
pub const CHUNK_ROWS: usize = 2_000;

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
    /// The group a write belonged to could not be committed (or another write's failure
    /// rolled it back); the write is not stored.
    #[error("store commit failed")]
    Commit(#[source] SharedError),
    /// A write not made because an earlier write it depends on failed (the
    /// coordinator's writes after a failed one, [`crate::coordinator`]).
    #[error("an earlier write this one depends on failed")]
    Fenced,
    /// The writer thread is gone (the hub is stopping) or a job panicked.
    #[error("the store writer stopped")]
    WriterGone,
    /// A blocking-pool task failed.
    #[error("store read task failed")]
    Join(#[from] tokio::task::JoinError),
    /// A value could not be encoded as JSON for its column.
    #[error("cannot encode a stored value")]
    Encode(#[from] serde_json::Error),
}

impl StoreError {
    /// A copy of this failure for the writes that failed because of it (a SQLite
    /// failure keeps its code, so a full disk is still found by
    /// [`crate::protocol::error::is_storage_full`]); [`StoreError::Fenced`] for the
    /// others.
    pub fn copy(&self) -> StoreError {
        match self {
            Self::Commit(shared) => Self::Commit(shared.clone()),
            Self::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
                Self::Commit(SharedError(Arc::new(rusqlite::Error::SqliteFailure(
                    *code,
                    message.clone(),
                ))))
            }
            _ => Self::Fenced,
        }
    }
}

/// A SQLite error shared by every write of a group that failed. Its source is the
/// SQLite error itself, so a cause such as `SQLITE_FULL` is found by walking the chain
/// ([`crate::error::is_storage_full`]).
#[derive(Debug, Clone)]
pub struct SharedError(pub Arc<rusqlite::Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the group's transaction failed")
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The handle to the SQLite store: the writer's queue and the read pool. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: writer::WriterHandle,
    readers: reads::Readers,
    durability: Durability,
}

/// What a write survives once the store acknowledged it (its group is committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A power cut or a kernel crash: SQLite `synchronous=FULL`, the WAL is fsynced
    /// before `COMMIT` returns. The default.
    #[default]
    PowerCut,
    /// A crash of the hub's process only: SQLite `synchronous=NORMAL`, no fsync per
    /// commit; a power cut may roll back the last commits. Chosen by
    /// `storage.lose_acknowledged_writes_on_power_cut = true`.
    ProcessCrash,
}

impl Durability {
    /// The SQLite `synchronous` setting that gives it: `FULL` or `NORMAL`.
    pub fn synchronous(self) -> &'static str {
        match self {
            Self::PowerCut => "FULL",
            Self::ProcessCrash => "NORMAL",
        }
    }
}

/// WAL pages (4 KiB each) after which a commit checkpoints the log into the database:
/// 16,384 pages, 64 MiB. SQLite's default of 1,000 made a checkpoint, with its two
/// fsyncs, every few hundred output lines; a commit's durability does not depend on it
/// (a commit is durable once its WAL frames are, see [`Durability`];
/// <https://www.sqlite.org/pragma.html#pragma_synchronous>).
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// Bytes the WAL file is truncated to after a checkpoint, so a burst does not leave a
/// large file behind (<https://www.sqlite.org/pragma.html#pragma_journal_size_limit>).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The database file in the data directory.
pub const DATABASE_FILE: &str = "hub.sqlite3";

/// The agents the projects of `<data_dir>/hub.sqlite3` run (`projects.agent`), read
/// without writing or migrating (the file opens read-only; a running hub may hold it).
/// Empty when there is no database yet.
///
/// # Errors
/// [`StoreError::Open`] when the file exists but cannot be opened, [`StoreError::Sqlite`]
/// when it cannot be read (for example a store no hub of this version has migrated yet).
pub fn agents_in_use(
    data_dir: &Path,
) -> Result<std::collections::BTreeSet<crate::protocol::agents::AgentKind>, StoreError> {
    let path = data_dir.join(DATABASE_FILE);
    if !path.exists() {
        return Ok(Default::default());
    }
    let conn = Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| StoreError::Open {
        path: path.clone(),
        source: err.into(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mut statement = conn.prepare("SELECT DISTINCT agent FROM projects")?;
    let names = statement.query_map([], |row| row.get::<_, String>(0))?;
    let mut agents = std::collections::BTreeSet::new();
    for name in names {
        if let Some(agent) = crate::protocol::agents::AgentKind::parse(&name?) {
            agents.insert(agent);
        }
    }
    Ok(agents)
}

impl Store {
    /// [`Store::open_with`] the default durability, [`Durability::PowerCut`].
    ///
    /// # Errors
    /// As [`Store::open_with`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, Durability::PowerCut)
    }

    /// Opens (creating if needed) `<data_dir>/hub.sqlite3` with the given durability and
    /// applies pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Open`] when the directory or file cannot be created, the file is not
    /// a database, or a migration fails.
    ///
    /// The directory is created with mode 0700 and the database file with mode 0600
    /// before SQLite opens it; SQLite gives its `-wal`, `-shm` and `-journal` files the
    /// database file's mode ([`crate::support::file_modes`]), so all of them stay private whatever
    /// the umask.
    pub fn open_with(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
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
            .and_then(|()| conn.pragma_update(None, "synchronous", durability.synchronous()))
            .and_then(|()| conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES))
            .and_then(|()| conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT))
            .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
            .map_err(|err| open_err(err.into()))?;
        migrations::migrations()
            .to_latest(&mut conn)
            .map_err(|err| open_err(err.into()))?;
        let writer = writer::start(conn).map_err(|err| open_err(err.into()))?;
        Ok(Self {
            writer,
            readers: reads::Readers::new(path.clone()),
            durability,
        })
    }

    /// What an acknowledged write survives.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Runs `f` on the writer thread, inside the next group's transaction, and returns
    /// its result once that group is committed. `f` must be short (at most
    /// [`CHUNK_ROWS`] rows): the group waits for it.
    ///
    /// # Errors
    /// `f`'s error (its changes are rolled back, the rest of the group is kept),
    /// [`StoreError::Commit`], or [`StoreError::WriterGone`].
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(f, move |result| {
            let _ = reply.send(result);
        })
        .await?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Queues `f` for the writer thread and returns as soon as it is queued (waiting for
    /// room on the blocking pool when the queue is full), without waiting for its
    /// commit: jobs run and commit in the order they were queued, so a caller that
    /// queues several in a row gets them into as few group commits as the writer can.
    /// `reply` gets `f`'s result once its group is committed (or failed); it runs on the
    /// writer thread, so it must be short and never block (send it on a channel).
    ///
    /// # Errors
    /// [`StoreError::WriterGone`] (`reply` is then dropped uncalled).
    pub async fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        reply: impl FnOnce(Result<R, StoreError>) + Send + 'static,
    ) -> Result<(), StoreError> {
        let job = writer::WriterHandle::job(f, reply);
        match self.writer.try_send(job) {
            Ok(()) => Ok(()),
            Err(None) => Err(StoreError::WriterGone),
            // The queue is full: wait for room on the blocking pool, not on a worker.
            Err(Some(job)) => {
                let writer = self.writer.clone();
                tokio::task::spawn_blocking(move || writer.send_blocking(job)).await?
            }
        }
    }

    /// Group commits made so far (each one `COMMIT`, so with [`Durability::PowerCut`]
    /// one fsync of the WAL), failed ones excluded.
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// [`Store::write`] for sync code off the runtime (start-up loads, which run on the
    /// blocking pool, and tests): blocks until the commit. Debug builds panic when it is
    /// called on a tokio worker thread ([`crate::support::blocking::assert_off_runtime`]).
    ///
    /// # Errors
    /// As [`Store::write`].
    pub fn write_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        crate::support::blocking::assert_off_runtime();
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job = writer::WriterHandle::job(f, move |result| {
            let _ = reply.send(result);
        });
        self.writer.send_blocking(job)?;
        answer.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` on a read connection on the calling thread, which must be off the
    /// runtime, as for [`Store::write_blocking`].
    ///
    /// # Errors
    /// `f`'s, or [`StoreError::Sqlite`] when no connection opens.
    pub fn read_blocking<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        crate::support::blocking::assert_off_runtime();
        f(&*self.readers.get()?)
    }

    /// Runs `f` on a read connection on the blocking pool.
    ///
    /// # Errors
    /// `f`'s, [`StoreError::Sqlite`] when no connection opens, [`StoreError::Join`].
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _off = crate::support::blocking::OffRuntime::enter();
            f(&*readers.get()?)
        })
        .await?
    }

    /// Closes the store at shutdown: the writer commits what is queued, closes its
    /// connection and ends; idle read connections close. Blocks until done, so the
    /// files are settled when it returns; call it off the runtime. Later writes fail
    /// with [`StoreError::WriterGone`].
    pub fn close(&self) {
        crate::support::blocking::assert_off_runtime();
        self.writer.close();
        self.readers.close_idle();
    }

    /// Checkpoints the WAL into the main file; called at shutdown so the next start opens
    /// a compact file. It cannot run inside the writer's group transaction, so it runs
    /// on a connection of its own; the writer holds no transaction open between groups.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.read_blocking(|conn| {
            conn.pragma_update(None, "query_only", "OFF")?;
            let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            conn.pragma_update(None, "query_only", "ON")?;
            Ok(checkpoint?)
        })
    }
}

#[cfg(test)]
mod tests;
