//! `linkwise-extender`: the kube-scheduler extender (`linkwise extender`,
//! `docs/extender.md`): filter and prioritize verbs over HTTP, judging nodes by their
//! `linkwise.dev/fabric` annotation.
//!
//! What it is: the extender v1 wire types ([`types`]), the pod's need and each node's
//! verdict and score over the core allocator ([`logic`]), the node cache for
//! `NodeNames` requests ([`cache`]), rate-limited logs of bad input ([`logs`]) and the
//! HTTP server ([`server`], on [`linkwise_http`]). [`Extender::handle`] answers one
//! request from its method, path and body; the server only moves bytes to and from it.
//! What it is not: the command line (`linkwise extender` in the CLI crate builds the
//! cache, lists Nodes from the API server and calls [`server::serve`]).
#![warn(missing_docs)]

pub mod cache;
mod error;
pub mod logic;
pub mod logs;
pub mod server;
pub mod types;

use std::sync::Arc;

use serde_json::Value;

use cache::NodeCache;
use linkwise_core::placement::frag::{FragIndex, TypicalPods};
use logic::{AllocCache, NodeView, Verdict, ViewCache};
use types::{ErrorBody, ExtenderArgs, FilterResult, HostPriority};

pub use error::Error;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 16 << 20;

/// An answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

const JSON: &str = "application/json";

impl Reply {
    fn json(status: u16, v: &impl serde::Serialize) -> Reply {
        match serde_json::to_vec(v) {
            Ok(body) => Reply {
                status,
                content_type: JSON,
                body,
            },
            Err(e) => Reply::error(500, &format!("cannot encode the answer: {e}")),
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        let body = serde_json::to_vec(&ErrorBody {
            error: message.to_string(),
        })
        .unwrap_or_default();
        Reply {
            status,
            content_type: JSON,
            body,
        }
    }
}

/// The extender's state: settings, the node cache, allocators by node shape.
#[derive(Debug)]
pub struct Extender {
    /// Path prefix the verbs may be served under (`/linkwise`); empty for none.
    pub prefix: String,
    /// Managed extended resources.
    pub resources: Vec<String>,
    /// The node cache for `NodeNames` requests; `None` when there is none.
    pub cache: Option<Arc<NodeCache>>,
    allocs: AllocCache,
    views: ViewCache,
    /// The placement policy's view of the target workload (the typical pods).
    frag: FragIndex,
    refusals: logs::RefusalLog,
    annotations: logs::AnnotationLog,
}

/// A verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Filter,
    Prioritize,
}

/// The candidates of a request, as received.
enum Candidates {
    /// `Nodes`: the NodeList with its items taken out, the items, and their views.
    Full(Value, Vec<Value>, Vec<String>, Vec<NodeView>),
    /// `NodeNames` and their views from the cache.
    Names(Vec<String>, Vec<NodeView>),
}

impl Extender {
    /// An extender managing `resources` (the defaults when empty).
    pub fn new(prefix: &str, resources: Vec<String>, cache: Option<Arc<NodeCache>>) -> Self {
        let resources = if resources.is_empty() {
            logic::DEFAULT_RESOURCES
                .iter()
                .map(|s| (*s).to_string())
                .collect()
        } else {
            resources
        };
        Extender {
            prefix: prefix.trim_end_matches('/').to_string(),
            resources,
            cache,
            allocs: AllocCache::default(),
            views: ViewCache::default(),
            frag: FragIndex::new(&logic::default_typical()),
            refusals: logs::RefusalLog::default(),
            annotations: logs::AnnotationLog::default(),
        }
    }

    /// Scores against `typical` as the target workload instead of
    /// [`logic::default_typical`] (e.g. `TypicalPods::from_trace` of a pod list).
    #[must_use]
    pub fn with_typical(mut self, typical: &TypicalPods) -> Self {
        self.frag = FragIndex::new(typical);
        self
    }

