//! OpenMetrics text from a [`Snapshot`], written through `prometheus-client`'s
//! [`Collector`].
//!
//! Every family of [`FAMILIES`] is written in catalogue order with its `# HELP`, `# TYPE`
//! and (where it has a unit) `# UNIT` line, even when it has no samples, and the text ends
//! in `# EOF`. A reading that is `None` produces no sample: unknown is never rendered as 0.
//! Readings shorter than the topology (before the first collection) only mean fewer samples.
//!
//! Label values that come from the topology (GPU, link, island and domain labels) are
//! escaped once into one string and looked up by position afterwards; a [`Renderer`]
//! keeps them while the topology stays the same, so a render only copies the readings and
//! writes samples. [`render`] is the one-shot form.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use linkwise_core::{GpuId, Topology};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::catalogue::{ATTRIBUTION_LABELS, FAMILIES, Family, Kind};
use crate::readings::{GpuReading, LinkReading, PcieReading, Port, Snapshot};

/// The `Content-Type` of a scrape response.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `version` label of `linkwise_exporter_info`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Renders `s` as OpenMetrics text ending in `# EOF\n`.
///
/// Computes the topology's labels (islands and domains included) on every call; keep a
/// [`Renderer`] to compute them once per topology.
pub fn render(s: &Snapshot) -> Vec<u8> {
    encode(s, Arc::new(TopoLabels::new(&s.topo, &s.ports)), 0)
}

/// Encodes `s` with the topology's labels; `size_hint` is the length of the last render.
fn encode(s: &Snapshot, labels: Arc<TopoLabels>, size_hint: usize) -> Vec<u8> {
    // About 200 bytes a sample: 8 per NVLink port, about 24 per GPU.
    let estimate = (labels.ports.len() * 8 + labels.gpus.len() * 24 + 64) * 200;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Frame::new(s, labels)));
    let capacity = if size_hint > 0 {
        size_hint + size_hint / 16
    } else {
        estimate
    };
    let mut out = String::with_capacity(capacity);
    if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        // Writing to a `String` does not fail and every value is range-checked before it
        // reaches the encoder; should it happen anyway, serve an empty exposition rather
        // than a truncated one.
        tracing::error!(%error, "rendering metrics failed");
        out.clear();
        out.push_str("# EOF\n");
    }
    out.into_bytes()
}

/// A renderer that keeps the topology's escaped label values between renders.
///
/// The labels are rebuilt when the snapshot's topology is a different `Arc` or its ports
/// differ from the last render's.
#[derive(Debug, Default)]
pub struct Renderer {
    cache: Option<Cache>,
    last_len: usize,
}

#[derive(Debug)]
struct Cache {
    topo: Arc<Topology>,
    ports: Vec<Port>,
    labels: Arc<TopoLabels>,
}

/// A position in an [`Arena`].
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
}

/// Label values, escaped, back to back in one string.
#[derive(Debug, Default)]
struct Arena(String);

/// The label values of one GPU.
#[derive(Debug, Default)]
struct GpuLabels {
    gpu: Span,
    uuid: Span,
    pci_bus_id: Span,
    model: Span,
    hostname: Span,
    driver: Span,
    island: Span,
    domain: Span,
}

/// The label values of one NVLink port (the GPU's come from [`GpuLabels`]).
#[derive(Debug)]
struct PortLabels {
    gpu: usize,
    link: Span,
    peer_type: &'static str,
    peer: Span,
    bandwidth_bps: Option<u64>,
}

/// One NVLink island.
#[derive(Debug)]
struct IslandLabels {
    hostname: Span,
    island: Span,
    domain: Span,
    gpus: usize,
}

/// Everything a render takes from the topology, escaped once.
#[derive(Debug, Default)]
struct TopoLabels {
    arena: Arena,
    gpus: Vec<GpuLabels>,
    ports: Vec<PortLabels>,
    islands: Vec<IslandLabels>,
}

/// What one label takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Gpu,
    Uuid,
    PciBusId,
    Model,
    Hostname,
    Driver,
    Island,
    Domain,
    Link,
    PeerType,
    Peer,
    Version,
    Source,
    Synthetic,
    /// The one per-sample label of a family: `type`, `xid`, `reason` or `which`.
    Extra,
    /// A label this renderer does not know (a catalogue entry without a renderer).
    Unknown,
}

