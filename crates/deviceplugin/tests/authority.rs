//! Which HTTP/2 `:authority` the plugin socket answers. Kubelets up to 1.25 send the socket
//! path as the `:authority` of calls over a unix socket, gRPC C-core 1.57+ clients (Python,
//! C++) send it percent-encoded; kubelet 1.26+ sends `localhost`. The plugin's HTTP/2 server
//! (h2, under tonic) parses `:authority` as a URI authority and resets a stream whose
//! authority is a path with `PROTOCOL_ERROR`, before any service sees the call, and h2 has
//! no setting to relax that. These tests speak HTTP/2 by hand (the h2 client itself refuses
//! to send such an authority) to the socket `linkwise_deviceplugin::run` serves, and record
//! what each kind of client gets: the supported-versions note in README.md and
//! docs/kubernetes.md rests on them. If an h2 upgrade starts accepting path authorities,
//! the refusal test fails: update the docs and turn it into an answered-call test.

// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use linkwise_deviceplugin::{Config, GpuPlugin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const WAIT: Duration = Duration::from_secs(5);

/// HTTP/2 frame types and flags used here (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// RFC 9113 §7.
const PROTOCOL_ERROR: u32 = 0x1;

/// The call every test makes: unary, empty request message.
const METHOD: &str = "/v1beta1.DevicePlugin/GetDevicePluginOptions";
/// Its answer, as one length-prefixed gRPC message: `DevicePluginOptions {
/// get_preferred_allocation_available: true }` (field 2, varint 1).
const OPTIONS_ANSWER: [u8; 7] = [0, 0, 0, 0, 2, 0x10, 0x01];

/// What became of the call on stream 1.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Response headers, the gRPC messages (framed, concatenated) and trailers arrived.
    Answered(Vec<u8>),
    /// The server reset the stream with this error code.
    Reset(u32),
    /// The server closed the connection with GOAWAY and this error code.
    GoAway(u32),
    /// The server closed the connection without a word.
    Closed,
}

