//! Loading the configuration: the layers (defaults, TOML file, `SEMANTEST_HUB_*`
//! variables, flags) merged with figment, the variables that are not settings, the
//! validation, where each value came from ([`LoadedConfig::sources`]), and the platform
//! directories. The settings themselves are the structs of [`super`].

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use super::{Config, DATABASE_PASSWORD_ENV, Mode, Overrides};

/// `SEMANTEST_HUB_*` variables that are not settings, so [`Config::load`] lets them be:
/// secrets the hub reads by itself (docs/configuration.md, `[public]`: the PostgreSQL
/// password and the NATS credentials), the owner token for scripts and the SDK's example (clients/js/README.md), and
/// the binaries and fixtures the test suites take (tests/browser/README.md). Any other
/// variable with the prefix must name a setting.
pub const NON_SETTING_ENV_VARS: &[&str] = &[
    DATABASE_PASSWORD_ENV,
    "SEMANTEST_HUB_BROKER_TOKEN",
    "SEMANTEST_HUB_BROKER_PASSWORD",
    "SEMANTEST_HUB_TOKEN",
    "SEMANTEST_HUB_CLIENT_ID",
    "SEMANTEST_HUB_BIN",
    "SEMANTEST_HUB_PUBLIC_BIN",
    "SEMANTEST_HUB_FIXTURES",
];

/// The top-level keys of [`Config`], lower case (`port`, `limits`, ...).
fn top_level_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The variables of the top-level keys, for messages: `SEMANTEST_HUB_PORT, …,
/// SEMANTEST_HUB_LIMITS__<key>, …`.
fn setting_variables() -> String {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                let name = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
                if value.is_object() {
                    format!("{name}__<key>")
                } else {
                    name
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

/// The variables among `names` that start with [`ENV_PREFIX`] (in any case, as figment
/// matches it) but name neither a key of `keys` (before the first `__`) nor one of
/// [`NON_SETTING_ENV_VARS`], sorted.
fn unknown_env_vars(names: impl IntoIterator<Item = String>, keys: &[String]) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let Some(rest) = name
                .get(..ENV_PREFIX.len())
                .filter(|head| head.eq_ignore_ascii_case(ENV_PREFIX))
                .map(|_| &name[ENV_PREFIX.len()..])
            else {
                return false;
            };
            let top = rest.split("__").next().unwrap_or_default();
            !keys.iter().any(|key| key.eq_ignore_ascii_case(top))
                && !NON_SETTING_ENV_VARS
                    .iter()
                    .any(|other| other.eq_ignore_ascii_case(name))
        })
        .collect();
    unknown.sort();
    unknown
}

/// A configuration error, reported at start with the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or has a value of the wrong type.
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of its allowed range.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        /// The dotted key, e.g. `limits.max_connections`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A `SEMANTEST_HUB_*` environment variable names no setting (and is not one of
    /// [`NON_SETTING_ENV_VARS`]).
    #[error(
        "invalid configuration: environment variable {names} is not a setting; a setting's variable is one of {expected} (docs/configuration.md); correct or unset it"
    )]
    UnknownEnv {
        /// The offending variables, comma-separated.
        names: String,
        /// The variables of the top-level keys, comma-separated, sections as
        /// `SEMANTEST_HUB_LIMITS__<key>`.
        expected: String,
    },
    /// The platform gave no home directory to derive default directories from.
    #[error("cannot determine the home directory; pass --data-dir")]
    NoHome,
}

/// A validated configuration with its resolved directories and value sources.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The settings.
    pub config: Config,
    /// The data directory in force.
    pub data_dir: PathBuf,
    /// The log directory in force.
    pub log_dir: PathBuf,
    /// The config file that was read, if one existed.
    pub config_file: Option<PathBuf>,
    /// `(dotted key, value, source)` for every leaf value; source is `default`, `file`,
    /// `env` or `flag`.
    pub sources: Vec<(String, serde_json::Value, &'static str)>,
}

/// The prefix of every environment variable the hub reads: its settings
/// (`SEMANTEST_HUB_<SECTION>__<KEY>`) and its credentials (such as
/// `SEMANTEST_HUB_DATABASE_PASSWORD`). Agent processes get none of them.
pub const ENV_PREFIX: &str = "SEMANTEST_HUB_";

/// The platform directories of the app (`directories::ProjectDirs`).
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "semantest", "semantest-hub")
}

/// The default config file: `<platform config dir>/config.toml`.
pub fn default_config_file() -> Option<PathBuf> {
    project_dirs().map(|dirs| dirs.config_dir().join("config.toml"))
}

