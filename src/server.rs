//! The HTTP connection layer: accepting, serving and closing connections under the limits.
//!
//! warp's own server has no time limits at all, so a client that opens connections and sends
//! nothing, or half a request, or a body it never finishes, holds a file descriptor (and whatever
//! the body buffered so far) forever; with enough of them the process runs out of descriptors and
//! stops answering anyone. Here every way a client can make the server wait is bounded:
//!
//! - the head of each request, and the wait for the next request on a keep-alive connection, by
//!   `header_timeout` (hyper's header-read timer, which runs from the moment the connection is
//!   ready for a new request, so an idle connection is closed by it too);
//! - a request body that sends nothing for `idle_timeout` fails with `BodyStalled` (the handler
//!   answers with an error and the connection is closed, its unread body abandoned);
//! - a client that stops reading its answer for `idle_timeout` has its connection closed;
//! - open connections by `max_connections`, clamped under the descriptor limit. When all are in use
//!   the server stops accepting, so further clients wait in the listen backlog rather than being
//!   accepted and dropped.
//!
//! The body timer only runs while a handler is waiting for body bytes, not while it is busy with
//! the ones it has, so a slow handler is never mistaken for a slow client.
//!
//! A request whose body was dropped unread by the time its answer is ready (refused from its
//! declared length, or abandoned by a handler) is answered with `Connection: close`: hyper closes
//! such a connection anyway, and without the header a client that wrote the whole body into its
//! socket would pool the connection and lose its next request on it. Refusals that drain the
//! body first (`api::body`) keep the connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use warp::{Filter, Reply};

use crate::config::Limits;

/// The address of the connection a request came on; the server puts it in every request's
/// extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// File descriptors kept free of connections: the data file, blob reads, backups and outgoing
/// fetches need some too.
const FD_HEADROOM: u64 = 64;

/// Pause after an accept error that is not about one connection (out of descriptors, memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// How often a persisting accept error is logged.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// The error a request body yields once the client has sent nothing for the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("请求体超过 {0} 秒没有数据")]
pub struct BodyStalled(u64);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `filter` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the requests in flight to finish.
pub async fn run<F, R>(
    listener: TcpListener,
    filter: F,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let cap = connection_cap(limits.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let idle = limits.idle_timeout;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;

    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if last_accept_error.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                    tracing::error!(error = %e, "cannot accept connections; retrying");
                    last_accept_error = Some(Instant::now());
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let service = connection_service(filter.clone(), Peer(addr), idle);
        let conn = http.serve_connection(StallGuard::new(stream, idle), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    graceful.shutdown().await;
}

/// The service for one connection: warp's, with the peer's address in each request's extensions
/// and the idle bound on each request's body.
fn connection_service<F, R>(
    filter: F,
    peer: Peer,
    idle: Duration,
) -> impl Service<
    hyper::Request<Incoming>,
    Response = warp::reply::Response,
    Error = Infallible,
    Future = impl Send,
> + Send
+ 'static
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let warp = TowerToHyperService::new(warp::service(filter));
    hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut req = req.map(|body| IdleBody::new(body, idle, abandoned.clone()));
        req.extensions_mut().insert(peer);
        let answer = warp.call(req);
        async move {
            let mut response = answer.await?;
            if abandoned.load(Ordering::Acquire) {
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        }
    })
}

/// The connection cap: `requested`, but no more than the descriptor limit leaves room for.
fn connection_cap(requested: usize) -> usize {
    let fd_limit = open_files_limit();
    let cap = match fd_limit {
        Some(limit) => {
            let room =
                usize::try_from(limit.saturating_sub(FD_HEADROOM).max(1)).unwrap_or(usize::MAX);
            requested.min(room)
        }
        None => requested,
    };
    if cap < requested {
        tracing::warn!(
            requested,
            max_connections = cap,
            fd_limit,
            "the open-files limit (ulimit -n) lowers the connection cap"
        );
    } else {
        tracing::info!(max_connections = cap, fd_limit, "connection cap");
    }
    cap.max(1)
}

/// The soft RLIMIT_NOFILE, `None` when unlimited or unknown.
fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is 32 bits on 32-bit ARM (a Raspberry Pi OS).
    Some(limit.rlim_cur as u64)
}

