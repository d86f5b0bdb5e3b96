//! Secrets: the OS keychain first, a mode-0600 file only where no keychain is reachable.
//!
//! The keychain is the macOS Keychain or the freedesktop Secret Service (GNOME Keyring,
//! KWallet) on Linux, through the `keyring` crate with its platform stores enabled
//! explicitly: keyring 3 silently uses an in-memory mock without them, and a secret that
//! vanishes at exit is worse than an error. There is no in-memory fallback here either.
//!
//! Calls block (D-Bus or Security.framework round trips); async callers run them with
//! `tokio::task::spawn_blocking`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::SecretStoreKind;

/// The keychain service name every entry of the hub is filed under.
pub const KEYCHAIN_SERVICE: &str = "dev.semantest.hub";

/// The folder of the file secret store, in the data directory (mode 0700, files 0600).
pub const SECRETS_DIR: &str = "secrets";

/// A secret store failure.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The keychain is missing, locked or refused access.
    #[error(
        "the OS keychain is not available ({0}); unlock it, or start with --secret-store file \
         to keep secrets in a mode-0600 file"
    )]
    KeychainUnavailable(#[source] keyring::Error),
    /// A keychain call failed for another reason.
    #[error("keychain error for {name}")]
    Keychain {
        /// The secret's name.
        name: String,
        /// The keyring error.
        #[source]
        source: keyring::Error,
    },
    /// The secret file could not be read or written.
    #[error("cannot access secret file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Where a [`Secrets`] keeps its values.
#[derive(Debug, Clone)]
enum Backend {
    Keychain { account_prefix: String },
    File { dir: PathBuf },
}

/// A secret store bound to one data directory.
#[derive(Debug, Clone)]
pub struct Secrets {
    backend: Backend,
}

impl Secrets {
    /// Opens the store chosen by `kind` for the hub whose data lives in `data_dir`.
    ///
    /// Keychain entries are named `<name>@<data_dir>`, so hubs with different data
    /// directories (tests, portable installs) never share a token.
    ///
    /// # Errors
    /// With `Keychain`, [`SecretError::KeychainUnavailable`] when no keychain answers. `Auto`
    /// never fails here: it falls back to the file store and logs a warning.
    pub fn open(kind: SecretStoreKind, data_dir: &Path) -> Result<Self, SecretError> {
        let account_prefix = data_dir.display().to_string();
        let keychain = Backend::Keychain {
            account_prefix: account_prefix.clone(),
        };
        let file = Backend::File {
            dir: data_dir.join(SECRETS_DIR),
        };
        let backend = match kind {
            SecretStoreKind::File => file,
            SecretStoreKind::Keychain => {
                probe_keychain(&account_prefix).map_err(SecretError::KeychainUnavailable)?;
                keychain
            }
            SecretStoreKind::Auto => match probe_keychain(&account_prefix) {
                Ok(()) => keychain,
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        "OS keychain not reachable; keeping secrets in a mode-0600 file in the data directory"
                    );
                    file
                }
            },
        };
        Ok(Self { backend })
    }

    /// `"keychain"` or `"file"`, as shown in `/health`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Keychain { .. } => "keychain",
            Backend::File { .. } => "file",
        }
    }

    /// Reads a secret; `Ok(None)` when it was never stored.
    ///
    /// # Errors
    /// [`SecretError`] when the store cannot be read.
    pub fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        match &self.backend {
            Backend::Keychain { account_prefix } => {
                match entry(account_prefix, name)?.get_password() {
                    Ok(value) => Ok(Some(value)),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(source) => Err(SecretError::Keychain {
                        name: name.into(),
                        source,
                    }),
                }
            }
            Backend::File { dir } => {
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(value) => Ok(Some(value.trim().to_string())),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(SecretError::File { path, source }),
                }
            }
        }
    }

    /// Stores a secret, replacing any previous value. The file store writes a temporary
    /// file with mode 0600 and renames it into place, so a crash never leaves half a secret.
    ///
    /// # Errors
    /// [`SecretError`] when the store cannot be written.
    pub fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        match &self.backend {
            Backend::Keychain { account_prefix } => entry(account_prefix, name)?
                .set_password(value)
                .map_err(|source| SecretError::Keychain {
                    name: name.into(),
                    source,
                }),
            Backend::File { dir } => write_private_file(dir, name, value),
        }
    }

    /// Returns the secret `name`, creating it with `make` on first use.
    ///
    /// # Errors
    /// [`SecretError`] when the store cannot be read or written.
    pub fn get_or_create(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, SecretError> {
        if let Some(value) = self.get(name)? {
            return Ok(value);
        }
        let value = make();
        self.set(name, &value)?;
        Ok(value)
    }
}

fn entry(account_prefix: &str, name: &str) -> Result<keyring::Entry, SecretError> {
    keyring::Entry::new(KEYCHAIN_SERVICE, &format!("{name}@{account_prefix}"))
        .map_err(SecretError::KeychainUnavailable)
}

/// Asks the keychain for an entry that may not exist: `NoEntry` proves it answers.
fn probe_keychain(account_prefix: &str) -> Result<(), keyring::Error> {
    let entry = keyring::Entry::new(KEYCHAIN_SERVICE, &format!("probe@{account_prefix}"))?;
    match entry.get_password() {
        Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(err) => Err(err),
    }
}

fn write_private_file(dir: &Path, name: &str, value: &str) -> Result<(), SecretError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let path = dir.join(name);
    let io_err = |source| SecretError::File {
        path: path.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err)?;
    // NamedTempFile is created with mode 0600 on Unix.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_err)?;
    tmp.write_all(value.as_bytes()).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(&path).map_err(|err| io_err(err.error))?;
    // The rename, and the directory if it was just made, are durable only once their
    // directories are synced (fsync(2) of the file covers its data, not its name).
    for dir in [Some(dir), dir.parent()].into_iter().flatten() {
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_store_round_trips_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::open(SecretStoreKind::File, dir.path()).unwrap();
        assert_eq!(secrets.backend_name(), "file");
        assert_eq!(secrets.get("owner-token").unwrap(), None);
        let first = secrets
            .get_or_create("owner-token", || "abc".into())
            .unwrap();
        let second = secrets
            .get_or_create("owner-token", || "other".into())
            .unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("abc", "abc"));
        let mode = std::fs::metadata(dir.path().join("secrets/owner-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("secrets"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }
}