    /// Logs a refused request (status 400 and above) with the error it was answered with;
    /// at most 10 a minute.
    pub fn log_refused(&self, method: &str, path: &str, reply: &Reply) {
        let reason = serde_json::from_slice::<ErrorBody>(&reply.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&reply.body).into_owned());
        self.refusals.log(method, path, reply.status, &reason);
    }

    /// Answers one request. Never panics on request data.
    pub fn handle(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let path = match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) if !self.prefix.is_empty() && rest.starts_with('/') => rest,
            _ => path,
        };
        let verb = match path {
            "/healthz" => {
                return if matches!(method, "GET" | "HEAD") {
                    Reply {
                        status: 200,
                        content_type: "text/plain; charset=utf-8",
                        body: b"ok".to_vec(),
                    }
                } else {
                    Reply::error(405, "method not allowed: use GET")
                };
            }
            "/filter" => Verb::Filter,
            "/prioritize" => Verb::Prioritize,
            _ => {
                return Reply::error(
                    404,
                    &format!("no such path {path:?}: POST /filter or /prioritize, GET /healthz"),
                );
            }
        };
        if method != "POST" {
            return Reply::error(405, "method not allowed: use POST");
        }
        if body.len() > MAX_BODY {
            return Reply::error(413, &format!("body over {MAX_BODY} bytes"));
        }
        match self.answer(verb, body) {
            Ok(r) => r,
            Err(e) => Reply::error(400, &e.to_string()),
        }
    }

    fn answer(&self, verb: Verb, body: &[u8]) -> Result<Reply, Error> {
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::request(
                "invalid ExtenderArgs JSON: the body must be a JSON object",
            ));
        }
        let args: ExtenderArgs = serde_json::from_slice(body)
            .map_err(|e| Error::Request(format!("invalid ExtenderArgs JSON: {e}")))?;
        let pod = args
            .pod
            .ok_or_else(|| Error::request("Pod is missing or null"))?;
        let need = logic::pod_need(&pod, &self.resources)?;
        let candidates = match (args.nodes, args.node_names) {
            (Some(nodes), _) => self.full(nodes)?,
            (None, Some(names)) => {
                let views = names
                    .iter()
                    .map(|n| match &self.cache {
                        Some(c) => c.get(n),
                        None => NodeView::Unknown("no node cache".into()),
                    })
                    .collect();
                Candidates::Names(names, views)
            }
            (None, None) => {
                return Err(Error::request(
                    "Nodes and NodeNames are both null: nothing to filter or score",
                ));
            }
        };
        Ok(match verb {
            Verb::Filter => Reply::json(200, &self.filter(need, candidates)),
            Verb::Prioritize => {
                let (names, views) = match candidates {
                    Candidates::Full(_, _, names, views) | Candidates::Names(names, views) => {
                        (names, views)
                    }
                };
                let scores = logic::scores(need, &views, &self.allocs, &self.frag);
                let list: Vec<HostPriority> = names
                    .into_iter()
                    .zip(scores)
                    .map(|(host, score)| HostPriority { host, score })
                    .collect();
                Reply::json(200, &list)
            }
        })
    }

    /// Reads `Nodes`: a NodeList whose items each have `metadata.name`.
    fn full(&self, mut nodes: Value) -> Result<Candidates, Error> {
        let obj = nodes
            .as_object_mut()
            .ok_or_else(|| Error::request("Nodes is not a NodeList object"))?;
        let items = match obj.get_mut("items").map(Value::take) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(Error::request("Nodes.items is not an array")),
        };
        let mut names = Vec::with_capacity(items.len());
        let mut views = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let name = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::Request(format!("Nodes.items[{i}].metadata.name is missing"))
                })?;
            let ann = match item
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(linkwise_core::annotation::KEY))
            {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => {
                    return Err(Error::Request(format!(
                        "Nodes.items[{i}] ({name}): annotation {} is not a string",
                        linkwise_core::annotation::KEY
                    )));
                }
            };
            let view = self.views.view(name, ann);
            self.annotations.check(name, ann, &view);
            names.push(name.to_string());
            views.push(view);
        }
        Ok(Candidates::Full(nodes, items, names, views))
    }

    fn filter(&self, need: logic::PodNeed, candidates: Candidates) -> FilterResult {
        let mut r = FilterResult {
            nodes: None,
            node_names: None,
            failed_nodes: Default::default(),
            failed_and_unresolvable_nodes: Default::default(),
            error: String::new(),
        };
        let mut keep = |name: &str, view: &NodeView| match logic::verdict(need, view) {
            Verdict::Pass => {
                if let NodeView::Unknown(why) = view
                    && need.need != logic::Need::None
                {
                    tracing::debug!(node = name, why = %why, "passed through unjudged");
                }
                true
            }
            Verdict::Fail(why) => {
                r.failed_nodes.insert(name.to_string(), why);
                false
            }
            Verdict::Unresolvable(why) => {
                r.failed_and_unresolvable_nodes
                    .insert(name.to_string(), why);
                false
            }
        };
        match candidates {
            Candidates::Full(mut list, items, names, views) => {
                let survivors: Vec<Value> = items
                    .into_iter()
                    .zip(names.iter().zip(&views))
                    .filter(|(_, (n, v))| keep(n, v))
                    .map(|(item, _)| item)
                    .collect();
                if let Some(obj) = list.as_object_mut() {
                    obj.insert("items".into(), Value::Array(survivors));
                }
                r.nodes = Some(list);
            }
            Candidates::Names(names, views) => {
                let survivors = names
                    .iter()
                    .zip(&views)
                    .filter(|(n, v)| keep(n, v))
                    .map(|(n, _)| n.clone())
                    .collect();
                r.node_names = Some(survivors);
            }
        }
        r
    }
}
