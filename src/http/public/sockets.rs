//! The admission of TCP connections to a public hub, before TLS and before HTTP.
//!
//! With TLS in the hub, every TCP connection is counted against its peer before the
//! handshake: at most `public.per_address_sockets` per address (IPv6: per /64, which
//! one host controls) and `public.per_site_sockets` per IPv6 /48 (one site, which may
//! rotate through its /64s). The per-address limits in [`super::limits`] count requests
//! and WebSockets, which exist only after a handshake; a client that opens sockets and
//! never finishes a handshake or a request would otherwise hold a task and a file
//! descriptor each for the handshake and header timeouts.
//!
//! Behind a proxy (`--behind-proxy`) the only legitimate peers are the proxies: a
//! connection from any other peer is closed at once, before a byte is read, so the
//! plain-HTTP port cannot be used to bypass the proxy (its TLS, its limits, and the
//! client address it forwards). The proxy's own limits (nginx `limit_conn`) count
//! clients there. Accepted sockets send small frames at once (TCP_NODELAY, as in
//! [`crate::connections::tcp::serve`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::forwarded::TrustedProxies;
use super::limits::{AddressSlot, Slots};

/// Which peers may connect, and how many sockets each may hold.
#[derive(Debug, Clone)]
pub enum SocketCap {
    /// TLS in the hub: anyone, within the per-address and per-site caps.
    Capped {
        /// Per address (IPv6 /64).
        per_address: Arc<Slots>,
        /// Per IPv6 /48 (an IPv4 address is its own site).
        per_site: Arc<Slots>,
    },
    /// Behind a proxy: the trusted proxies only.
    ProxiesOnly(TrustedProxies),
}

impl SocketCap {
    /// At most `per_address` open connections per peer address (IPv6: per /64) and
    /// `per_site` per IPv6 /48.
    pub fn new(per_address: usize, per_site: usize) -> Self {
        Self::Capped {
            per_address: Slots::new(per_address),
            per_site: Slots::keyed(per_site, crate::connections::tcp::site_key),
        }
    }

    /// Connections from `proxies` only.
    pub fn proxies_only(proxies: TrustedProxies) -> Self {
        Self::ProxiesOnly(proxies)
    }

    /// The slots a connection from `peer` holds, or why it is refused.
    fn admit(&self, peer: std::net::IpAddr) -> io::Result<Vec<AddressSlot>> {
        match self {
            Self::Capped {
                per_address,
                per_site,
            } => {
                let site = per_site.take(peer).ok_or_else(|| {
                    tracing::debug!(addr = %peer, "refusing a socket: too many from this site");
                    io::Error::other("too many connections from this site")
                })?;
                let address = per_address.take(peer).ok_or_else(|| {
                    tracing::debug!(addr = %peer, "refusing a socket: too many from this address");
                    io::Error::other("too many connections from this address")
                })?;
                Ok(vec![site, address])
            }
            Self::ProxiesOnly(proxies) => {
                if proxies.trusts(peer) {
                    Ok(Vec::new())
                } else {
                    tracing::info!(addr = %peer, "refusing a connection: not a trusted proxy");
                    Err(io::Error::other("the peer is not a trusted proxy"))
                }
            }
        }
    }
}

impl<S> Accept<TcpStream, S> for SocketCap {
    type Stream = CappedStream;
    type Service = S;
    type Future = std::future::Ready<io::Result<(CappedStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let slots = stream
            .peer_addr()
            .and_then(|peer| self.admit(peer.ip().to_canonical()));
        if slots.is_ok()
            && let Err(err) = stream.set_nodelay(true)
        {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        // A refused stream is dropped here, which closes the socket.
        std::future::ready(slots.map(|slots| {
            (
                CappedStream {
                    stream,
                    _slots: slots,
                },
                service,
            )
        }))
    }
}

/// A TCP stream that holds its address's and site's slots until it is dropped.
#[derive(Debug)]
pub struct CappedStream {
    stream: TcpStream,
    _slots: Vec<AddressSlot>,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn sockets_are_capped_per_slash_64_and_per_slash_48() {
        let cap = SocketCap::new(2, 3);
        let a = cap.admit(ip("2001:db8:1:1::1")).unwrap();
        // Another address of the same /64 is the same client.
        let b = cap.admit(ip("2001:db8:1:1::ffff")).unwrap();
        assert!(cap.admit(ip("2001:db8:1:1::2")).is_err());
        // Another /64 of the same /48 gets in until the site is full.
        let c = cap.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(cap.admit(ip("2001:db8:1:3::1")).is_err());
        // Another site is not affected.
        let _d = cap.admit(ip("2001:db8:2::1")).unwrap();
        // A refusal by the address cap gives back the site slot it took.
        drop(c);
        assert!(cap.admit(ip("2001:db8:1:1::3")).is_err());
        let _e = cap.admit(ip("2001:db8:1:4::1")).unwrap();
        drop((a, b));
        // IPv4: each address is its own site.
        let _f = cap.admit(ip("192.0.2.1")).unwrap();
        let _g = cap.admit(ip("192.0.2.1")).unwrap();
        assert!(cap.admit(ip("192.0.2.1")).is_err());
        assert!(cap.admit(ip("192.0.2.2")).is_ok());
    }

    #[test]
    fn behind_a_proxy_only_the_proxies_connect() {
        let cap = SocketCap::proxies_only(TrustedProxies::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            crate::config::ProxyHeader::XForwardedFor,
        ));
        assert!(cap.admit(ip("10.1.2.3")).is_ok());
        assert!(cap.admit(ip("127.0.0.1")).is_err());
        assert!(cap.admit(ip("203.0.113.9")).is_err());
    }
}
