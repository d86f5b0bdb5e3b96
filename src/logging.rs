//! The `tracing` subscriber that binaries install: human-readable lines on stderr and
//! JSON lines in a daily-rotated file in the log directory (seven files kept).
//!
//! Libraries never install a subscriber; this module is for `main` functions only.
//! Fields are structured (`conn_id`, `run_id`, `project_id`) and no secret is ever
//! logged.

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Installs the subscriber. Keep the guard alive until exit so the file is flushed.
/// With `log_dir` `None`, or when the directory cannot be created, logs go to stderr only.
pub fn init(filter: &str, log_dir: Option<&Path>) -> Option<WorkerGuard> {
    let stderr_layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(EnvFilter::new(filter));
    let appender = log_dir.and_then(|dir| {
        std::fs::create_dir_all(dir).ok()?;
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("hub")
            .filename_suffix("log")
            .max_log_files(7)
            .build(dir)
            .ok()
    });
    match appender {
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
    }
}
