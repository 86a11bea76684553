//! A real Prometheus server (Debian's `prometheus`, which `.ci/run` installs) for the
//! rollout gates' tests: started on a temporary directory and a free port, scraping the
//! targets a test names every second, killed when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::Spawned;
use crate::wait::poll_until;
use crate::{Prerequisite, require};

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    /// Its root URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
    process: Spawned,
}

/// One scrape target: its address and the labels Prometheus adds to its series.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where its `/metrics` is.
    pub addr: SocketAddr,
    /// Labels for every series scraped from it (e.g. `node`).
    pub labels: Vec<(String, String)>,
}

/// `s` percent-encoded for a query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Starts Prometheus in `dir` scraping `targets` (job `linkwise`, every second), or
/// `None` (after [`require`]'s loud skip) when no `prometheus` is installed.
///
/// # Panics
///
/// When it is installed but does not become ready within a minute.
pub fn start(dir: &Path, targets: &[Target]) -> Option<Prometheus> {
    if !require(Prerequisite::command(
        "prometheus",
        &["--version"],
        "apt-get install prometheus (.ci/run installs it)",
    )) {
        return None;
    }
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: linkwise\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n",
    );
    for t in targets {
        config.push_str(&format!("      - targets: ['{}']\n", t.addr));
        if !t.labels.is_empty() {
            config.push_str("        labels:\n");
            for (k, v) in &t.labels {
                config.push_str(&format!("          {k}: '{v}'\n"));
            }
        }
    }
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free port: {e}"));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn");
    let process = Spawned::start(cmd);
    let p = Prometheus {
        url: format!("http://{addr}"),
        addr,
        process,
    };
    poll_until(Duration::from_secs(60), "Prometheus to be ready", || {
        TcpStream::connect(addr).ok()?;
        (crate::http::get(addr, "/-/ready").status == 200).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; its stderr:\n{}", p.process.stderr()));
    Some(p)
}

impl Prometheus {
    /// The `data.result` of an instant query.
    ///
    /// # Panics
    ///
    /// When the server does not answer with success.
    pub fn query(&self, query: &str) -> Vec<serde_json::Value> {
        // HTTP/1.0, so the answer is not chunked.
        let r = crate::http::exchange(
            self.addr,
            format!(
                "GET /api/v1/query?query={} HTTP/1.0\r\nHost: {}\r\n\r\n",
                encode(query),
                self.addr
            )
            .as_bytes(),
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("query {query}: {e}: {}", r.text()));
        assert_eq!(v["status"], "success", "query {query}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `query` returns `n` series.
    ///
    /// # Panics
    ///
    /// When it does not within `within`.
    pub fn wait_for_series(&self, query: &str, n: usize, within: Duration) {
        poll_until(within, &format!("{query} to return {n} series"), || {
            (self.query(query).len() == n).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}; Prometheus stderr:\n{}", self.process.stderr()));
    }
}
