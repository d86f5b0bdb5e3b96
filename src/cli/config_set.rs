//! `semantest-hub config set KEY VALUE`: changes one setting in the config file, keeping
//! the file's comments and layout (toml_edit). The new file is validated as the hub would
//! load it before it replaces the old one, atomically (a temporary file in the same
//! directory, renamed over it), so a bad value never reaches the file and a crash never
//! leaves half a file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use toml_edit::{DocumentMut, Item, Table, Value};

use crate::config::{Config, LoadedConfig, Overrides, default_config_file};
use crate::support::file_modes::create_private_dir;

/// Sets `key` (dotted, e.g. `limits.max_projects`) to `value` in the config file in use,
/// or in the default one (created). `value` is read as a TOML value (`7`, `true`,
/// `["127.0.0.1"]`, `"text"`); anything that is not one is taken as a string, so
/// `config set log_level debug` works unquoted. With `json`, prints `{key, value, source,
/// file}`: the value in force after the change and the layer it comes from.
///
/// # Errors
/// An unknown key (naming the valid ones), a file that is not valid TOML, a value the
/// hub would refuse (with the hub's own message), or a failed write; the file is left
/// as it was in each case.
pub(super) fn config_set(
    loaded: &LoadedConfig,
    overrides: &Overrides,
    key: &str,
    value: &str,
    json: bool,
) -> Result<ExitCode> {
    let known = loaded.sources.iter().any(|(k, ..)| k == key) || crate::config::is_agent_env(key);
    if !known {
        let keys: Vec<&str> = loaded.sources.iter().map(|(k, ..)| k.as_str()).collect();
        bail!(
            "`{key}` is not a setting; the settings are: {}",
            keys.join(", ")
        );
    }
    let path = loaded
        .config_file
        .clone()
        .or_else(default_config_file)
        .context("cannot determine the config directory; pass --config")?;
    // Through a symlink, the file it points to is the one to change.
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut document: DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML; fix it first", path.display()))?;
    set(&mut document, key, parse_value(value))?;

    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    create_private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut candidate = tempfile::Builder::new()
        .prefix(".config-")
        .suffix(".toml")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    candidate
        .write_all(document.to_string().as_bytes())
        .and_then(|()| candidate.as_file().sync_all())
        .context("cannot write the new configuration")?;
    // The hub's own message, naming the real file rather than the temporary one.
    let reloaded = Config::load(Some(candidate.path()), overrides).map_err(|err| {
        let message = err.to_string().replace(
            &candidate.path().display().to_string(),
            &path.display().to_string(),
        );
        anyhow!("not written, {} is unchanged: {message}", path.display())
    })?;
    candidate
        .persist(&path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    let effective = reloaded.sources.iter().find(|(k, ..)| k == key);
    if json {
        let (value, source) =
            effective.map_or((&serde_json::Value::Null, "file"), |(_, v, s)| (v, *s));
        super::output::print_json(&serde_json::json!({
            "key": key, "value": value, "source": source, "file": path,
        }))?;
    } else {
        outln!("{key} set in {}", path.display())?;
    }
    if let Some((_, _, source)) = effective
        && *source != "file"
    {
        eprintln!("note: the {source} layer overrides this file for {key}");
    }
    eprintln!("A running hub uses the new value after a restart.");
    Ok(ExitCode::SUCCESS)
}

/// `text` as a TOML value, or as a string when it is not one.
fn parse_value(text: &str) -> Value {
    text.parse::<Value>()
        .map(|mut value| {
            value.decor_mut().clear();
            value
        })
        .unwrap_or_else(|_| Value::from(text))
}

/// Sets the dotted `key` in `document`, creating the tables on the way.
fn set(document: &mut DocumentMut, key: &str, value: Value) -> Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().context("an empty key")?;
    let mut table: &mut Table = document.as_table_mut();
    for part in parts {
        let item = table
            .entry(part)
            .or_insert_with(|| Item::Table(Table::new()));
        table = match item {
            Item::Table(inner) => inner,
            _ => bail!("`{part}` in the config file is not a table; fix it first"),
        };
    }
    // A value replacing another keeps its spacing and trailing comment.
    let mut value = value;
    if let Some(Item::Value(old)) = table.get(last) {
        *value.decor_mut() = old.decor().clone();
    }
    table.insert(last, Item::Value(value));
    Ok(())
}
