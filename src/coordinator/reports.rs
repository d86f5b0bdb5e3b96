//! Report files, `<project>/reports/<task-id>.json`: where they live, their size limit,
//! how they are read and how their content is checked. Shared by the watcher and by the
//! coordinator, which reads an agent's own report when its run ends.
//!
//! Agents write these files, and an agent may follow instructions planted in what it
//! reads, so a report file is untrusted in its kind as well as its content:
//! [`read_report_file`] follows no symlink (neither `reports/` nor the file), opens
//! without blocking (a FIFO would otherwise block the reader for good), reads only a
//! regular file (by `fstat` on the open handle, so the check and the read are about the
//! same file) and reads at most [`MAX_REPORT_BYTES`] + 1 bytes whatever the file claims
//! (`/dev/zero` and files still growing report a small or false size). It blocks, so
//! async callers run it with `spawn_blocking`.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstatat};

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
    /// The file does not exist (any more).
    #[error("the file does not exist")]
    Missing,
    /// The name is not a regular file: a symlink, a FIFO, a device, a socket or a
    /// directory (named by the field). Only regular files are read.
    #[error("{0}, not a regular file")]
    NotAFile(&'static str),
    /// The project directory or its `reports/` is a symlink or not a directory (named by
    /// the field), so nothing in it is read.
    #[error("the project's folder or its reports/ folder is {0}; it must be a plain directory")]
    Folder(&'static str),
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

impl ReportError {
    /// Whether the name is a directory: not a report, and not worth reporting.
    pub fn is_directory(&self) -> bool {
        matches!(self, Self::NotAFile(kind) if *kind == DIRECTORY)
    }
}

const DIRECTORY: &str = "a directory";

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

/// Reads `<root>/reports/<name>`: a regular file of at most [`MAX_REPORT_BYTES`], reached
/// without following a symlink at `reports` or at `name`, and opened without blocking.
/// `name` is one path component (a file name from the folder's listing). Blocking: call
/// it from a blocking thread.
///
/// # Errors
/// [`ReportError::Missing`] when there is no such file (or no `reports/` folder),
/// [`ReportError::Folder`] when the project directory or `reports/` is a symlink or not
/// a directory, [`ReportError::NotAFile`] for anything but a regular file,
/// [`ReportError::TooLarge`], [`ReportError::Read`] for other I/O errors.
pub fn read_report_file(root: &Path, name: &str) -> Result<Vec<u8>, ReportError> {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let folder_error = |errno: Errno| match errno {
        Errno::ENOENT => ReportError::Missing,
        Errno::ELOOP => ReportError::Folder("a symbolic link"),
        Errno::ENOTDIR => ReportError::Folder("not a directory"),
        errno => ReportError::Read(errno.into()),
    };
    let root_dir = nix::fcntl::open(root, dir_flags, Mode::empty()).map_err(folder_error)?;
    let reports = openat(&root_dir, REPORTS_DIR, dir_flags, Mode::empty()).map_err(folder_error)?;
    // A look before opening, so that a device node is never even opened (opening some
    // has effects); the check that counts is the one on the handle below.
    let stat = fstatat(&reports, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(open_error)?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(ReportError::NotAFile(describe(kind)));
    }
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let file = File::from(openat(&reports, name, flags, Mode::empty()).map_err(open_error)?);
    let file_type = file.metadata().map_err(ReportError::Read)?.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_char_device() || file_type.is_block_device() {
            "a device"
        } else if file_type.is_dir() {
            DIRECTORY
        } else {
            "a special file"
        };
        return Err(ReportError::NotAFile(kind));
    }
    let mut bytes = Vec::new();
    file.take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReportError::Read)?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        return Err(ReportError::TooLarge);
    }
    Ok(bytes)
}

/// An `open`/`stat` error of the file as a [`ReportError`]: a symlink met with
/// `O_NOFOLLOW` is `ELOOP`.
fn open_error(errno: Errno) -> ReportError {
    match errno {
        Errno::ENOENT => ReportError::Missing,
        Errno::ELOOP => ReportError::NotAFile("a symbolic link"),
        errno => ReportError::Read(errno.into()),
    }
}

fn describe(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
        SFlag::S_IFDIR => DIRECTORY,
        SFlag::S_IFSOCK => "a socket",
        _ => "a special file",
    }
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

    #[test]
    fn only_regular_files_are_read_and_never_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(matches!(
            read_report_file(root, "t1.json"),
            Err(ReportError::Missing)
        ));
        let reports = root.join(REPORTS_DIR);
        std::fs::create_dir(&reports).unwrap();
        std::fs::write(reports.join("ok.json"), b"{}").unwrap();
        assert_eq!(read_report_file(root, "ok.json").unwrap(), b"{}");
        std::fs::write(
            reports.join("edge.json"),
            vec![b' '; MAX_REPORT_BYTES as usize],
        )
        .unwrap();
        assert_eq!(
            read_report_file(root, "edge.json").unwrap().len() as u64,
            MAX_REPORT_BYTES
        );
        std::fs::write(
            reports.join("big.json"),
            vec![b' '; MAX_REPORT_BYTES as usize + 1],
        )
        .unwrap();
        assert!(matches!(
            read_report_file(root, "big.json"),
            Err(ReportError::TooLarge)
        ));
        std::os::unix::fs::symlink("/dev/zero", reports.join("zero.json")).unwrap();
        std::os::unix::fs::symlink(reports.join("ok.json"), reports.join("link.json")).unwrap();
        for link in ["zero.json", "link.json"] {
            let err = read_report_file(root, link).unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
        nix::unistd::mkfifo(&reports.join("fifo.json"), Mode::S_IRWXU).unwrap();
        let err = read_report_file(root, "fifo.json").unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        std::fs::create_dir(reports.join("dir.json")).unwrap();
        assert!(
            read_report_file(root, "dir.json")
                .unwrap_err()
                .is_directory()
        );

        // reports/ itself a link to elsewhere: nothing in it is read.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("ok.json"), b"{}").unwrap();
        std::fs::rename(&reports, root.join("old")).unwrap();
        std::os::unix::fs::symlink(other.path(), &reports).unwrap();
        let err = read_report_file(root, "ok.json").unwrap_err();
        assert!(matches!(err, ReportError::Folder(_)), "{err}");
    }
}
