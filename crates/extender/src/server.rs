//! HTTP/1.1 for the extender, through the shared serving loop
//! ([`linkwise_http::serve_http`]): every request's body is read (up to
//! [`crate::MAX_BODY`], within the read timeout) and handed to
//! [`crate::Extender::handle`]. Every refused request is logged, rate-limited.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use linkwise_http::{RequestBody, ServeOptions};
use tokio::net::TcpListener;

use crate::{Extender, MAX_BODY, Reply};

/// Serves `ext` on `listener` until `shutdown` completes, then drains for up to 2 s
/// ([`linkwise_http::serve_http`] with its default limits).
pub async fn serve(listener: TcpListener, ext: Arc<Extender>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, ext, ServeOptions::default(), shutdown).await;
}

/// [`serve`] with the given limits; a request body must arrive in full within
/// `options.read_timeout` (else 408 and the connection closes).
pub async fn serve_with(
    listener: TcpListener,
    ext: Arc<Extender>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    linkwise_http::serve_http(
        listener,
        options,
        move |req| {
            let ext = ext.clone();
            async move {
                let method = req.method().as_str().to_string();
                let path = req.uri().path().to_string();
                let reply = read_and_handle(&ext, req, options.read_timeout).await;
                if reply.status >= 400 {
                    ext.log_refused(&method, &path, &reply);
                }
                response(reply)
            }
        },
        shutdown,
    )
    .await;
}

fn error_reply(status: u16, message: String) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: serde_json::to_vec(&crate::types::ErrorBody { error: message }).unwrap_or_default(),
    }
}

async fn read_and_handle(
    ext: &Extender,
    req: Request<RequestBody>,
    within: std::time::Duration,
) -> Reply {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = || error_reply(413, format!("body over {MAX_BODY} bytes"));
    if declared.is_some_and(|n| n > u64::try_from(MAX_BODY).unwrap_or(u64::MAX)) {
        return too_big();
    }
    let body = tokio::time::timeout(within, Limited::new(req.into_body(), MAX_BODY).collect());
    match body.await {
        Ok(Ok(b)) => {
            let body = b.to_bytes();
            ext.handle(&method, &path, &body)
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => too_big(),
        Ok(Err(e)) if timed_out(e.as_ref()) => {
            error_reply(408, format!("reading the body: {}", chain(e.as_ref())))
        }
        Ok(Err(e)) => error_reply(400, format!("reading the body: {}", chain(e.as_ref()))),
        Err(_) => error_reply(408, format!("the body did not arrive within {within:?}")),
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

fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if matches!(reply.status, 408 | 413) {
        // The rest of the body is not read: end the connection after this answer.
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}
