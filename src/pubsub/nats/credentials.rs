//! The NATS backplane's credentials: from the environment or the secret store, never
//! from the configuration file (docs/configuration.md, "Broker credentials").

use async_nats::ServerAddr;

use crate::storage::secrets::{SecretError, Secrets};

use super::NatsError;

/// How the instance proves itself to the NATS server. Never read from the config file
/// (docs/configuration.md, "Broker credentials").
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials, or the user name alone from the URL.
    #[default]
    None,
    /// `SEMANTEST_HUB_BROKER_TOKEN`, or the keychain entry `broker-token`.
    Token(String),
    /// The user from the URL with `SEMANTEST_HUB_BROKER_PASSWORD`, or the keychain
    /// entry `broker-password`.
    UserPassword {
        /// From the URL (`nats://user@host:4222`).
        user: String,
        /// From the environment or the keychain.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::None => "None",
            Credentials::Token(_) => "Token(..)",
            Credentials::UserPassword { .. } => "UserPassword(..)",
        })
    }
}

/// The environment variable with the NATS token.
pub const TOKEN_ENV: &str = "SEMANTEST_HUB_BROKER_TOKEN";
/// The environment variable with the NATS password of the URL's user.
pub const PASSWORD_ENV: &str = "SEMANTEST_HUB_BROKER_PASSWORD";
/// The secret (keychain entry, or file in the file store) with the NATS token.
pub const TOKEN_SECRET: &str = "broker-token";
/// The secret with the NATS password of the URL's user.
pub const PASSWORD_SECRET: &str = "broker-password";

impl Credentials {
    /// The credentials for `servers`: a token from [`TOKEN_ENV`], else the secret
    /// [`TOKEN_SECRET`]; else, when a URL names a user, its password from
    /// [`PASSWORD_ENV`], else the secret [`PASSWORD_SECRET`]; else none. Empty values
    /// count as absent.
    ///
    /// # Errors
    /// [`NatsError::Secrets`] when the secret store cannot be read;
    /// [`NatsError::NoPassword`] when a URL names a user and no password is found.
    pub fn resolve(servers: &[ServerAddr], secrets: &Secrets) -> Result<Self, NatsError> {
        let from = |env: &str, secret: &str| -> Result<Option<String>, SecretError> {
            match std::env::var(env) {
                Ok(value) if !value.is_empty() => Ok(Some(value)),
                _ => Ok(secrets.get(secret)?.filter(|v| !v.is_empty())),
            }
        };
        if let Some(token) = from(TOKEN_ENV, TOKEN_SECRET)? {
            return Ok(Self::Token(token));
        }
        let Some(user) = servers.iter().find_map(|s| s.username()) else {
            return Ok(Self::None);
        };
        match from(PASSWORD_ENV, PASSWORD_SECRET)? {
            Some(password) => Ok(Self::UserPassword {
                user: user.to_string(),
                password,
            }),
            None => Err(NatsError::NoPassword {
                user: user.to_string(),
            }),
        }
    }
}

/// A server address without its user name (the credentials are passed on their own).
///
/// # Errors
/// [`NatsError::Url`] if the address cannot be written back (it was checked at start).
pub fn without_user(server: &ServerAddr) -> Result<ServerAddr, NatsError> {
    let text = format!("{}://{}:{}", server.scheme(), server.host(), server.port());
    text.parse().map_err(|_| NatsError::Url(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretStoreKind;

    fn servers(url: &str) -> Vec<ServerAddr> {
        vec![url.parse().unwrap()]
    }

    #[test]
    fn credentials_come_from_the_secret_store_when_the_environment_has_none() {
        if std::env::var_os(TOKEN_ENV).is_some() || std::env::var_os(PASSWORD_ENV).is_some() {
            return; // The environment wins; this test is about the store.
        }
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::open(SecretStoreKind::File, dir.path()).unwrap();
        let anonymous = servers("nats://127.0.0.1:4222");
        let with_user = servers("nats://hub@127.0.0.1:4222");
        assert_eq!(
            Credentials::resolve(&anonymous, &secrets).unwrap(),
            Credentials::None
        );
        match Credentials::resolve(&with_user, &secrets) {
            Err(NatsError::NoPassword { user }) => assert_eq!(user, "hub"),
            other => panic!("expected NoPassword, got {other:?}"),
        }
        secrets.set(PASSWORD_SECRET, "pw").unwrap();
        assert_eq!(
            Credentials::resolve(&with_user, &secrets).unwrap(),
            Credentials::UserPassword {
                user: "hub".into(),
                password: "pw".into()
            }
        );
        secrets.set(TOKEN_SECRET, "tok").unwrap();
        assert_eq!(
            Credentials::resolve(&with_user, &secrets).unwrap(),
            Credentials::Token("tok".into())
        );
        assert_eq!(
            without_user(&with_user[0]).unwrap().username(),
            None,
            "the user is passed on its own"
        );
    }

    #[test]
    fn credentials_never_print() {
        let credentials = Credentials::UserPassword {
            user: "hub".into(),
            password: "secret".into(),
        };
        assert!(!format!("{credentials:?}").contains("secret"));
    }
}
