//! Git operations for task isolation: a worktree per task, the hub's commit of an
//! agent's work, the diff against the base, merge and discard.
//!
//! Every operation runs the `git` command (found on `PATH`) as a child process through
//! `tokio::process`, so no tokio worker ever blocks on it. The command rather than
//! `gix` or `git2`: worktrees, `merge-tree --write-tree` (git 2.38 and later) and the
//! fast-forward of a checked-out branch are git's own features with git's own rules
//! (the user's config, attributes, ignore files, the safety checks of `merge`), which
//! neither library implements in full; and the repository is the user's, so the hub
//! treats it with the same tool the user does.
//!
//! The child gets the hub's environment without the `GIT_*` variables that would point
//! it at another repository (`GIT_DIR`, `GIT_WORK_TREE`, `GIT_INDEX_FILE`, ...), never
//! prompts (`GIT_TERMINAL_PROMPT=0`), and its standard input is closed. Commits the hub
//! makes skip hooks (`--no-verify`): they record what an agent wrote, unattended, and a
//! hook that asks or fails would leave the task's work uncommitted. When the repository
//! has no `user.name`/`user.email`, the hub's commits are by `Semantest Hub
//! <semantest-hub@localhost>`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::protocol::worktrees::{Diff, FileChange, MergeKind};

/// The identity of the hub's commits when the repository has none configured.
const FALLBACK_NAME: &str = "Semantest Hub";
/// See [`FALLBACK_NAME`].
const FALLBACK_EMAIL: &str = "semantest-hub@localhost";

/// Why a git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The directory is not inside a git repository (or git is missing).
    #[error("{0} is not in a git repository")]
    NotARepository(String),
    /// The `git` command could not be started.
    #[error("cannot run git")]
    Spawn(#[source] std::io::Error),
    /// A git command failed; the message is git's first line of error output.
    #[error("git {command} failed: {message}")]
    Failed {
        /// The subcommand, e.g. `worktree add`.
        command: String,
        /// What git said.
        message: String,
    },
    /// The merge would conflict; nothing was changed.
    #[error("the merge would conflict in {}", .0.join(", "))]
    Conflict(Vec<String>),
    /// The checkout of the base branch has uncommitted changes in files the merge would
    /// change; nothing was changed.
    #[error("uncommitted changes in {} would be overwritten", .0.join(", "))]
    Uncommitted(Vec<String>),
    /// The branch to merge into no longer exists.
    #[error("branch {0} does not exist")]
    NoBranch(String),
}

/// A command's captured result.
struct Output {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Output {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim_end().to_string()
    }
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args);
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_CEILING_DIRECTORIES",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `git -C dir args`, whatever its exit status.
async fn run(dir: &Path, args: &[&str]) -> Result<Output, GitError> {
    let out = command(dir, args).output().await.map_err(GitError::Spawn)?;
    Ok(Output {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Runs `git -C dir args` and fails unless it exits 0.
async fn ok(dir: &Path, args: &[&str]) -> Result<Output, GitError> {
    let out = run(dir, args).await?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(args, &out))
    }
}

fn failed(args: &[&str], out: &Output) -> GitError {
    let name: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message = stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no message")
        .to_string();
    GitError::Failed {
        command: name.join(" "),
        message,
    }
}

/// Where a directory sits in its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    /// The top of the working tree.
    pub toplevel: PathBuf,
    /// The directory's path below the top, `""` at the top, else ending in `/`.
    pub prefix: String,
    /// The commit `HEAD` points at.
    pub head: String,
    /// The branch checked out (`main`), or `None` on a detached `HEAD`.
    pub branch: Option<String>,
}