/// A family's descriptor, computed once per process.
#[derive(Debug)]
struct Desc {
    family: &'static Family,
    /// The name without the unit suffix (the encoder appends `_<unit>`).
    base: &'static str,
    /// The help text with its trailing period.
    help: String,
    unit: Option<Unit>,
    kind: MetricType,
    fields: Vec<Field>,
}

/// What a sample describes.
#[derive(Debug, Clone, Copy)]
enum At {
    Exporter,
    Source(&'static str),
    Gpu(usize),
    Port(usize),
    Island(usize),
}

/// One source's health, ready to write.
#[derive(Debug)]
struct SourceValues {
    name: &'static str,
    duration_seconds: f64,
    errors: u64,
    last_success_seconds: Option<f64>,
}

/// One render: the snapshot's values, copied, and the topology's labels, shared.
#[derive(Debug)]
struct Frame {
    topo: Arc<TopoLabels>,
    /// Per-render label values: source, hostname, attribution, XID codes.
    arena: Arena,
    source: Span,
    hostname: Span,
    synthetic: bool,
    sources: Vec<SourceValues>,
    gpus: Vec<GpuReading>,
    /// Per port position.
    links: Vec<Option<LinkReading>>,
    pcie: Vec<PcieReading>,
    healthy: Vec<bool>,
    xids: Vec<(usize, Span, u64)>,
    health_events: Vec<(usize, &'static str, u64)>,
    /// Per GPU position; empty when no GPU is held.
    attribution: Vec<[Option<Span>; 4]>,
}

/// The labels of one sample, rendered and escaped: `k="v",k="v"`.
#[derive(Debug)]
struct Labels<'a>(&'a str);

/// A sample value; the family's type (from the catalogue) decides how it is written.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(i64),
    Float(f64),
    Count(u64),
}

/// Writes the samples of one family: the family's encoder and a scratch buffer the labels
/// of each sample are rendered into.
#[derive(Debug)]
struct Out<'a, 'm> {
    me: &'a mut MetricEncoder<'m>,
    buf: &'a mut String,
}

// === impl Renderer ===

impl Renderer {
    /// A renderer with nothing cached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renders `s` as OpenMetrics text ending in `# EOF\n`.
    pub fn render(&mut self, s: &Snapshot) -> Vec<u8> {
        let labels = self.labels_for(s);
        let out = encode(s, labels, self.last_len);
        self.last_len = out.len();
        out
    }

    fn labels_for(&mut self, s: &Snapshot) -> Arc<TopoLabels> {
        if let Some(c) = &self.cache
            && Arc::ptr_eq(&c.topo, &s.topo)
            && c.ports == s.ports
        {
            return Arc::clone(&c.labels);
        }
        let labels = Arc::new(TopoLabels::new(&s.topo, &s.ports));
        self.cache = Some(Cache {
            topo: Arc::clone(&s.topo),
            ports: s.ports.clone(),
            labels: Arc::clone(&labels),
        });
        labels
    }
}

// === impl Arena ===

impl Arena {
    /// Appends `s` with OpenMetrics label-value escaping (`\\`, `\"`, `\n`).
    fn push(&mut self, s: &str) -> Span {
        let start = self.0.len();
        if s.contains(['\\', '"', '\n']) {
            for c in s.chars() {
                match c {
                    '\\' => self.0.push_str("\\\\"),
                    '"' => self.0.push_str("\\\""),
                    '\n' => self.0.push_str("\\n"),
                    c => self.0.push(c),
                }
            }
        } else {
            self.0.push_str(s);
        }
        Span {
            start,
            end: self.0.len(),
        }
    }

    /// Appends a number (nothing to escape).
    fn push_num(&mut self, n: impl Into<u64>) -> Span {
        let start = self.0.len();
        // Writing to a `String` cannot fail.
        let _ = write!(self.0, "{}", n.into());
        Span {
            start,
            end: self.0.len(),
        }
    }

    fn get(&self, s: Span) -> &str {
        self.0.get(s.start..s.end).unwrap_or("")
    }
}

// === impl TopoLabels ===

