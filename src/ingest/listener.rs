//! Accepting connections on the gRPC port, at most `grpc.max_connections` at once.
//!
//! Every connection costs a TLS session, HTTP/2 buffers and flow-control windows, whoever is
//! behind it. A connection over the cap is closed as soon as it is accepted (rather than left
//! in the kernel's backlog, where clients would wait for nothing), and a place frees when a
//! connection ends.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// An accepted connection holding its place under the cap.
pub struct Capped {
    inner: TcpStream,
    _place: OwnedSemaphorePermit,
}

/// The accepted connections of `listener`, at most `max` open at once.
pub fn capped(listener: TcpListener, max: usize) -> impl Stream<Item = io::Result<Capped>> {
    let places = Arc::new(Semaphore::new(max.max(1)));
    futures::stream::unfold((listener, places), |(listener, places)| async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => return Some((Err(e), (listener, places))),
            };
            match places.clone().try_acquire_owned() {
                Ok(place) => {
                    // Receipts are small and latency-bound; Nagle would only delay them.
                    let _ = tcp.set_nodelay(true);
                    let capped = Capped {
                        inner: tcp,
                        _place: place,
                    };
                    return Some((Ok(capped), (listener, places)));
                }
                Err(_) => {
                    crate::telemetry::connection_refused();
                    tracing::debug!(%peer, "connection refused: grpc.max_connections are open");
                    drop(tcp);
                }
            }
        }
    })
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
