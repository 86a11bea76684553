//! HTTP/1.1 for the extender, the way the exporter serves (`hyper` 1 + `hyper-util`):
//! every request's body is read (up to [`super::MAX_BODY`]) and handed to
//! [`super::Extender::handle`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{Extender, MAX_BODY, Reply};

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(2);

/// Serves `ext` on `listener` until `shutdown` completes, then drains for up to 2 s.
pub async fn serve(listener: TcpListener, ext: Arc<Extender>, shutdown: impl Future<Output = ()>) {
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
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ext = ext.clone();
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let ext = ext.clone();
                async move { Ok::<_, Infallible>(respond(&ext, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            let stopping = async move {
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

async fn respond(ext: &Extender, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = Reply {
        status: 413,
        content_type: "application/json",
        body: format!(r#"{{"Error":"body over {MAX_BODY} bytes"}}"#).into_bytes(),
    };
    let reply = if declared.is_some_and(|n| n > u64::try_from(MAX_BODY).unwrap_or(u64::MAX)) {
        too_big
    } else {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => {
                let body = b.to_bytes();
                ext.handle(&method, &path, &body)
            }
            Err(e) if e.is::<http_body_util::LengthLimitError>() => too_big,
            Err(e) => Reply {
                status: 400,
                content_type: "application/json",
                body: serde_json::to_vec(&super::types::ErrorBody {
                    error: format!("reading the body: {e}"),
                })
                .unwrap_or_default(),
            },
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    r
}
