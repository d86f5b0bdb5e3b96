//! Public mode at the HTTP edge: which Host names and client addresses a public hub
//! serves, and its TLS listener.
//!
//! The settings are in [`crate::config::PublicConfig`]; this module turns them into a
//! [`PublicGate`] that the server's gate consults on every request, and serves a
//! listener with TLS or behind a proxy, with header and idle timeouts ([`serve`]).
//! Submodules: [`tls`] (certificates), [`forwarded`] (client address behind proxies),
//! [`limits`] (per-address limits), [`sockets`] (which peers may connect: the socket
//! caps before TLS, the trusted proxies behind one).
//!
//! Differences from local mode, in one place (docs/protocol.md, "Public mode"):
//! - Host allowlist: `public.hosts`, plus the exact listening `ip:port` (the loopback
//!   forms when listening on every address) so that local probes work;
//! - Origins: `allowed_origins` and `public.allowed_origins`; no dashboard origins;
//! - a token on every WebSocket; no session cookie, no `/login`, no dashboard files;
//! - per-address connection and rate limits, before the global ones;
//! - method families off unless enabled (`DISABLED`).

pub mod forwarded;
pub mod limits;
pub mod sockets;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum_server::tls_rustls::RustlsConfig;
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::app::edge::ConnectionCtx;
use crate::app::hub::StartError;
use crate::config::allowlist::{HostAllowlist, HostEntry, host_header};
use crate::config::{Config, PublicConfig};
use crate::connections::tcp::ConnAddrs;
use crate::http::error::HttpError;
use crate::protocol::error::ErrorKind;
use crate::support::metrics::Metrics;
use forwarded::TrustedProxies;
use limits::AddressLimits;

/// The longest a new connection may take to send its first request (after the TLS
/// handshake, which has its own 10 s limit), against slow-loris connections; shorter
/// when `limits.header_timeout_s` is.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server's gate needs to know about a public hub.
#[derive(Debug)]
pub struct PublicGate {
    hosts: HostAllowlist,
    proxies: Option<TrustedProxies>,
    monitoring_from: Vec<IpNet>,
    /// The per-address limits.
    pub limits: Arc<AddressLimits>,
}

impl PublicGate {
    /// The gate for `config`, listening on `local`, with the task that prunes its rate
    /// table (on `tracker`, until `shutdown`).
    pub(crate) fn start(
        config: &PublicConfig,
        local: SocketAddr,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Arc<Self> {
        let gate = Arc::new(Self::new(config, local));
        tracker.spawn(gate.limits.clone().prune_until(shutdown.clone()));
        gate
    }

    /// The gate for `config`, listening on `local`.
    pub fn new(config: &PublicConfig, local: SocketAddr) -> Self {
        let mut hosts = HostAllowlist::default();
        // `PublicConfig::validate` refused entries that do not parse.
        for entry in config.hosts.iter().filter_map(|h| HostEntry::parse(h)) {
            hosts.push(entry);
        }
        if local.ip().is_unspecified() {
            hosts.extend(HostAllowlist::loopback(local.port()));
        } else if let Some(entry) = HostEntry::parse(&local.to_string()) {
            hosts.push(entry);
        }
        Self {
            hosts,
            proxies: config
                .behind_proxy
                .then(|| TrustedProxies::new(config.trusted_proxies.clone(), config.proxy_header)),
            monitoring_from: config.monitoring_from.clone(),
            limits: AddressLimits::new(
                config.per_address_connections,
                config.per_address_rate_per_s,
                config.per_address_burst,
            ),
        }
    }

    /// The client address: the peer's, or behind trusted proxies the forwarded one.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        match &self.proxies {
            Some(proxies) => proxies.client_ip(peer.ip(), headers),
            None => peer.ip().to_canonical(),
        }
    }

    /// The gate's public-mode checks for a request from `peer`: its client address is
    /// charged one request, then its Host must name this hub. Returns the client
    /// address, or the refusal (503 `RATE_LIMITED` with `Retry-After: 1`, 403
    /// `FORBIDDEN`).
    ///
    /// # Errors
    /// The refusal, counted in `metrics` as `rate` or `host`.
    pub fn admit(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        metrics: &Metrics,
    ) -> Result<IpAddr, HttpError> {
        let client = self.client_ip(peer, headers);
        if !self.limits.allow(client) {
            metrics.refused("rate");
            return Err(HttpError::unavailable(
                ErrorKind::RateLimited,
                1,
                "too many requests from this address; try again later",
            ));
        }
        if !self.host_allowed(headers) {
            metrics.refused("host");
            return Err(HttpError::forbidden("host not allowed"));
        }
        Ok(client)
    }

    /// A WebSocket slot for `client`, or the refusal: 503 `LIMIT_REACHED` with
    /// `Retry-After: 5`.
    ///
    /// # Errors
    /// The refusal, counted in `metrics` as `address`.
    pub fn connection_slot(
        &self,
        client: IpAddr,
        metrics: &Metrics,
    ) -> Result<limits::AddressSlot, HttpError> {
        self.limits.connect(client).ok_or_else(|| {
            metrics.refused("address");
            HttpError::unavailable(
                ErrorKind::LimitReached,
                5,
                "too many connections from this address",
            )
        })
    }

    /// Whether the Host header names this hub ([`HostAllowlist::allows`]): an entry
    /// without a port matches the name on any port (a proxy in front may listen on
    /// another one); with a port, only that port.
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        self.hosts.allows(host_header(headers))
    }

    /// Whether `client` may read `/metrics` and the full `/health` report.
    pub fn may_monitor(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.monitoring_from.iter().any(|net| net.contains(&client))
    }
}

