//! HTTP/1.1 for the extender: an axum [`Router`] whose one handler reads the body (up to
//! [`crate::MAX_BODY`], within the read timeout, [`linkwise_http::read_body`]) and hands
//! method, path and body to [`crate::Extender::handle`], which owns the routes and their
//! error answers (so they are tested without HTTP); served by [`linkwise_http::serve`].
//! Every refused request is logged, rate-limited.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue};
use axum::http::{Method, Response, StatusCode, Uri};
use axum::routing::any;
use bytes::Bytes;
use http_body_util::Full;
use linkwise_http::ServeOptions;
use tokio::net::TcpListener;

use crate::{Extender, MAX_BODY, Reply};

/// Serves `ext` on `listener` until `shutdown` completes, then drains for up to 2 s
/// ([`linkwise_http::serve`] with its default limits).
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
    linkwise_http::serve(
        listener,
        options,
        router(ext, options.read_timeout),
        shutdown,
    )
    .await;
}

/// The extender's router: every method and path goes to [`Extender::handle`], bodies
/// read within `read_timeout`.
pub fn router(ext: Arc<Extender>, read_timeout: Duration) -> Router {
    Router::new()
        .fallback(any(answer))
        .with_state((ext, read_timeout))
}

async fn answer(
    State((ext, within)): State<(Arc<Extender>, Duration)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response<Full<Bytes>> {
    let path = uri.path();
    let reply = match linkwise_http::read_body(&headers, body, MAX_BODY, within).await {
        Ok(body) => ext.handle(method.as_str(), path, &body),
        Err(e) => error_reply(e.status(), e.to_string()),
    };
    if reply.status >= 400 {
        ext.log_refused(method.as_str(), path, &reply);
    }
    response(reply)
}

fn error_reply(status: u16, message: String) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: serde_json::to_vec(&crate::types::ErrorBody { error: message }).unwrap_or_default(),
    }
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
