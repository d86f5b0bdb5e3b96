//! A per-address cap on open TCP connections, for a hub that terminates TLS itself.
//!
//! The per-address limits in [`super::limits`] count requests and WebSockets, which
//! exist only after a TLS handshake. A client that opens sockets and never finishes a
//! handshake or sends a request holds a task and a file descriptor each, for up to the
//! handshake and first-request timeouts (10 s each). This acceptor counts every TCP
//! connection against its peer address before the handshake, and closes those over
//! `public.per_address_sockets` at once. Behind a proxy the peer is the proxy, so the cap
//! is not used there; the proxy's own limits (nginx `limit_conn`) do that job.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::limits::{AddressSlot, Slots};

/// Accepts a TCP connection only while its peer holds fewer than the cap.
#[derive(Debug, Clone)]
pub struct SocketCap {
    slots: Arc<Slots>,
}

impl SocketCap {
    /// At most `per_address` open connections per peer address (IPv6: per /64).
    pub fn new(per_address: usize) -> Self {
        Self {
            slots: Slots::new(per_address),
        }
    }
}

impl<S> Accept<TcpStream, S> for SocketCap {
    type Stream = CappedStream;
    type Service = S;
    type Future = std::future::Ready<io::Result<(CappedStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let slot = stream
            .peer_addr()
            .map_err(io::Error::other)
            .and_then(|peer| {
                self.slots.take(peer.ip()).ok_or_else(|| {
                    tracing::debug!(addr = %peer.ip(), "refusing a socket: too many from this address");
                    io::Error::other("too many connections from this address")
                })
            });
        std::future::ready(slot.map(|slot| {
            (
                CappedStream {
                    stream,
                    _slot: slot,
                },
                service,
            )
        }))
    }
}

/// A TCP stream that holds its address's slot until it is dropped.
#[derive(Debug)]
pub struct CappedStream {
    stream: TcpStream,
    _slot: AddressSlot,
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
