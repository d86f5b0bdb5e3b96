//! The `[public]` section: public mode, where the same hub serves remote clients.
//!
//! In public mode (`semantest-hub serve --public`, or `public.enabled = true`) the hub
//! listens on `public.bind` instead of loopback, speaks TLS itself (`tls_cert`,
//! `tls_key`) or plain HTTP behind a reverse proxy (`behind_proxy`), answers only to the
//! names in `hosts`, limits every client address, and switches off the method families
//! that run code or touch the owner's files (agents, projects, tasks) unless enabled.
//! docs/configuration.md describes each setting; docs/deployment.md how to deploy.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::redact::redact_password;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Which kind of hub this is. Local unless `public.enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The desktop or `serve` hub: loopback only, owner token and dashboard cookie.
    #[default]
    Local,
    /// A hub for remote clients: TLS or a trusted proxy, tokens only, per-address limits.
    Public,
}

impl Mode {
    /// `"local"` or `"public"`, as in the signature's `mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Public => "public",
        }
    }

    /// The connection badge for clients of a hub in this mode: `LOCAL` or `PUBLIC`.
    pub fn badge(self) -> &'static str {
        match self {
            Self::Local => "LOCAL",
            Self::Public => "PUBLIC",
        }
    }
}

/// The request header a trusted proxy writes the client address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (de facto standard; nginx, HAProxy,
    /// Caddy, Traefik and cloud load balancers write it).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client;proto=https, for=proxy1` (RFC 7239).
    Forwarded,
}

/// A family of JSON-RPC methods that public mode switches off unless enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `project.*` and `messages.list`: the owner's registered folders and their output.
    Projects,
    /// `agent.*`: running the coding agent, that is, running code on the server.
    Agents,
    /// `worker.*`, `task.*`, `coordination.status`, `project.configure`: the task queue.
    Tasks,
    /// `hub.login_link`, `hub.revoke_sessions`: dashboard sign-in, which public mode does
    /// not have.
    DashboardLogin,
}

impl Family {
    /// The family of `method`, or `None` for methods every mode serves (`hub.hello`,
    /// `hub.status`, events, ...).
    pub fn of(method: &str) -> Option<Self> {
        let prefix = method.split('.').next().unwrap_or_default();
        match (prefix, method) {
            (_, "project.configure" | "coordination.status") => Some(Self::Tasks),
            (_, "hub.login_link" | "hub.revoke_sessions") => Some(Self::DashboardLogin),
            (_, "messages.list") | ("project", _) => Some(Self::Projects),
            ("agent", _) => Some(Self::Agents),
            ("worker" | "task", _) => Some(Self::Tasks),
            _ => None,
        }
    }

    /// The setting that enables the family in public mode, for error messages.
    pub fn setting(self) -> &'static str {
        match self {
            Self::Projects => "public.enable_projects",
            Self::Agents => "public.enable_agents",
            Self::Tasks => "public.enable_tasks",
            Self::DashboardLogin => "none: a public hub has no dashboard sign-in",
        }
    }
}

