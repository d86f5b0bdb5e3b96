//! The `tracing` subscriber that binaries install: human-readable lines on stderr and
//! JSON lines in a daily-rotated file in the log directory (seven files kept).
//!
//! Libraries never install a subscriber; this module is for `main` functions only.
//! Fields are structured (`conn_id`, `run_id`, `project_id`) and no secret is ever
//! logged.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::RollingFileAppender;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

use crate::support::file_modes::{Repaired, create_private_dir, restrict};

/// How often the log writer takes group and other permissions away from new files.
const RESTRICT_EVERY: Duration = Duration::from_secs(60);

/// Installs the subscriber. Keep the guard alive until exit so the file is flushed.
/// With `log_dir` `None`, or when the directory cannot be created, logs go to stderr only.
///
/// Logs hold project paths, prompts and agent output, so the log directory is created
/// with mode 0700 and the log files are made 0600 (tracing-appender creates them with
/// the umask's mode): existing ones at start, each repair logged, and a file opened at
/// rotation within a minute of its first line, while the 0700 directory keeps it out of
/// other users' reach meanwhile.
pub fn init(filter: &str, log_dir: Option<&Path>) -> Option<WorkerGuard> {
    let stderr_layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(EnvFilter::new(filter));
    let mut repaired = Vec::new();
    let appender = log_dir.and_then(|dir| {
        create_private_dir(dir).ok()?;
        repaired = restrict_logs(dir);
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix(LOG_PREFIX)
            .filename_suffix("log")
            .max_log_files(7)
            .build(dir)
            .ok()?;
        // The file the appender just opened, if it is new.
        restrict_logs(dir);
        Some(PrivateLogs {
            inner: appender,
            dir: dir.to_path_buf(),
            next_restrict: Instant::now() + RESTRICT_EVERY,
        })
    });
    let guard = match appender {
        Some(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file_layer = fmt::layer()
                .json()
                .with_writer(writer)
                .with_filter(EnvFilter::new(filter));
            tracing_subscriber::registry()
                .with(stderr_layer)
                .with(file_layer)
                .init();
            Some(guard)
        }
        None => {
            tracing_subscriber::registry().with(stderr_layer).init();
            None
        }
    };
    for fixed in repaired {
        tracing::warn!(
            path = %fixed.path.display(),
            from = format_args!("{:o}", fixed.from),
            to = format_args!("{:o}", fixed.to),
            "repaired permissions: other users could read this; now owner only"
        );
    }
    guard
}

/// The log files' name prefix: `hub.YYYY-MM-DD.log`.
const LOG_PREFIX: &str = "hub";

/// Takes group and other permissions away from the log directory and the hub's log
/// files in it (only those, in case the directory is shared). Errors are ignored: a log
/// file that cannot be changed must not stop logging.
fn restrict_logs(dir: &Path) -> Vec<Repaired> {
    let mut repaired = restrict(dir, false).unwrap_or_default();
    let prefix = format!("{LOG_PREFIX}.");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            repaired.extend(restrict(&entry.path(), false).unwrap_or_default());
        }
    }
    repaired
}

/// The rolling appender, with the modes of the files it opens at rotation tightened on
/// the writer's own thread (it never logs, which would feed back into itself).
struct PrivateLogs {
    inner: RollingFileAppender,
    dir: PathBuf,
    next_restrict: Instant,
}

impl Write for PrivateLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        let now = Instant::now();
        if now >= self.next_restrict {
            restrict_logs(&self.dir);
            self.next_restrict = now + RESTRICT_EVERY;
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