/// Serves the plugin as the agent does (no kubelet: it keeps retrying registration, which
/// does not matter here) and returns its socket once it listens.
async fn serve(dir: &Path) -> (PathBuf, tokio::sync::oneshot::Sender<()>) {
    let topo = linkwise_core::profiles::get("dgx1-v100").unwrap();
    let cfg = Config {
        kubelet_dir: dir.to_path_buf(),
        socket_name: "linkwise-gpu.sock".into(),
        resource_name: "nvidia.com/gpu".into(),
        cdi: false,
        dev_root: dir.join("dev"),
    };
    let sock = dir.join(&cfg.socket_name);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(linkwise_deviceplugin::run(
        GpuPlugin::new(topo, cfg),
        async {
            let _ = stop_rx.await;
        },
    ));
    let deadline = tokio::time::Instant::now() + WAIT;
    while !sock.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the plugin socket {} did not appear",
            sock.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (sock, stop_tx)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    assert!(len < 1 << 14, "one frame within the default maximum size");
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first` (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | u8::try_from(value).unwrap());
        return;
    }
    out.push(first | u8::try_from(max).unwrap());
    value -= max;
    while value >= 128 {
        out.push(u8::try_from(value % 128).unwrap() | 0x80);
        value /= 128;
    }
    out.push(u8::try_from(value).unwrap());
}

/// An HPACK string literal, no Huffman coding (RFC 7541 §5.2).
fn hpack_str(out: &mut Vec<u8>, s: &str) {
    hpack_int(out, 0x00, 7, s.len());
    out.extend(s.as_bytes());
}

/// The header block of a gRPC call to `METHOD` with this `:authority`, every field a
/// literal without indexing (RFC 7541 §6.2.2), so the block needs no HPACK state.
fn request_headers(authority: &str) -> Vec<u8> {
    let mut b = Vec::new();
    // Names by static-table index: 3 = :method POST (fully indexed), 6 = :scheme http
    // (fully indexed), 4 = :path, 1 = :authority.
    b.push(0x83);
    b.push(0x86);
    hpack_int(&mut b, 0x00, 4, 4);
    hpack_str(&mut b, METHOD);
    hpack_int(&mut b, 0x00, 4, 1);
    hpack_str(&mut b, authority);
    for (name, value) in [("content-type", "application/grpc"), ("te", "trailers")] {
        b.push(0x00);
        hpack_str(&mut b, name);
        hpack_str(&mut b, value);
    }
    b
}

/// Makes the `GetDevicePluginOptions` call on a fresh connection to `sock`, sending this
/// `:authority`, and reads frames until stream 1 ends one way or another.
async fn call(sock: &Path, authority: &str) -> Outcome {
    tokio::time::timeout(WAIT, call_inner(sock, authority))
        .await
        .expect("the server neither answered nor refused in time")
}

async fn call_inner(sock: &Path, authority: &str) -> Outcome {
    let mut s = UnixStream::connect(sock).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, END_HEADERS, 1, &request_headers(authority)));
    out.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]));
    s.write_all(&out).await.unwrap();

    let mut messages = Vec::new();
    let mut seen_headers = false;
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).await.is_err() {
            return Outcome::Closed;
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).await.is_err() {
            return Outcome::Closed;
        }
        let code = |at: usize| u32::from_be_bytes(payload[at..at + 4].try_into().unwrap());
        match (kind, stream) {
            (SETTINGS, 0) if flags & ACK == 0 => {
                s.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            }
            (GOAWAY, 0) => return Outcome::GoAway(code(4)),
            (RST_STREAM, 1) => return Outcome::Reset(code(0)),
            (HEADERS, 1) => {
                // The first HEADERS are the response headers; a later one (or one that
                // ends the stream) is the trailers.
                if seen_headers || flags & END_STREAM != 0 {
                    return Outcome::Answered(messages);
                }
                seen_headers = true;
            }
            (DATA, 1) => {
                messages.extend(&payload);
                if flags & END_STREAM != 0 {
                    return Outcome::Answered(messages);
                }
            }
            _ => {} // WINDOW_UPDATE, PING, SETTINGS ACK: nothing to do for one call.
        }
    }
}

/// Control: the authority kubelet 1.26+ sends (and the one the refusal tests differ from
/// by nothing else) gets the plugin's answer, so the hand-made HTTP/2 is sound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_localhost_authority_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, stop) = serve(dir.path()).await;
    assert_eq!(
        call(&sock, "localhost").await,
        Outcome::Answered(OPTIONS_ANSWER.to_vec())
    );
    let _ = stop.send(());
}

/// Guards the supported-versions note in README.md and docs/kubernetes.md: the socket path
/// as `:authority` (kubelet 1.25 and earlier, grpc-java over a unix socket) and its
/// percent-encoded forms (gRPC C-core 1.57 and newer, e.g. grpcio 1.85) get
/// `RST_STREAM(PROTOCOL_ERROR)` on the call's stream, and the server keeps answering
/// well-formed calls (kubelet's log shows "stream terminated by RST_STREAM with error code:
/// PROTOCOL_ERROR"). If this starts failing because the calls are answered, h2 accepts
/// path authorities now: update the docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_path_authority_is_refused_with_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, stop) = serve(dir.path()).await;
    let path = sock.to_str().unwrap().to_string();
    // grpcio 1.85 (C-core 58) sends the path without its leading '/', percent-encoded.
    let encoded = path.trim_start_matches('/').replace('/', "%2F");
    for authority in [
        path.as_str(),
        encoded.as_str(),
        "/var/lib/kubelet/device-plugins/linkwise-gpu.sock",
        "var%2Flib%2Fkubelet%2Fdevice-plugins%2Flinkwise-gpu.sock",
        "%2Fvar%2Flib%2Fkubelet%2Fdevice-plugins%2Flinkwise-gpu.sock",
    ] {
        assert_eq!(
            call(&sock, authority).await,
            Outcome::Reset(PROTOCOL_ERROR),
            ":authority {authority}"
        );
    }
    // The refusal is per call: the server still answers a well-formed call afterwards.
    assert_eq!(
        call(&sock, "localhost").await,
        Outcome::Answered(OPTIONS_ANSWER.to_vec())
    );
    let _ = stop.send(());
}
