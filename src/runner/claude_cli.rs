//! Finding each agent CLI (`claude`, `codex`, `gemini`) and asking its version (their
//! arguments and protocols are in [`super::driver`]).
//!
//! The hub looks for each executable synchronously at start (a PATH scan and a few
//! stats) but asks `<cli> --version` in the background, so it listens at once: `/health`
//! and `hub.status` say `"state": "probing"` until the answer (or a 10 s timeout) is in.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::process::Command;

use crate::protocol::agents::AgentKind;
use crate::protocol::hub::{CliReport, ProbeState};
use tracing::info;

/// The agent CLI the hub found.
#[derive(Debug, Clone, Serialize)]
pub struct AgentCli {
    /// Absolute path of the executable.
    pub path: PathBuf,
    /// The first line of `<cli> --version`, if it answered within 10 s.
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
    name: &'static str,
    configured: Option<PathBuf>,
    known: Arc<RwLock<Known>>,
    /// Whether a background look-up is under way (one at a time).
    looking: Arc<std::sync::atomic::AtomicBool>,
}

impl CliSlot {
    /// Looks for `agent`'s executable now (no process is started).
    pub fn find_agent(agent: AgentKind, configured: Option<&Path>) -> Self {
        let name = program(agent);
        let cli = find_program(name, configured).map(|path| AgentCli {
            path,
            version: None,
        });
        let probing = cli.is_some();
        Self {
            name,
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
        info!(cli = self.name, path = %path.display(), version = ?version, "agent CLI found");
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
            Err(_) => self.remember(find_program(self.name, self.configured.as_deref())?),
        }
    }

    /// The CLI, looked for now (on the blocking pool) when it is missing.
    pub async fn look_up(&self) -> Option<AgentCli> {
        if let Some(cli) = self.cached() {
            return Some(cli);
        }
        let (name, configured) = (self.name, self.configured.clone());
        let path = crate::support::blocking::off_runtime(move || {
            find_program(name, configured.as_deref())
        })
        .await?;
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

/// Every agent's CLI; cheap to clone.
#[derive(Clone)]
pub struct Clis {
    claude: CliSlot,
    codex: CliSlot,
    gemini: CliSlot,
}

impl Clis {
    /// Looks for each executable now: `agent.cli_path`, `agent.codex.cli_path`,
    /// `agent.gemini.cli_path` when set.
    pub fn find(config: &crate::config::AgentConfig) -> Self {
        Self {
            claude: CliSlot::find_agent(AgentKind::Claude, config.cli_path.as_deref()),
            codex: CliSlot::find_agent(AgentKind::Codex, config.codex.cli_path.as_deref()),
            gemini: CliSlot::find_agent(AgentKind::Gemini, config.gemini.cli_path.as_deref()),
        }
    }

    /// One agent's CLI.
    pub fn get(&self, agent: AgentKind) -> &CliSlot {
        match agent {
            AgentKind::Claude => &self.claude,
            AgentKind::Codex => &self.codex,
            AgentKind::Gemini => &self.gemini,
        }
    }

    /// Probes every CLI that was found, one after the other; meant to run in a task.
    pub async fn probe(self) {
        for agent in AgentKind::ALL {
            self.get(agent).clone().probe().await;
        }
    }

    /// What `/health` shows, by agent.
    pub fn report(&self) -> std::collections::BTreeMap<AgentKind, CliReport> {
        AgentKind::ALL
            .into_iter()
            .map(|agent| (agent, self.get(agent).report()))
            .collect()
    }
}

/// The executable's name of an agent.
pub fn program(agent: AgentKind) -> &'static str {
    agent.as_str()
}

/// Finds an agent's executable (`claude`, `codex`, `gemini`): the configured path, then
/// PATH, then the usual install locations (npm's global prefixes, bun, volta,
/// Homebrew, and `~/.claude/local` for Claude Code's own installer). Apps started at
/// login on macOS get a minimal PATH, hence the list.
pub fn find_program(name: &str, configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return is_executable(path).then(|| path.to_path_buf());
    }
    if let Ok(path) = which::which(name) {
        return Some(path);
    }
    let home = directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf())?;
    let mut candidates = Vec::new();
    if name == "claude" {
        candidates.push(home.join(".claude/local/claude"));
    }
    candidates.extend([
        home.join(".local/bin").join(name),
        home.join(".npm-global/bin").join(name),
        home.join(".bun/bin").join(name),
        home.join(".volta/bin").join(name),
        PathBuf::from("/opt/homebrew/bin").join(name),
        PathBuf::from("/usr/local/bin").join(name),
        PathBuf::from("/usr/bin").join(name),
    ]);
    candidates.into_iter().find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Asks the CLI for its version (`<cli> --version`), bounded by 10 s.
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
        assert_eq!(find_program("claude", Some(&file)), None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_program("claude", Some(&file)), Some(file));
    }
}
