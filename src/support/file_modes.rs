//! Private file modes: the hub's directories are 0700 and its files 0600, whatever the
//! umask of the process that started it.
//!
//! The data directory holds agent output, prompts, tasks and client-token hashes, and a
//! token hash is the key of the signature proof (docs/security.md), so another local user
//! who could read it could pass for the hub. The modes are set explicitly rather than
//! through a process-wide `umask(077)`: agent runs inherit the hub's umask, and the files
//! an agent writes into the user's project should get the user's usual modes.
//!
//! - Directories are created with `DirBuilder::mode(0o700)`; files with
//!   `OpenOptions::mode(0o600)` or `tempfile` (0600). A umask only ever removes bits, so
//!   these modes survive any umask.
//! - SQLite gives its `-wal`, `-shm` and `-journal` files the mode of the database file
//!   itself and `fchmod`s them to it, ignoring the umask (`findCreateFileMode` and
//!   `unixOpenSharedMemory` in SQLite's `os_unix.c`), so [`create_private_file`] on the
//!   database before SQLite opens it covers all of them.
//! - What an older version or a wider umask left behind is repaired at start
//!   ([`restrict`]), and the caller logs each repair.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of the hub's directories: owner only.
pub const DIR_MODE: u32 = 0o700;

/// The mode of the hub's files: owner read and write only.
pub const FILE_MODE: u32 = 0o600;

/// The permission bits of group and others, which the hub's files never keep.
const SHARED_BITS: u32 = 0o077;

/// The sticky bit (restricted deletion), the mark of a directory shared on purpose.
const STICKY: u32 = 0o1000;

/// One mode the hub tightened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The file or directory.
    pub path: PathBuf,
    /// Its permission bits before (e.g. `0o644`).
    pub from: u32,
    /// Its permission bits after (e.g. `0o600`).
    pub to: u32,
}

/// Creates `dir` and any missing parents with mode 0700.
///
/// # Errors
/// The I/O error of `mkdir`.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Creates `path` empty with mode 0600 if it does not exist; an existing file is left
/// as it is (see [`restrict`]).
///
/// # Errors
/// The I/O error of `open`.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map(drop)
}

/// Removes the group and other permission bits of `path` (not following a symlink),
/// and of everything under it when `recursive` and it is a directory. Skipped: a path
/// that does not exist, a symlink, anything owned by another user (not ours to change),
/// and a sticky directory such as `/tmp` (shared by design, should a data directory ever
/// be pointed there). Returns what it changed, for the caller to log.
///
/// # Errors
/// The first I/O error reading or changing a mode.
pub fn restrict(path: &Path, recursive: bool) -> io::Result<Vec<Repaired>> {
    let mut repaired = Vec::new();
    restrict_into(path, recursive, &mut repaired)?;
    Ok(repaired)
}

fn restrict_into(path: &Path, recursive: bool, repaired: &mut Vec<Repaired>) -> io::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    if metadata.file_type().is_symlink() || metadata.uid() != nix::unistd::geteuid().as_raw() {
        return Ok(());
    }
    let from = metadata.permissions().mode() & 0o7777;
    // A sticky directory (`/tmp`) is shared by design: never close it to others.
    let shared_by_design = metadata.is_dir() && from & STICKY != 0;
    if from & SHARED_BITS != 0 && !shared_by_design {
        let to = from & !SHARED_BITS;
        std::fs::set_permissions(path, Permissions::from_mode(to))?;
        repaired.push(Repaired {
            path: path.to_path_buf(),
            from,
            to,
        });
    }
    if recursive && metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            restrict_into(&entry?.path(), true, repaired)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn restrict_clears_group_and_other_bits_only_and_skips_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        create_private_dir(&dir.join("sub")).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("sub/file");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o664)).unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "y").unwrap();
        std::fs::set_permissions(&outside, Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();

        let repaired = restrict(&dir, true).unwrap();
        assert_eq!(
            repaired,
            vec![
                Repaired {
                    path: dir.clone(),
                    from: 0o755,
                    to: 0o700
                },
                Repaired {
                    path: file.clone(),
                    from: 0o664,
                    to: 0o600
                },
            ]
        );
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&outside), 0o644, "a symlink's target is not touched");
        assert!(restrict(&dir, true).unwrap().is_empty());
        assert!(
            restrict(&root.path().join("missing"), true)
                .unwrap()
                .is_empty()
        );

        let sticky = root.path().join("shared");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, Permissions::from_mode(0o1777)).unwrap();
        assert!(restrict(&sticky, false).unwrap().is_empty());
        assert_eq!(mode(&sticky), 0o1777);

        // Another user's file (only root can make one to test with).
        if nix::unistd::geteuid().is_root() {
            let theirs = dir.join("theirs");
            std::fs::write(&theirs, "z").unwrap();
            std::fs::set_permissions(&theirs, Permissions::from_mode(0o644)).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            assert!(restrict(&dir, true).unwrap().is_empty());
            assert_eq!(mode(&theirs), 0o644);
        }
    }

    #[test]
    fn a_private_file_is_created_0600_and_an_existing_one_kept() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("db");
        create_private_file(&path).unwrap();
        assert_eq!(mode(&path), FILE_MODE);
        std::fs::write(&path, "content").unwrap();
        create_private_file(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "content");
    }
}