/// What `dir`'s repository has checked out.
///
/// # Errors
/// [`GitError::NotARepository`] when `dir` is not in a repository with a commit (or git
/// cannot run).
pub async fn repo_info(dir: &Path) -> Result<RepoInfo, GitError> {
    let not_repo = || GitError::NotARepository(dir.display().to_string());
    let out = run(
        dir,
        &["rev-parse", "--show-toplevel", "--show-prefix", "HEAD"],
    )
    .await
    .map_err(|_| not_repo())?;
    if !out.status.success() {
        return Err(not_repo());
    }
    let text = out.text();
    let mut lines = text.lines();
    let (Some(toplevel), prefix, Some(head)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(not_repo());
    };
    // `--show-prefix` prints an empty line at the top.
    let (prefix, head) = match head {
        "" => (String::new(), prefix.unwrap_or_default().to_string()),
        head => (prefix.unwrap_or_default().to_string(), head.to_string()),
    };
    let branch = run(dir, &["symbolic-ref", "-q", "--short", "HEAD"]).await?;
    Ok(RepoInfo {
        toplevel: PathBuf::from(toplevel),
        prefix,
        head,
        branch: branch.status.success().then(|| branch.text()),
    })
}

/// Whether `dir` is in a git repository with at least one commit.
pub async fn is_repository(dir: &Path) -> bool {
    repo_info(dir).await.is_ok()
}

/// The commit checked out at `dir`.
///
/// # Errors
/// [`GitError::Failed`] with git's reason.
pub async fn head_of(dir: &Path) -> Result<String, GitError> {
    Ok(ok(dir, &["rev-parse", "HEAD"]).await?.text())
}

/// Whether a local branch exists.
///
/// # Errors
/// [`GitError::Spawn`].
pub async fn branch_exists(repo: &Path, branch: &str) -> Result<bool, GitError> {
    let reference = format!("refs/heads/{branch}");
    let out = run(repo, &["show-ref", "--verify", "--quiet", &reference]).await?;
    Ok(out.status.success())
}

/// Adds a worktree at `path` on a new branch `branch` from `base`, or, when the branch
/// exists (a task run again, a worktree removed by retention), on that branch.
///
/// # Errors
/// [`GitError::Failed`] with git's reason.
pub async fn add_worktree(
    repo: &Path,
    path: &Path,
    branch: &str,
    base: &str,
) -> Result<(), GitError> {
    let path_text = path.to_string_lossy();
    // A worktree whose directory went away is still registered until pruned.
    ok(repo, &["worktree", "prune"]).await?;
    if branch_exists(repo, branch).await? {
        ok(repo, &["worktree", "add", "--quiet", &path_text, branch]).await?;
    } else {
        ok(
            repo,
            &["worktree", "add", "--quiet", "-b", branch, &path_text, base],
        )
        .await?;
    }
    Ok(())
}

/// Whether `path` is a worktree checked out on `branch`.
pub async fn is_worktree_on(path: &Path, branch: &str) -> bool {
    if !path.is_dir() {
        return false;
    }
    matches!(run(path, &["symbolic-ref", "-q", "--short", "HEAD"]).await,
             Ok(out) if out.status.success() && out.text() == branch)
}

/// The `-c user.name=… -c user.email=…` to pass when the repository has no identity.
async fn identity_args(dir: &Path) -> Vec<String> {
    let configured = |key: &'static str| async move {
        matches!(run(dir, &["config", "--get", key]).await,
                 Ok(out) if out.status.success() && !out.text().is_empty())
    };
    let mut args = Vec::new();
    if !configured("user.name").await {
        args.extend(["-c".to_string(), format!("user.name={FALLBACK_NAME}")]);
    }
    if !configured("user.email").await {
        args.extend(["-c".to_string(), format!("user.email={FALLBACK_EMAIL}")]);
    }
    args
}