/// The `[public]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PublicConfig {
    /// Run in public mode (`--public`).
    pub enabled: bool,
    /// Address and port to listen on (`--bind`), e.g. `0.0.0.0:8443`. Required in public
    /// mode; port 0 takes any free port.
    pub bind: Option<SocketAddr>,
    /// PEM certificate chain, leaf first (`--tls-cert`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key, PKCS#8, PKCS#1 or SEC1 (`--tls-key`).
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP for a TLS-terminating reverse proxy (`--behind-proxy`).
    pub behind_proxy: bool,
    /// Peers whose `proxy_header` is believed, as CIDR ranges (`10.0.0.0/8`,
    /// `127.0.0.1/32`). Only read with `behind_proxy`.
    pub trusted_proxies: Vec<IpNet>,
    /// The header trusted proxies write the client address into.
    pub proxy_header: ProxyHeader,
    /// The names clients use to reach the hub (the Host allowlist), e.g.
    /// `hub.example.com` (any port) or `hub.example.com:8443` (that port only).
    pub hosts: Vec<String>,
    /// Origins allowed to open the WebSocket besides the top-level `allowed_origins`,
    /// matched exactly.
    pub allowed_origins: Vec<String>,
    /// Client addresses (CIDR ranges) served `/metrics` and the full `/health` report;
    /// others get 403 for `/metrics` and only `{status, product, version}` from `/health`.
    pub monitoring_from: Vec<IpNet>,
    /// WebSocket connections one client address may hold at once.
    pub per_address_connections: usize,
    /// TCP connections one peer address may hold open when the hub terminates TLS
    /// (WebSockets, keep-alive HTTP, handshakes in progress); more are closed at once.
    /// Not used behind a proxy, where the proxy is the only peer. IPv6 peers are counted
    /// per /64.
    pub per_address_sockets: usize,
    /// TCP connections one IPv6 site (a /48, the usual assignment to a customer) may hold
    /// open when the hub terminates TLS, over all its /64s; at least
    /// `per_address_sockets`. An IPv4 address counts here as well, as its own site.
    pub per_site_sockets: usize,
    /// Sustained HTTP requests plus WebSocket messages per second from one address.
    pub per_address_rate_per_s: u32,
    /// Burst above the sustained rate for one address.
    pub per_address_burst: u32,
    /// Serve `agent.*` (running the coding agent on the server). Needs `enable_projects`.
    pub enable_agents: bool,
    /// Serve `project.*` and `messages.list`.
    pub enable_projects: bool,
    /// Serve the task queue (`worker.*`, `task.*`, ...). Needs `enable_projects`.
    pub enable_tasks: bool,
    /// Accept pairing requests (`POST /pair`, `POST /pair/{id}`). Off by default: on a
    /// public hub anyone on the network can ask, and each request puts a prompt in
    /// front of the operator; clients get tokens from `semantest-hub token create`
    /// instead. When off, both endpoints answer 403 with kind `DISABLED`.
    pub pairing: bool,
    /// The PostgreSQL database shared by every instance of a public hub, as
    /// `postgres://user@host:port/dbname` (libpq URL syntax, without a password: that comes
    /// from `SEMANTEST_HUB_DATABASE_PASSWORD` or the keychain entry `database-password`).
    /// Absent: client tokens and pairings stay in this instance's SQLite database and
    /// memory, so only one instance can serve them.
    pub database: Option<String>,
    /// The NATS servers that carry events between the instances of one deployment,
    /// `nats://host:4222` or `tls://host:4222`, several separated by commas. Absent: one
    /// instance, the in-process broker. A user name may be given
    /// (`nats://hub@host:4222`), never a password: that comes from
    /// `SEMANTEST_HUB_BROKER_PASSWORD` or the keychain (docs/configuration.md).
    pub broker: Option<String>,
    /// The first tokens of every NATS subject the hub uses (`<prefix>.<event type>`,
    /// `<prefix>-answers`, `<prefix>-control`); instances of one deployment share it.
    pub broker_subject_prefix: String,
}

impl Default for PublicConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: None,
            tls_cert: None,
            tls_key: None,
            behind_proxy: false,
            trusted_proxies: vec![
                IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
                IpNet::from(std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
            ],
            proxy_header: ProxyHeader::XForwardedFor,
            hosts: Vec::new(),
            allowed_origins: Vec::new(),
            monitoring_from: vec![
                IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
                IpNet::from(std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
            ],
            per_address_connections: 20,
            per_address_sockets: 50,
            per_site_sockets: 200,
            per_address_rate_per_s: 20,
            per_address_burst: 100,
            enable_agents: false,
            enable_projects: false,
            enable_tasks: false,
            pairing: false,
            database: None,
            broker: None,
            broker_subject_prefix: DEFAULT_SUBJECT_PREFIX.to_string(),
        }
    }
}

impl PublicConfig {
    /// `Public` when enabled, else `Local`.
    pub fn mode(&self) -> Mode {
        if self.enabled {
            Mode::Public
        } else {
            Mode::Local
        }
    }

    /// Whether a hub in this configuration serves `family`. Local mode serves every
    /// family; public mode only the enabled ones, and never dashboard sign-in.
    pub fn serves(&self, family: Family) -> bool {
        if !self.enabled {
            return true;
        }
        match family {
            Family::Projects => self.enable_projects,
            Family::Agents => self.enable_agents,
            Family::Tasks => self.enable_tasks,
            Family::DashboardLogin => false,
        }
    }

    /// Whether this hub takes pairing requests: always in local mode, in public mode
    /// only with `public.pairing`.
    pub fn serves_pairing(&self) -> bool {
        !self.enabled || self.pairing
    }

    /// The method families the signature lists in `capabilities`, in this order:
    /// `projects`, `agents`, `messages`, `tasks`, for the ones served.
    pub fn capabilities(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.serves(Family::Projects) {
            out.push("projects");
        }
        if self.serves(Family::Agents) {
            out.push("agents");
        }
        if self.serves(Family::Projects) {
            out.push("messages");
        }
        if self.serves(Family::Tasks) {
            out.push("tasks");
        }
        out
    }

