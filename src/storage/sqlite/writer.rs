//! The writer: one thread that owns the write connection and commits in groups.
//!
//! Writes arrive as jobs on a bounded channel ([`WRITE_QUEUE`] deep). The thread takes
//! the first job, then every job already waiting (up to [`MAX_GROUP`]), and runs them in
//! one `BEGIN IMMEDIATE … COMMIT`, each inside its own savepoint, so one job's error
//! rolls back that job alone. Only after `COMMIT` returns does any job's caller get its
//! answer: nothing is acknowledged before it is durable. A group costs one commit (one
//! WAL sync point) however many jobs it holds, which is what makes a stricter
//! `synchronous` setting affordable: the busier the hub, the larger the groups.
//!
//! A job is never long: operations that touch many rows (`task.create` of 10,000 rows,
//! deleting a project's log, retention) are split by their callers into jobs of at most
//! [`super::CHUNK_ROWS`] rows, so the jobs queued behind them wait for a chunk, not for
//! the whole operation.
//!
//! When its queue is idle (empty for [`IDLE`]), the thread indexes the output lines not
//! yet in the full-text index, one short transaction at a time
//! ([`super::search::index_chunk`]), and looks at the queue again between chunks: jobs
//! always come first, so a burst of writes is never slowed by indexing. Under writes
//! that never leave the queue idle for [`IDLE`], it still indexes one chunk whenever the
//! queue is empty and none was indexed for [`MAX_INDEX_LAG`], so the lines left to scan
//! by a search stay bounded.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Jobs that may wait for the writer before senders wait for room (backpressure).
pub(super) const WRITE_QUEUE: usize = 1024;
/// Most jobs committed together.
const MAX_GROUP: usize = 256;
/// How long the queue stays empty before the thread indexes output lines.
const IDLE: Duration = Duration::from_millis(20);
/// Longest time without indexing while lines wait for it and jobs keep coming.
const MAX_INDEX_LAG: Duration = Duration::from_secs(1);

/// What a job gives back once its group is committed (or failed): a sender of the
/// job's own result, with the commit's outcome.
type Deliver = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// How a job ended: `Ok`, or failed with (when SQLite said why) a copy of SQLite's
/// error, which the rest of its group is told when the failure rolled the whole
/// transaction back (SQLite does that for `SQLITE_FULL`, for instance).
type Outcome = Result<(), Option<rusqlite::Error>>;

/// A write: runs on the writer thread inside a savepoint, returns how it ended (its
/// savepoint is kept or rolled back) and how to deliver its answer after commit.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> (Outcome, Deliver) + Send>;

/// A copy of a SQLite failure (code and message), which `rusqlite::Error` cannot clone.
fn copy_failure(err: &StoreError) -> Option<rusqlite::Error> {
    match err {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
            Some(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        _ => None,
    }
}

/// The sending side of the writer's queue (`None` asks the thread to close the
/// connection and end). Cheap to clone.
#[derive(Clone)]
pub(super) struct WriterHandle {
    jobs: SyncSender<Option<Job>>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// Whether the thread indexes output lines when idle (on unless paused).
    indexing: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
}

impl WriterHandle {
    /// Wraps `f` into a job whose result goes to `reply` after the commit.
    pub(super) fn job<R: Send + 'static>(
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        reply: impl FnOnce(Result<R, StoreError>) + Send + 'static,
    ) -> Job {
        Box::new(move |conn| {
            let result = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
                Ok(result) => result,
                Err(_) => Err(StoreError::WriterGone),
            };
            let outcome = match &result {
                Ok(_) => Ok(()),
                Err(err) => Err(copy_failure(err)),
            };
            let deliver: Deliver = Box::new(move |commit| {
                reply(match (commit, result) {
                    (Ok(()), result) => result,
                    // The job failed on its own: its error says more than the commit's.
                    (Err(_), Err(err)) => Err(err),
                    (Err(err), Ok(_)) => Err(err),
                });
            });
            (outcome, deliver)
        })
    }

    /// Groups committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues a job without waiting; gives it back when the queue is full.
    pub(super) fn try_send(&self, job: Job) -> Result<(), Option<Job>> {
        match self.jobs.try_send(Some(job)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => Err(job),
            Err(TrySendError::Disconnected(_)) => Err(None),
        }
    }

    /// Queues a job, waiting for room. Blocks: only for threads off the runtime.
    pub(super) fn send_blocking(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .send(Some(job))
            .map_err(|_| StoreError::WriterGone)
    }

    /// Pauses (`false`) or resumes (`true`) the background indexing of output lines; a
    /// chunk being indexed finishes. Searches stay exact either way.
    pub(super) fn set_indexing(&self, on: bool) {
        self.indexing.store(on, Ordering::SeqCst);
        if on {
            // Wakes a thread waiting for a job with indexing paused: the empty job's
            // commit marks lines as waiting for indexing again.
            let _ = self.try_send(Self::job(|_| Ok(()), |_: Result<(), StoreError>| {}));
        }
    }

    /// Asks the thread to commit what is queued, close the connection and end, and
    /// waits until it has. Later writes fail with [`StoreError::WriterGone`]. Blocks.
    pub(super) fn close(&self) {
        let _ = self.jobs.send(None);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::warn!("the store writer panicked");
        }
    }
}