impl TopoLabels {
    fn new(topo: &Topology, ports: &[Port]) -> Self {
        let mut arena = Arena::default();
        let islands = topo.islands();
        let domains = topo.domains();
        let island_of: BTreeMap<&GpuId, usize> = islands
            .iter()
            .flat_map(|is| is.gpus.iter().map(move |g| (g, is.id)))
            .collect();
        let domain_of: BTreeMap<&GpuId, &str> = domains
            .iter()
            .flat_map(|d| d.gpus.iter().map(move |g| (g, d.id.as_str())))
            .collect();
        let mut pci = String::new();
        let gpus = topo
            .gpus
            .iter()
            .map(|g| {
                pci.clear();
                match &g.pci_bus_id {
                    Some(a) => {
                        let _ = write!(pci, "{a}");
                    }
                    None => pci.push_str("unknown"),
                }
                GpuLabels {
                    gpu: arena.push_num(g.index),
                    uuid: arena.push(g.uuid.as_deref().unwrap_or(&g.id.0)),
                    pci_bus_id: arena.push(&pci),
                    model: arena.push(&g.model),
                    hostname: arena.push(&g.host),
                    driver: arena.push(g.driver_version.as_deref().unwrap_or("unknown")),
                    island: match island_of.get(&g.id) {
                        Some(&id) => arena.push_num(u64::try_from(id).unwrap_or(u64::MAX)),
                        None => arena.push("unknown"),
                    },
                    domain: arena.push(domain_of.get(&g.id).copied().unwrap_or("unknown")),
                }
            })
            .collect();
        let ports = ports
            .iter()
            .map(|p| PortLabels {
                gpu: p.gpu,
                link: arena.push_num(p.link),
                peer_type: p.peer.kind.as_str(),
                peer: arena.push(&p.peer.id),
                bandwidth_bps: p.bandwidth_bps,
            })
            .collect();
        let islands = islands
            .iter()
            .map(|is| IslandLabels {
                hostname: arena.push(is.hosts.first().map_or("unknown", String::as_str)),
                island: arena.push_num(u64::try_from(is.id).unwrap_or(u64::MAX)),
                domain: arena.push(
                    is.gpus
                        .first()
                        .and_then(|g| domain_of.get(g).copied())
                        .unwrap_or("unknown"),
                ),
                gpus: is.gpus.len(),
            })
            .collect();
        TopoLabels {
            arena,
            gpus,
            ports,
            islands,
        }
    }

    /// A per-GPU label value; `""` for a GPU outside the topology.
    fn gpu_field(&self, g: usize, f: Field) -> &str {
        let Some(l) = self.gpus.get(g) else {
            return "";
        };
        let span = match f {
            Field::Gpu => l.gpu,
            Field::Uuid => l.uuid,
            Field::PciBusId => l.pci_bus_id,
            Field::Model => l.model,
            Field::Hostname => l.hostname,
            Field::Driver => l.driver,
            Field::Island => l.island,
            Field::Domain => l.domain,
            _ => return "unknown",
        };
        self.arena.get(span)
    }
}

// === impl Field ===

impl Field {
    fn from_label(name: &str) -> Field {
        match name {
            "gpu" => Field::Gpu,
            "uuid" => Field::Uuid,
            "pci_bus_id" => Field::PciBusId,
            "model" => Field::Model,
            "hostname" => Field::Hostname,
            "driver" => Field::Driver,
            "island" => Field::Island,
            "domain" => Field::Domain,
            "link" => Field::Link,
            "peer_type" => Field::PeerType,
            "peer" => Field::Peer,
            "version" => Field::Version,
            "source" => Field::Source,
            "synthetic" => Field::Synthetic,
            "type" | "xid" | "reason" | "which" => Field::Extra,
            _ => Field::Unknown,
        }
    }
}

// === impl Desc ===

impl Desc {
    fn new(family: &'static Family) -> Desc {
        let (base, unit) = match family.unit {
            Some(u) => match family
                .name
                .strip_suffix(u)
                .and_then(|n| n.strip_suffix('_'))
            {
                Some(base) => (base, Some(unit_of(u))),
                // A name that does not end in its unit: keep the name whole, drop `# UNIT`.
                None => (family.name, None),
            },
            None => (family.name, None),
        };
        Desc {
            family,
            base,
            help: format!("{}.", family.help),
            unit,
            kind: match family.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
                Kind::Info => MetricType::Info,
            },
            fields: family.labels.iter().map(|l| Field::from_label(l)).collect(),
        }
    }
}

fn unit_of(u: &str) -> Unit {
    match u {
        "bytes" => Unit::Bytes,
        "seconds" => Unit::Seconds,
        "celsius" => Unit::Celsius,
        "amperes" => Unit::Amperes,
        "volts" => Unit::Volts,
        "joules" => Unit::Joules,
        other => Unit::Other(other.to_string()),
    }
}

/// The descriptors of [`FAMILIES`], in order.
fn descs() -> &'static [Desc] {
    static DESCS: OnceLock<Vec<Desc>> = OnceLock::new();
    DESCS.get_or_init(|| FAMILIES.iter().map(Desc::new).collect())
}

