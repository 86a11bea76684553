//! `linkwise-http`: the HTTP layer shared by linkwise's servers (the exporter's
//! `/metrics`, the scheduler extender, and the fleet API).
//!
//! What it is: [`serve`], which serves an [`axum::Router`] over HTTP/1.1 with the same
//! guarantees for every server: one task per connection, bounded in number, each closed
//! when its client stalls ([`ServeOptions`]); every request traced (a `tracing` span
//! with method, path, status and latency, `tower-http`'s trace layer); a handler that
//! panics answered `500` while the server keeps serving (`tower-http`'s catch-panic
//! layer); graceful shutdown. [`read_body`] reads a request body within a size limit
//! and a deadline, so every endpoint that takes a body refuses the same way.
//! What it is not: any endpoint's routes or handlers; those stay with the crate that
//! owns the endpoint and are built with axum.
//!
//! Why the connection loop is ours and not `axum::serve`: axum's server has no
//! request-header timeout, no per-connection stall limit and no connection limit, and a
//! node agent must not let slow or silent clients hold its sockets. The loop is
//! hyper's HTTP/1.1 connection (with its header timeout) around the router, as axum
//! documents for servers that need that control.
#![warn(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// How long open connections get to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(2);

/// The limits of [`serve`]. The defaults suit production; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long a client may take to send a request's headers, counted from when the
    /// server starts waiting for them (a new connection, or the next request on a kept-alive
    /// one). Default 10 s.
    pub header_timeout: Duration,
    /// How long a connection may go without the client moving a byte while the server
    /// waits on it: sending the request body, or taking the response. Default 30 s.
    /// Time the server spends answering does not count. Handlers that read bodies also
    /// use it as the limit for a whole body.
    pub read_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes. Default 1024.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `app` over HTTP/1.1 on `listener` until `shutdown` completes: one task per
/// connection, at most `options.max_connections` at once, request headers within
/// `options.header_timeout` (hyper answers malformed requests with 400 and closes), and a
/// connection whose client moves no byte for `options.read_timeout` while the server
/// waits on it closed; accept errors are logged with a short back-off instead of a spin.
/// Every request is traced and a panicking handler answers 500. On shutdown it stops
/// accepting, asks open connections to close after their current response and waits up
/// to 2 s for them. Handlers see the body as [`axum::body::Body`] (read it with
/// [`read_body`]).
pub async fn serve(
    listener: TcpListener,
    options: ServeOptions,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let app = app
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http());
    let mut shutdown = std::pin::pin!(shutdown);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = JoinSet::new();
    let max = options.max_connections.max(1);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            // At the limit, leave further clients in the backlog until a connection ends.
            accepted = listener.accept(), if conns.len() < max => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let busy = Arc::new(AtomicBool::new(false));
            let io = Watched::new(stream, options.read_timeout, busy.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                // Busy (not waiting on the client) once the request is in: at once
                // without a body, else when its body has been read to the end.
                let guard = Busy::new(busy.clone(), req.body().is_end_stream());
                let req = req.map(|inner| {
                    axum::body::Body::new(RequestBody {
                        inner,
                        busy: busy.clone(),
                    })
                });
                let resp = app.clone().oneshot(req);
                let busy = guard;
                async move {
                    let resp = resp.await;
                    drop(busy);
                    resp.map_err(|e: Infallible| match e {})
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_timeout)
                .serve_connection(TokioIo::new(io), svc);
            let mut conn = std::pin::pin!(conn);
            let stopping = async move {
                // `wait_for` returns a borrow guard; drop it here so the task stays `Send`.
                let _ = stop.wait_for(|s| *s).await.map(|_| ());
            };
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stopping => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
}

/// Why a request body could not be read; each maps to one status.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit (declared in `Content-Length` or as it arrived): 413.
    TooLarge(usize),
    /// Not complete within the deadline, or the client stalled: 408.
    TimedOut(String),
    /// The client sent a broken body (or hung up): 400.
    Broken(String),
}

