//! HTTP/1.1 for the extender, through the exporter's serving loop: every request's
//! body is read (up to [`super::MAX_BODY`]) and handed to [`super::Extender::handle`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::{Extender, MAX_BODY, Reply};

/// Serves `ext` on `listener` until `shutdown` completes, then drains for up to 2 s
/// (the exporter's HTTP loop, [`linkwise_exporter::server::serve_http`]).
pub async fn serve(listener: TcpListener, ext: Arc<Extender>, shutdown: impl Future<Output = ()>) {
    linkwise_exporter::server::serve_http(
        listener,
        move |req| {
            let ext = ext.clone();
            async move { respond(&ext, req).await }
        },
        shutdown,
    )
    .await;
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