    /// Checks the section when public mode is on; an off section is not checked.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let invalid = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.bind.is_none() {
            return invalid(
                "public.bind",
                "public mode needs an address to listen on, e.g. --bind 0.0.0.0:8443".into(),
            );
        }
        match (&self.tls_cert, &self.tls_key, self.behind_proxy) {
            (None, None, false) => {
                return invalid(
                    "public.tls_cert",
                    "public mode needs TLS (--tls-cert FILE --tls-key FILE) or a TLS-terminating \
                     proxy in front (--behind-proxy); it never serves plain HTTP to the network"
                        .into(),
                );
            }
            (Some(_), None, _) => {
                return invalid(
                    "public.tls_key",
                    "a certificate needs its private key (--tls-key FILE)".into(),
                );
            }
            (None, Some(_), _) => {
                return invalid(
                    "public.tls_cert",
                    "a private key needs its certificate (--tls-cert FILE)".into(),
                );
            }
            (Some(_), Some(_), true) => {
                return invalid(
                    "public.behind_proxy",
                    "choose one: TLS in the hub (--tls-cert/--tls-key) or behind a proxy \
                     (--behind-proxy), not both"
                        .into(),
                );
            }
            _ => {}
        }
        for (key, path) in [
            ("public.tls_cert", &self.tls_cert),
            ("public.tls_key", &self.tls_key),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                return invalid(key, format!("{} is not a readable file", path.display()));
            }
        }
        if self.behind_proxy && self.trusted_proxies.is_empty() {
            return invalid(
                "public.trusted_proxies",
                "--behind-proxy needs the proxy's address range, e.g. [\"127.0.0.1/32\"]".into(),
            );
        }
        if self.hosts.is_empty() {
            return invalid(
                "public.hosts",
                "list the names clients reach the hub by, e.g. [\"hub.example.com\"]; \
                 other Host headers are refused"
                    .into(),
            );
        }
        for host in &self.hosts {
            if super::allowlist::HostEntry::parse(host).is_none() {
                return invalid(
                    "public.hosts",
                    format!(
                        "{host:?} is not a host name with an optional port, like hub.example.com or hub.example.com:8443"
                    ),
                );
            }
        }
        for origin in &self.allowed_origins {
            if let Err(why) = super::allowlist::parse_origin(origin) {
                return invalid(
                    "public.allowed_origins",
                    format!("{origin:?} is not an origin like https://app.example.com: {why}"),
                );
            }
        }
        for (key, value) in [
            (
                "public.per_address_connections",
                self.per_address_connections,
            ),
            ("public.per_address_sockets", self.per_address_sockets),
            ("public.per_site_sockets", self.per_site_sockets),
            (
                "public.per_address_rate_per_s",
                self.per_address_rate_per_s as usize,
            ),
            ("public.per_address_burst", self.per_address_burst as usize),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if self.per_site_sockets < self.per_address_sockets {
            return invalid(
                "public.per_site_sockets",
                "must be at least public.per_address_sockets: a site holds many addresses".into(),
            );
        }
        if self.enable_agents && !self.enable_projects {
            return invalid(
                "public.enable_agents",
                "agents run in projects; set public.enable_projects = true as well".into(),
            );
        }
        if self.enable_tasks && !self.enable_projects {
            return invalid(
                "public.enable_tasks",
                "tasks belong to projects; set public.enable_projects = true as well".into(),
            );
        }
        if let Some(url) = &self.database {
            database_settings(url).map_err(|reason| ConfigError::Invalid {
                key: "public.database",
                reason,
            })?;
        }
        if let Some(broker) = &self.broker {
            broker_servers(broker).map_err(|reason| ConfigError::Invalid {
                key: "public.broker",
                reason,
            })?;
        }
        check_subject_prefix(&self.broker_subject_prefix).map_err(|reason| {
            ConfigError::Invalid {
                key: "public.broker_subject_prefix",
                reason: reason.into(),
            }
        })?;
        Ok(())
    }
}

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

/// Public-mode values given on the command line (`--public`, `--bind`, `--tls-cert`,
/// `--tls-key`, `--behind-proxy`); `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PublicOverrides {
    /// `--public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `--bind ADDR:PORT` with `--public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<SocketAddr>,
    /// `--tls-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// `--behind-proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind_proxy: Option<bool>,
}