/// Commits everything in the worktree (new, changed and deleted files, as `git add -A`
/// sees them, so `.gitignore` holds) with `message`. Returns the new commit, or `None`
/// when there was nothing to commit.
///
/// # Errors
/// [`GitError::Failed`] with git's reason.
pub async fn commit_all(worktree: &Path, message: &str) -> Result<Option<String>, GitError> {
    ok(worktree, &["add", "-A"]).await?;
    let staged = run(worktree, &["diff", "--cached", "--quiet"]).await?;
    if staged.status.success() {
        return Ok(None);
    }
    let mut args = identity_args(worktree).await;
    args.extend(
        ["commit", "--quiet", "--no-verify", "-m", message]
            .into_iter()
            .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(worktree, &args).await?;
    Ok(Some(ok(worktree, &["rev-parse", "HEAD"]).await?.text()))
}

/// The diff from `base` to `tip`, with the unified patch bounded to `max_patch` bytes
/// (read from git's output no further than that, so a huge diff costs no memory).
///
/// # Errors
/// [`GitError::Failed`] with git's reason.
pub async fn diff(repo: &Path, base: &str, tip: &str, max_patch: usize) -> Result<Diff, GitError> {
    let numstat = ok(repo, &["diff", "--numstat", "-z", "-M", base, tip]).await?;
    let mut files = Vec::new();
    let mut fields = numstat.stdout.split(|b| *b == 0).peekable();
    while let Some(entry) = fields.next() {
        if entry.is_empty() {
            continue;
        }
        let entry = String::from_utf8_lossy(entry);
        let mut parts = entry.splitn(3, '\t');
        let (added, removed) = (parts.next(), parts.next());
        let mut path = parts.next().unwrap_or_default().to_string();
        if path.is_empty() {
            // A rename: the old and new paths follow as their own fields.
            fields.next();
            path = fields
                .next()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
        }
        files.push(FileChange {
            path,
            added: added.and_then(|n| n.parse().ok()),
            removed: removed.and_then(|n| n.parse().ok()),
        });
    }
    let mut child = command(repo, &["diff", "-M", "--no-color", base, tip])
        .stderr(Stdio::null())
        .spawn()
        .map_err(GitError::Spawn)?;
    let mut patch = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(max_patch as u64 + 1)
            .read_to_end(&mut patch)
            .await
            .map_err(GitError::Spawn)?;
    }
    // Dropping the child kills it when the patch was cut short.
    let truncated = patch.len() > max_patch;
    if truncated {
        patch.truncate(max_patch);
        let end = patch.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        patch.truncate(end);
        let _ = child.start_kill();
    }
    let _ = child.wait().await;
    Ok(Diff {
        added: files.iter().filter_map(|f| f.added).sum(),
        removed: files.iter().filter_map(|f| f.removed).sum(),
        files,
        patch: String::from_utf8_lossy(&patch).into_owned(),
        truncated,
    })
}

/// A merge's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// Fast-forward, merge commit, or nothing to do.
    pub kind: MergeKind,
    /// The base branch's commit after the merge.
    pub commit: String,
}

/// The worktree (if any) where `branch` is checked out.
async fn checkout_of(repo: &Path, branch: &str) -> Result<Option<PathBuf>, GitError> {
    let list = ok(repo, &["worktree", "list", "--porcelain", "-z"]).await?;
    let wanted = format!("branch refs/heads/{branch}");
    let mut current: Option<PathBuf> = None;
    for field in list.stdout.split(|b| *b == 0) {
        let field = String::from_utf8_lossy(field);
        if let Some(path) = field.strip_prefix("worktree ") {
            current = Some(PathBuf::from(path));
        } else if field == wanted {
            return Ok(current);
        }
    }
    Ok(None)
}

