//! The HTTP/1.1 endpoint: `GET /metrics` serves the cached render (gzip-compressed when
//! the client accepts it), `GET /healthz` says `ok`. A scrape does no I/O other than
//! writing its response: no driver call, no kubelet call, no file read.
//!
//! The routes are an axum [`Router`] ([`router`]); the serving loop (connections, stall
//! limits, request tracing, shutdown) is [`linkwise_http::serve`], shared with the
//! scheduler extender; this module holds only the routes and their handlers.

use std::future::Future;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::header::{
    ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, VARY,
};
use axum::http::{Response, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Full;
use tokio::net::TcpListener;

/// The limits of the serving loop, from [`linkwise_http`].
pub use linkwise_http::ServeOptions;

use crate::runtime::ExporterHandle;

/// The metrics path.
pub const METRICS_PATH: &str = "/metrics";
/// The liveness path.
pub const HEALTHZ_PATH: &str = "/healthz";

/// Serves `handle`'s cached render on `listener` until `shutdown` completes, with the
/// default [`ServeOptions`]; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    handle: ExporterHandle,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, handle, ServeOptions::default(), shutdown).await;
}

/// Serves `handle`'s cached render on `listener` until `shutdown` completes: `GET`
/// (or `HEAD`) `/metrics` answers the OpenMetrics text (gzip-compressed when the request's
/// `Accept-Encoding` allows it), `/healthz` answers `ok`, other paths 404, other methods
/// 405. Malformed requests get hyper's 400 and a closed connection; stalled clients are
/// disconnected ([`ServeOptions`]). On shutdown it stops accepting, asks open connections
/// to close after their current response and waits up to 2 s for them.
pub async fn serve_with(
    listener: TcpListener,
    handle: ExporterHandle,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    linkwise_http::serve(listener, options, router(handle), shutdown).await;
}

/// The exporter's routes: `GET`/`HEAD` [`METRICS_PATH`] (the cached render, gzip when
/// accepted) and [`HEALTHZ_PATH`], `405` with `Allow` for other methods on them, `404`
/// elsewhere.
pub fn router(handle: ExporterHandle) -> Router {
    let state = Arc::new(Pages {
        handle,
        gzipped: GzipCache::default(),
    });
    Router::new()
        .route(METRICS_PATH, get(metrics).fallback(not_allowed))
        .route(
            HEALTHZ_PATH,
            get(|| async { text(StatusCode::OK, "ok") }).fallback(not_allowed),
        )
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found") })
        .with_state(state)
}

/// What the handlers read: the cached render and its compressed form.
struct Pages {
    handle: ExporterHandle,
    gzipped: GzipCache,
}

async fn not_allowed() -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

/// The last render compressed, reused until the render changes.
#[derive(Default)]
struct GzipCache {
    last: Mutex<Option<(Bytes, Bytes)>>,
}

impl GzipCache {
    /// `plain` compressed; computed once per render (the cache keeps the render it was
    /// made from, so the same address with the same length is the same render).
    fn get(&self, plain: &Bytes) -> std::io::Result<Bytes> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((src, gz)) = last.as_ref()
            && src.as_ptr() == plain.as_ptr()
            && src.len() == plain.len()
        {
            return Ok(gz.clone());
        }
        let gz = gzip(plain)?;
        *last = Some((plain.clone(), gz.clone()));
        Ok(gz)
    }
}

/// `data` as a gzip member (RFC 1952).
pub fn gzip(data: &[u8]) -> std::io::Result<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8),
        flate2::Compression::default(),
    );
    enc.write_all(data)?;
    Ok(Bytes::from(enc.finish()?))
}

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`) listed with a quality
/// above 0, or `*` above 0 when gzip is not listed (RFC 9110, 12.5.3).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
                })
                .next_back()
                .map_or(Some(1.0), |v| v.parse::<f64>().ok());
            let accepted = q.is_some_and(|q| q > 0.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(gzip.unwrap_or(false) || accepted);
            } else if coding == "*" {
                any = Some(accepted);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// `/metrics`: the cached render, compressed when the client accepts gzip; reads only
/// the cache.
async fn metrics(State(pages): State<Arc<Pages>>, headers: HeaderMap) -> Response<Full<Bytes>> {
    let plain = pages.handle.latest();
    let gz = if accepts_gzip(&headers) {
        let cache = pages.clone();
        let src = plain.clone();
        // Compressing a large render takes milliseconds: off the async workers.
        match tokio::task::spawn_blocking(move || cache.gzipped.get(&src)).await {
            Ok(Ok(gz)) => Some(gz),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "gzip failed; answering uncompressed");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "gzip failed; answering uncompressed");
                None
            }
        }
    } else {
        None
    };
    metrics_response(plain, gz)
}

/// `/metrics`: the compressed render when there is one, else the plain one; either way
/// `Vary: Accept-Encoding`, so caches keep the two apart.
fn metrics_response(plain: Bytes, gzipped: Option<Bytes>) -> Response<Full<Bytes>> {
    let compressed = gzipped.is_some();
    let mut r = with_type(
        Response::new(Full::new(gzipped.unwrap_or(plain))),
        crate::render::CONTENT_TYPE,
    );
    let h = r.headers_mut();
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if compressed {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::header::HeaderName;
    use http_body_util::BodyExt;

    use super::*;

    fn headers(accept: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in accept {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        for yes in [
            &["gzip"][..],
            &["GZIP"],
            &["br, gzip;q=0.1"],
            &["x-gzip"],
            &["*"],
            &["identity", "gzip"],
            &["br;q=1, *;q=0.5"],
        ] {
            assert!(accepts_gzip(&headers(yes)), "{yes:?}");
        }
        for no in [
            &[][..],
            &["identity"],
            &["gzip;q=0"],
            &["gzip; q=0.000"],
            &["*;q=0"],
            &["gzip;q=0, *"],
            &["deflate, br"],
            &["gzip;q=bad"],
        ] {
            assert!(!accepts_gzip(&headers(no)), "{no:?}");
        }
    }

    #[tokio::test]
    async fn a_gzip_answer_decodes_to_the_plain_one_and_is_reused() {
        let page = Bytes::from("# TYPE x gauge\nx{gpu=\"0\"} 1\n".repeat(2000) + "# EOF\n");
        let cache = GzipCache::default();
        let gz = cache.get(&page).unwrap();
        assert!(gz.len() < page.len() / 10);
        let again = cache.get(&page).unwrap();
        assert_eq!(
            gz.as_ptr(),
            again.as_ptr(),
            "the same render is compressed once"
        );
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut decoded)
            .unwrap();
        assert_eq!(decoded, page);

        let r = metrics_response(page.clone(), Some(gz.clone()));
        let vary = HeaderName::from_static("vary");
        assert_eq!(r.headers()[&vary], "Accept-Encoding");
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, gz);
        let r = metrics_response(page.clone(), None);
        assert_eq!(r.headers()[&vary], "Accept-Encoding");
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), page);
    }
}
