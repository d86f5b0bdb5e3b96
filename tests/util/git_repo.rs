//! A git repository for the worktree tests (task and interactive-run isolation): one
//! branch `main` with one commit holding `notes.txt`, and git run in it.

use std::path::Path;

use serde_json::Value;

/// The base content of the file every task or run edits: ten lines, `a` to `j`.
pub const BASE: &str = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";

/// Runs git in `dir` and returns its trimmed standard output; fails the test when git
/// does.
pub async fn git(dir: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .await
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A repository on branch `main` with one commit holding `notes.txt` = [`BASE`].
pub async fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]).await;
    git(dir.path(), &["config", "user.name", "Test"]).await;
    git(dir.path(), &["config", "user.email", "test@example.com"]).await;
    std::fs::write(dir.path().join("notes.txt"), BASE).unwrap();
    git(dir.path(), &["add", "-A"]).await;
    git(dir.path(), &["commit", "-q", "-m", "base"]).await;
    dir
}

/// `value` as a string; fails the test with the value when it is not one.
pub fn str_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}
