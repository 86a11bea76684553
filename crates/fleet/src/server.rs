//! `linkwise fleet serve`: HTTP ingest for node agents and the inventory's read queries,
//! over a [`Store`].
//!
//! | Method and path                  | Answer                                                   |
//! |----------------------------------|----------------------------------------------------------|
//! | `POST /v1/reports`               | one report (JSON): 201 stored, 200 already stored, 400 bad, 413 too large |
//! | `GET /v1/nodes`                  | the inventory, one row per node                          |
//! | `GET /v1/nodes/{node}`           | the node's latest report (404 when never reported)       |
//! | `GET /v1/nodes/{node}/history`   | its reports, oldest first, with what changed             |
//! | `GET /v1/drift?by=rack,batch`    | drift over the latest reports                            |
//! | `POST /v1/attest`                | the allow-list (YAML or JSON) in the body: the findings  |
//! | `GET /healthz`                   | 200 when the database answers, else 503 (no token)       |
//!
//! Every `/v1` request needs `Authorization: Bearer TOKEN`, compared in constant time (as
//! SHA-256 digests, so not even the length leaks); without it the answer is 401 and the
//! body is never read. Bodies are read up to a limit, within the read timeout. Errors
//! are JSON `{"error": "..."}`; a database failure is 503, which agents retry. Nothing
//! is stored unless the whole report was read and is valid.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE,
};
use axum::http::{Method, Response, StatusCode, Uri};
use axum::routing::any;
use bytes::Bytes;
use http_body_util::Full;
use linkwise_http::ServeOptions;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::attest::{AllowList, attest};
use crate::drift::drift;
use crate::report::NodeReport;
use crate::store::Store;

/// The default limit of a request body: far above a node report (a few KiB to a few
/// hundred KiB with many artefacts), far below what would hurt the server.
pub const MAX_BODY: usize = 4 << 20;

