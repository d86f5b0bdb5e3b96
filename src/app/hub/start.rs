//! Why the hub could not start, and what opening it needs from the configuration and
//! the secret store: the shared database's settings and password, the path policy.

use std::path::Path;

use crate::config::LoadedConfig;
use crate::projects::{PathPolicy, ProjectError};
use crate::pubsub::nats::NatsError;
use crate::storage::postgres::{DATABASE_PASSWORD_SECRET, DatabaseError};
use crate::storage::secrets::{SecretError, Secrets};
use crate::storage::sqlite::StoreError;

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another hub (the desktop app, or `serve`) already uses the data directory.
    #[error(
        "another hub is already running with data directory {0}; stop it first, or use another --data-dir"
    )]
    DataDirBusy(std::path::PathBuf),
    /// The secret store failed.
    #[error(transparent)]
    Secrets(#[from] SecretError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Projects could not be loaded.
    #[error(transparent)]
    Projects(#[from] ProjectError),
    /// The NATS broker (`public.broker`) could not be set up.
    #[error(transparent)]
    Broker(#[from] NatsError),
    /// No port could be bound.
    #[error("cannot listen on {addrs}")]
    Bind {
        /// The addresses tried.
        addrs: String,
        /// The last OS error.
        #[source]
        source: std::io::Error,
    },
    /// `public.database` is set but the database cannot be used: unreachable, refused
    /// the credentials, or a migration failed. The hub does not start without it.
    #[error("cannot use the shared database {target} (public.database)")]
    Database {
        /// `user@host:port/dbname`, never a password.
        target: String,
        /// What failed.
        #[source]
        source: DatabaseError,
    },
    /// `public.database` is not a usable PostgreSQL URL (the reason says why).
    #[error("invalid public.database: {0}")]
    DatabaseUrl(String),
    /// Another I/O failure (data directory, runtime file).
    #[error("cannot {action}")]
    Io {
        /// What was being done.
        action: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The parsed `public.database` when public mode uses the shared database. Checked
/// again here (the configuration was validated when loaded) so that a configuration
/// built some other way cannot fall back to SQLite silently.
pub(super) fn shared_database(
    config: &LoadedConfig,
) -> Result<Option<(tokio_postgres::Config, crate::config::DatabaseTls)>, StartError> {
    let public = &config.config.public;
    match public.database.as_deref().filter(|_| public.enabled) {
        None => Ok(None),
        Some(url) => crate::config::database_settings(url)
            .map(Some)
            .map_err(StartError::DatabaseUrl),
    }
}

/// `user@host:port/dbname` of a database configuration, for messages (no password).
pub(super) fn describe(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => String::new(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        pg.get_user().unwrap_or(""),
        pg.get_dbname().unwrap_or("")
    )
}

/// What may not be a project: the home directory and its hidden folders, and the hub's
/// own config, data and log directories (see [`PathPolicy`]).
pub(super) fn path_policy(config: &LoadedConfig) -> PathPolicy {
    let home = directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf());
    let config_dir = crate::config::project_dirs().map(|dirs| dirs.config_dir().to_path_buf());
    let mut hub_dirs: Vec<(&Path, &'static str)> = vec![
        (&config.data_dir, "the hub's data directory"),
        (&config.log_dir, "the hub's log directory"),
    ];
    if let Some(dir) = &config_dir {
        hub_dirs.push((dir, "the hub's config directory"));
    }
    if let Some(dir) = config.config_file.as_deref().and_then(Path::parent) {
        hub_dirs.push((dir, "the folder of the hub's config file"));
    }
    PathPolicy::new(home.as_deref(), &hub_dirs)
}

/// The PostgreSQL password: `SEMANTEST_HUB_DATABASE_PASSWORD`, else the secret store's
/// `database-password` entry, else none (trust or certificate authentication).
pub(super) fn database_password(secrets: &Secrets) -> Result<Option<String>, SecretError> {
    if let Ok(password) = std::env::var(crate::config::DATABASE_PASSWORD_ENV)
        && !password.is_empty()
    {
        return Ok(Some(password));
    }
    secrets.get(DATABASE_PASSWORD_SECRET)
}
