//! What the extender logs about its inputs without flooding the log: refused requests
//! (rate-limited) and nodes whose `linkwise.dev/fabric` annotation cannot be read (once
//! per node and annotation value).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::logic::NodeView;

/// Refused requests logged per window; the rest are counted and reported with the next
/// one logged after the window.
const REFUSALS_PER_WINDOW: u32 = 10;
/// The refusal log window.
const WINDOW: Duration = Duration::from_secs(60);
/// Distinct (node, annotation) pairs remembered before the memory starts over.
const MAX_REMEMBERED: usize = 100_000;

/// Logs refused requests at warn level, at most 10 a minute.
#[derive(Debug, Default)]
pub struct RefusalLog {
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    logged: u32,
    dropped: u64,
}

impl RefusalLog {
    /// Logs one refused request (method, path, status and the error message).
    pub fn log(&self, method: &str, path: &str, status: u16, reason: &str) {
        let Ok(mut w) = self.state.lock() else { return };
        let now = Instant::now();
        if w.start.is_none_or(|s| now.duration_since(s) >= WINDOW) {
            if w.dropped > 0 {
                tracing::warn!(
                    count = w.dropped,
                    "{} more refused requests were not logged",
                    w.dropped
                );
            }
            *w = Window {
                start: Some(now),
                logged: 0,
                dropped: 0,
            };
        }
        if w.logged < REFUSALS_PER_WINDOW {
            w.logged += 1;
            tracing::warn!(method, path, status, reason, "request refused");
        } else {
            w.dropped += 1;
        }
    }
}

/// Logs each node whose annotation cannot be read, once per node and annotation value.
#[derive(Debug, Default)]
pub struct AnnotationLog {
    seen: Mutex<HashSet<(String, u64)>>,
}

impl AnnotationLog {
    /// Logs `node` when it has an annotation (`value`) whose `view` is unusable and this
    /// (node, value) has not been logged before.
    pub fn check(&self, node: &str, value: Option<&str>, view: &NodeView) {
        let (Some(value), NodeView::Unknown(why)) = (value, view) else {
            return;
        };
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        let key = (node.to_string(), h.finish());
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        if seen.insert(key) {
            tracing::warn!(
                node,
                reason = %why,
                "node annotation {} cannot be read; the node passes the filter unjudged and scores 0",
                linkwise_core::annotation::KEY
            );
        }
    }
}
