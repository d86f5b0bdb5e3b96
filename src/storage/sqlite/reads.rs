//! Read connections, and the rule that no SQLite call runs on a tokio worker thread.
//!
//! Reads (replays, pages, lookups) do not queue behind the writer: in WAL mode a reader
//! sees the last commit and never waits for the writer
//! (<https://www.sqlite.org/wal.html#concurrency>). Idle read connections wait in a small
//! pool; a read takes one (opening another when none is idle) and gives it back.
//!
//! Where store code may run: on the writer thread, on the blocking pool
//! ([`super::Store::read`], [`crate::support::blocking::off_runtime`]), or on a thread outside
//! any runtime (tests). The first two mark the thread
//! ([`crate::support::blocking`]); opening a read connection asserts the mark in debug
//! builds, so a test that reaches the sync core from a worker thread fails.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use crate::support::blocking::assert_off_runtime;

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 4;

/// The pool of idle read connections. Cheap to clone.
#[derive(Clone)]
pub(super) struct Readers {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// A read connection, back in the pool when dropped.
pub(super) struct Reader {
    conn: Option<Connection>,
    pool: Readers,
}

impl std::ops::Deref for Reader {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.pool.lock();
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

impl Readers {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The pool is a list of connections: a panic cannot leave it half-changed.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes the idle connections (at shutdown).
    pub(super) fn close_idle(&self) {
        self.lock().clear();
    }

    /// An idle read connection, or a new one.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] when a connection cannot be opened.
    pub(super) fn get(&self) -> Result<Reader, StoreError> {
        assert_off_runtime();
        let idle = self.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        Ok(Reader {
            conn: Some(conn),
            pool: self.clone(),
        })
    }
}

/// A connection that only reads: `query_only` refuses writes, so a read can never take
/// the write lock from the writer thread.
fn open_reader(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}