// === impl Frame ===

impl Frame {
    fn new(s: &Snapshot, topo: Arc<TopoLabels>) -> Frame {
        let mut arena = Arena::default();
        let source = arena.push(or_unknown(&s.source));
        let hostname = arena.push(or_unknown(&s.hostname));
        let n = topo.gpus.len();
        let mut links: Vec<Option<LinkReading>> = vec![None; topo.ports.len()];
        for l in &s.readings.links {
            if let Some(slot) = links.get_mut(l.port) {
                *slot = Some(l.clone());
            }
        }
        let xids = s
            .xid_counts
            .iter()
            .filter(|((g, _), _)| *g < n)
            .map(|(&(g, xid), &count)| (g, arena.push_num(xid), count))
            .collect();
        let health_events = s
            .health_events
            .iter()
            .filter(|((g, _), _)| *g < n)
            .map(|(&(g, reason), &count)| (g, reason, count))
            .collect();
        let mut attribution = Vec::new();
        if s.attribution.keys().any(|&g| g < n) {
            attribution = vec![[None; 4]; n];
            for (&g, a) in &s.attribution {
                if let Some(slot) = attribution.get_mut(g) {
                    let values = [&a.namespace, &a.pod, &a.container, &a.slurm_job];
                    for (out, v) in slot.iter_mut().zip(values) {
                        *out = v.as_deref().map(|v| arena.push(v));
                    }
                }
            }
        }
        let sources = s
            .sources
            .iter()
            .map(|(&name, h)| SourceValues {
                name,
                duration_seconds: h.last_duration.as_secs_f64(),
                errors: h.errors,
                last_success_seconds: h.last_success.and_then(unix_seconds),
            })
            .collect();
        let mut gpus = s.readings.gpus.clone();
        gpus.truncate(n);
        let mut pcie = s.readings.pcie.clone();
        pcie.truncate(n);
        Frame {
            topo,
            arena,
            source,
            hostname,
            synthetic: s.synthetic,
            sources,
            gpus,
            links,
            pcie,
            healthy: s.healthy.clone(),
            xids,
            health_events,
            attribution,
        }
    }