impl PublicOverrides {
    /// Whether no public flag was given.
    pub fn is_empty(&self) -> bool {
        self.enabled.is_none()
            && self.bind.is_none()
            && self.tls_cert.is_none()
            && self.tls_key.is_none()
            && self.behind_proxy.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_methods() {
        assert_eq!(Family::of("agent.run"), Some(Family::Agents));
        assert_eq!(Family::of("project.create"), Some(Family::Projects));
        assert_eq!(Family::of("messages.list"), Some(Family::Projects));
        assert_eq!(Family::of("project.configure"), Some(Family::Tasks));
        assert_eq!(Family::of("task.create"), Some(Family::Tasks));
        assert_eq!(Family::of("worker.register"), Some(Family::Tasks));
        assert_eq!(Family::of("coordination.status"), Some(Family::Tasks));
        assert_eq!(Family::of("hub.login_link"), Some(Family::DashboardLogin));
        assert_eq!(
            Family::of("hub.revoke_sessions"),
            Some(Family::DashboardLogin)
        );
        assert_eq!(Family::of("hub.hello"), None);
        assert_eq!(Family::of("event.publish"), None);
    }

    #[test]
    fn local_serves_everything_public_only_what_is_enabled() {
        let mut config = PublicConfig::default();
        assert_eq!(config.mode(), Mode::Local);
        assert_eq!(
            config.capabilities(),
            ["projects", "agents", "messages", "tasks"]
        );
        config.enabled = true;
        assert_eq!(config.mode(), Mode::Public);
        assert!(config.capabilities().is_empty());
        assert!(!config.serves(Family::Agents));
        config.enable_projects = true;
        assert_eq!(config.capabilities(), ["projects", "messages"]);
        assert!(!config.serves(Family::DashboardLogin));
    }

    #[test]
    fn public_mode_settings_are_checked_with_their_key() {
        let base = PublicConfig {
            enabled: true,
            bind: Some("127.0.0.1:0".parse().unwrap()),
            behind_proxy: true,
            hosts: vec!["hub.example.com".into()],
            ..Default::default()
        };
        assert!(base.validate().is_ok());
        let missing = std::path::PathBuf::from("/nonexistent/cert.pem");
        let cases: Vec<(PublicConfig, &str)> = vec![
            (
                PublicConfig {
                    bind: None,
                    ..base.clone()
                },
                "public.bind",
            ),
            (
                PublicConfig {
                    behind_proxy: false,
                    ..base.clone()
                },
                "public.tls_cert",
            ),
            (
                PublicConfig {
                    behind_proxy: false,
                    tls_cert: Some(missing.clone()),
                    ..base.clone()
                },
                "public.tls_key",
            ),
            (
                PublicConfig {
                    tls_cert: Some(missing.clone()),
                    tls_key: Some(missing.clone()),
                    ..base.clone()
                },
                "public.behind_proxy",
            ),
            (
                PublicConfig {
                    behind_proxy: false,
                    tls_cert: Some(missing.clone()),
                    tls_key: Some(missing),
                    ..base.clone()
                },
                "public.tls_cert",
            ),
            (
                PublicConfig {
                    trusted_proxies: vec![],
                    ..base.clone()
                },
                "public.trusted_proxies",
            ),
            (
                PublicConfig {
                    hosts: vec![],
                    ..base.clone()
                },
                "public.hosts",
            ),
            (
                PublicConfig {
                    hosts: vec!["https://x".into()],
                    ..base.clone()
                },
                "public.hosts",
            ),
            (
                PublicConfig {
                    per_address_connections: 0,
                    ..base.clone()
                },
                "public.per_address_connections",
            ),
            (
                PublicConfig {
                    enable_agents: true,
                    ..base.clone()
                },
                "public.enable_agents",
            ),
            (
                PublicConfig {
                    enable_tasks: true,
                    ..base.clone()
                },
                "public.enable_tasks",
            ),
            (
                PublicConfig {
                    allowed_origins: vec!["null".into()],
                    ..base.clone()
                },
                "public.allowed_origins",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let off = PublicConfig {
            enabled: false,
            bind: None,
            ..base
        };
        assert!(off.validate().is_ok());
    }

    #[test]
    fn host_entries() {
        for good in [
            "hub.example.com",
            "hub.example.com:8443",
            "127.0.0.1:1",
            "[::1]:9",
        ] {
            assert!(
                crate::config::allowlist::HostEntry::parse(good).is_some(),
                "{good}"
            );
        }
        for bad in [
            "",
            "https://hub",
            "hub/x",
            "hub:port",
            "hub:99999",
            "[::g]",
            "hub.",
            "hub:0",
        ] {
            assert!(
                crate::config::allowlist::HostEntry::parse(bad).is_none(),
                "{bad}"
            );
        }
    }

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

    #[test]
    fn a_bad_broker_stops_public_mode_with_the_key() {
        let config = PublicConfig {
            enabled: true,
            bind: Some("127.0.0.1:0".parse().unwrap()),
            behind_proxy: true,
            hosts: vec!["hub.test".into()],
            broker: Some("nats://u:p@127.0.0.1".into()),
            ..Default::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("public.broker:"), "{err}");
        let config = PublicConfig {
            broker: None,
            broker_subject_prefix: "a.>".into(),
            ..config
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("public.broker_subject_prefix"), "{err}");
    }
}
