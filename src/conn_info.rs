//! What the server knows about each TCP connection: the peer's address and the local
//! address it arrived on.
//!
//! The local address is what the signature challenge binds its proof to (the
//! listener's real `host:port`, never the Host header, which the client or a relay
//! chooses). axum hands it to handlers as `ConnectInfo<ConnAddrs>`.

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

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

impl Connected<IncomingStream<'_, TcpListener>> for ConnAddrs {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        // A socket whose local address cannot be read gets 0.0.0.0:0, which no client
        // contacts, so a proof bound to it fails closed.
        let local = stream
            .io()
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        Self {
            peer: *stream.remote_addr(),
            local,
        }
    }
}
