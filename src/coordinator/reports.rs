//! Report files, `<project>/reports/<task-id>.json`: where they live, their size limit,
//! and how their content is checked. Shared by the watcher and by the coordinator, which
//! reads an agent's own report when its run ends.

use crate::protocol::coordination::ReportFile;

/// The largest report file read, in bytes.
pub const MAX_REPORT_BYTES: u64 = 1024 * 1024;
/// The folder, inside a project, that holds report files.
pub const REPORTS_DIR: &str = "reports";

/// Why a report file cannot be used; the text goes to `task.report_invalid`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    /// The file is over [`MAX_REPORT_BYTES`].
    #[error("the file is larger than 1 MiB")]
    TooLarge,
    /// The JSON does not have the report's shape.
    #[error("not a valid report: {0}")]
    Parse(#[source] serde_json::Error),
    /// `task_id` in the file is not the one in its name.
    #[error("task_id {found:?} in the file does not match its name {expected:?}")]
    Mismatch {
        /// From the file name.
        expected: String,
        /// From the content.
        found: String,
    },
    /// A score that is not a finite number.
    #[error("score must be a finite number")]
    Score,
}

/// Parses and checks a report file's content for the task its name gives.
///
/// # Errors
/// [`ReportError::Parse`], [`ReportError::Mismatch`] or [`ReportError::Score`].
pub fn parse_report(bytes: &[u8], task_id: &str) -> Result<ReportFile, ReportError> {
    let report: ReportFile = serde_json::from_slice(bytes).map_err(ReportError::Parse)?;
    if let Some(found) = &report.task_id
        && found != task_id
    {
        return Err(ReportError::Mismatch {
            expected: task_id.to_string(),
            found: found.clone(),
        });
    }
    if report.score.is_some_and(|score| !score.is_finite()) {
        return Err(ReportError::Score);
    }
    Ok(report)
}

/// A task id: 1 to 128 characters from `A-Z a-z 0-9 . _ -`, not starting with `.`, so
/// that `reports/<id>.json` is a plain file name.
pub fn valid_task_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// What the hub knows about the task a report file is named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Queued or running in this project.
    Unfinished,
    /// Finished in this project.
    Finished,
    /// Not a task of this project.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_plain_file_names() {
        for ok in [
            "t1",
            "task-001",
            "a.b_c",
            "0190b2c4-8f3e-7abc-9def-0123456789ab",
        ] {
            assert!(valid_task_id(ok), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", "é", &"x".repeat(129)] {
            assert!(!valid_task_id(bad), "{bad}");
        }
    }
}
