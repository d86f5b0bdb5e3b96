//! TLS to PostgreSQL: the rustls connector for each `sslmode` ([`DatabaseTls`]).
//!
//! The connector is `tokio-postgres-rustls` over the hub's rustls with the `ring`
//! provider, as for the public listener. `verify-full` checks the server's chain
//! against the configured CA file and its name against the URL's host (rustls' WebPKI
//! verifier). `prefer` and `require` encrypt without authenticating the server, as
//! libpq does: a certificate is accepted whoever signed it, but the handshake's
//! signatures are still checked, so the session key belongs to whoever holds the
//! certificate's key. `disable` never starts TLS (tokio-postgres does not call the
//! connector).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DatabaseTls;

/// Why the TLS settings for PostgreSQL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or parsed.
    #[error("cannot read the PostgreSQL CA certificates (sslrootcert) {}", path.display())]
    RootCert {
        /// The file.
        path: PathBuf,
        /// The PEM or I/O error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("{} (sslrootcert) holds no usable PEM CERTIFICATE", .0.display())]
    NoRootCert(PathBuf),
    /// rustls refused the settings.
    #[error("cannot set up TLS for PostgreSQL")]
    Config(#[source] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector for `tls`.
///
/// # Errors
/// [`TlsSetupError`] naming the CA file at fault.
pub fn connector(tls: &DatabaseTls) -> Result<MakeRustlsConnect, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Config)?;
    let config = match tls {
        DatabaseTls::VerifyFull { root_cert } => builder
            .with_root_certificates(roots(root_cert)?)
            .with_no_client_auth(),
        DatabaseTls::Disable | DatabaseTls::Prefer | DatabaseTls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unauthenticated(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The CA certificates in the PEM file `path`.
fn roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let failed = |source| TlsSetupError::RootCert {
        path: path.to_path_buf(),
        source,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(failed)? {
        // A certificate the store cannot use is skipped, as rustls-native-certs does.
        let _ = roots.add(cert.map_err(failed)?);
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoRootCert(path.to_path_buf()));
    }
    Ok(roots)
}

/// `sslmode=prefer` / `require`: any certificate, with the handshake's signatures
/// checked by the provider's algorithms.
#[derive(Debug)]
struct Unauthenticated(Arc<CryptoProvider>);

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