    /// Writes one sample of `d` about `at`; `extra` is the value of the family's
    /// per-sample label (`type`, `xid`, `reason`, `which`), if it has one.
    fn write(&self, out: &mut Out<'_, '_>, d: &Desc, at: At, extra: &str, v: Value) -> fmt::Result {
        let buf = &mut *out.buf;
        buf.clear();
        for (name, field) in d.family.labels.iter().zip(&d.fields) {
            push_label(buf, name, self.value(*field, at, extra));
        }
        if d.family.attributed
            && let At::Gpu(g) = at
            && let Some(attr) = self.attribution.get(g)
        {
            for (name, v) in ATTRIBUTION_LABELS.iter().zip(attr) {
                if let Some(v) = v {
                    push_label(buf, name, self.arena.get(*v));
                }
            }
        }
        let labels = Labels(buf);
        match (d.kind, v) {
            (MetricType::Info, _) => out.me.encode_info(&labels),
            (MetricType::Counter, Value::Count(v)) => out
                .me
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&v, None),
            (MetricType::Counter, Value::Float(v)) => out
                .me
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, f64, f64>(&v, None),
            (MetricType::Counter, Value::Int(v)) => out
                .me
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&u64::try_from(v).unwrap_or(0), None),
            (_, Value::Int(v)) => out.me.encode_family(&labels)?.encode_gauge(&v),
            (_, Value::Float(v)) => out.me.encode_family(&labels)?.encode_gauge(&v),
            (_, Value::Count(v)) => out.me.encode_family(&labels)?.encode_gauge(&saturate(v)),
        }
    }

    fn value<'a>(&'a self, f: Field, at: At, extra: &'a str) -> &'a str {
        let t = &*self.topo;
        match (f, at) {
            (Field::Extra, _) => extra,
            (Field::Version, _) => VERSION,
            (Field::Synthetic, _) => {
                if self.synthetic {
                    "true"
                } else {
                    "false"
                }
            }
            (Field::Source, At::Exporter) => self.arena.get(self.source),
            (Field::Source, At::Source(name)) => name,
            (Field::Hostname, At::Exporter) => self.arena.get(self.hostname),
            (_, At::Gpu(g)) => t.gpu_field(g, f),
            (Field::Link | Field::PeerType | Field::Peer, At::Port(p)) => {
                let Some(l) = t.ports.get(p) else { return "" };
                match f {
                    Field::Link => t.arena.get(l.link),
                    Field::PeerType => l.peer_type,
                    _ => t.arena.get(l.peer),
                }
            }
            (_, At::Port(p)) => t.gpu_field(t.ports.get(p).map_or(usize::MAX, |l| l.gpu), f),
            (Field::Hostname | Field::Island | Field::Domain, At::Island(i)) => {
                let Some(l) = t.islands.get(i) else { return "" };
                t.arena.get(match f {
                    Field::Hostname => l.hostname,
                    Field::Island => l.island,
                    _ => l.domain,
                })
            }
            _ => "unknown",
        }
    }

    /// Writes the samples of `d`.
    fn samples(&self, d: &Desc, out: &mut Out<'_, '_>) -> fmt::Result {
        use Value::{Count, Float, Int};
        let t = &*self.topo;
        let gpus = 0..t.gpus.len();
        match d.family.name {
            "linkwise_exporter" => self.write(out, d, At::Exporter, "", Int(1))?,
            "linkwise_exporter_collection_duration_seconds" => {
                for s in &self.sources {
                    self.write(out, d, At::Source(s.name), "", Float(s.duration_seconds))?;
                }
            }
            "linkwise_exporter_collection_errors" => {
                for s in &self.sources {
                    self.write(out, d, At::Source(s.name), "", Count(s.errors))?;
                }
            }
            "linkwise_exporter_last_success_timestamp_seconds" => {
                for s in &self.sources {
                    if let Some(v) = s.last_success_seconds {
                        self.write(out, d, At::Source(s.name), "", Float(v))?;
                    }
                }
            }
            "linkwise_gpu" => {
                for g in gpus {
                    self.write(out, d, At::Gpu(g), "", Int(1))?;
                }
            }
            "linkwise_gpu_utilization_ratio" => {
                self.per_gpu(d, out, |r| r.utilization_ratio.map(Float))?;
            }
            "linkwise_gpu_memory_used_bytes" => {
                self.per_gpu(d, out, |r| r.memory_used_bytes.map(Count))?;
            }
            "linkwise_gpu_memory_total_bytes" => {
                self.per_gpu(d, out, |r| r.memory_total_bytes.map(Count))?;
            }
            "linkwise_gpu_temperature_celsius" => {
                self.per_gpu(d, out, |r| r.temperature_celsius.map(Float))?;
            }
            "linkwise_gpu_power_watts" => self.per_gpu(d, out, |r| r.power_watts.map(Float))?,
            "linkwise_gpu_ecc_errors" => {
                for (g, r) in self.gpus.iter().enumerate() {
                    for (ty, v) in [
                        ("corrected", r.ecc_corrected),
                        ("uncorrected", r.ecc_uncorrected),
                    ] {
                        if let Some(v) = v {
                            self.write(out, d, At::Gpu(g), ty, Count(v))?;
                        }
                    }
                }
            }
            "linkwise_gpu_xid_events" => {
                for &(g, xid, count) in &self.xids {
                    self.write(out, d, At::Gpu(g), self.arena.get(xid), Count(count))?;
                }
            }
            "linkwise_gpu_healthy" => {
                for g in gpus {
                    let healthy = self.healthy.get(g).copied().unwrap_or(true);
                    self.write(out, d, At::Gpu(g), "", Int(i64::from(healthy)))?;
                }
            }
            "linkwise_gpu_health_events" => {
                for &(g, reason, count) in &self.health_events {
                    self.write(out, d, At::Gpu(g), reason, Count(count))?;
                }
            }
            "linkwise_nvlink_up" => self.per_link(d, out, |r| Some(Int(i64::from(r.up))))?,
            "linkwise_nvlink_bandwidth_bytes_per_second" => {
                // The line rate comes from the topology, not from a reading.
                for (p, port) in t.ports.iter().enumerate() {
                    if let Some(bps) = port.bandwidth_bps {
                        self.write(out, d, At::Port(p), "", Count(bps))?;
                    }
                }
            }
            "linkwise_nvlink_transmit_bytes" => self.per_link(d, out, |r| r.tx_bytes.map(Count))?,
            "linkwise_nvlink_receive_bytes" => self.per_link(d, out, |r| r.rx_bytes.map(Count))?,
            "linkwise_nvlink_errors" => {
                for (p, r) in self.links.iter().enumerate() {
                    let Some(r) = r else { continue };
                    for (ty, v) in [
                        ("crc_flit", r.crc_flit_errors),
                        ("crc_data", r.crc_data_errors),
                        ("replay", r.replay_errors),
                        ("recovery", r.recovery_errors),
                    ] {
                        if let Some(v) = v {
                            self.write(out, d, At::Port(p), ty, Count(v))?;
                        }
                    }
                }
            }
            "linkwise_pcie_link_speed_transfers_per_second" => {
                let tps = |mts: Option<u32>| mts.map(|m| Count(u64::from(m) * 1_000_000));
                self.per_pcie(d, out, |r| [tps(r.current_speed_mts), tps(r.max_speed_mts)])?;
            }
            "linkwise_pcie_link_width" => {
                let w = |x: Option<u32>| x.map(|x| Int(i64::from(x)));
                self.per_pcie(d, out, |r| [w(r.current_width), w(r.max_width)])?;
            }
            "linkwise_pcie_link_downtrained" => {
                for (g, r) in self.pcie.iter().enumerate() {
                    if let (Some(c), Some(m)) = (r.current_width, r.max_width) {
                        self.write(out, d, At::Gpu(g), "", Int(i64::from(c < m)))?;
                    }
                }
            }
            "linkwise_island_gpus" => {
                for (i, is) in t.islands.iter().enumerate() {
                    let n = i64::try_from(is.gpus).unwrap_or(i64::MAX);
                    self.write(out, d, At::Island(i), "", Int(n))?;
                }
            }
            // A family without a renderer keeps its descriptor and has no samples; the
            // render tests fail on it.
            _ => {}
        }
        Ok(())
    }

    /// One sample per GPU with a reading and a value.
    fn per_gpu(
        &self,
        d: &Desc,
        out: &mut Out<'_, '_>,
        value: impl Fn(&GpuReading) -> Option<Value>,
    ) -> fmt::Result {
        for (g, r) in self.gpus.iter().enumerate() {
            if let Some(v) = value(r) {
                self.write(out, d, At::Gpu(g), "", v)?;
            }
        }
        Ok(())
    }

    /// One sample per port with a reading and a value.
    fn per_link(
        &self,
        d: &Desc,
        out: &mut Out<'_, '_>,
        value: impl Fn(&LinkReading) -> Option<Value>,
    ) -> fmt::Result {
        for (p, r) in self.links.iter().enumerate() {
            if let Some(v) = r.as_ref().and_then(&value) {
                self.write(out, d, At::Port(p), "", v)?;
            }
        }
        Ok(())
    }

    /// `which="current"` and `which="max"` per GPU with a PCIe reading.
    fn per_pcie(
        &self,
        d: &Desc,
        out: &mut Out<'_, '_>,
        value: impl Fn(&PcieReading) -> [Option<Value>; 2],
    ) -> fmt::Result {
        for (g, r) in self.pcie.iter().enumerate() {
            for (which, v) in ["current", "max"].into_iter().zip(value(r)) {
                if let Some(v) = v {
                    self.write(out, d, At::Gpu(g), which, v)?;
                }
            }
        }
        Ok(())
    }
}

