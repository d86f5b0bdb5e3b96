//! Finding the Claude Code CLI and asking its version (its arguments and protocol are
//! in [`super::driver::claude`]).
//!
//! The hub looks for the executable synchronously at start (a PATH scan and a few stats)
//! but asks `claude --version` in the background, so it listens at once: `/health` and
//! `hub.status` say `"state": "probing"` until the answer (or a 10 s timeout) is in.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::process::Command;

use crate::protocol::hub::{CliReport, ProbeState};
use tracing::info;

/// The agent CLI the hub found.
#[derive(Debug, Clone, Serialize)]
pub struct AgentCli {
    /// Absolute path of the executable.
    pub path: PathBuf,
    /// The first line of `claude --version`, if it answered within 10 s.
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
struct Known {
    cli: Option<AgentCli>,
    probing: bool,
}

/// The CLI the hub uses; cheap to clone. When it was missing it is looked for again on
/// every use, so a CLI installed while the hub runs is picked up without a restart. The
/// look-up (a PATH scan, a stat per entry) runs on the blocking pool: awaited by
/// [`CliSlot::look_up`] (a run's start), in the background for [`CliSlot::get`] (reports
/// such as `hub.status`, which answer with what is known now).
#[derive(Clone)]
pub struct CliSlot {
    configured: Option<PathBuf>,
    known: Arc<RwLock<Known>>,
    /// Whether a background look-up is under way (one at a time).
    looking: Arc<std::sync::atomic::AtomicBool>,
}

impl CliSlot {
    /// Looks for the executable now (no process is started).
    pub fn find(configured: Option<&Path>) -> Self {
        let cli = find_cli(configured).map(|path| AgentCli {
            path,
            version: None,
        });
        let probing = cli.is_some();
        Self {
            configured: configured.map(Path::to_path_buf),
            known: Arc::new(RwLock::new(Known { cli, probing })),
            looking: Arc::default(),
        }
    }

    /// Asks the found CLI for its version and records it; meant to run in a task.
    pub async fn probe(self) {
        let Some(path) = self.get().map(|cli| cli.path) else {
            return;
        };
        let version = probe_version(&path).await;
        info!(path = %path.display(), version = ?version, "agent CLI found");
        if let Ok(mut known) = self.known.write() {
            if let Some(cli) = known.cli.as_mut().filter(|cli| cli.path == path) {
                cli.version = version;
            }
            known.probing = false;
        }
    }

    /// The CLI, if found. When it is missing, a look-up starts in the background (on a
    /// runtime; outside one, it runs now) and a later call sees its result.
    pub fn get(&self) -> Option<AgentCli> {
        if let Some(cli) = self.cached() {
            return Some(cli);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                if !self.looking.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    let this = self.clone();
                    runtime.spawn(async move {
                        this.look_up().await;
                        this.looking
                            .store(false, std::sync::atomic::Ordering::Release);
                    });
                }
                None
            }
            Err(_) => self.remember(find_cli(self.configured.as_deref())?),
        }
    }

    /// The CLI, looked for now (on the blocking pool) when it is missing.
    pub async fn look_up(&self) -> Option<AgentCli> {
        if let Some(cli) = self.cached() {
            return Some(cli);
        }
        let configured = self.configured.clone();
        let path =
            crate::support::blocking::off_runtime(move || find_cli(configured.as_deref())).await?;
        self.remember(path)
    }

    fn cached(&self) -> Option<AgentCli> {
        self.known.read().ok().and_then(|k| k.cli.clone())
    }

    /// Records a CLI found at `path` (unless one was recorded meanwhile) and returns it.
    fn remember(&self, path: PathBuf) -> Option<AgentCli> {
        let mut known = self.known.write().ok()?;
        Some(
            known
                .cli
                .get_or_insert(AgentCli {
                    path,
                    version: None,
                })
                .clone(),
        )
    }

    /// What `/health` shows.
    pub fn report(&self) -> CliReport {
        let cli = self.get();
        let probing = self.known.read().is_ok_and(|k| k.probing);
        let state = match (&cli, probing) {
            (None, _) => ProbeState::Missing,
            (Some(_), true) => ProbeState::Probing,
            (Some(_), false) => ProbeState::Found,
        };
        CliReport {
            found: cli.is_some(),
            state,
            path: cli.as_ref().map(|c| c.path.clone()),
            version: cli.and_then(|c| c.version),
        }
    }
}

/// Finds the `claude` executable: the configured path, then PATH, then the usual install
/// locations. Apps started at login on macOS get a minimal PATH, hence the list.
pub fn find_cli(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return is_executable(path).then(|| path.to_path_buf());
    }
    if let Ok(path) = which::which("claude") {
        return Some(path);
    }
    let home = directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf())?;
    let candidates = [
        home.join(".claude/local/claude"),
        home.join(".local/bin/claude"),
        home.join(".npm-global/bin/claude"),
        home.join(".bun/bin/claude"),
        home.join(".volta/bin/claude"),
        PathBuf::from("/opt/homebrew/bin/claude"),
        PathBuf::from("/usr/local/bin/claude"),
        PathBuf::from("/usr/bin/claude"),
    ];
    candidates.into_iter().find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Asks the CLI for its version (`claude --version`), bounded by 10 s.
async fn probe_version(path: &Path) -> Option<String> {
    let run = Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(output)) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .map(|line| line.trim().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_cli_must_be_executable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claude");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        assert_eq!(find_cli(Some(&file)), None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_cli(Some(&file)), Some(file));
    }
}
