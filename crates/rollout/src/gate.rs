//! Per-wave gates: PromQL queries against a Prometheus server.
//!
//! A gate is written as an alerting rule's expression is: it selects what is wrong, so
//! **the gate fails when its query returns any series** (or a non-zero scalar), and
//! passes on an empty answer. Before it is sent, `{nodes}` becomes a regular expression
//! matching exactly the wave's nodes (`n01|n02`, dots escaped), `{wave}` the wave's
//! number and `{since}` the time since the wave started as a PromQL duration (`95s`), so
//! "no worse than before the change" reads
//! `sum by (node) (linkwise_nvlink_up{node=~"{nodes}"} offset {since}) > sum by (node) (linkwise_nvlink_up{node=~"{nodes}"})`
//! and "no new XID" `increase(linkwise_gpu_xid_events_total{node=~"{nodes}"}[{since}]) > 0`.
//!
//! The query goes to `/api/v1/query` (an instant query at the server's now). An answer
//! that cannot be had — the server down, a query it rejects — is a failed gate after
//! the retries: a gate that cannot be evaluated does not pass.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// One series a gate returned: what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value, as Prometheus wrote it.
    pub value: String,
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.labels.get("__name__").map_or("", String::as_str);
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        write!(f, "{name}{{{}}} {}", labels.join(", "), self.value)
    }
}

/// `query` with the wave's placeholders filled in.
pub fn expand(query: &str, nodes: &[String], wave: usize, since: Duration) -> String {
    let regex = nodes
        .iter()
        .map(|n| n.replace('.', "\\\\."))
        .collect::<Vec<_>>()
        .join("|");
    query
        .replace("{nodes}", &regex)
        .replace("{wave}", &wave.to_string())
        .replace("{since}", &format!("{}s", since.as_secs().max(1)))
}

/// `s` percent-encoded for a URL's query string (everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads Prometheus's answer to an instant query: the series that make the gate fail.
///
/// # Errors
///
/// The server's error (`status: error`), or an answer that is not the query API's.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Vec<Series>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "HTTP {status}, not Prometheus's query API answer ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
        )
    })?;
    if v["status"] != "success" {
        return Err(format!(
            "HTTP {status}: {} {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("(no message)")
        ));
    }
    let data = &v["data"];
    let sample = |s: &Value| -> Result<String, String> {
        s.get(1)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("a sample without a value: {s}"))
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("data.result is not a list")?
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Series {
                    labels,
                    value: sample(&r["value"])?,
                })
            })
            .collect(),
        Some("scalar") => {
            let value = sample(&data["result"])?;
            let zero = value.parse::<f64>().is_ok_and(|x| x == 0.0);
            Ok(if zero {
                Vec::new()
            } else {
                vec![Series {
                    labels: BTreeMap::new(),
                    value,
                }]
            })
        }
        other => Err(format!(
            "the query answers a {}, not an instant vector: write it as an alerting rule's expression",
            other.unwrap_or("nothing")
        )),
    }
}

/// Runs `query` against the Prometheus at `base` (its root URL), up to `attempts` times
/// on a failure to get an answer.
///
/// # Errors
///
/// Why no answer was had, after the last attempt.
pub async fn evaluate(base: &str, query: &str, attempts: u32) -> Result<Vec<Series>, String> {
    let url = format!(
        "{}/api/v1/query?query={}",
        base.trim_end_matches('/'),
        encode(query)
    );
    let mut last = String::new();
    for n in 1..=attempts.max(1) {
        match linkwise_fleet::push::get(&url, None, Duration::from_secs(30)).await {
            // 400 and 422 are the query's fault: asking again changes nothing.
            Ok((status, body)) if status < 500 => return parse_answer(status, &body),
            Ok((status, body)) => {
                last = parse_answer(status, &body)
                    .err()
                    .unwrap_or_else(|| format!("HTTP {status}"));
            }
            Err(e) => last = e,
        }
        if n < attempts {
            tokio::time::sleep(Duration::from_secs(1 << n.min(4))).await;
        }
    }
    Err(format!("Prometheus at {base}: {last}"))
}

/// The wave's nodes a failing gate's series name (in any label's value); all of the
/// wave's when none is named.
pub fn blamed(series: &[Series], wave: &[String]) -> Vec<String> {
    let named: Vec<String> = wave
        .iter()
        .filter(|n| series.iter().any(|s| s.labels.values().any(|v| v == *n)))
        .cloned()
        .collect();
    if named.is_empty() {
        wave.to_vec()
    } else {
        named
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_dots_escaped() {
        let q = expand(
            "linkwise_gpu_healthy{node=~\"{nodes}\"} == 0 or increase(x[{since}]) > 0 # {wave}",
            &["n01".into(), "gpu.rack2".into()],
            3,
            Duration::from_millis(95_400),
        );
        assert_eq!(
            q,
            "linkwise_gpu_healthy{node=~\"n01|gpu\\\\.rack2\"} == 0 or increase(x[95s]) > 0 # 3"
        );
        assert_eq!(expand("[{since}]", &[], 0, Duration::ZERO), "[1s]");
        assert_eq!(encode("a b{c=\"d\"}"), "a%20b%7Bc%3D%22d%22%7D");
    }

    #[test]
    fn answers_are_read_as_prometheus_writes_them() {
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_answer(200, empty).unwrap(), Vec::new());
        let one = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"linkwise_gpu_healthy","node":"n02","gpu":"3"},"value":[1733300000.1,"0"]}]}}"#;
        let s = parse_answer(200, one).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].to_string(),
            "linkwise_gpu_healthy{gpu=\"3\", node=\"n02\"} 0"
        );
        assert_eq!(blamed(&s, &["n01".into(), "n02".into()]), ["n02"]);
        assert_eq!(
            blamed(
                &[Series {
                    labels: BTreeMap::new(),
                    value: "1".into()
                }],
                &["n01".into()]
            ),
            ["n01"]
        );
        let scalar0 = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0"]}}"#;
        assert!(parse_answer(200, scalar0).unwrap().is_empty());
        let scalar1 = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"2"]}}"#;
        assert_eq!(parse_answer(200, scalar1).unwrap().len(), 1);
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let e = parse_answer(400, bad).unwrap_err();
        assert!(e.contains("bad_data") && e.contains("parse error"), "{e}");
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(
            parse_answer(200, matrix)
                .unwrap_err()
                .contains("instant vector")
        );
        assert!(
            parse_answer(502, b"<html>bad gateway</html>")
                .unwrap_err()
                .contains("502")
        );
    }
}
