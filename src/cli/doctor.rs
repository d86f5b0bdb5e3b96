//! `semantest-hub doctor`: checks the setup and prints one line per check, `ok`, `warn`
//! or `fail`, with how to fix what is not ok. Exits 1 when a check fails.
//!
//! The checks: which `semantest-hub` PATH runs, each agent's CLI (Claude Code, Codex,
//! Gemini: the hub's own lookup, failing when a project runs an agent whose CLI is
//! missing), the secret store (is the OS keychain reachable), the hub (does the hub named
//! by the runtime file answer and prove itself), the port (free, another hub, or another
//! program), and what starts the hub at login (the desktop app's XDG autostart entry or
//! LaunchAgent, or the systemd user unit of `deploy/`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use tokio::net::TcpStream;

use super::client::{
    ClientError, HubClient, VERIFY_TIMEOUT, answers_as_hub, endpoint_of, running_hub,
};
use super::output::write_stdout;
use crate::config::{DEFAULT_PORT, LAST_FALLBACK_PORT, LoadedConfig, SecretStoreKind};
use crate::protocol::agents::AgentKind;
use crate::runner::claude_cli::Clis;
use crate::storage::secrets::{SECRETS_DIR, Secrets};

/// A check's outcome.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check: its name, what was found, and how to fix it when it is not ok.
struct Check {
    name: &'static str,
    level: Level,
    found: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, found: impl Into<String>) -> Self {
        Self {
            name,
            level: Level::Ok,
            found: found.into(),
            fix: None,
        }
    }

    fn not_ok(
        name: &'static str,
        level: Level,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            level,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    fn level_name(&self) -> &'static str {
        match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }

    /// `{name, level, found, fix}`, `fix` null when the check is ok.
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "level": self.level_name(),
            "found": self.found,
            "fix": self.fix,
        })
    }

    /// `level  name  found`, then `fix: …` indented on a line of its own.
    fn lines(&self) -> String {
        let level = self.level_name();
        let mut text = format!("{level:<4}  {:<9}  {}\n", self.name, self.found);
        if let Some(fix) = &self.fix {
            text.push_str(&format!("{:17}fix: {fix}\n", ""));
        }
        text
    }
}

