//! `semantest-hub config …`: where the configuration, data and logs are (`config path`)
//! and the effective value of a setting (`config get`), both from the configuration this
//! command loaded: defaults, then the file, the environment and the flags. `config set`
//! is in `config_set`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::args::ConfigCommand;
use super::output::write_stdout;
use crate::config::{LoadedConfig, Overrides, default_config_file};

/// Carries out `config path` or `config get`.
///
/// # Errors
/// `config get` with a key that is neither a setting nor a section; the message lists
/// the valid keys.
pub(super) fn config_command(
    loaded: &LoadedConfig,
    overrides: &Overrides,
    command: ConfigCommand,
) -> Result<ExitCode> {
    match command {
        ConfigCommand::Path { json } => paths(loaded, json),
        ConfigCommand::Get { key, json } => get(loaded, &key, json),
        ConfigCommand::Set { key, value, json } => {
            return super::config_set::config_set(loaded, overrides, &key, &value, json);
        }
    }
    .map(|()| ExitCode::SUCCESS)
}

/// Prints `config_file`, `data_dir` and `log_dir`. The config file is the one read, or,
/// when none exists yet, the one that would be read (`config.toml` in the platform
/// config directory).
fn paths(loaded: &LoadedConfig, json: bool) -> Result<()> {
    let config_file = loaded.config_file.clone().or_else(default_config_file);
    if json {
        let paths = json!({
            "config_file": config_file,
            "config_file_exists": config_file.as_ref().is_some_and(|path| path.exists()),
            "data_dir": loaded.data_dir,
            "log_dir": loaded.log_dir,
        });
        return write_stdout(format!("{}\n", serde_json::to_string_pretty(&paths)?).as_bytes());
    }
    let shown = config_file.map_or_else(String::new, |path| path.display().to_string());
    let text = format!(
        "config_file: {shown}\ndata_dir: {}\nlog_dir: {}\n",
        loaded.data_dir.display(),
        loaded.log_dir.display()
    );
    write_stdout(text.as_bytes())
}

/// Prints the value of `key`: a string as is, anything else as JSON (`null` for a
/// setting left unset); with `json`, always as JSON. A section (`limits`) prints each of
/// its settings as `key = value`, or with `json` an object of dotted keys. Values under `agent.env` (and `agent.codex.env`, `agent.gemini.env`) are shown as `<redacted>`, as `hub.config`
/// does.
fn get(loaded: &LoadedConfig, key: &str, json: bool) -> Result<()> {
    if let Some((_, value, _)) = loaded.sources.iter().find(|(k, ..)| k == key) {
        let text = if json {
            value.to_string()
        } else {
            shown(value)
        };
        return write_stdout(format!("{text}\n").as_bytes());
    }
    let prefix = format!("{key}.");
    let section: Vec<_> = loaded
        .sources
        .iter()
        .filter(|(k, ..)| k.starts_with(&prefix))
        .collect();
    if section.is_empty() {
        let keys: Vec<&str> = loaded.sources.iter().map(|(k, ..)| k.as_str()).collect();
        bail!(
            "`{key}` is not a setting; the settings are: {}",
            keys.join(", ")
        );
    }
    if json {
        let object: serde_json::Map<String, Value> = section
            .into_iter()
            .map(|(key, value, _)| (key.clone(), value.clone()))
            .collect();
        let text = serde_json::to_string_pretty(&object)?;
        return write_stdout(format!("{text}\n").as_bytes());
    }
    let mut text = String::new();
    for (key, value, _) in section {
        writeln!(text, "{key} = {}", shown(value))?;
    }
    write_stdout(text.as_bytes())
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
