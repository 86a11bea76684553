//! The HTTP/1.1 endpoint: `GET /metrics` serves the cached render, `GET /healthz` says
//! `ok`. A scrape does no I/O other than writing its response: no driver call, no
//! kubelet call, no file read.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::runtime::ExporterHandle;

/// The metrics path.
pub const METRICS_PATH: &str = "/metrics";
/// The liveness path.
pub const HEALTHZ_PATH: &str = "/healthz";

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(2);

/// Serves `handle`'s cached render on `listener` until `shutdown` completes: `GET`
/// (or `HEAD`) `/metrics` answers the OpenMetrics text, `/healthz` answers `ok`, other
/// paths 404, other methods 405. Malformed requests get hyper's 400 and a closed
/// connection. On shutdown it stops accepting, asks open connections to close after
/// their current response and waits up to 2 s for them.
pub async fn serve(
    listener: TcpListener,
    handle: ExporterHandle,
    shutdown: impl Future<Output = ()>,
) {
    serve_http(
        listener,
        move |req| {
            let resp = respond(&handle, &req);
            async move { resp }
        },
        shutdown,
    )
    .await;
}

/// HTTP/1.1 on `listener` until `shutdown` completes, each request answered by
/// `respond`: one task per connection, a 10 s limit on reading request headers (hyper
/// answers malformed requests with 400 and closes), accept errors logged with a short
/// back-off instead of a spin. On shutdown it stops accepting, asks open connections to
/// close after their current response and waits up to 2 s for them. Shared by the
/// exporter and the scheduler extender.
pub async fn serve_http<F, Fut>(
    listener: TcpListener,
    respond: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
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
            let svc = service_fn(move |req| {
                let resp = respond(req);
                async move { Ok::<_, Infallible>(resp.await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
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

/// The answer to one request; reads only the cache.
fn respond<B>(handle: &ExporterHandle, req: &Request<B>) -> Response<Full<Bytes>> {
    let readable = matches!(*req.method(), Method::GET | Method::HEAD);
    match req.uri().path() {
        METRICS_PATH if readable => with_type(
            Response::new(Full::new(handle.latest())),
            crate::render::CONTENT_TYPE,
        ),
        HEALTHZ_PATH if readable => text(StatusCode::OK, "ok"),
        METRICS_PATH | HEALTHZ_PATH => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = with_type(
        Response::new(Full::new(Bytes::from_static(body.as_bytes()))),
        "text/plain; charset=utf-8",
    );
    *r.status_mut() = status;
    r
}

fn with_type(mut r: Response<Full<Bytes>>, content_type: &'static str) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