/// The default config file of `serve --public`: `<platform config dir>/public.toml`.
pub fn default_public_config_file() -> Option<PathBuf> {
    project_dirs().map(|dirs| dirs.config_dir().join("public.toml"))
}

impl Config {
    /// `Public` when `public.enabled`, else `Local`.
    pub fn mode(&self) -> Mode {
        self.public.mode()
    }

    /// Loads defaults, then `config_file` (or the default file when it exists), then the
    /// environment, then `overrides`, and validates the result.
    ///
    /// # Errors
    /// [`ConfigError::Load`] for unreadable files, unknown keys or wrong types;
    /// [`ConfigError::Invalid`] for values out of range.
    pub fn load(
        config_file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<LoadedConfig, ConfigError> {
        // Every `SEMANTEST_HUB_*` variable must name a setting, or be one of the few the
        // project uses for something else: a typo (`SEMANTEST_HUB_PROT`) stops the hub
        // instead of leaving the setting at its default. Figment reports unknown keys
        // inside a section (`SEMANTEST_HUB_LIMITS__MAX_CONECTIONS`) by itself.
        let keys = top_level_keys();
        let unknown = unknown_env_vars(
            std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned()),
            &keys,
        );
        if !unknown.is_empty() {
            return Err(ConfigError::UnknownEnv {
                names: unknown.join(", "),
                expected: setting_variables(),
            });
        }
        let env = Env::prefixed(ENV_PREFIX).split("__").filter(move |key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            keys.iter().any(|known| known.eq_ignore_ascii_case(top))
        });
        Self::load_with_env(config_file, overrides, env)
    }

    fn load_with_env(
        config_file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<LoadedConfig, ConfigError> {
        let file = match config_file {
            Some(path) => Some(path.to_path_buf()),
            // `--public` reads its own file, so settings for a public hub never leak into
            // the desktop hub's `config.toml`, nor the other way round.
            None if overrides.public.enabled == Some(true) => {
                default_public_config_file().filter(|path| path.exists())
            }
            None => default_config_file().filter(|path| path.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &file {
            // An explicitly named file must exist; figment would treat it as empty.
            if config_file.is_some() && !path.exists() {
                return Err(ConfigError::Invalid {
                    key: "config",
                    reason: format!("{} does not exist", path.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment
            .merge(env)
            .merge(FlagLayer(Serialized::defaults(overrides)));
        let config: Config = figment
            .extract()
            .map_err(|err| ConfigError::Load(Box::new(err)))?;
        config.validate()?;
        let dirs = project_dirs();
        // A public hub on the same machine as the desktop one gets its own default
        // directories (`semantest-hub-public` beside `semantest-hub`), so the two never
        // share a database, an owner token or the data-directory lock.
        let mode = config.mode();
        let data_dir = match &config.data_dir {
            Some(dir) => absolute(dir),
            None => public_sibling(dirs.as_ref().ok_or(ConfigError::NoHome)?.data_dir(), mode),
        };
        let log_dir = match (&config.log_dir, &config.data_dir) {
            (Some(dir), _) => absolute(dir),
            // A custom data directory keeps its logs beside it, so tests and portable
            // installs stay self-contained.
            (None, Some(_)) => data_dir.join("logs"),
            (None, None) => public_sibling(&default_log_dir().ok_or(ConfigError::NoHome)?, mode),
        };
        let sources = value_sources(&figment, &config);
        Ok(LoadedConfig {
            config,
            data_dir,
            log_dir,
            config_file: file,
            sources,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.bind.is_empty() {
            return invalid("bind", "at least one address is required");
        }
        if let Some(addr) = self.bind.iter().find(|addr| !addr.is_loopback()) {
            return Err(ConfigError::Invalid {
                key: "bind",
                reason: format!(
                    "{addr} is not a loopback address; local mode listens on loopback only"
                ),
            });
        }
        if self.port.is_some_and(|p| p != 0 && p < 1024) {
            return invalid("port", "use 0 or a port from 1024 to 65535");
        }
        let limits = &self.limits;
        if !(1024..=64 * 1024 * 1024).contains(&limits.max_message_bytes) {
            return invalid(
                "limits.max_message_bytes",
                "must be between 1 KiB and 64 MiB",
            );
        }
        for (key, value) in [
            ("limits.max_connections", limits.max_connections),
            ("limits.max_projects", limits.max_projects),
            ("limits.max_running_agents", limits.max_running_agents),
            ("limits.outgoing_queue", limits.outgoing_queue),
            ("limits.max_subscriptions", limits.max_subscriptions),
            (
                "limits.max_event_payload_bytes",
                limits.max_event_payload_bytes,
            ),
            ("limits.max_pending_requests", limits.max_pending_requests),
            ("limits.max_idempotency_keys", limits.max_idempotency_keys),
            (
                "limits.mcp_sessions_per_token",
                limits.mcp_sessions_per_token,
            ),
            ("limits.event_ring_bytes", limits.event_ring_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        for (key, value) in [
            (
                "limits.rate_limit_per_s",
                u64::from(limits.rate_limit_per_s),
            ),
            (
                "limits.rate_limit_burst",
                u64::from(limits.rate_limit_burst),
            ),
            ("limits.ping_interval_s", limits.ping_interval_s),
            ("limits.idle_timeout_s", limits.idle_timeout_s),
            ("limits.write_timeout_s", limits.write_timeout_s),
            (
                "limits.event_rate_per_s",
                u64::from(limits.event_rate_per_s),
            ),
            ("limits.max_dropped_events", limits.max_dropped_events),
            ("agent.timeout_s", self.agent.timeout_s),
            ("agent.max_timeout_s", self.agent.max_timeout_s),
            ("stats_interval_s", self.stats_interval_s),
            ("coordination.lease_s", self.coordination.lease_s),
            (
                "coordination.max_attempts",
                u64::from(self.coordination.max_attempts),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if !(1..=300).contains(&limits.header_timeout_s) {
            return Err(ConfigError::Invalid {
                key: "limits.header_timeout_s",
                reason: "must be between 1 and 300 seconds".into(),
            });
        }
        if limits.idle_timeout_s <= limits.ping_interval_s {
            return invalid(
                "limits.idle_timeout_s",
                "must be longer than limits.ping_interval_s, or live clients would be dropped",
            );
        }
        if !(10..=60_000).contains(&self.coordination.report_debounce_ms) {
            return invalid(
                "coordination.report_debounce_ms",
                "must be between 10 and 60000",
            );
        }
        if self.coordination.worktree_retention_s > 10 * 365 * 24 * 3600 {
            return invalid(
                "coordination.worktree_retention_s",
                "must be at most 315360000 (10 years)",
            );
        }
        let pairing = &self.pairing;
        if !(1..=3600).contains(&pairing.request_ttl_s) {
            return invalid("pairing.request_ttl_s", "must be between 1 and 3600");
        }
        if !(1..=100).contains(&pairing.max_pending) {
            return invalid("pairing.max_pending", "must be between 1 and 100");
        }
        if !(1..=pairing.max_pending).contains(&pairing.max_pending_per_address) {
            return invalid(
                "pairing.max_pending_per_address",
                "must be between 1 and pairing.max_pending",
            );
        }
        if !(1..=365 * 24 * 3600).contains(&self.dashboard.session_lifetime_s) {
            return invalid(
                "dashboard.session_lifetime_s",
                "must be between 1 and 31536000 (365 days)",
            );
        }
        if self.agent.timeout_s > self.agent.max_timeout_s {
            return invalid("agent.timeout_s", "must not exceed agent.max_timeout_s");
        }
        if !(4096..=256 * 1024 * 1024).contains(&self.agent.max_line_bytes) {
            return invalid("agent.max_line_bytes", "must be between 4 KiB and 256 MiB");
        }
        if !(1..=7 * 24 * 3600).contains(&self.agent.session_idle_s) {
            return invalid(
                "agent.session_idle_s",
                "must be between 1 and 604800 (7 days)",
            );
        }
        if !(1..=600_000).contains(&self.agent.interrupt_timeout_ms) {
            return invalid("agent.interrupt_timeout_ms", "must be between 1 and 600000");
        }
        if !(1..=7 * 24 * 3600).contains(&self.agent.approvals.timeout_s) {
            return invalid(
                "agent.approvals.timeout_s",
                "must be between 1 and 604800 (7 days)",
            );
        }
        const SANDBOXES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];
        if !SANDBOXES.contains(&self.agent.codex.sandbox.as_str()) {
            return Err(ConfigError::Invalid {
                key: "agent.codex.sandbox",
                reason: format!("must be one of {}", SANDBOXES.join(", ")),
            });
        }
        const MODES: [&str; 4] = ["default", "acceptEdits", "plan", "bypassPermissions"];
        if !MODES.contains(&self.agent.permission_mode.as_str()) {
            return Err(ConfigError::Invalid {
                key: "agent.permission_mode",
                reason: format!("must be one of {}", MODES.join(", ")),
            });
        }
        for origin in &self.allowed_origins {
            if let Err(why) = super::allowlist::parse_origin(origin) {
                return Err(ConfigError::Invalid {
                    key: "allowed_origins",
                    reason: format!(
                        "{origin:?} is not an origin like chrome-extension://<id>: {why}"
                    ),
                });
            }
        }
        self.public.validate()?;
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(ConfigError::Invalid {
                key: "log_level",
                reason: err.to_string(),
            });
        }
        Ok(())
    }
}

/// The platform log directory: `~/.local/state/semantest-hub/logs` (XDG state) on Linux,
/// `~/Library/Logs/semantest-hub` on macOS.
fn default_log_dir() -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        let home = directories::BaseDirs::new()?.home_dir().to_path_buf();
        return Some(home.join("Library/Logs/semantest-hub"));
    }
    let dirs = project_dirs()?;
    let base = dirs.state_dir().unwrap_or(dirs.data_local_dir());
    Some(base.join("logs"))
}

/// `dir` in local mode; `<dir>-public` beside it in public mode.
fn public_sibling(dir: &Path, mode: Mode) -> PathBuf {
    match (mode, dir.file_name()) {
        (Mode::Public, Some(name)) => {
            let mut name = name.to_os_string();
            name.push("-public");
            dir.with_file_name(name)
        }
        _ => dir.to_path_buf(),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether a dotted key is a variable of an agent's environment (`agent.env.*`,
/// `agent.codex.env.*`, `agent.gemini.env.*`): its value may be an API key, so it is
/// shown as `<redacted>`, and any name may be set.
pub fn is_agent_env(key: &str) -> bool {
    ["agent.env.", "agent.codex.env.", "agent.gemini.env."]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

/// Walks the effective configuration and asks figment which layer supplied each leaf.
fn value_sources(
    figment: &Figment,
    config: &Config,
) -> Vec<(String, serde_json::Value, &'static str)> {
    fn walk(prefix: &str, value: serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let key = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&key, value, out);
                }
            }
            leaf => out.push((prefix.to_string(), leaf)),
        }
    }
    let mut leaves = Vec::new();
    walk(
        "",
        serde_json::to_value(config).unwrap_or_default(),
        &mut leaves,
    );
    leaves
        .into_iter()
        .map(|(key, value)| {
            // Agent environment values may hold API keys: show that they are set, not what.
            let value = if is_agent_env(&key) {
                serde_json::json!("<redacted>")
            } else {
                value
            };
            let source = match figment.find_metadata(&key).map(|m| m.name.as_ref()) {
                Some(name) if name.contains("TOML") => "file",
                Some(name) if name.contains("environment") => "env",
                Some("flag") => "flag",
                _ => "default",
            };
            (key, value, source)
        })
        .collect()
}

/// The command-line layer, named `flag` so that [`value_sources`] can recognise it.
struct FlagLayer<P>(P);

impl<P: figment::Provider> figment::Provider for FlagLayer<P> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("flag")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        self.0.data()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn no_env() -> Env {
        Env::prefixed("SEMANTEST_HUB_TEST_UNUSED_PREFIX_")
    }

    #[test]
    fn defaults_are_valid_and_local() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let loaded = Config::load_with_env(None, &overrides, no_env()).unwrap();
        assert_eq!(loaded.config.limits.max_connections, 100);
        assert_eq!(loaded.config.limits.max_message_bytes, 1 << 20);
        assert!(loaded.config.bind.iter().all(IpAddr::is_loopback));
        assert_eq!(loaded.log_dir, dir.path().join("logs"));
        let source = |key: &str| loaded.sources.iter().find(|(k, ..)| k == key).unwrap().2;
        assert_eq!(source("limits.max_connections"), "default");
        assert_eq!(source("data_dir"), "flag");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error.
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "port = 4000\n[limits]\nmax_projects = 7\nmax_connections = 9\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SEMANTEST_HUB_LIMITS__MAX_CONNECTIONS", "11");
            jail.set_env("SEMANTEST_HUB_BIN", "/not/a/setting");
            let overrides = Overrides {
                port: Some(4001),
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            };
            let loaded = Config::load(Some(&file), &overrides).unwrap();
            assert_eq!(loaded.config.port, Some(4001));
            assert_eq!(loaded.config.limits.max_projects, 7);
            assert_eq!(loaded.config.limits.max_connections, 11);
            let source = |key: &str| loaded.sources.iter().find(|(k, ..)| k == key).unwrap().2;
            assert_eq!(source("port"), "flag");
            assert_eq!(source("limits.max_projects"), "file");
            assert_eq!(source("limits.max_connections"), "env");
            Ok(())
        });
    }

    #[test]
    fn every_agent_environment_is_redacted_and_codex_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let overrides = Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        std::fs::write(
            &file,
            "[agent.env]\nANTHROPIC_API_KEY = \"sk-a\"\n\
             [agent.codex]\nsandbox = \"read-only\"\n[agent.codex.env]\nOPENAI_API_KEY = \"sk-b\"\n\
             [agent.gemini.env]\nGEMINI_API_KEY = \"sk-c\"\n",
        )
        .unwrap();
        let loaded = Config::load_with_env(Some(&file), &overrides, no_env()).unwrap();
        assert_eq!(loaded.config.agent.codex.sandbox, "read-only");
        assert_eq!(loaded.config.agent.codex.env["OPENAI_API_KEY"], "sk-b");
        for key in [
            "agent.env.ANTHROPIC_API_KEY",
            "agent.codex.env.OPENAI_API_KEY",
            "agent.gemini.env.GEMINI_API_KEY",
        ] {
            let (_, value, _) = loaded.sources.iter().find(|(k, ..)| k == key).unwrap();
            assert_eq!(value, "<redacted>", "{key}");
        }
        assert!(!format!("{:?}", loaded.sources).contains("sk-"));
        std::fs::write(&file, "[agent.codex]\nsandbox = \"none\"\n").unwrap();
        let err = Config::load_with_env(Some(&file), &overrides, no_env()).unwrap_err();
        assert!(err.to_string().contains("agent.codex.sandbox"), "{err}");
    }

    #[test]
    fn unknown_env_vars_are_named_and_others_pass() {
        let keys = top_level_keys();
        let names = [
            "SEMANTEST_HUB_PROT",
            "SEMANTEST_HUB_PORT",
            "semantest_hub_limitz__max_connections",
            "SEMANTEST_HUB_LIMITS__MAX_CONNECTIONS",
            "SEMANTEST_HUB_PUBLIC__HOSTS",
            "SEMANTEST_HUB_BIN",
            "SEMANTEST_HUB_PUBLIC_BIN",
            "SEMANTEST_HUB_TOKEN",
            "SEMANTEST_HUB_BROKER_TOKEN",
            "SEMANTEST_HUB_DATABASE_PASSWORD",
            "SEMANTEST_HUBBLE",
            "PATH",
        ]
        .map(String::from);
        assert_eq!(
            unknown_env_vars(names, &keys),
            [
                "SEMANTEST_HUB_PROT",
                "semantest_hub_limitz__max_connections"
            ]
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error.
    fn a_mistyped_top_level_variable_stops_the_load() {
        let dir = tempfile::tempdir().unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SEMANTEST_HUB_PROT", "3005");
            let overrides = Overrides {
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            };
            let err = Config::load(None, &overrides).unwrap_err().to_string();
            assert!(err.contains("SEMANTEST_HUB_PROT is not a setting"), "{err}");
            assert!(err.contains("SEMANTEST_HUB_PORT"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn public_mode_defaults_to_its_own_directories() {
        assert_eq!(
            public_sibling(
                Path::new("/home/u/.local/share/semantest-hub"),
                Mode::Public
            ),
            Path::new("/home/u/.local/share/semantest-hub-public")
        );
        assert_eq!(
            public_sibling(Path::new("/home/u/.local/share/semantest-hub"), Mode::Local),
            Path::new("/home/u/.local/share/semantest-hub")
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let cases = [
            ("bind = [\"0.0.0.0\"]", "bind"),
            ("[limits]\nmax_connections = 0", "limits.max_connections"),
            (
                "[limits]\nping_interval_s = 300\nidle_timeout_s = 60",
                "limits.idle_timeout_s",
            ),
            (
                "[agent]\npermission_mode = \"yolo\"",
                "agent.permission_mode",
            ),
            ("allowed_origins = [\"null\"]", "allowed_origins"),
            ("[coordination]\nlease_s = 0", "coordination.lease_s"),
            (
                "[limits]\nmax_subscriptions = 0",
                "limits.max_subscriptions",
            ),
            (
                "[coordination]\nreport_debounce_ms = 1",
                "coordination.report_debounce_ms",
            ),
            (
                "[dashboard]\nsession_lifetime_s = 0",
                "dashboard.session_lifetime_s",
            ),
        ];
        for (toml, key) in cases {
            std::fs::write(&file, toml).unwrap();
            let err =
                Config::load_with_env(Some(&file), &Overrides::default(), no_env()).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
        std::fs::write(&file, "[limits]\nmax_conections = 5").unwrap();
        let err = Config::load_with_env(Some(&file), &Overrides::default(), no_env()).unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
        let missing = dir.path().join("missing.toml");
        assert!(Config::load_with_env(Some(&missing), &Overrides::default(), no_env()).is_err());
    }
}
