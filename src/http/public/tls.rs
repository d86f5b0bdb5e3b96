//! TLS for public mode: the rustls server configuration from PEM files, and its reload.
//!
//! The certificate chain and key are read at start, so a bad file stops the hub with the
//! file's name instead of failing every handshake later. Protocols are TLS 1.2 and 1.3
//! with rustls' default cipher suites (the `ring` provider); ALPN offers `http/1.1` only,
//! so a WebSocket is always an HTTP/1.1 upgrade (RFC 6455 section 4) and every client
//! connection is one TCP connection for the per-address limits.
//!
//! On SIGHUP the files are read again and new handshakes use the new certificate;
//! connections already open keep theirs. A reload that fails keeps the old certificate
//! and logs why, so an ACME client's `--deploy-hook` may simply send SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or parsed as PEM.
    #[error("cannot read the TLS certificate chain {}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// The PEM or I/O error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("{} holds no PEM CERTIFICATE section", .0.display())]
    NoCertificate(PathBuf),
    /// The key file could not be read, or holds no private key.
    #[error(
        "cannot read a private key (PKCS#8, PKCS#1 or SEC1 PEM) from {}",
        path.display()
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// The PEM or I/O error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the pair, e.g. a key that does not match the certificate.
    #[error("the TLS certificate and key cannot be used together")]
    Config(#[source] rustls::Error),
}

/// Reads `cert` (PEM chain, leaf first) and `key` into a rustls server configuration.
///
/// # Errors
/// [`TlsError`] naming the file at fault.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_error = |source| TlsError::Certificate {
        path: cert.to_path_buf(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(cert_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The acceptor configuration for `cert` and `key`.
///
/// # Errors
/// [`TlsError`] as for [`server_config`].
pub fn load(cert: &Path, key: &Path) -> Result<RustlsConfig, TlsError> {
    Ok(RustlsConfig::from_config(server_config(cert, key)?))
}

/// Reloads `config` from the files on every SIGHUP until `shutdown`. The signal is
/// watched from the moment this returns, so a SIGHUP sent right after start is not
/// missed; the returned future does the reloading.
///
/// # Errors
/// The OS error when SIGHUP cannot be watched.
pub fn reload_on_sighup(
    config: RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
    shutdown: CancellationToken,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                received = hangup.recv() => if received.is_none() { return },
            }
            let (cert, key) = (cert.clone(), key.clone());
            let loaded = tokio::task::spawn_blocking(move || server_config(&cert, &key)).await;
            match loaded {
                Ok(Ok(server)) => {
                    config.reload_from_config(server);
                    info!("TLS certificate reloaded");
                }
                Ok(Err(err)) => warn!(
                    error = %crate::protocol::error::ErrorChain(&err),
                    "TLS certificate reload failed; keeping the previous one"
                ),
                Err(_) => warn!("TLS certificate reload panicked; keeping the previous one"),
            }
        }
    })
}
