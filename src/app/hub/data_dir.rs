//! The data directory: private (0700, its files 0600), and locked for the hub's
//! lifetime so that two hubs never share a store.

use crate::support::blocking::off_runtime;
use std::time::Duration;

use tracing::warn;

use super::StartError;
use crate::config::LoadedConfig;

/// Takes an exclusive lock on `<data_dir>/hub.lock`, so two hubs never share a store:
/// the second would otherwise treat the first one's runs as orphans and kill them.
/// The OS drops the lock when the process dies, so a crash never leaves it stuck.
/// How long [`lock_data_dir`] waits for the lock before it reports the data directory as
/// busy: long enough for a hub that is stopping (or a child process that still holds a
/// copy of the descriptor between fork and exec) to let go, short enough that a second
/// hub started by mistake is told at once.
const DATA_DIR_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Creates the data directory with mode 0700, and takes group and other permissions
/// away from what an older version or a wider umask left there: the directory, the
/// database with its WAL, shared-memory and journal files, the lock, the runtime file
/// and the secrets folder; also the app's own config folder when the config file in use
/// is in it. Each repair is logged. Only the hub's own entries are touched, so a data
/// directory pointed at a shared place does not have others' files changed.
pub(super) fn make_private(config: &LoadedConfig) -> Result<(), StartError> {
    use crate::support::file_modes::{create_private_dir, restrict};
    let data_dir = &config.data_dir;
    create_private_dir(data_dir).map_err(|source| StartError::Io {
        action: format!("create data directory {}", data_dir.display()),
        source,
    })?;
    let mut targets: Vec<(std::path::PathBuf, bool)> = vec![(data_dir.clone(), false)];
    for name in [
        crate::storage::sqlite::DATABASE_FILE,
        &format!("{}-wal", crate::storage::sqlite::DATABASE_FILE),
        &format!("{}-shm", crate::storage::sqlite::DATABASE_FILE),
        &format!("{}-journal", crate::storage::sqlite::DATABASE_FILE),
        LOCK_FILE,
        RUNTIME_FILE,
    ] {
        targets.push((data_dir.join(name), false));
    }
    targets.push((data_dir.join(crate::storage::secrets::SECRETS_DIR), true));
    let app_config_dir = crate::config::project_dirs().map(|dirs| dirs.config_dir().to_path_buf());
    if let (Some(file), Some(dir)) = (&config.config_file, app_config_dir)
        && file.parent() == Some(dir.as_path())
    {
        targets.push((dir, true));
    }
    for (path, recursive) in targets {
        let repaired = restrict(&path, recursive).map_err(|source| StartError::Io {
            action: format!("restrict the permissions of {}", path.display()),
            source,
        })?;
        for fixed in repaired {
            warn!(
                path = %fixed.path.display(),
                from = format_args!("{:o}", fixed.from),
                to = format_args!("{:o}", fixed.to),
                "repaired permissions: other users could read this; now owner only"
            );
        }
    }
    Ok(())
}

/// The name of the runtime file in the data directory that tells local clients where
/// the hub listens and where it keeps the owner token:
/// `{"url", "port", "pid", "instance_id", "secret_store"}` (`keychain` or `file`), mode 0600. The server
/// writes it once it listens and removes it at shutdown.
pub const RUNTIME_FILE: &str = "server.json";

/// The data-directory lock file, held for the hub's lifetime.
const LOCK_FILE: &str = "hub.lock";

pub(super) async fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(LOCK_FILE);
    let file = off_runtime({
        let path = path.clone();
        move || {
            std::fs::OpenOptions::new()
                .mode(crate::support::file_modes::FILE_MODE)
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        }
    })
    .await
    .map_err(|source| StartError::Io {
        action: format!("open {}", path.display()),
        source,
    })?;
    let deadline = tokio::time::Instant::now() + DATA_DIR_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StartError::DataDirBusy(data_dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StartError::Io {
                    action: format!("lock {}", path.display()),
                    source,
                });
            }
        }
    }
}

impl super::Hub {
    /// Writes `<data_dir>/server.json` ([`RUNTIME_FILE`]) atomically: how local tools reach
    /// this hub (`url`, its port, its pid, this run's id, the secret store, and on a
    /// public hub with TLS the name to use for TLS).
    ///
    /// The file is written on the blocking pool, never on a runtime worker.
    ///
    /// # Errors
    /// [`StartError::Io`] naming the file.
    pub(crate) async fn write_runtime_file(&self, url: &str) -> Result<(), StartError> {
        use std::io::Write;
        let dir = self.config().data_dir.clone();
        let mut body = serde_json::json!({
            "url": url,
            "port": self.port(),
            "pid": std::process::id(),
            "instance_id": self.inner.instance_id,
            "secret_store": self.inner.secret_store,
        });
        let public = &self.config().config.public;
        if self.mode() == crate::config::Mode::Public && !public.behind_proxy {
            // The name local clients must use for TLS (certificate and Host): the first
            // of `public.hosts`, as the configuration requires at least one.
            body["tls_host"] = serde_json::json!(public.hosts.first());
        }
        crate::support::blocking::off_runtime(move || {
            let io_err = |source| StartError::Io {
                action: format!("write {}", dir.join(RUNTIME_FILE).display()),
                source,
            };
            let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err)?;
            tmp.write_all(body.to_string().as_bytes()).map_err(io_err)?;
            tmp.persist(dir.join(RUNTIME_FILE))
                .map_err(|e| io_err(e.error))?;
            Ok(())
        })
        .await
    }
}