/// Errors about one connection that was gone before it was accepted; the next accept is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// A deadline that runs while an operation is pending and is cleared by progress.
///
/// Progress does not touch the timer: that would cost a timer-wheel update for every chunk of
/// every body. The wait's start is noted instead, and a sleep that fires for an earlier wait is
/// moved on to the current one's deadline, so the wheel sees one update per `limit` at most.
struct IdleTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// When the current wait began; `None` after progress.
    waiting_since: Option<Instant>,
}

impl IdleTimer {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            sleep: None,
            waiting_since: None,
        }
    }

    /// Called when the operation is pending: starts the wait if it is not running and tells
    /// whether it has lasted `limit` (registering `cx` to be woken when it would).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = *self.waiting_since.get_or_insert_with(Instant::now) + self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        while sleep.as_mut().poll(cx).is_ready() {
            if sleep.deadline() >= deadline {
                return true;
            }
            sleep.as_mut().reset(deadline);
        }
        false
    }

    fn progress(&mut self) {
        self.waiting_since = None;
    }
}

/// A request body that fails with `BodyStalled` when the client sends nothing for the idle
/// timeout while the handler waits for more, and sets `abandoned` if it is dropped unfinished.
struct IdleBody {
    inner: Incoming,
    timer: IdleTimer,
    stalled: bool,
    finished: bool,
    abandoned: Arc<AtomicBool>,
}

impl IdleBody {
    fn new(inner: Incoming, limit: Duration, abandoned: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            timer: IdleTimer::new(limit),
            stalled: false,
            finished: false,
            abandoned,
        }
    }

    fn stalled_error(&self) -> BoxError {
        Box::new(BodyStalled(self.timer.limit.as_secs()))
    }
}

impl Body for IdleBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(Some(Err(this.stalled_error())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if this.timer.expired(cx) {
                    this.stalled = true;
                    return Poll::Ready(Some(Err(this.stalled_error())));
                }
                Poll::Pending
            }
            Poll::Ready(frame) => {
                this.timer.progress();
                this.finished |= frame.is_none();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for IdleBody {
    fn drop(&mut self) {
        if !self.finished && !self.inner.is_end_stream() {
            self.abandoned.store(true, Ordering::Release);
        }
    }
}

/// The connection's socket, failing a write that makes no progress for the idle timeout (a
/// client that stopped reading its answer).
struct StallGuard {
    io: TokioIo<TcpStream>,
    write: IdleTimer,
}

impl StallGuard {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        Self {
            io: TokioIo::new(stream),
            write: IdleTimer::new(limit),
        }
    }

    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Pending if self.write.expired(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.write.progress();
                Poll::Ready(result)
            }
        }
    }
}

impl hyper::rt::Read for StallGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for StallGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.guard(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.guard(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.guard(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_timer_measures_each_wait_from_its_own_start() {
        let second = Duration::from_secs(1);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut timer = IdleTimer::new(10 * second);
        assert!(!timer.expired(&mut cx));
        tokio::time::advance(6 * second).await;
        assert!(!timer.expired(&mut cx));
        timer.progress();

        // A second wait, from 7 s to 17 s; the sleep armed for the first fires at 10 s.
        tokio::time::advance(second).await;
        assert!(!timer.expired(&mut cx));
        tokio::time::advance(4 * second).await;
        assert!(
            !timer.expired(&mut cx),
            "the first wait's deadline is not this one's"
        );
        tokio::time::advance(5 * second).await;
        assert!(!timer.expired(&mut cx));
        tokio::time::advance(second).await;
        assert!(timer.expired(&mut cx));
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_between_waits_does_not_count() {
        let second = Duration::from_secs(1);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut timer = IdleTimer::new(10 * second);
        assert!(!timer.expired(&mut cx));
        timer.progress();
        // A handler busy for longer than the limit with bytes it has.
        tokio::time::advance(60 * second).await;
        assert!(!timer.expired(&mut cx));
        tokio::time::advance(9 * second).await;
        assert!(!timer.expired(&mut cx));
        tokio::time::advance(second).await;
        assert!(timer.expired(&mut cx));
    }
}
