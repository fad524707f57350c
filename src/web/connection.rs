//! The connections the HTTP server accepts: how many at once, and how long each may wait on
//! its client. Without this, twenty clients dribbling a byte every two seconds, or one
//! announcing a body of 100 GB and sending none, held their connections for ever.
//!
//! A connection is always in one [`Phase`], and each phase but handling has a deadline (the
//! `[http]` limits). The stream fails its pending read once the deadline passes, which ends
//! the connection; the phase moves on as bytes arrive (idle → headers), as the router sees a
//! request (headers → body or handling), as the handler's body ends (body → handling) and as
//! its response is ready (→ idle). Only reads wait on the client; a handler's own work has no
//! deadline here.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{connect_info::Connected, ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::HttpLimits;

/// Where a connection is in its exchange with the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers to end, since the connection opened or the request's
    /// first byte arrived.
    Headers { since: Instant },
    /// The handler is reading a request's body, since the headers ended.
    Body { since: Instant },
    /// The handler works; nothing is awaited from the client.
    Handling,
    /// Between requests, since the last byte either way.
    Idle { since: Instant },
}

/// One connection's phase, shared by its stream and the requests it carries.
#[derive(Debug)]
pub struct Clock {
    limits: HttpLimits,
    phase: Mutex<Phase>,
}

impl Clock {
    fn new(limits: HttpLimits) -> Clock {
        Clock {
            limits,
            phase: Mutex::new(Phase::Headers {
                since: Instant::now(),
            }),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        // A panic elsewhere while holding this lock leaves a phase that is still a phase.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the client must have sent what it owes, and what that is; none while handling.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let l = &self.limits;
        match *self.phase() {
            Phase::Headers { since } => Some((since + l.header_timeout, "request headers")),
            Phase::Body { since } => Some((since + l.body_timeout, "request body")),
            Phase::Handling => None,
            Phase::Idle { since } => Some((since + l.idle_timeout, "next request")),
        }
    }

    /// Bytes arrived: an idle connection's next request has begun.
    fn read_some(&self) {
        let mut phase = self.phase();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Headers {
                since: Instant::now(),
            };
        }
    }

    /// Bytes left: an idle connection is idle from now (a slow reader of a large page is
    /// not dropped while it reads).
    fn wrote_some(&self) {
        let mut phase = self.phase();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Idle {
                since: Instant::now(),
            };
        }
    }

    fn request_begins(&self, empty_body: bool) {
        *self.phase() = if empty_body {
            Phase::Handling
        } else {
            Phase::Body {
                since: Instant::now(),
            }
        };
    }

    fn body_ends(&self) {
        let mut phase = self.phase();
        if let Phase::Body { .. } = *phase {
            *phase = Phase::Handling;
        }
    }

    fn response_ready(&self) {
        *self.phase() = Phase::Idle {
            since: Instant::now(),
        };
    }
}

/// A TCP listener that serves at most `max_connections` at once (the rest wait in the
/// kernel's queue) and gives each connection its [`Clock`].
pub struct Listener {
    inner: TcpListener,
    limits: HttpLimits,
    permits: Arc<Semaphore>,
}

impl Listener {
    pub fn new(inner: TcpListener, limits: HttpLimits) -> Listener {
        Listener {
            inner,
            limits,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
        }
    }
}

/// The client of one connection, as handlers see it.
#[derive(Clone, Debug)]
pub struct Peer {
    pub address: SocketAddr,
    clock: Arc<Clock>,
}

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Stream, Peer) {
        // The semaphore is never closed, so a permit always comes.
        let permit = loop {
            if let Ok(p) = Arc::clone(&self.permits).acquire_owned().await {
                break p;
            }
        };
        let (stream, address) = loop {
            match self.inner.accept().await {
                Ok(accepted) => break accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let clock = Arc::new(Clock::new(self.limits));
        let stream = Stream {
            inner: stream,
            clock: Arc::clone(&clock),
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            _permit: permit,
        };
        (stream, Peer { address, clock })
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer {
            address: self.inner.local_addr()?,
            clock: Arc::new(Clock::new(self.limits)),
        })
    }
}

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Peer {
        stream.remote_addr().clone()
    }
}

/// A connection's socket: its pending reads fail once the client is late, and it holds its
/// place among the connections served until it is dropped.
pub struct Stream {
    inner: TcpStream,
    clock: Arc<Clock>,
    sleep: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.clock.read_some();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((deadline, owed)) = self.clock.deadline() else {
                    return Poll::Pending;
                };
                if self.sleep.deadline() != deadline {
                    self.sleep.as_mut().reset(deadline);
                }
                match self.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client did not send its {owed} in time"),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                self.clock.wrote_some();
            }
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Middleware: moves the connection's clock through a request. Requests that did not come
/// through a [`Listener`] (the router called directly) pass untouched.
pub async fn track(request: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<Peer>>().cloned() else {
        return next.run(request).await;
    };
    let empty = request.body().is_end_stream() || request.body().size_hint().exact() == Some(0);
    peer.clock.request_begins(empty);
    let request = request.map(|body| {
        Body::new(TimedBody {
            inner: body,
            clock: Arc::clone(&peer.clock),
        })
    });
    let response = next.run(request).await;
    peer.clock.response_ready();
    response
}

/// A request's body that tells the clock when it has been read to its end, or given up on.
struct TimedBody {
    inner: Body,
    clock: Arc<Clock>,
}

impl HttpBody for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.clock.body_ends();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        self.clock.body_ends();
    }
}