/// Serves an upgraded public-mode connection like [`crate::http::ws::serve_socket`], with
/// its messages charged to its address ([`limits::AddressRateLimited`]).
pub(crate) async fn serve_socket(
    socket: axum::extract::ws::WebSocket,
    ctx: ConnectionCtx,
    client: Arc<crate::connections::Client>,
    rx: tokio::sync::mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
    limits: Arc<AddressLimits>,
) {
    use futures_util::StreamExt;
    use tracing::Instrument;
    let span = tracing::info_span!("conn", conn_id = client.id());
    let ip = client.remote_addr().ip();
    let (sink, stream) = socket.split();
    let stream = limits::AddressRateLimited::new(stream, limits, ip, client.clone());
    crate::http::ws::handle_socket(sink, stream, ctx, client, rx)
        .instrument(span)
        .await;
}

/// Binds `public.bind`.
///
/// # Errors
/// [`StartError::Bind`] when the address is taken or not local.
pub fn bind(config: &PublicConfig) -> Result<std::net::TcpListener, StartError> {
    let addr = config.bind.ok_or_else(|| StartError::Io {
        action: "start public mode without public.bind".into(),
        source: std::io::Error::other("no address to bind"),
    })?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .map_err(|source| StartError::Bind {
            addrs: addr.to_string(),
            source,
        })?;
    Ok(listener)
}

/// The TLS acceptor configuration for a public hub with TLS, `None` behind a proxy.
///
/// # Errors
/// [`StartError::Io`] wrapping the [`tls::TlsError`] that names the bad file.
pub fn tls_config(config: &Config) -> Result<Option<RustlsConfig>, StartError> {
    let public = &config.public;
    let (Some(cert), Some(key)) = (&public.tls_cert, &public.tls_key) else {
        return Ok(None);
    };
    tls::load(cert, key)
        .map(Some)
        .map_err(|err| StartError::Io {
            action: "load the TLS certificate and key".into(),
            source: std::io::Error::other(err),
        })
}

/// The URL local tools use to reach a public hub on `port`.
pub fn local_url(config: &PublicConfig, port: u16) -> String {
    let scheme = if config.behind_proxy { "http" } else { "https" };
    let ip = match config.bind.map(|addr| addr.ip()) {
        Some(ip) if !ip.is_unspecified() => ip,
        Some(IpAddr::V6(_)) => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        _ => IpAddr::from([127, 0, 0, 1]),
    };
    format!("{scheme}://{}", SocketAddr::new(ip, port))
}