/// Starts the writer thread on an opened, migrated connection.
///
/// # Errors
/// The thread could not be spawned.
pub(super) fn start(conn: Connection) -> std::io::Result<WriterHandle> {
    let (jobs, queue) = std::sync::mpsc::sync_channel(WRITE_QUEUE);
    let commits = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&commits);
    let indexing = Arc::new(AtomicBool::new(true));
    let index = Indexer {
        on: Arc::clone(&indexing),
        // Lines stored before a restart may wait for indexing.
        pending: true,
        last: Instant::now(),
    };
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(conn, queue, index, &counted))?;
    Ok(WriterHandle {
        jobs,
        thread: Arc::new(Mutex::new(Some(thread))),
        indexing,
        commits,
    })
}

/// The writer thread's background indexing state.
struct Indexer {
    /// Shared with [`WriterHandle::set_indexing`].
    on: Arc<AtomicBool>,
    /// Lines may be waiting for indexing (set by every commit, cleared when a chunk
    /// comes back short).
    pending: bool,
    /// When a chunk was last indexed (or indexing last found nothing to do).
    last: Instant,
}

impl Indexer {
    fn wanted(&self) -> bool {
        self.pending && self.on.load(Ordering::SeqCst)
    }

    /// Indexes one chunk in a transaction of its own.
    fn step(&mut self, conn: &mut Connection) {
        self.last = Instant::now();
        let indexed = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)
            .and_then(|tx| {
                let more = super::search::index_chunk(&tx)?;
                tx.commit()?;
                Ok(more)
            });
        self.pending = match indexed {
            Ok(more) => more,
            Err(err) => {
                // Searches stay exact; the next commit retries.
                tracing::warn!(error = %err, "cannot index output lines");
                false
            }
        };
    }
}

/// The next job, indexing output lines meanwhile when the queue is idle; `None` when
/// asked to close or when every handle is dropped.
fn next_job(
    conn: &mut Connection,
    queue: &Receiver<Option<Job>>,
    index: &mut Indexer,
) -> Option<Job> {
    loop {
        match queue.try_recv() {
            Ok(job) => return job,
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        if !index.wanted() {
            return queue.recv().ok().flatten();
        }
        if index.last.elapsed() >= MAX_INDEX_LAG {
            index.step(conn);
            continue;
        }
        match queue.recv_timeout(IDLE) {
            Ok(job) => return job,
            Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => index.step(conn),
        }
    }
}

/// The writer loop; ends when asked to close or when every handle is dropped, and
/// closes the connection as it ends.
fn run(
    mut conn: Connection,
    queue: Receiver<Option<Job>>,
    mut index: Indexer,
    commits: &AtomicU64,
) {
    crate::support::blocking::mark_off_runtime();
    let mut closing = false;
    while !closing {
        let Some(first) = next_job(&mut conn, &queue, &mut index) else {
            break;
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(Some(job)) => group.push(job),
                Ok(None) => {
                    closing = true;
                    break;
                }
                Err(_) => break,
            }
        }
        commit_group(&mut conn, group, commits);
        if !index.pending {
            index.pending = true;
            index.last = Instant::now();
        }
    }
    if let Err((_, err)) = conn.close() {
        tracing::warn!(error = %err, "cannot close the store");
    }
}

/// Runs a group in one transaction and answers every job after the commit. A job that
/// cannot be started (no transaction, no savepoint) is dropped, and its caller's answer
/// channel closing tells it [`StoreError::WriterGone`]. When a job's failure rolls the
/// whole transaction back, the jobs before it are answered with that failure (nothing
/// of theirs is stored) and the jobs after it run in a group of their own.
fn commit_group(conn: &mut Connection, group: Vec<Job>, commits: &AtomicU64) {
    let mut rest = Vec::new();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(err) => {
            tracing::warn!(error = %err, jobs = group.len(), "store write not started");
            return;
        }
    };
    let mut deliveries: Vec<Deliver> = Vec::with_capacity(group.len());
    let mut lost = None;
    let mut jobs = group.into_iter();
    while let Some(job) = jobs.next() {
        if let Err(err) = tx.execute_batch("SAVEPOINT job") {
            tracing::warn!(error = %err, "store savepoint failed");
            continue;
        }
        let (outcome, deliver) = job(&tx);
        let failed = outcome.is_err();
        if let Err(cause) = outcome
            && tx.is_autocommit()
        {
            // SQLite rolled the whole transaction back: this job gets its own error.
            deliver(Ok(()));
            lost = Some(Arc::new(cause.unwrap_or(rusqlite::Error::InvalidQuery)));
            rest.extend(jobs);
            break;
        }
        let end = if failed {
            "ROLLBACK TO job; RELEASE job"
        } else {
            "RELEASE job"
        };
        if let Err(err) = tx.execute_batch(end) {
            tracing::warn!(error = %err, "store savepoint failed");
        }
        deliveries.push(deliver);
    }
    let commit = match lost {
        Some(cause) => {
            drop(tx);
            Err(cause)
        }
        None => tx.commit().map_err(Arc::new),
    };
    match &commit {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        Err(err) => tracing::warn!(error = %err, jobs = deliveries.len(), "store commit failed"),
    }
    for deliver in deliveries {
        deliver(
            commit
                .as_ref()
                .map(|_| ())
                .map_err(|err| StoreError::Commit(super::SharedError(Arc::clone(err)))),
        );
    }
    if !rest.is_empty() {
        commit_group(conn, rest, commits);
    }
}