/// What the server needs besides its store.
#[derive(Clone)]
pub struct Config {
    /// The bearer token agents and readers present.
    pub token: String,
    /// The largest body accepted (413 above).
    pub max_body: usize,
    /// How long a body may take to arrive (408 after).
    pub read_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("token", &"***")
            .field("max_body", &self.max_body)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

#[derive(Debug)]
struct App {
    store: Store,
    token_digest: [u8; 32],
    max_body: usize,
    read_timeout: Duration,
}

/// Serves the fleet API on `listener` until `shutdown` completes
/// ([`linkwise_http::serve`] with `options`).
pub async fn serve(
    listener: TcpListener,
    store: Store,
    config: Config,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    linkwise_http::serve(listener, options, router(store, config), shutdown).await;
}

/// The fleet API's router (see the module's table).
pub fn router(store: Store, config: Config) -> Router {
    let app = Arc::new(App {
        store,
        token_digest: Sha256::digest(config.token.as_bytes()).into(),
        max_body: config.max_body,
        read_timeout: config.read_timeout,
    });
    Router::new().fallback(any(answer)).with_state(app)
}

/// An answer: status and JSON body.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

fn json(status: u16, value: &impl Serialize) -> Reply {
    Reply {
        status,
        body: serde_json::to_vec_pretty(value).unwrap_or_default(),
    }
}

fn error(status: u16, message: impl Into<String>) -> Reply {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    json(
        status,
        &Body {
            error: message.into(),
        },
    )
}

impl App {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            })
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        given.ct_eq(&self.token_digest).into()
    }

    async fn body(&self, headers: &HeaderMap, body: axum::body::Body) -> Result<Bytes, Reply> {
        linkwise_http::read_body(headers, body, self.max_body, self.read_timeout)
            .await
            .map_err(|e| error(e.status(), e.to_string()))
    }

    fn unavailable(e: &crate::store::StoreError) -> Reply {
        tracing::warn!(error = %e, "fleet store failed");
        error(503, format!("the store failed, try again: {e}"))
    }

    async fn ingest(&self, headers: &HeaderMap, body: axum::body::Body) -> Reply {
        let body = match self.body(headers, body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Ok(text) = std::str::from_utf8(&body) else {
            return error(400, "request body: not UTF-8");
        };
        let report = match NodeReport::parse(text, "request body") {
            Ok(r) => r,
            Err(e) => return error(400, e.to_string()),
        };
        match self.store.ingest(&report).await {
            Ok(done) => json(if done.stored { 201 } else { 200 }, &done),
            Err(e) => Self::unavailable(&e),
        }
    }

    async fn attest(&self, headers: &HeaderMap, body: axum::body::Body) -> Reply {
        let body = match self.body(headers, body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Ok(text) = std::str::from_utf8(&body) else {
            return error(400, "allow-list: not UTF-8");
        };
        let allow = match AllowList::parse(text, "allow-list") {
            Ok(a) => a,
            Err(e) => return error(400, e.to_string()),
        };
        match self.store.latest().await {
            Ok(latest) => json(200, &attest(&latest, &allow)),
            Err(e) => Self::unavailable(&e),
        }
    }

    async fn route(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: axum::body::Body,
    ) -> Reply {
        let path = uri.path();
        if path == "/healthz" {
            return match self.store.counts().await {
                Ok(_) => json(200, &serde_json::json!({"status": "ok"})),
                Err(e) => Self::unavailable(&e),
            };
        }
        if !path.starts_with("/v1/") {
            return error(404, format!("no such path {path:?}; the API is under /v1/"));
        }
        if !self.authorized(headers) {
            return error(
                401,
                "a bearer token is required (Authorization: Bearer TOKEN)",
            );
        }
        let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
        let allowed = match segments.as_slice() {
            ["reports"] | ["attest"] => "POST",
            ["nodes"] | ["nodes", _] | ["nodes", _, "history"] | ["drift"] => "GET",
            _ => return error(404, format!("no such path {path:?}")),
        };
        if method.as_str() != allowed {
            return error(405, format!("{path} takes {allowed}"));
        }
        match segments.as_slice() {
            ["reports"] => self.ingest(headers, body).await,
            ["attest"] => self.attest(headers, body).await,
            ["nodes"] => match self.store.nodes().await {
                Ok(n) => json(200, &n),
                Err(e) => Self::unavailable(&e),
            },
            ["nodes", node] => match self.store.show(&decode(node)).await {
                Ok(Some(r)) => json(200, &r),
                Ok(None) => error(404, format!("no report of node {:?}", decode(node))),
                Err(e) => Self::unavailable(&e),
            },
            ["nodes", node, "history"] => match self.store.history(&decode(node)).await {
                Ok(h) if h.is_empty() => {
                    error(404, format!("no report of node {:?}", decode(node)))
                }
                Ok(h) => json(200, &h),
                Err(e) => Self::unavailable(&e),
            },
            _ => {
                let by: Vec<String> = uri
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("by="))
                    .flat_map(|v| decode(v).split(',').map(str::to_string).collect::<Vec<_>>())
                    .filter(|v| !v.is_empty())
                    .collect();
                match self.store.latest().await {
                    Ok(latest) => json(200, &drift(&latest, &by)),
                    Err(e) => Self::unavailable(&e),
                }
            }
        }
    }
}

/// Percent-decoding of a path segment or query value (`+` is a space in a query);
/// invalid escapes are kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn answer(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response<Full<Bytes>> {
    let reply = app.route(&method, &uri, &headers, body).await;
    if reply.status >= 400 {
        tracing::info!(%method, path = uri.path(), status = reply.status, "request refused");
    }
    let mut r = Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if reply.status == 401 {
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"linkwise-fleet\""),
        );
    }
    if matches!(reply.status, 401 | 408 | 413) {
        // The body (if any) was not read: end the connection after this answer.
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn path_segments_and_query_values_are_percent_decoded() {
        assert_eq!(decode("gpu%2Dnode%201"), "gpu-node 1");
        assert_eq!(decode("rack,batch"), "rack,batch");
        assert_eq!(decode("a+b"), "a b");
        assert_eq!(decode("bad%zz%4"), "bad%zz%4");
        assert_eq!(decode("%"), "%");
    }
}