/// Serves `app` on a public hub's `listener` until the hub shuts down, then stops
/// accepting and waits for open connections (the hub closes its WebSockets itself).
///
/// With `tls`, connections are capped per address and per IPv6 site before the
/// handshake and SIGHUP reloads the certificate ([`tls::reload_on_sighup`]); without
/// (behind a proxy), only the trusted proxies may connect ([`sockets::SocketCap`]).
/// Either way a client has `limits.header_timeout_s` to send each request's headers,
/// the first and every later one on a keep-alive connection, which also closes a
/// keep-alive connection left idle that long (hyper's HTTP/1 `header_read_timeout`,
/// armed whenever the connection waits for a request head); the first request also has
/// axum-server's `first_request_timeout`, which covers protocol detection. HTTP/2 gets
/// no stream at all (hyper has no header timeout for it), so an HTTP/2 connection is
/// closed by the first-request timeout. A WebSocket,
/// once upgraded, is outside both: the hub pings it and closes it when idle.
///
/// Its own tasks (the certificate reloads) run on `tracker`; it stops on `shutdown`.
///
/// # Errors
/// [`StartError::Io`] when the listener cannot be registered with the runtime or SIGHUP
/// cannot be watched.
pub(crate) fn serve(
    config: &Config,
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<RustlsConfig>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let public = &config.public;
    if let (Some(tls), Some(cert), Some(key)) = (&tls, &public.tls_cert, &public.tls_key) {
        let reload =
            tls::reload_on_sighup(tls.clone(), cert.clone(), key.clone(), shutdown.clone())
                .map_err(|source| StartError::Io {
                    action: "watch SIGHUP for TLS certificate reloads".into(),
                    source,
                })?;
        tracker.spawn(reload);
    }
    let header_timeout = Duration::from_secs(config.limits.header_timeout_s);
    let shutdown = shutdown.clone();
    let handle = axum_server::Handle::new();
    let mut server = axum_server::from_tcp(listener)
        .map_err(|source| StartError::Io {
            action: "register the listener with the runtime".into(),
            source,
        })?
        .handle(handle.clone())
        .first_request_timeout(header_timeout.min(FIRST_REQUEST_TIMEOUT));
    // axum-server installs hyper's Tokio timer, which the header timeout needs.
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(header_timeout));
    // hyper's HTTP/2 server has no header or idle timeout, and the protocol detection
    // would serve a client that sends the HTTP/2 preface (TLS offers only http/1.1, so
    // no browser does). No stream is ever accepted, so such a connection never makes
    // its first request and the first-request timeout closes it.
    server.http_builder().http2().max_concurrent_streams(0);
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.graceful_shutdown(None);
    });
    let service = app.into_make_service_with_connect_info::<ConnAddrs>();
    let served = match tls {
        Some(tls) => {
            let sockets =
                sockets::SocketCap::new(public.per_address_sockets, public.per_site_sockets);
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(sockets);
            tokio::spawn(server.acceptor(acceptor).serve(service))
        }
        None => {
            let proxies = TrustedProxies::new(public.trusted_proxies.clone(), public.proxy_header);
            let sockets = sockets::SocketCap::proxies_only(proxies);
            tokio::spawn(server.acceptor(sockets).serve(service))
        }
    };
    Ok(tokio::spawn(async move {
        match served.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "public server stopped with an error"),
            Err(_) => warn!("public server task panicked"),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};

    fn gate(hosts: &[&str], bind: &str) -> PublicGate {
        let config = PublicConfig {
            enabled: true,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        };
        PublicGate::new(&config, bind.parse().unwrap())
    }

    fn host(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn hosts_are_the_public_names_and_the_listening_address() {
        let g = gate(
            &["Hub.Example.com", "other.example.com:8443"],
            "192.0.2.1:8443",
        );
        for good in [
            "hub.example.com",
            "HUB.example.com:443",
            "other.example.com:8443",
            "192.0.2.1:8443",
        ] {
            assert!(g.host_allowed(&host(good)), "{good}");
        }
        for bad in [
            "evil.com",
            "other.example.com",
            "other.example.com:443",
            "hub.example.com.evil.com",
            "127.0.0.1:8443",
            "192.0.2.1",
        ] {
            assert!(!g.host_allowed(&host(bad)), "{bad}");
        }
        assert!(!g.host_allowed(&HeaderMap::new()));
        let any = gate(&["hub.example.com"], "0.0.0.0:8443");
        assert!(any.host_allowed(&host("127.0.0.1:8443")));
        assert!(!any.host_allowed(&host("0.0.0.0:8443")));
    }
}
