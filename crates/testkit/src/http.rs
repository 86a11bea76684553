//! A raw HTTP/1.1 client for tests of linkwise's servers (the exporter, the extender).
//!
//! Raw on purpose: tests send exactly the bytes a scraper, kube-scheduler or a broken
//! client would, including requests no client library would build. One request per
//! connection: [`exchange`] writes the bytes and reads until the server closes, so a
//! request should say `Connection: close` ([`request`] and [`get`] add it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a read may wait before the exchange fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A response as received.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code (0 when the status line does not parse).
    pub status: u16,
    /// The status line and headers as sent, without the blank line.
    pub head: String,
    /// The body bytes as sent (still compressed when the server compressed them).
    pub body: Vec<u8>,
}

impl Response {
    /// Splits raw bytes at the end of the head; everything is head when there is no
    /// blank line.
    pub fn parse(raw: &[u8]) -> Response {
        let (head, body) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => (&raw[..at], raw[at + 4..].to_vec()),
            None => (raw, Vec::new()),
        };
        let head = String::from_utf8_lossy(head).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Response { status, head, body }
    }

    /// The first value of header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `raw` over a fresh connection to `addr` and reads until the server closes it.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT))
        .unwrap_or_else(|e| panic!("set a read timeout: {e}"));
    s.write_all(raw)
        .unwrap_or_else(|e| panic!("send to {addr}: {e}"));
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("reading the answer from {addr}: {e}"));
    Response::parse(&got)
}

/// `METHOD PATH` with `headers`, then `body` (with its `Content-Length` when not empty),
/// `Host` and `Connection: close` added.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    exchange(addr, &request_bytes(addr, method, path, headers, body))
}

/// `GET PATH`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

/// The bytes of the request [`request`] sends.
pub fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// [`request`] for async tests: the blocking exchange on tokio's blocking pool, so the
/// server under test keeps its worker threads.
pub async fn request_async(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let raw = request_bytes(addr, method, path, headers, body);
    tokio::task::spawn_blocking(move || exchange(addr, &raw))
        .await
        .expect("the HTTP exchange panicked")
}

/// Sends `bytes` over a fresh connection and reads until the server closes it; what it
/// answered (lossy text). For tests of stalled and broken clients: fails, naming `what`,
/// when the connection is still open after `within`.
pub async fn closed_after(addr: SocketAddr, bytes: &[u8], what: &str, within: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(bytes)
        .await
        .unwrap_or_else(|e| panic!("send to {addr}: {e}"));
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
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
        "{what}: the connection is still open after {within:?}"
    );
    String::from_utf8_lossy(&got).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_response_splits_into_status_headers_and_body() {
        let r = Response::parse(
            b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\ncontent-length: 2\r\n\r\nno",
        );
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(r.header("Content-Length"), Some("2"));
        assert_eq!(r.header("vary"), None);
        assert_eq!(r.text(), "no");
        let cut = Response::parse(b"HTTP/1.1 200 OK\r\nX: y");
        assert_eq!((cut.status, cut.body.len()), (200, 0));
        assert_eq!(Response::parse(b"").status, 0);
    }

    #[test]
    fn a_request_carries_its_length_host_and_close() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let raw = request_bytes(
            addr,
            "POST",
            "/filter",
            &[("Content-Type", "application/json")],
            b"{}",
        );
        let text = String::from_utf8(raw).unwrap();
        assert_eq!(
            text,
            "POST /filter HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }
}
