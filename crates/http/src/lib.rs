//! `linkwise-http`: the HTTP/1.1 serving loop shared by linkwise's servers (the
//! exporter's `/metrics`, the scheduler extender).
//!
//! What it is: [`serve_http`], one task per connection, bounded in number, each closed
//! when its client stalls ([`ServeOptions`]), with graceful shutdown; and
//! [`RequestBody`], the request body handlers read.
//! What it is not: a router or any endpoint's handler; those stay with the crate that
//! owns the endpoint.
#![warn(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How long open connections get to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(2);

/// The limits of [`serve_http`]. The defaults suit production; tests shorten them.
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

/// HTTP/1.1 on `listener` until `shutdown` completes, each request answered by
/// `respond`: one task per connection, at most `options.max_connections` at once, request
/// headers within `options.header_timeout` (hyper answers malformed requests with 400 and
/// closes), and a connection whose client moves no byte for `options.read_timeout` while
/// the server waits on it closed; accept errors are logged with a short back-off instead
/// of a spin. On shutdown it stops accepting, asks open connections to close after their
/// current response and waits up to 2 s for them. Shared by the exporter and the
/// scheduler extender.
pub async fn serve_http<F, Fut>(
    listener: TcpListener,
    options: ServeOptions,
    respond: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Request<RequestBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
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
        let respond = respond.clone();
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let busy = Arc::new(AtomicBool::new(false));
            let io = Watched::new(stream, options.read_timeout, busy.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                // Busy (not waiting on the client) once the request is in: at once
                // without a body, else when its body has been read to the end.
                let guard = Busy::new(busy.clone(), req.body().is_end_stream());
                let resp = respond(req.map(|inner| RequestBody {
                    inner,
                    busy: busy.clone(),
                }));
                let busy = guard;
                async move {
                    let resp = resp.await;
                    drop(busy);
                    Ok::<_, Infallible>(resp)
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

/// A request's body as handlers get it: hyper's, noting when it has been read to the end
/// (from then on the connection no longer waits on the client).
#[derive(Debug)]
pub struct RequestBody {
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

    use http_body_util::BodyExt;
    use hyper::StatusCode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Far beyond the 1 s limits the tests serve with: a connection still open then was
    /// never going to close.
    const DEADLINE: Duration = Duration::from_secs(20);

    const SHORT: ServeOptions = ServeOptions {
        header_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        max_connections: 16,
    };

    fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r
    }

    /// Serves `ok` (reading the request body in full when `read_body`) with [`SHORT`].
    async fn server(read_body: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_http(
            listener,
            SHORT,
            move |req: Request<RequestBody>| async move {
                if read_body {
                    let _ = req.into_body().collect().await;
                }
                text(StatusCode::OK, "ok")
            },
            std::future::pending::<()>(),
        ));
        addr
    }

    /// Sends `bytes` and reads until the server closes; what it answered, or a failure
    /// naming `what` when the connection is still open after [`DEADLINE`].
    async fn closed_after(addr: SocketAddr, bytes: &[u8], what: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(DEADLINE, async {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "{what}: the connection is still open after {DEADLINE:?}"
        );
        String::from_utf8_lossy(&got).into_owned()
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
        tokio::spawn(serve_http(
            listener,
            SHORT,
            |req: Request<RequestBody>| async move {
                let _ = req.into_body().collect().await;
                tokio::time::sleep(SHORT.read_timeout * 2).await;
                text(StatusCode::OK, "late")
            },
            std::future::pending::<()>(),
        ));
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
}