/// Merges `branch` into `into`: a fast-forward when `into` has not moved since, else a
/// merge commit with `message`. Computed first without touching any checkout (`git
/// merge-tree --write-tree`), so a merge that would conflict is refused with the
/// conflicting files and changes nothing. When `into` is checked out somewhere, that
/// checkout is moved with `git merge --ff-only` to the result, which git refuses (and
/// the hub before it) when uncommitted changes there touch the files the merge changes.
///
/// # Errors
/// [`GitError::Conflict`], [`GitError::Uncommitted`], [`GitError::NoBranch`], or
/// [`GitError::Failed`].
pub async fn merge(
    repo: &Path,
    into: &str,
    branch: &str,
    message: &str,
) -> Result<Merged, GitError> {
    if !branch_exists(repo, into).await? {
        return Err(GitError::NoBranch(into.to_string()));
    }
    let into_ref = format!("refs/heads/{into}");
    let branch_ref = format!("refs/heads/{branch}");
    let base = ok(repo, &["rev-parse", "--verify", &into_ref])
        .await?
        .text();
    let tip = ok(repo, &["rev-parse", "--verify", &branch_ref])
        .await?
        .text();
    let is_ancestor = |a: String, b: String| async move {
        run(repo, &["merge-base", "--is-ancestor", &a, &b])
            .await
            .map(|out| out.status.success())
    };
    if is_ancestor(tip.clone(), base.clone()).await? {
        return Ok(Merged {
            kind: MergeKind::UpToDate,
            commit: base,
        });
    }
    let (kind, target) = if is_ancestor(base.clone(), tip.clone()).await? {
        (MergeKind::FastForward, tip.clone())
    } else {
        let tree = run(
            repo,
            &[
                "merge-tree",
                "--write-tree",
                "--name-only",
                "--no-messages",
                &base,
                &tip,
            ],
        )
        .await?;
        let text = tree.text();
        let mut lines = text.lines();
        let tree_id = lines.next().unwrap_or_default().to_string();
        match tree.status.code() {
            Some(0) => {}
            Some(1) => {
                let mut files: Vec<String> = lines
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                files.dedup();
                return Err(GitError::Conflict(files));
            }
            _ => return Err(failed(&["merge-tree"], &tree)),
        }
        let mut args = identity_args(repo).await;
        args.extend(
            [
                "commit-tree",
                tree_id.as_str(),
                "-p",
                &base,
                "-p",
                &tip,
                "-m",
                message,
            ]
            .into_iter()
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (MergeKind::MergeCommit, ok(repo, &args).await?.text())
    };
    match checkout_of(repo, into).await? {
        Some(checkout) => {
            let touched = ok(repo, &["diff", "--name-only", "-z", &base, &target]).await?;
            let touched: Vec<String> = touched
                .stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            let dirty = dirty_files(&checkout, &touched).await?;
            if !dirty.is_empty() {
                return Err(GitError::Uncommitted(dirty));
            }
            ok(&checkout, &["merge", "--ff-only", "--quiet", &target]).await?;
        }
        None => {
            ok(
                repo,
                &["update-ref", "-m", message, &into_ref, &target, &base],
            )
            .await?;
        }
    }
    Ok(Merged {
        kind,
        commit: target,
    })
}

/// Which of `files` have uncommitted changes (staged, unstaged or untracked) in the
/// checkout at `dir`.
async fn dirty_files(dir: &Path, files: &[String]) -> Result<Vec<String>, GitError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--",
    ];
    // Literal paths: a file named `*` is that file, not a pattern.
    let specs: Vec<String> = files.iter().map(|f| format!(":(literal){f}")).collect();
    args.extend(specs.iter().map(String::as_str));
    let out = ok(dir, &args).await?;
    let mut dirty = Vec::new();
    let mut fields = out.stdout.split(|b| *b == 0);
    while let Some(entry) = fields.next() {
        if entry.len() < 4 {
            continue;
        }
        let status = &entry[..2];
        dirty.push(String::from_utf8_lossy(&entry[3..]).into_owned());
        // A rename or copy has its source path as the next field.
        if status.contains(&b'R') || status.contains(&b'C') {
            fields.next();
        }
    }
    Ok(dirty)
}

/// Removes the worktree at `path` (with what is in it), then forgets any worktree whose
/// directory is gone.
///
/// # Errors
/// [`GitError::Failed`] with git's reason.
pub async fn remove_worktree(repo: &Path, path: &Path) -> Result<(), GitError> {
    if path.exists() {
        let path = path.to_string_lossy();
        ok(repo, &["worktree", "remove", "--force", "--force", &path]).await?;
    }
    ok(repo, &["worktree", "prune"]).await?;
    Ok(())
}

