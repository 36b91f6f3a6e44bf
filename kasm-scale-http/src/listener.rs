//! The listener's defences against slow and idle clients: every accepted connection holds one
//! of [`ConnectionLimits::max_connections`] slots (past the cap a connection is closed at once,
//! so sockets that send nothing cannot use up the process's file descriptors), and a connection
//! on which nothing is read or written for [`ConnectionLimits::idle_timeout`] is closed (a client
//! that stops reading its answer, or keeps an idle keep-alive socket, gives it back). A request's
//! head must arrive within [`ConnectionLimits::header_read_timeout`] (hyper's own timer, set in
//! [`serve`](crate::serve)); the TLS handshake has its own 10-second bound.
//!
//! The gauge `kasm_scale_connections` counts the open connections, and
//! `kasm_scale_connections_refused_total` those closed at once for the cap.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How many connections the service holds open at once and how long it waits for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The most connections open at once (default 10,000); past it a new connection is closed
    /// as soon as it is accepted. Lowered to fit the open-file limit if that is smaller.
    pub max_connections: usize,
    /// How long a client may take to send a request's line and headers (default 10 s), on a new
    /// connection and between the requests of a kept-alive one.
    pub header_read_timeout: Duration,
    /// How long a connection may go without a byte read or written (default 60 s) before it
    /// is closed: an idle keep-alive socket, or a client that stopped reading its answer.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// File descriptors kept for everything but client connections (the store, the clouds, the
/// directory, logs) when the cap is fitted to the open-file limit.
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-file limit to the hard one (logging both) and returns the connection
/// cap that fits in it: `wanted`, or less when the limit is too small for it.
pub(crate) fn fit_open_file_limit(wanted: usize) -> usize {
    let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return wanted;
    };
    let raised = match rlimit::increase_nofile_limit(hard) {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
            soft
        }
    };
    tracing::info!(soft_before = soft, soft = raised, hard, "open-file limit");
    let room = usize::try_from(raised.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    if room < wanted {
        tracing::warn!(
            wanted,
            cap = room.max(1),
            open_file_limit = raised,
            "connection cap lowered to fit the open-file limit"
        );
    }
    wanted.min(room).max(1)
}

/// The acceptor that gives each connection a slot and an idle timer (and refuses past the cap).
#[derive(Debug, Clone)]
pub(crate) struct Guard<A> {
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
    inner: A,
}

impl<A> Guard<A> {
    /// At most `max_connections` at once, each closed after `idle_timeout` without traffic,
    /// then `inner` (TLS, or nothing).
    pub fn new(max_connections: usize, idle_timeout: Duration, inner: A) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_connections)),
            idle_timeout,
            inner,
        }
    }
}

impl<A, I, S> Accept<I, S> for Guard<A>
where
    A: Accept<Guarded<I>, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            metrics::counter!("kasm_scale_connections_refused_total").increment(1);
            tracing::debug!("connection refused: the connection cap is reached");
            return Box::pin(std::future::ready(Err(io::Error::other(
                "connection cap reached",
            ))));
        };
        metrics::gauge!("kasm_scale_connections").increment(1.0);
        let guarded = Guarded {
            inner: stream,
            idle_timeout: self.idle_timeout,
            last: Instant::now(),
            timer: Box::pin(tokio::time::sleep(self.idle_timeout)),
            _slot: Slot(slot),
        };
        Box::pin(self.inner.accept(guarded, service))
    }
}

/// A connection's slot, given back (and the gauge lowered) when the connection closes.
#[derive(Debug)]
struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!("kasm_scale_connections").decrement(1.0);
    }
}

/// A stream that fails with `TimedOut` once nothing has been read or written on it for the
/// idle timeout (hyper then closes the connection).
#[derive(Debug)]
pub(crate) struct Guarded<I> {
    inner: I,
    idle_timeout: Duration,
    /// When a byte last went through.
    last: Instant,
    /// Fires at `last + idle_timeout` at the latest; re-armed lazily when traffic moved `last`.
    timer: Pin<Box<Sleep>>,
    _slot: Slot,
}

impl<I> Guarded<I> {
    /// `Err(TimedOut)` once the connection has been idle for the timeout; otherwise arranges
    /// to be woken when it would be.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let deadline = self.last + self.idle_timeout;
            if Instant::now() >= deadline {
                tracing::debug!("connection closed: idle");
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.timer.as_mut().reset(deadline);
        }
        Ok(())
    }
}

impl<I> Guarded<I> {
    /// Notes the traffic of a write, or checks the idle time when it could not go through.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.last = Instant::now();
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                self.poll_idle(cx)?;
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.poll_idle(cx)?;
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
