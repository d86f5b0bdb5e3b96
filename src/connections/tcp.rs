//! What the server knows about each TCP connection: the peer's address and the local
//! address it arrived on.
//!
//! The local address is what the signature challenge binds its proof to (the
//! listener's real `host:port`, never the Host header, which the client or a relay
//! chooses). axum hands it to handlers as `ConnectInfo<ConnAddrs>`. [`serve`] serves a
//! local hub's loopback listeners with a header and idle timeout, which `axum::serve`
//! does not offer (HTTP/1.1 only).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::serve::Listener;
use tokio::net::TcpListener;

/// The address a request is charged to and logged with: the peer's, or in public mode
/// behind a trusted proxy the forwarded client's. The server's gate puts it on every
/// request as an extension; handlers take it as `Extension<ClientAddr>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub IpAddr);

/// The prefix length one IPv6 host controls: a site is normally given at least a /64
/// (RFC 6177), and a host picks any address inside it (SLAAC privacy addresses,
/// RFC 8981), so per-address limits count an IPv6 client by its /64.
pub const HOST_PREFIX_V6: u8 = 64;

/// The prefix length of one IPv6 site: the usual assignment to a customer (RFC 6177
/// section 3 allows /48 to /56), so a site that rotates /64s is still counted once.
pub const SITE_PREFIX_V6: u8 = 48;

/// The key a per-address limit counts `ip` under: an IPv4 address as is (IPv4-mapped
/// IPv6 addresses as their IPv4 address), an IPv6 address by its /64
/// ([`HOST_PREFIX_V6`]).
pub fn address_key(ip: IpAddr) -> IpAddr {
    prefix_key(ip, HOST_PREFIX_V6)
}

/// The key a per-site limit counts `ip` under: an IPv4 address as is, an IPv6 address
/// by its /48 ([`SITE_PREFIX_V6`]).
pub fn site_key(ip: IpAddr) -> IpAddr {
    prefix_key(ip, SITE_PREFIX_V6)
}

/// `ip` with every bit after the first `v6_bits` cleared when it is IPv6 (canonical
/// form first, so `::ffff:192.0.2.1` is `192.0.2.1`); IPv4 addresses are kept whole.
fn prefix_key(ip: IpAddr, v6_bits: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let keep = u32::from(v6_bits.min(128));
            let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

/// Serves `app` on `listener` until `shutdown`, then stops accepting and waits for the
/// open connections to end (the hub closes its WebSockets itself), as `axum::serve`
/// with graceful shutdown does, and with what it lacks: each request's headers must
/// arrive within `header_timeout` of the hub waiting for them, on the first request and
/// after each response of a keep-alive connection (hyper's HTTP/1
/// `header_read_timeout`), so a client that trickles headers or leaves a keep-alive
/// connection idle is closed. Accepted sockets get TCP_NODELAY as with
/// [`NoDelayListener`]; handlers see [`ConnAddrs`] with the socket's real local address.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: tokio_util::sync::CancellationToken,
    header_timeout: std::time::Duration,
) {
    use hyper::server::conn::http1::Builder;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::{Service, ServiceExt};

    // HTTP/1.1 only: hyper's HTTP/2 server has no header or idle timeout, and no
    // browser speaks HTTP/2 without TLS, which a local hub does not use.
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let builder = std::sync::Arc::new(builder);
    let mut make_service = app.into_make_service_with_connect_info::<ConnAddrs>();
    let mut listener = listener;
    // Every connection task holds a receiver; the sender's `closed` is "all ended".
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    loop {
        // axum's accept: logs and backs off on errors such as EMFILE.
        let (stream, peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = shutdown.cancelled() => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        let service = match make_service.call(ConnAddrs { peer, local }).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let service = TowerToHyperService::new(service.map_request(
            |request: axum::http::Request<hyper::body::Incoming>| {
                request.map(axum::body::Body::new)
            },
        ));
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        tracing::trace!(error = %err, "connection ended with an error");
                    }
                    drop(open);
                    return;
                }
                () = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            if let Err(err) = connection.await {
                tracing::trace!(error = %err, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(open_rx);
    drop(listener);
    open_tx.closed().await;
}

/// Identity: [`serve`] knows both ends itself.
impl Connected<ConnAddrs> for ConnAddrs {
    fn connect_info(addrs: ConnAddrs) -> Self {
        addrs
    }
}

/// The two ends of an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAddrs {
    /// The client's address.
    pub peer: SocketAddr,
    /// The address of the listener the connection arrived on.
    pub local: SocketAddr,
}

/// For the TLS listener of public mode (axum-server hands over the peer address only).
/// The local address is unknown there and set to `0.0.0.0:0`; a public hub binds its
/// challenge proof to its public name instead (`server::public_endpoint`).
impl Connected<SocketAddr> for ConnAddrs {
    fn connect_info(peer: SocketAddr) -> Self {
        Self {
            peer,
            local: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_are_keyed_by_prefix() {
        // Every address of one /64 is one key, as loopback `::1` and `::2` would be.
        assert_eq!(address_key(ip("::1")), address_key(ip("::2")));
        assert_eq!(address_key(ip("::1")), ip("::"));
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        // A /48 holds many /64s, one site key.
        assert_eq!(site_key(ip("2001:db8:1:2::1")), ip("2001:db8:1::"));
        assert_eq!(
            site_key(ip("2001:db8:1:2::1")),
            site_key(ip("2001:db8:1:ffff::1"))
        );
        assert_ne!(site_key(ip("2001:db8:1::1")), site_key(ip("2001:db8:2::1")));
    }

    #[test]
    fn ipv4_addresses_are_their_own_key() {
        assert_eq!(address_key(ip("127.0.0.1")), ip("127.0.0.1"));
        assert_ne!(address_key(ip("127.0.0.1")), address_key(ip("127.0.0.2")));
        assert_eq!(site_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(site_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