/// The repository a linked worktree at `path` belongs to (its common git directory,
/// absolute) and the branch it has checked out (`None` on a detached `HEAD`); `None`
/// when `path` is not a linked worktree (no `.git` file) or its repository is gone.
/// Only `path`'s own `.git` file is followed: a directory without one is never taken
/// for a worktree of a repository around it.
pub async fn worktree_owner(path: &Path) -> Option<(PathBuf, Option<String>)> {
    if !tokio::fs::symlink_metadata(path.join(".git"))
        .await
        .is_ok_and(|meta| meta.is_file())
    {
        return None;
    }
    let out = run(
        path,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await
    .ok()
    .filter(|out| out.status.success())?;
    let common = PathBuf::from(out.text());
    let branch = run(path, &["symbolic-ref", "-q", "--short", "HEAD"])
        .await
        .ok()
        .filter(|out| out.status.success())
        .map(|out| out.text());
    Some((common, branch))
}

/// Deletes a local branch, merged or not; a branch already gone is not an error.
///
/// # Errors
/// [`GitError::Failed`] with git's reason.
pub async fn delete_branch(repo: &Path, branch: &str) -> Result<(), GitError> {
    if branch_exists(repo, branch).await? {
        ok(repo, &["branch", "--quiet", "-D", branch]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["config", "user.name", "T"],
            &["config", "user.email", "t@example.com"],
        ] {
            ok(path, args).await.unwrap();
        }
        std::fs::create_dir(path.join("sub")).unwrap();
        std::fs::write(path.join("sub/a.txt"), "one\ntwo\n").unwrap();
        ok(path, &["add", "-A"]).await.unwrap();
        ok(path, &["commit", "-q", "-m", "base"]).await.unwrap();
        dir
    }

    #[tokio::test]
    async fn a_subdirectory_knows_its_place_and_a_plain_directory_is_no_repository() {
        let dir = repo().await;
        let info = repo_info(&dir.path().join("sub")).await.unwrap();
        assert_eq!(info.prefix, "sub/");
        assert_eq!(info.branch.as_deref(), Some("main"));
        assert_eq!(info.head.len(), 40);
        assert_eq!(repo_info(dir.path()).await.unwrap().prefix, "");
        let plain = tempfile::tempdir().unwrap();
        assert!(matches!(
            repo_info(plain.path()).await,
            Err(GitError::NotARepository(_))
        ));
    }

    #[tokio::test]
    async fn a_diff_counts_renames_and_binaries_and_cuts_its_patch_at_a_line_end() {
        let dir = repo().await;
        let path = dir.path();
        let base = head_of(path).await.unwrap();
        ok(path, &["mv", "sub/a.txt", "sub/b.txt"]).await.unwrap();
        std::fs::write(path.join("bin.dat"), [0u8, 1, 2, 0, 255]).unwrap();
        let long: String = (0..200).map(|i| format!("line {i}\n")).collect();
        std::fs::write(path.join("long.txt"), &long).unwrap();
        let commit = commit_all(path, "change").await.unwrap().expect("a commit");
        assert_eq!(commit_all(path, "again").await.unwrap(), None);
        let whole = diff(path, &base, &commit, 1 << 20).await.unwrap();
        let by_path = |p: &str| whole.files.iter().find(|f| f.path == p).cloned();
        assert_eq!(
            by_path("sub/b.txt").map(|f| (f.added, f.removed)),
            Some((Some(0), Some(0)))
        );
        assert_eq!(
            by_path("bin.dat").map(|f| (f.added, f.removed)),
            Some((None, None))
        );
        assert_eq!(by_path("long.txt").map(|f| f.added), Some(Some(200)));
        assert_eq!(
            (whole.added, whole.removed, whole.truncated),
            (200, 0, false)
        );
        let cut = diff(path, &base, &commit, 300).await.unwrap();
        assert!(cut.truncated && cut.patch.len() <= 300 && cut.patch.ends_with('\n'));
        assert!(whole.patch.starts_with(&cut.patch));
        assert_eq!(cut.files, whole.files, "the file list is always whole");
    }
}
