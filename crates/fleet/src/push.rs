//! `linkwise report --push`: a report posted to `linkwise fleet serve`, retried with
//! backoff while the server is unreachable or answers that it could not store it.
//!
//! HTTP or HTTPS (rustls; the system's roots, plus a private CA from a PEM file). A
//! connection failure, a timeout, 408, 429 and 5xx are retried after a delay that doubles
//! from the first (with jitter, so a fleet's agents do not come back in step, and never
//! beyond the cap, or a `Retry-After` in seconds when the server gives one); any other
//! answer is final: 400 (the report is bad), 401 (the token), 413 (too large) are the
//! caller's to fix and are not retried.

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::store::Ingested;

/// Where and how to push.
#[derive(Clone)]
pub struct PushOptions {
    /// The server (`http://fleet.example:9470`); `/v1/reports` is added unless the URL
    /// already ends with it.
    pub url: String,
    /// The bearer token.
    pub token: String,
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// The delay before the second try; it doubles after each.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// The limit of one try (connect, send, answer).
    pub timeout: Duration,
    /// PEM certificates trusted besides the system's (a private CA).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("url", &self.url)
            .field("token", &"***")
            .field("attempts", &self.attempts)
            .field("first_delay", &self.first_delay)
            .field("max_delay", &self.max_delay)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl PushOptions {
    /// Pushes to `url` with `token`: 6 tries, 0.5 s doubling up to 30 s, 30 s each.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        PushOptions {
            url: url.into(),
            token: token.into(),
            attempts: 6,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The URL or the CA file cannot be used.
    #[error("{0}")]
    Setup(String),
    /// The server answered with a final refusal (400, 401, 413, ...).
    #[error("{url}: {status}: {message}")]
    Refused {
        /// Where.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// Every try failed with something that may pass.
    #[error("{url}: gave up after {attempts} tries; the last: {last}")]
    GaveUp {
        /// Where.
        url: String,
        /// Tries made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// A push that the server took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The answer's status (201 stored, 200 already stored).
    pub status: u16,
    /// The tries it took.
    pub attempts: u32,
    /// What the server did.
    pub ingested: Ingested,
}

/// The ingest URL for a server URL.
fn ingest_url(url: &str) -> Result<hyper::Uri, PushError> {
    let trimmed = url.trim_end_matches('/');
    let full = if trimmed.ends_with("/v1/reports") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v1/reports")
    };
    let uri: hyper::Uri = full
        .parse()
        .map_err(|e| PushError::Setup(format!("--push {url:?}: not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(PushError::Setup(format!(
            "--push {url:?}: give http://HOST:PORT or https://HOST:PORT"
        ))),
    }
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// The connector: plain HTTP, and TLS with the system's roots (read only for an https
/// URL) and the CA file's.
fn connector(https: bool, ca_file: Option<&PathBuf>) -> Result<Connector, PushError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    if https {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(path) = ca_file {
        let text = linkwise_fsio::read_capped(path).map_err(|e| PushError::Setup(e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<_, _>>()
            .map_err(|e| PushError::Setup(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(PushError::Setup(format!(
                "{}: no PEM certificate in it",
                path.display()
            )));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| PushError::Setup(format!("{}: {e}", path.display())))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PushError::Setup(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build())
}

/// The delay before try `n + 1` (n ≥ 1): `first · 2^(n-1)`, capped, times a jitter in
/// [0.5, 1).
fn backoff(options: &PushOptions, n: u32) -> Duration {
    let base = options
        .first_delay
        .saturating_mul(1u32 << (n - 1).min(20))
        .min(options.max_delay);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(n);
    let jitter = 0.5 + (h.finish() % 1000) as f64 / 2000.0;
    base.mul_f64(jitter)
}

/// Posts `body` (one report's JSON) as [`PushOptions`] says. One report; an agent that
/// pushes many keeps a [`Pusher`], which keeps its connection.
///
/// # Errors
///
/// [`PushError`]: a bad URL or CA file, a final refusal, or every try failed.
pub async fn push(body: String, options: &PushOptions) -> Result<Pushed, PushError> {
    Pusher::new(options.clone())?.push(body).await
}

/// A client for one fleet server: its connections are kept and reused.
pub struct Pusher {
    options: PushOptions,
    uri: hyper::Uri,
    client: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// A client for `options.url`.
    ///
    /// # Errors
    ///
    /// [`PushError::Setup`]: a bad URL or CA file.
    pub fn new(options: PushOptions) -> Result<Pusher, PushError> {
        let uri = ingest_url(&options.url)?;
        let https = uri.scheme_str() == Some("https");
        let client = Client::builder(TokioExecutor::new())
            .build(connector(https, options.ca_file.as_ref())?);
        Ok(Pusher {
            options,
            uri,
            client,
        })
    }

    /// Posts `body` (one report's JSON), retrying as the options say.
    ///
    /// # Errors
    ///
    /// [`PushError`]: a final refusal, or every try failed.
    pub async fn push(&self, body: String) -> Result<Pushed, PushError> {
        let (options, uri, client) = (&self.options, &self.uri, &self.client);
        let body = Bytes::from(body);
        let attempts = options.attempts.max(1);
        let mut last = String::new();
        for n in 1..=attempts {
            let request = Request::post(uri.clone())
                .header(AUTHORIZATION, format!("Bearer {}", options.token))
                .header(CONTENT_TYPE, "application/json")
                .header(USER_AGENT, concat!("linkwise/", env!("CARGO_PKG_VERSION")))
                .body(Full::new(body.clone()))
                .map_err(|e| PushError::Setup(e.to_string()))?;
            let mut retry_after = None;
            let outcome = tokio::time::timeout(options.timeout, async {
                let response = client.request(request).await.map_err(|e| chain(&e))?;
                let status = response.status().as_u16();
                let after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("reading the answer: {e}"))?
                    .to_bytes();
                Ok::<_, String>((status, after, bytes))
            })
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", options.timeout)));
            match outcome {
                Ok((status @ (200 | 201), _, bytes)) => {
                    let ingested: Ingested =
                        serde_json::from_slice(&bytes).map_err(|e| PushError::Refused {
                            url: uri.to_string(),
                            status,
                            message: format!("not a fleet server's answer: {e}"),
                        })?;
                    return Ok(Pushed {
                        status,
                        attempts: n,
                        ingested,
                    });
                }
                Ok((status, after, bytes)) => {
                    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
                    if !(status == 408 || status == 429 || status >= 500) {
                        return Err(PushError::Refused {
                            url: uri.to_string(),
                            status,
                            message,
                        });
                    }
                    retry_after = after.map(Duration::from_secs);
                    last = format!("{status}: {message}");
                }
                Err(e) => last = e,
            }
            if n < attempts {
                let delay = retry_after
                    .map(|d| d.min(options.max_delay))
                    .unwrap_or_else(|| backoff(options, n));
                tracing::warn!(url = %uri, attempt = n, error = %last, retry_in = ?delay, "push failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
        Err(PushError::GaveUp {
            url: uri.to_string(),
            attempts,
            last,
        })
    }
}

/// An error and its causes, `error: cause: cause`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// `GET url` (http, or https with the system's roots and `ca_file`): the status and the
/// body, within `timeout`. For the read-only calls other crates make (Prometheus's query
/// API for rollout gates) over the same TLS stack as the push.
///
/// # Errors
///
/// What failed, as a sentence: a bad URL, no connection, no answer in time.
pub async fn get(
    url: &str,
    ca_file: Option<&PathBuf>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: not an http:// or https:// URL")),
    };
    let client: Client<Connector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .build(connector(https, ca_file).map_err(|e| e.to_string())?);
    let request = Request::get(uri)
        .header(USER_AGENT, concat!("linkwise/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(timeout, async {
        let response = client.request(request).await.map_err(|e| chain(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingest_path_is_added_once_and_only_http_urls_pass() {
        assert_eq!(
            ingest_url("http://fleet:9470").unwrap().to_string(),
            "http://fleet:9470/v1/reports"
        );
        assert_eq!(
            ingest_url("https://fleet/v1/reports/").unwrap().to_string(),
            "https://fleet/v1/reports"
        );
        for bad in ["fleet:9470", "ftp://fleet", "http://", "not a url"] {
            assert!(ingest_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let o = PushOptions {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..PushOptions::new("http://x", "t")
        };
        for n in 1..=8u32 {
            let want =
                Duration::from_millis(100 * (1u64 << (n - 1))).min(Duration::from_millis(1000));
            let got = backoff(&o, n);
            assert!(
                got >= want / 2 && got < want,
                "try {n}: {got:?} vs {want:?}"
            );
        }
    }
}
