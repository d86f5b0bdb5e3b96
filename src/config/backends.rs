//! The servers a public deployment shares: `public.database` (PostgreSQL) and
//! `public.broker` (NATS), checked here so that a bad value stops the hub with its key
//! before anything connects.

use std::path::PathBuf;

use super::redact::redact_password;

/// The environment variable holding the PostgreSQL password for `public.database`.
pub const DATABASE_PASSWORD_ENV: &str = "SEMANTEST_HUB_DATABASE_PASSWORD";

/// Parses a `public.database` URL: `postgres://` or `postgresql://`, at least a host, no
/// password (a secret does not belong in a configuration file).
///
/// # Errors
/// A sentence saying what is wrong and how to fix it.
pub fn database_url(url: &str) -> Result<tokio_postgres::Config, String> {
    // Quoted back with any password hidden: the usual mistake is a URL that has one.
    let shown = redact_password(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "{shown:?} is not a PostgreSQL URL; write postgres://user@host:5432/dbname"
        ));
    }
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|err| format!("{shown:?} is not a valid PostgreSQL URL: {err}"))?;
    if config.get_password().is_some() {
        return Err(format!(
            "the URL carries a password; remove it and set {DATABASE_PASSWORD_ENV} \
             (or the keychain entry database-password) instead"
        ));
    }
    if config.get_hosts().is_empty() {
        return Err(format!(
            "{shown:?} names no host; write postgres://user@host:5432/dbname"
        ));
    }
    if config.get_user().is_none() {
        return Err(format!(
            "{shown:?} names no user; write postgres://user@host:5432/dbname"
        ));
    }
    Ok(config)
}

/// How the hub protects its connection to PostgreSQL: the `sslmode` of
/// `public.database`, with libpq's meanings
/// (<https://www.postgresql.org/docs/current/libpq-ssl.html>, table "SSL Mode
/// Descriptions").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTls {
    /// `sslmode=disable`: plain TCP.
    Disable,
    /// `sslmode=prefer` (the default): TLS when the server offers it, else plain; the
    /// server is not authenticated.
    Prefer,
    /// `sslmode=require`: TLS or no connection; encrypted, but the server's
    /// certificate is not checked, so an active attacker on the path can impersonate it.
    Require,
    /// `sslmode=verify-full&sslrootcert=/path/ca.pem`: TLS, with the server's
    /// certificate checked against the CA certificates in `root_cert` (PEM) and its
    /// name against the host in the URL.
    VerifyFull {
        /// The PEM file of trusted CA certificates (`sslrootcert`).
        root_cert: PathBuf,
    },
}

/// Parses `public.database` as [`database_url`] does, and its TLS settings: `sslmode`
/// (`disable`, `prefer`, `require`, `verify-full`) and, for `verify-full`, the CA file
/// `sslrootcert` (required: there is no default trust store for a private database).
/// `verify-ca` is refused (`verify-full` also checks the name, which is what a
/// certificate proves).
///
/// # Errors
/// A sentence saying what is wrong and how to fix it.
pub fn database_settings(url: &str) -> Result<(tokio_postgres::Config, DatabaseTls), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut verify, mut root_cert) = (None, None);
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| format!("the value of {key} in public.database is not UTF-8"))?;
        match (key, value.as_ref()) {
            ("sslmode", mode @ ("verify-full" | "verify-ca")) => verify = Some(mode.to_string()),
            ("sslrootcert", path) => root_cert = Some(PathBuf::from(path)),
            _ => kept.push(pair),
        }
    }
    let stripped = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = database_url(&stripped)?;
    let tls = match (verify.as_deref(), root_cert) {
        (Some("verify-ca"), _) => {
            return Err("sslmode=verify-ca is not supported; use sslmode=verify-full,                         which checks the server's name as well as its CA"
                .into());
        }
        (Some(_), None) => {
            return Err("sslmode=verify-full needs the CA certificates to trust: add                         sslrootcert=/path/to/ca.pem to the URL"
                .into());
        }
        (Some(_), Some(root_cert)) => {
            if !root_cert.is_file() {
                return Err(format!(
                    "sslrootcert {} is not a readable file",
                    root_cert.display()
                ));
            }
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            DatabaseTls::VerifyFull { root_cert }
        }
        (None, Some(_)) => {
            return Err("sslrootcert is only read with sslmode=verify-full; add it".into());
        }
        (None, None) => match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => DatabaseTls::Disable,
            tokio_postgres::config::SslMode::Prefer => DatabaseTls::Prefer,
            _ => DatabaseTls::Require,
        },
    };
    Ok((config, tls))
}

