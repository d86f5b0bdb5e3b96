//! The reports folder watcher: a file `<project>/reports/<task-id>.json` completes that
//! task.
//!
//! Each project's directory and its `reports/` folder are watched with `notify` (inotify
//! on Linux, FSEvents on macOS) through `notify-debouncer-full`, which reports a file
//! only once it has been quiet for `coordination.report_debounce_ms`. The folder is also
//! scanned when the hub starts, when a project is added and when `reports/` appears, so
//! reports written while the hub was down are not lost.
//!
//! A file is read (at most 1 MiB, only a regular file, never through a symlink, on a
//! blocking thread; see [`read_report_file`]) and handled by what the hub knows of its
//! task:
//!
//! - a task of another project or of none: `task.report_unknown`, nothing else;
//! - a finished task: ignored, a duplicate (every start sees the old reports again);
//! - an unfinished task: the file is parsed as a
//!   [`crate::protocol::coordination::ReportFile`]. A valid report completes
//!   the task (or fails the attempt, for `"status": "failed"`). An invalid one may be
//!   half-written, so it is read again one debounce period later; only when its content
//!   has not changed in between is it reported with `task.report_invalid`, and the task
//!   is left as it was.
//!
//! A file is handled once per content (SHA-256), so repeated events and rescans do
//! nothing. Names starting with `.` and names not ending in `.json` (such as the
//! `<id>.json.tmp` an agent writes before renaming) are ignored.
//!
//! The watcher is a task that owns the debouncer and its bookkeeping; the rest of the
//! hub talks to it through [`Watch`], whose methods never wait. The debouncer runs a
//! thread that ticks every quarter debounce period whether or not a file changed, so it
//! exists only while a project is watched: created with the first, dropped with the
//! last (an idle hub without projects does not wake up for it). It talks to nothing but
//! the [`Coordinator`] handle.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::coordinator::Coordinator;
use crate::coordinator::ops::ReportOutcome;
use crate::coordinator::reports::{
    Known, REPORTS_DIR, ReportError, parse_report, read_report_file, valid_task_id,
};
use crate::protocol::coordination::{ReportInvalid, ReportUnknown};
use crate::protocol::ids::TaskId;

enum Command {
    Add { project_id: String, root: PathBuf },
    Remove { project_id: String },
}

/// The handle to the watcher task. Its methods queue a command and return at once.
///
/// The queue is unbounded so that they stay sync; it grows by one command per project
/// created or deleted, a request the connection awaits before it reads the next, so it
/// holds at most one command per connection (`limits.max_connections`) plus the
/// projects at start (`limits.max_projects`).
pub struct Watch {
    tx: mpsc::UnboundedSender<Command>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
}

impl Default for Watch {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Watch {
    /// Starts watching (and scans) a project's `reports/` folder.
    pub fn add_project(&self, project_id: &str, root: &str) {
        let _ = self.tx.send(Command::Add {
            project_id: project_id.to_string(),
            root: PathBuf::from(root),
        });
    }

    /// Stops watching a project.
    pub fn remove_project(&self, project_id: &str) {
        let _ = self.tx.send(Command::Remove {
            project_id: project_id.to_string(),
        });
    }
}

/// What the watcher task needs.
pub struct WatchParts {
    /// Where reports go.
    pub coordinator: Coordinator,
    /// `coordination.report_debounce_ms`.
    pub debounce: Duration,
    /// The registered projects: id and root.
    pub projects: Vec<(String, String)>,
    /// Owns the watcher task.
    pub tracker: TaskTracker,
    /// Ends it.
    pub shutdown: CancellationToken,
}

impl Watch {
    /// Starts the watcher task with every registered project; a second call does
    /// nothing. When the OS refuses a watcher the folders are still scanned at start and
    /// when projects are added.
    pub fn start(&self, parts: WatchParts) {
        let Some(commands) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let (events_tx, events) = mpsc::channel(256);
        for (project_id, root) in &parts.projects {
            self.add_project(project_id, root);
        }
        let watcher = Watcher {
            coordinator: parts.coordinator,
            debouncer: None,
            events_tx,
            debounce: parts.debounce,
            roots: HashMap::new(),
            watched_reports: HashSet::new(),
            seen: HashMap::new(),
            rechecks: BTreeSet::new(),
        };
        parts.tracker.spawn(
            watcher
                .run(commands, events, parts.shutdown)
                .instrument(info_span!(parent: None, "watch")),
        );
    }
}

/// What was last seen of a file, by content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Acted on (or deliberately ignored).
    Handled([u8; 32]),
    /// Unparsable; read again after a debounce period.
    Waiting([u8; 32]),
}

struct Watcher {
    coordinator: Coordinator,
    /// Only while `roots` is not empty.
    debouncer: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    /// Where the debouncer sends what it saw.
    events_tx: mpsc::Sender<DebounceEventResult>,
    debounce: Duration,
    /// Project root → project id.
    roots: HashMap<PathBuf, String>,
    /// `reports/` folders with a watch on them.
    watched_reports: HashSet<PathBuf>,
    seen: HashMap<PathBuf, Seen>,
    /// Files to read again, by due time.
    rechecks: BTreeSet<(Instant, PathBuf)>,
}