impl Collector for Frame {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut buf = String::with_capacity(512);
        for d in descs() {
            let mut me = encoder.encode_descriptor(d.base, &d.help, d.unit.as_ref(), d.kind)?;
            let mut out = Out {
                me: &mut me,
                buf: &mut buf,
            };
            self.samples(d, &mut out)?;
        }
        Ok(())
    }
}

// === impl Labels ===

impl EncodeLabelSet for Labels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        // The whole set goes through as one label key: the text encoder writes keys
        // verbatim, and the pairs are already rendered and escaped. One write per sample
        // instead of five per label keeps a 1368-link render in the low milliseconds.
        encoder.encode_label().encode_label_key()?.write_str(self.0)
    }
}

// === helpers ===

/// Appends `key="value"` (the value already escaped) to a rendered label set.
fn push_label(buf: &mut String, key: &str, value: &str) {
    if !buf.is_empty() {
        buf.push(',');
    }
    buf.push_str(key);
    buf.push_str("=\"");
    buf.push_str(value);
    buf.push('"');
}

/// A `u64` as the encoder's `i64` gauge, saturating (the encoder fails past `i64::MAX`).
fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `v`, or `unknown` when empty (an empty label value reads as an absent label).
fn or_unknown(v: &str) -> &str {
    if v.is_empty() { "unknown" } else { v }
}

fn unix_seconds(t: SystemTime) -> Option<f64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}