impl BodyError {
    /// The HTTP status that answers it.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge(_) => 413,
            BodyError::TimedOut(_) => 408,
            BodyError::Broken(_) => 400,
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "body over {limit} bytes"),
            BodyError::TimedOut(why) | BodyError::Broken(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BodyError {}

/// Reads a request body in full: at most `limit` bytes (a larger `Content-Length` is
/// refused before reading), all of it within `within`.
///
/// # Errors
///
/// [`BodyError`]: too large, too slow (or the client stalled), or broken.
pub async fn read_body(
    headers: &hyper::HeaderMap,
    body: axum::body::Body,
    limit: usize,
    within: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(BodyError::TooLarge(limit));
    }
    match tokio::time::timeout(within, Limited::new(body, limit).collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) if timed_out(e.as_ref()) => Err(BodyError::TimedOut(format!(
            "reading the body: {}",
            chain(e.as_ref())
        ))),
        Ok(Err(e)) => Err(BodyError::Broken(format!(
            "reading the body: {}",
            chain(e.as_ref())
        ))),
        Err(_) => Err(BodyError::TimedOut(format!(
            "the body did not arrive within {within:?}"
        ))),
    }
}

/// An error and its causes, `: `-separated.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Whether reading failed because the client stalled (the serving loop's read timeout).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A request's body as the serving loop hands it to the router: hyper's, noting when it
/// has been read to the end (from then on the connection no longer waits on the client).
#[derive(Debug)]
struct RequestBody {
    inner: Incoming,
    busy: Arc<AtomicBool>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            this.busy.store(true, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// While alive, a request is being answered; the connection is idle again when it drops.
struct Busy(Arc<AtomicBool>);

impl Busy {
    fn new(flag: Arc<AtomicBool>, busy: bool) -> Busy {
        flag.store(busy, Ordering::Relaxed);
        Busy(flag)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// A connection's socket with a stall limit: a read or write that has waited on the
/// client for `timeout` since the last byte moved fails with `TimedOut`, which ends the
/// connection. While a request is being answered (its body read in full), waiting reads
/// (hyper watching for a hang-up) do not count.
struct Watched<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    busy: Arc<AtomicBool>,
}

impl<S> Watched<S> {
    fn new(inner: S, timeout: Duration, busy: Arc<AtomicBool>) -> Self {
        Watched {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            busy,
        }
    }

    fn progressed(&mut self) {
        let at = tokio::time::Instant::now() + self.timeout;
        self.deadline.as_mut().reset(at);
    }

    /// After the inner operation returned `Pending`: `Ready(Err)` once the deadline has
    /// passed, else `Pending` (with the deadline's wake-up registered).
    fn stalled<T>(&mut self, cx: &mut Context<'_>, what: &str) -> Poll<std::io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client {what} for {:?}", self.timeout),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.busy.load(Ordering::Relaxed) => {
                this.progressed();
                Poll::Pending
            }
            Poll::Pending => this.stalled(cx, "sent nothing"),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.stalled(cx, "took no response bytes"),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.stalled(cx, "took no response bytes"),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.stalled(cx, "took no response bytes"),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::SocketAddr;

    use axum::routing::any;

    use super::*;

    /// Far beyond the 1 s limits the tests serve with: a connection still open then was
    /// never going to close.
    const DEADLINE: Duration = Duration::from_secs(20);

    const SHORT: ServeOptions = ServeOptions {
        header_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        max_connections: 16,
    };

    /// Serves `ok` (reading the request body in full when `read_body`) with [`SHORT`].
    async fn server(read_body: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(any(move |body: axum::body::Body| async move {
            if read_body {
                let _ = body.collect().await;
            }
            "ok"
        }));
        tokio::spawn(serve(listener, SHORT, app, std::future::pending::<()>()));
        addr
    }

    /// Sends `bytes` and reads until the server closes; fails after [`DEADLINE`].
    async fn closed_after(addr: SocketAddr, bytes: &[u8], what: &str) -> String {
        linkwise_testkit::http::closed_after(addr, bytes, what, DEADLINE).await
    }

    /// Regression (issue 12, item 8): stalled clients held connections open forever (a
    /// body that never finishes); every way of stalling ends in a closed connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_connections_are_closed() {
        for read_body in [true, false] {
            let addr = server(read_body).await;
            let said = closed_after(addr, b"", "nothing sent").await;
            assert!(
                said.is_empty() || said.starts_with("HTTP/1.1 408"),
                "{said}"
            );
            closed_after(
                addr,
                b"GET / HTTP/1.1\r\nHost: x\r\nAccept: te",
                "half the headers",
            )
            .await;
            // A handler that reads the body sees it fail; one that does not answers first.
            let said = closed_after(
                addr,
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
                "a body stalled after 3 of 100 bytes",
            )
            .await;
            assert!(read_body || said.starts_with("HTTP/1.1 200"), "{said}");
            let said = closed_after(
                addr,
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                "kept alive, idle",
            )
            .await;
            assert!(said.starts_with("HTTP/1.1 200"), "{said}");
        }
    }

    /// A handler slower than the read timeout still answers: waiting on the server is not
    /// a stalled client.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_answer_is_not_a_stall() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(any(|body: axum::body::Body| async move {
            let _ = body.collect().await;
            tokio::time::sleep(SHORT.read_timeout * 2).await;
            "late"
        }));
        tokio::spawn(serve(listener, SHORT, app, std::future::pending::<()>()));
        let said = closed_after(
            addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
            "a slow answer",
        )
        .await;
        assert!(
            said.starts_with("HTTP/1.1 200") && said.ends_with("late"),
            "{said}"
        );
    }

    /// A handler that panics answers 500 and the server keeps serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_handler_answers_500_and_serving_goes_on() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route(
                "/boom",
                any(|| async {
                    if std::hint::black_box(true) {
                        panic!("handler bug");
                    }
                    "unreachable"
                }),
            )
            .fallback(any(|| async { "ok" }));
        tokio::spawn(serve(listener, SHORT, app, std::future::pending::<()>()));
        let said = closed_after(
            addr,
            b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "a panicking handler",
        )
        .await;
        assert!(said.starts_with("HTTP/1.1 500"), "{said}");
        let said = closed_after(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "the next request",
        )
        .await;
        assert!(
            said.starts_with("HTTP/1.1 200") && said.ends_with("ok"),
            "{said}"
        );
    }

    /// Bodies over the limit, declared or sent, and bodies that do not arrive in time are
    /// refused with the status that says so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_body_refuses_large_and_late_bodies() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(any(
            |headers: hyper::HeaderMap, body: axum::body::Body| async move {
                match read_body(&headers, body, 8, Duration::from_millis(300)).await {
                    Ok(b) => (hyper::StatusCode::OK, format!("got {}", b.len())),
                    Err(e) => (
                        hyper::StatusCode::from_u16(e.status()).unwrap(),
                        e.to_string(),
                    ),
                }
            },
        ));
        tokio::spawn(serve(listener, SHORT, app, std::future::pending::<()>()));
        let post = |len: &str, body: &str| {
            format!("POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{len}\r\n{body}")
        };
        let said = closed_after(addr, post("Content-Length: 3\r\n", "abc").as_bytes(), "ok").await;
        assert!(said.ends_with("got 3"), "{said}");
        let said = closed_after(
            addr,
            post("Content-Length: 9\r\n", "").as_bytes(),
            "declared",
        )
        .await;
        assert!(
            said.starts_with("HTTP/1.1 413") && said.ends_with("body over 8 bytes"),
            "{said}"
        );
        let said = closed_after(
            addr,
            post(
                "Transfer-Encoding: chunked\r\n",
                "9\r\n123456789\r\n0\r\n\r\n",
            )
            .as_bytes(),
            "sent",
        )
        .await;
        assert!(said.starts_with("HTTP/1.1 413"), "{said}");
        let said = closed_after(addr, post("Content-Length: 5\r\n", "ab").as_bytes(), "late").await;
        assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    }
}