impl Watcher {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::Receiver<DebounceEventResult>,
        shutdown: CancellationToken,
    ) {
        loop {
            let next_recheck = self.rechecks.first().map(|(due, _)| *due);
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(command) = commands.recv() => match command {
                    Command::Add { project_id, root } => self.add(project_id, root).await,
                    Command::Remove { project_id } => self.remove(&project_id),
                },
                Some(result) = events.recv() => self.on_events(result).await,
                () = sleep_until(next_recheck) => {
                    let now = Instant::now();
                    while let Some((due, path)) = self.rechecks.first().cloned() {
                        if due > now {
                            break;
                        }
                        self.rechecks.remove(&(due, path.clone()));
                        self.consider(&path).await;
                    }
                }
            }
        }
    }

    /// Creates the debouncer if there is none. When the OS refuses a watcher there
    /// stays none, and the folders are still scanned when projects are added.
    fn ensure_debouncer(&mut self) {
        if self.debouncer.is_some() {
            return;
        }
        let events_tx = self.events_tx.clone();
        match new_debouncer(self.debounce, None, move |result: DebounceEventResult| {
            // The debouncer's own thread; waiting here only slows the debouncer down.
            let _ = events_tx.blocking_send(result);
        }) {
            Ok(debouncer) => self.debouncer = Some(debouncer),
            Err(err) => {
                warn!(error = %err, "cannot watch reports folders; they are only scanned when projects are added");
            }
        }
    }

    async fn add(&mut self, project_id: String, root: PathBuf) {
        self.ensure_debouncer();
        if let Some(debouncer) = &mut self.debouncer
            && let Err(err) = debouncer.watch(&root, RecursiveMode::NonRecursive)
        {
            warn!(error = %err, project_id, path = %root.display(), "cannot watch a project directory");
        }
        self.roots.insert(root.clone(), project_id);
        self.reports_dir_changed(&root.join(REPORTS_DIR)).await;
    }

    fn remove(&mut self, project_id: &str) {
        let roots: Vec<PathBuf> = self
            .roots
            .iter()
            .filter(|(_, id)| *id == project_id)
            .map(|(root, _)| root.clone())
            .collect();
        for root in roots {
            let reports = root.join(REPORTS_DIR);
            if let Some(debouncer) = &mut self.debouncer {
                let _ = debouncer.unwatch(&root);
                if self.watched_reports.contains(&reports) {
                    let _ = debouncer.unwatch(&reports);
                }
            }
            self.watched_reports.remove(&reports);
            self.seen.retain(|path, _| !path.starts_with(&reports));
            self.rechecks
                .retain(|(_, path)| !path.starts_with(&reports));
            self.roots.remove(&root);
        }
        if self.roots.is_empty() {
            // Dropping it stops its thread (after at most one tick) and the OS watch.
            self.debouncer = None;
        }
    }

    /// `reports/` appeared, vanished or was just registered: watch it and scan it.
    async fn reports_dir_changed(&mut self, reports: &Path) {
        // Not through a symlink: `reports/` must be the project's own folder, so a link
        // to elsewhere is neither watched nor scanned (and its files would not be read).
        let is_dir = tokio::fs::symlink_metadata(reports)
            .await
            .is_ok_and(|meta| meta.is_dir());
        if !is_dir {
            if self.watched_reports.remove(reports)
                && let Some(debouncer) = &mut self.debouncer
            {
                let _ = debouncer.unwatch(reports);
            }
            return;
        }
        if !self.watched_reports.contains(reports) {
            if let Some(debouncer) = &mut self.debouncer
                && let Err(err) = debouncer.watch(reports, RecursiveMode::NonRecursive)
            {
                warn!(error = %err, path = %reports.display(), "cannot watch a reports folder");
            }
            self.watched_reports.insert(reports.to_path_buf());
        }
        self.scan(reports).await;
    }

    async fn scan(&mut self, reports: &Path) {
        let mut entries = match tokio::fs::read_dir(reports).await {
            Ok(entries) => entries,
            Err(err) => {
                warn!(error = %err, path = %reports.display(), "cannot scan a reports folder");
                return;
            }
        };
        let mut files = BTreeSet::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            files.insert(entry.path());
        }
        if !files.is_empty() {
            debug!(path = %reports.display(), files = files.len(), "scanning reports");
        }
        for path in files {
            self.consider(&path).await;
        }
    }

    async fn on_events(&mut self, result: DebounceEventResult) {
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                for err in errors {
                    warn!(error = %err, "reports watcher error");
                }
                return;
            }
        };
        let mut dirs = BTreeSet::new();
        let mut files = BTreeSet::new();
        for event in events {
            if matches!(event.kind, EventKind::Access(_)) {
                continue;
            }
            for path in &event.paths {
                let Some(parent) = path.parent() else {
                    continue;
                };
                if self.roots.contains_key(parent) {
                    if path.file_name().is_some_and(|name| name == REPORTS_DIR) {
                        dirs.insert(path.clone());
                    }
                } else if parent.file_name().is_some_and(|name| name == REPORTS_DIR)
                    && parent
                        .parent()
                        .is_some_and(|root| self.roots.contains_key(root))
                {
                    files.insert(path.clone());
                }
            }
        }
        for dir in dirs {
            self.reports_dir_changed(&dir).await;
        }
        for path in files {
            self.consider(&path).await;
        }
    }

    /// Reads a file in a reports folder and acts on it.
    async fn consider(&mut self, path: &Path) {
        let Some(reports) = path.parent() else { return };
        let Some(project_id) = reports
            .parent()
            .and_then(|root| self.roots.get(root))
            .cloned()
        else {
            return;
        };
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            return;
        };
        let Some(task_id) = name.strip_suffix(".json") else {
            return;
        };
        if name.starts_with('.') {
            return;
        }
        let task_id = TaskId::from(task_id);
        let (root, file_name) = (reports.parent().map(Path::to_path_buf), name.to_string());
        let Some(root) = root else { return };
        let read = tokio::task::spawn_blocking(move || read_report_file(&root, &file_name));
        let bytes = match read.await {
            Ok(Err(ReportError::Missing)) => {
                self.seen.remove(path);
                return;
            }
            Ok(Err(err)) if err.is_directory() => {
                debug!(path = %path.display(), "a directory, not a report");
                return;
            }
            Ok(read) => read,
            Err(err) => Err(ReportError::Read(std::io::Error::other(err))),
        };
        let hash: [u8; 32] = match &bytes {
            Ok(bytes) => Sha256::digest(bytes).into(),
            Err(err) => Sha256::digest(err.to_string().as_bytes()).into(),
        };
        if self.seen.get(path) == Some(&Seen::Handled(hash)) {
            return;
        }
        let path_text = path.display().to_string();
        let span = info_span!("task", %task_id);
        async {
            let known = if valid_task_id(task_id.as_str()) {
                self.coordinator.known(&project_id, &task_id).await
            } else {
                Known::Unknown
            };
            let unknown = ReportUnknown {
                project_id: project_id.clone(),
                task_id: task_id.clone(),
                path: path_text.clone(),
            };
            match known {
                Known::Unknown => {
                    self.coordinator.report_unknown(unknown);
                    self.seen.insert(path.to_path_buf(), Seen::Handled(hash));
                    return;
                }
                Known::Finished => {
                    debug!(path = path_text, "report for a finished task ignored");
                    self.seen.insert(path.to_path_buf(), Seen::Handled(hash));
                    return;
                }
                Known::Unfinished => {}
            }
            match bytes.and_then(|bytes| parse_report(&bytes, task_id.as_str())) {
                Ok(report) => {
                    self.seen.insert(path.to_path_buf(), Seen::Handled(hash));
                    match self.coordinator.report(&project_id, &task_id, report).await {
                        ReportOutcome::Unknown => self.coordinator.report_unknown(unknown),
                        outcome => info!(path = path_text, outcome = ?outcome, "report applied"),
                    }
                }
                // Unchanged for a whole debounce period: this is what the writer meant.
                Err(err) if self.seen.get(path) == Some(&Seen::Waiting(hash)) => {
                    self.seen.insert(path.to_path_buf(), Seen::Handled(hash));
                    self.coordinator.report_invalid(ReportInvalid {
                        project_id,
                        task_id,
                        path: path_text,
                        reason: err.to_string(),
                    });
                }
                Err(err) => {
                    debug!(error = %err, path = path_text, "report not readable yet; reading it again later");
                    self.seen.insert(path.to_path_buf(), Seen::Waiting(hash));
                    self.rechecks
                        .insert((Instant::now() + self.debounce, path.to_path_buf()));
                }
            }
        }
        .instrument(span)
        .await;
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_validated_against_their_name() {
        let ok = parse_report(
            br#"{"status":"completed","summary":"done","deliverables":["a"]}"#,
            "t1",
        )
        .unwrap();
        assert_eq!(ok.deliverables.len(), 1);
        assert!(
            parse_report(
                br#"{"task_id":"t1","status":"failed","summary":"no"}"#,
                "t1"
            )
            .is_ok()
        );
        let err = |text: &[u8]| parse_report(text, "t1").unwrap_err().to_string();
        assert!(
            err(br#"{"task_id":"t2","status":"completed","summary":"x"}"#)
                .contains("does not match")
        );
        assert!(err(br#"{"status":"completed","summ"#).contains("not a valid report"));
        assert!(err(br#"{"status":"maybe","summary":"x"}"#).contains("unknown variant"));
        assert!(err(b"").contains("not a valid report"));
    }
}