/// Runs every check, prints them (one line each, or as JSON), and exits 1 when one
/// failed.
///
/// # Errors
/// None of its own: a check that cannot be made is reported as that check's failure.
pub(super) async fn doctor(
    loaded: &LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
    json: bool,
) -> Result<ExitCode> {
    let mut checks = vec![cli_on_path()];
    checks.extend(agent_clis(loaded).await);
    checks.push(secret_store(loaded, explicit_store).await);
    checks.extend(hub_and_port(loaded, explicit_store).await);
    checks.push(autostart());
    let failed = checks.iter().any(|check| check.level == Level::Fail);
    let text = if json {
        let checks: Vec<_> = checks.iter().map(Check::to_json).collect();
        let report = serde_json::json!({"ok": !failed, "checks": checks});
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        checks.iter().map(Check::lines).collect()
    };
    write_stdout(text.as_bytes())?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Which `semantest-hub` the shell runs, and whether it is this one.
fn cli_on_path() -> Check {
    const NAME: &str = "cli";
    let this = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    match which::which("semantest-hub") {
        Ok(found) => {
            let same = std::fs::canonicalize(&found).ok() == this;
            if same || this.is_none() {
                Check::ok(NAME, format!("semantest-hub on PATH: {}", found.display()))
            } else {
                Check::not_ok(
                    NAME,
                    Level::Warn,
                    format!(
                        "PATH runs {}, not this binary ({})",
                        found.display(),
                        this.as_deref().unwrap_or(Path::new("?")).display()
                    ),
                    "install this build with scripts/run, or put its directory first in PATH",
                )
            }
        }
        Err(_) => Check::not_ok(
            NAME,
            Level::Warn,
            "semantest-hub is not on PATH",
            "run scripts/run (it installs into ~/.local/bin), and add that directory to PATH",
        ),
    }
}

/// How to get each agent's CLI, and the setting that points at one.
fn install_hint(agent: AgentKind) -> (&'static str, &'static str, &'static str) {
    match agent {
        AgentKind::Claude => (
            "Claude Code CLI",
            "npm install -g @anthropic-ai/claude-code (https://docs.anthropic.com/en/docs/claude-code)",
            "agent.cli_path",
        ),
        AgentKind::Codex => (
            "Codex CLI",
            "npm install -g @openai/codex (https://github.com/openai/codex)",
            "agent.codex.cli_path",
        ),
        AgentKind::Gemini => (
            "Gemini CLI",
            "npm install -g @google/gemini-cli (https://github.com/google-gemini/gemini-cli)",
            "agent.gemini.cli_path",
        ),
    }
}

/// One check per agent CLI (`claude`, `codex`, `gemini`), each found and asked for its
/// version as the hub does (`Clis`): its `cli_path` setting, then PATH, then the usual
/// install locations. A missing CLI is a warning, and a failure when a project of the
/// store runs that agent (`project.configure {agent}`).
async fn agent_clis(loaded: &LoadedConfig) -> Vec<Check> {
    let clis = Clis::find(&loaded.config.agent);
    clis.clone().probe().await;
    let in_use = crate::storage::sqlite::agents_in_use(&loaded.data_dir);
    if let Err(err) = &in_use {
        tracing::debug!(error = %err, "doctor cannot read which agents projects run");
    }
    AgentKind::ALL
        .into_iter()
        .map(|agent| {
            let used = in_use.as_ref().ok().map(|agents| agents.contains(&agent));
            agent_cli(agent, &clis, &loaded.config.agent, used)
        })
        .collect()
}

/// One agent's CLI check; `used`: whether a project runs that agent (`None`: unknown).
fn agent_cli(
    agent: AgentKind,
    clis: &Clis,
    config: &crate::config::AgentConfig,
    used: Option<bool>,
) -> Check {
    let name = agent.as_str();
    let (label, install, setting) = install_hint(agent);
    let configured = match agent {
        AgentKind::Claude => config.cli_path.as_deref(),
        AgentKind::Codex => config.codex.cli_path.as_deref(),
        AgentKind::Gemini => config.gemini.cli_path.as_deref(),
    };
    let report = clis.get(agent).report();
    match (report.path, report.version, configured) {
        (Some(path), Some(version), _) => {
            Check::ok(name, format!("{label} {version}: {}", path.display()))
        }
        (Some(path), None, _) => Check::not_ok(
            name,
            Level::Warn,
            format!("{} does not answer `--version`", path.display()),
            format!("reinstall it ({install}), or point {setting} at a working one"),
        ),
        (None, _, Some(path)) => Check::not_ok(
            name,
            Level::Fail,
            format!("{setting} {} is not an executable file", path.display()),
            format!("fix {setting}, or remove it to let the hub look on PATH"),
        ),
        (None, _, None) => {
            let (level, effect) = match used {
                Some(true) => (Level::Fail, "a project runs this agent: its runs will fail"),
                Some(false) => (Level::Warn, "no project runs this agent"),
                None => (Level::Warn, "runs of this agent will fail"),
            };
            Check::not_ok(
                name,
                level,
                format!("{label} not found: {effect}"),
                format!("install it: {install}, or set {setting}"),
            )
        }
    }
}

/// Whether the secret store in use (`--secret-store`, else the one the running hub
/// recorded, else the configured one) can be opened: with `auto`, whether the OS keychain
/// answers or the owner token falls back to a file.
async fn secret_store(loaded: &LoadedConfig, explicit_store: Option<SecretStoreKind>) -> Check {
    const NAME: &str = "secrets";
    // A running hub's store is the one it recorded, as for every other command.
    let recorded = running_hub(&loaded.data_dir)
        .ok()
        .and_then(|hub| hub.secret_store);
    let kind = explicit_store
        .or(recorded)
        .unwrap_or(loaded.config.secret_store);
    let file_dir = loaded.data_dir.join(SECRETS_DIR);
    if kind == SecretStoreKind::File {
        return Check::ok(
            NAME,
            format!("file store (secret_store = file): {}", file_dir.display()),
        );
    }
    let dir = loaded.data_dir.clone();
    let probe =
        tokio::task::spawn_blocking(move || Secrets::open(SecretStoreKind::Keychain, &dir)).await;
    match (probe, kind) {
        (Ok(Ok(_)), _) => Check::ok(NAME, "OS keychain reachable"),
        (Ok(Err(err)), SecretStoreKind::Keychain) => Check::not_ok(
            NAME,
            Level::Fail,
            format!("secret_store = keychain, but {err}"),
            "unlock the keychain or start a Secret Service (e.g. gnome-keyring), or use --secret-store file",
        ),
        (Ok(Err(err)), _) => Check::not_ok(
            NAME,
            Level::Warn,
            format!("{err}; the owner token is kept in {}", file_dir.display()),
            "start a Secret Service (e.g. gnome-keyring), or set secret_store = \"file\" to keep the file",
        ),
        (Err(err), _) => Check::not_ok(
            NAME,
            Level::Fail,
            format!("the keychain probe stopped: {err}"),
            "run again; report it if it persists",
        ),
    }
}

/// The hub named by the runtime file (does it answer and prove itself?), or, with none
/// running, whether a hub started now would get its port.
async fn hub_and_port(
    loaded: &LoadedConfig,
    explicit_store: Option<SecretStoreKind>,
) -> Vec<Check> {
    let Ok(running) = running_hub(&loaded.data_dir) else {
        return vec![
            Check::not_ok(
                "hub",
                Level::Warn,
                format!("no hub is running for {}", loaded.data_dir.display()),
                "start the desktop app, or `semantest-hub serve`",
            ),
            free_port(loaded).await,
        ];
    };
    let url = running.url;
    // A hub that crashed leaves its runtime file behind: say so before asking for the
    // owner token, which such a hub may never have stored.
    let reachable = match endpoint_of(&url) {
        Ok(endpoint) => tokio::time::timeout(VERIFY_TIMEOUT, TcpStream::connect(endpoint))
            .await
            .is_ok_and(|connected| connected.is_ok()),
        Err(_) => true,
    };
    if !reachable {
        return stale(&url);
    }
    let verified = match super::owner_token(loaded, explicit_store).await {
        Ok(token) => HubClient::connect(&url, &token).await.map_err(Into::into),
        Err(err) => Err(err),
    };
    match verified {
        Ok(client) => {
            client.close().await;
            vec![
                Check::ok("hub", format!("running at {url}, proved it is this hub")),
                Check::ok("port", format!("{url} answers /semantest-signature")),
            ]
        }
        Err(err) => {
            if matches!(
                err.downcast_ref::<ClientError>(),
                Some(ClientError::Unreachable { .. })
            ) {
                return stale(&url);
            }
            vec![
                Check::not_ok(
                    "hub",
                    Level::Fail,
                    format!("the runtime file names {url}, but the hub there is not verified"),
                    "see the port check",
                ),
                Check::not_ok(
                    "port",
                    Level::Fail,
                    format!("{err:#}"),
                    "stop the program on that port, then start the hub with `semantest-hub serve`",
                ),
            ]
        }
    }
}

/// The runtime file names `url`, where nothing accepts a connection.
fn stale(url: &str) -> Vec<Check> {
    vec![
        Check::not_ok(
            "hub",
            Level::Fail,
            format!("the runtime file names {url}, but no hub answers there"),
            "the hub stopped without cleaning up: start it again with `semantest-hub serve`",
        ),
        Check::not_ok(
            "port",
            Level::Fail,
            format!("nothing answers at {url}"),
            "start the hub; it takes the first free port of its range",
        ),
    ]
}

/// With no hub running: the first port a hub started now would take (`port`, or
/// 3003..=3012), and who holds the ones before it.
async fn free_port(loaded: &LoadedConfig) -> Check {
    const NAME: &str = "port";
    let candidates: Vec<u16> = match loaded.config.port {
        Some(0) => return Check::ok(NAME, "port = 0: the hub takes any free port"),
        Some(port) => vec![port],
        None => (DEFAULT_PORT..=LAST_FALLBACK_PORT).collect(),
    };
    let mut taken = Vec::new();
    for port in candidates {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if TcpListener::bind(addr).is_ok() {
            return if taken.is_empty() {
                Check::ok(NAME, format!("port {port} is free"))
            } else {
                Check::not_ok(
                    NAME,
                    Level::Warn,
                    format!("{}; a hub started now takes {port}", taken.join(", ")),
                    "stop what holds the port, or set `port` to pin one",
                )
            };
        }
        let who = if answers_as_hub(addr).await {
            "another Semantest hub (another data directory)"
        } else {
            "another program"
        };
        taken.push(format!("{port} is taken by {who}"));
    }
    Check::not_ok(
        NAME,
        Level::Fail,
        taken.join(", "),
        "stop what holds the port, or set `port` (or --port) to a free one",
    )
}

/// What starts the hub at login: the desktop app's entry (tauri-plugin-autostart: an XDG
/// autostart `.desktop` file on Linux, a LaunchAgent on macOS) or the systemd user unit
/// of `deploy/` once enabled (its `WantedBy=default.target` link).
fn autostart() -> Check {
    const NAME: &str = "autostart";
    let Some(dirs) = directories::BaseDirs::new() else {
        return Check::not_ok(
            NAME,
            Level::Warn,
            "no home directory to look in",
            "set HOME",
        );
    };
    let config = dirs.config_dir();
    let unit = config.join("systemd/user/semantest-hub.service");
    let entries: Vec<PathBuf> = if cfg!(target_os = "macos") {
        vec![
            dirs.home_dir()
                .join("Library/LaunchAgents/Semantest Hub.plist"),
        ]
    } else {
        vec![
            config.join("autostart/Semantest Hub.desktop"),
            config.join("systemd/user/default.target.wants/semantest-hub.service"),
        ]
    };
    if let Some(path) = entries.iter().find(|path| path.exists()) {
        return Check::ok(NAME, format!("started at login by {}", path.display()));
    }
    if !cfg!(target_os = "macos") && unit.exists() {
        return Check::not_ok(
            NAME,
            Level::Warn,
            format!("{} is installed but not enabled", unit.display()),
            "systemctl --user enable --now semantest-hub",
        );
    }
    Check::not_ok(
        NAME,
        Level::Warn,
        "nothing starts the hub at login",
        "turn on \"Start at login\" in the tray menu, or install deploy/semantest-hub.service (docs/deployment.md)",
    )
}