/// The default `public.broker_subject_prefix`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "semantest";

/// Checks a subject prefix: 1 to 64 characters, dot-separated non-empty tokens of
/// `[A-Za-z0-9_-]` (a subset of NATS tokens without wildcards, so that the derived
/// `-answers` and `-control` subjects stay valid).
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_subject_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > 64 {
        return Err("the subject prefix must be 1 to 64 characters");
    }
    let token_ok = |token: &str| {
        !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !prefix.split('.').all(token_ok) {
        return Err(
            "the subject prefix must be dot-separated, non-empty tokens of letters, digits, _ and -",
        );
    }
    Ok(())
}

/// The servers of a `public.broker` value: comma-separated `nats://` or `tls://` URLs,
/// each with a host, at most a user name (no password) and no path.
///
/// # Errors
/// A sentence naming the bad URL and what is wrong, for [`ConfigError::Invalid`].
pub fn broker_servers(value: &str) -> Result<Vec<async_nats::ServerAddr>, String> {
    let mut servers = Vec::new();
    for part in value.split(',').map(str::trim) {
        // Quoted back with any password hidden: the usual mistake is a URL that has one.
        let shown = redact_password(part);
        if part.is_empty() {
            let value = value
                .split(',')
                .map(redact_password)
                .collect::<Vec<_>>()
                .join(",");
            return Err(format!(
                "{value:?} has an empty server; give nats://host:port URLs separated by commas"
            ));
        }
        if !part.starts_with("nats://") && !part.starts_with("tls://") {
            return Err(format!(
                "{shown:?} is not a NATS server URL; write nats://host:4222 or tls://host:4222"
            ));
        }
        let server: async_nats::ServerAddr = part
            .parse()
            .map_err(|err| format!("{shown:?} is not a NATS server URL: {err}"))?;
        if server.password().is_some() {
            return Err(format!(
                "{shown:?} carries a password; the configuration never holds one: remove it \
                 and set SEMANTEST_HUB_BROKER_PASSWORD (or the keychain entry broker-password) \
                 instead"
            ));
        }
        if server.host().is_empty() {
            return Err(format!("{shown:?} names no host"));
        }
        let url = server.as_url_str();
        if let Some(rest) = url.split_once("://").map(|(_, rest)| rest)
            && rest.trim_end_matches('/').contains('/')
        {
            return Err(format!(
                "{shown:?} has a path; a NATS URL is scheme://host:port"
            ));
        }
        servers.push(server);
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_checked_and_never_carry_a_password() {
        let servers = broker_servers("nats://127.0.0.1:4222, tls://hub@nats.example.com:4443")
            .expect("two servers");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].username(), Some("hub"));
        assert!(servers[1].tls_required());
        let password = broker_servers("nats://hub:secret@127.0.0.1:4222").unwrap_err();
        assert!(
            password.contains("SEMANTEST_HUB_BROKER_PASSWORD"),
            "{password}"
        );
        assert!(password.contains("carries a password"), "{password}");
        for bad in [
            "",
            "nats://a:4222,",
            "http://127.0.0.1:4222",
            "127.0.0.1:4222",
            "nats://127.0.0.1:4222/path",
            "nats://",
        ] {
            assert!(broker_servers(bad).is_err(), "{bad:?}");
        }
    }
}
