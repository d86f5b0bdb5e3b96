//! What the server knows about each TCP connection: the peer's address and the local
//! address it arrived on.
//!
//! The local address is what the signature challenge binds its proof to (the
//! listener's real `host:port`, never the Host header, which the client or a relay
//! chooses). axum hands it to handlers as `ConnectInfo<ConnAddrs>`. [`NoDelayListener`]
//! is the plain TCP listener the hub serves on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};

/// The address a request is charged to and logged with: the peer's, or in public mode
/// behind a trusted proxy the forwarded client's. The server's gate puts it on every
/// request as an extension; handlers take it as `Extension<ClientAddr>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub IpAddr);

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

/// A TCP listener whose accepted sockets send small frames (events, replies) at once:
/// TCP_NODELAY, so they do not wait for the peer's delayed ACK (Nagle's algorithm,
/// RFC 896). Accept errors are handled by axum's own `TcpListener` (it logs them and
/// backs off), to which this delegates.
///
/// A type of its own rather than `ListenerExt::tap_io`, because axum implements
/// `Connected` for a tapped listener only towards its plain address type, and the hub
/// needs [`ConnAddrs`].
pub struct NoDelayListener(pub TcpListener);

impl Listener for NoDelayListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        let (stream, peer) = Listener::accept(&mut self.0).await;
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        (stream, peer)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, NoDelayListener>> for ConnAddrs {
    fn connect_info(stream: IncomingStream<'_, NoDelayListener>) -> Self {
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
