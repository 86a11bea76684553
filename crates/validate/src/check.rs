//! Measured against expected. Every GPU pair or host link below `min_ratio` of what it
//! should reach is a finding with a diagnosis from the topology; a value above the
//! physical peak means the topology is not this machine's; failed, crashed and wrong
//! tests are findings whatever the numbers.

use serde::Serialize;

use crate::expect::{Expectations, LinkClass, PCIE_FRACTION, pcie_lane_mbps};
use crate::results::{Axis, Direction, Matrix, Results, Status, Test, Tool, Unit};

/// The default share of the expected bandwidth below which a value is a finding.
pub const DEFAULT_MIN_RATIO: f64 = 0.8;
/// How far above the physical peak a value may be (clock and rounding noise) before the
/// topology is judged wrong.
pub const PEAK_SLACK: f64 = 1.05;

/// What is being judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Findings below this share of the expected bandwidth.
    pub min_ratio: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_ratio: DEFAULT_MIN_RATIO,
        }
    }
}

/// The kind of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A GPU pair slower than its path allows.
    SlowPair,
    /// A GPU's link to host memory slower than it allows.
    SlowHostLink,
    /// The results do not fit the topology (more GPUs, or faster than its links allow).
    WrongTopology,
    /// Peer-to-peer copies were waived although the topology has a P2P path.
    P2pUnavailable,
    /// A collective's bus bandwidth below its bottleneck link's.
    SlowCollective,
    /// Wrong results (nccl-tests `#wrong`, out-of-bounds values).
    WrongResults,
    /// A test that errored, crashed or failed.
    TestFailed,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// What kind.
    pub kind: Kind,
    /// The test it comes from.
    pub test: String,
    /// The file it comes from.
    pub source: String,
    /// The GPUs it is about (indexes).
    pub gpus: Vec<u32>,
    /// The link class it blames (`nvlink`, `nvswitch`, `pcie`, `c2c`; `topology`, `test`).
    pub link: String,
    /// The measured value, GB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_gbps: Option<f64>,
    /// What was expected at least, GB/s (`min_ratio` × expected), or at most (the peak)
    /// for values the topology cannot explain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_gbps: Option<f64>,
    /// The finding in words, GPUs as `GPU<n>`.
    pub message: String,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The topology's source.
    pub topology: String,
    /// The share of the expected bandwidth below which values are findings.
    pub min_ratio: f64,
    /// Values compared with an expectation.
    pub compared: usize,
    /// Tests read.
    pub tests: usize,
    /// Every finding; empty when all is well.
    pub findings: Vec<Finding>,
}

/// Checks every result against `expect`.
pub fn check(expect: &Expectations, results: &[Results], options: Options) -> Report {
    let mut report = Report {
        topology: expect.source.clone(),
        min_ratio: options.min_ratio,
        compared: 0,
        tests: 0,
        findings: Vec::new(),
    };
    for r in results {
        for t in &r.tests {
            report.tests += 1;
            check_test(expect, r, t, options, &mut report);
        }
    }
    report
}

fn finding(
    r: &Results,
    t: &Test,
    kind: Kind,
    gpus: Vec<u32>,
    link: &str,
    message: String,
) -> Finding {
    Finding {
        kind,
        test: t.name.clone(),
        source: r.source.clone(),
        gpus,
        link: link.to_string(),
        measured_gbps: None,
        expected_gbps: None,
        message,
    }
}

fn link_name(class: LinkClass) -> &'static str {
    match class {
        LinkClass::Nvlink => "nvlink",
        LinkClass::Nvswitch => "nvswitch",
        LinkClass::Pcie => "pcie",
        LinkClass::C2c => "c2c",
        LinkClass::None => "none",
    }
}

fn check_test(expect: &Expectations, r: &Results, t: &Test, o: Options, report: &mut Report) {
    match t.status {
        Status::Error | Status::Running => {
            let what = if t.status == Status::Running {
                "started and never finished: the tool crashed or was killed"
            } else {
                "failed to run"
            };
            report.findings.push(finding(
                r,
                t,
                Kind::TestFailed,
                Vec::new(),
                "test",
                format!(
                    "{} {what}{}",
                    t.name,
                    t.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            ));
            return;
        }
        Status::Waived if r.tool == Tool::Nvbandwidth && t.name.starts_with("device_to_device") => {
            let nvlink: Vec<u32> = expect
                .pairs
                .iter()
                .filter(|p| matches!(p.class, LinkClass::Nvlink | LinkClass::Nvswitch))
                .flat_map(|p| [p.a, p.b])
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !nvlink.is_empty() {
                report.findings.push(finding(
                    r,
                    t,
                    Kind::P2pUnavailable,
                    nvlink.clone(),
                    "nvlink",
                    format!(
                        "{} was waived (no peer-to-peer access) although {} share NVLink: P2P is disabled or NVLink is down",
                        t.name,
                        gpu_list(&nvlink)
                    ),
                ));
            }
            return;
        }
        _ => {}
    }
    for m in &t.matrices {
        check_matrix(expect, r, t, m, o, report);
    }
    if let Some(c) = &t.collective {
        check_collective(expect, r, t, c, o, report);
    }
    if r.tool == Tool::DcgmDiag {
        for e in t.entities.iter().filter(|e| e.status == Status::Fail) {
            let gpus = if e.group.eq_ignore_ascii_case("gpu") {
                vec![e.id]
            } else {
                Vec::new()
            };
            report.findings.push(finding(
                r,
                t,
                Kind::TestFailed,
                gpus,
                "test",
                format!(
                    "dcgmi diag {}: {} failed{}",
                    t.name,
                    if e.group.eq_ignore_ascii_case("gpu") {
                        format!("GPU{}", e.id)
                    } else {
                        format!("{} {}", e.group, e.id)
                    },
                    if e.warnings.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", e.warnings.join("; "))
                    }
                ),
            ));
        }
    } else if t.status == Status::Fail && t.collective.is_none() {
        report.findings.push(finding(
            r,
            t,
            Kind::TestFailed,
            Vec::new(),
            "test",
            format!(
                "{} failed{}",
                t.name,
                t.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ));
    }
}

fn gpu_list(gpus: &[u32]) -> String {
    gpus.iter()
        .map(|g| format!("GPU{g}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_matrix(
    expect: &Expectations,
    r: &Results,
    t: &Test,
    m: &Matrix,
    o: Options,
    report: &mut Report,
) {
    if m.unit != Unit::GBps
        || matches!(m.direction, Direction::Local | Direction::Unknown)
        || m.rows == Axis::All
    {
        return;
    }
    let n = expect.gpus.len();
    let columns = m.values.first().map_or(0, Vec::len);
    if columns != n {
        report.findings.push(finding(
            r,
            t,
            Kind::WrongTopology,
            Vec::new(),
            "topology",
            format!(
                "{} measured {columns} GPUs where the topology ({}) has {n}: the results are from another machine or the topology is wrong",
                t.name, expect.source
            ),
        ));
        return;
    }
    // A bidirectional total carries both directions.
    let both = if m.direction == Direction::Both && m.description.contains("Total") {
        2.0
    } else {
        1.0
    };
    let arrow = match m.direction {
        Direction::ColumnToRow => "←",
        Direction::Both => "↔",
        _ => "→",
    };
    match (m.rows, m.columns) {
        (Axis::Gpu, Axis::Gpu) => {
            for (i, row) in m.values.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    let (Some(v), Some(p)) = (v, expect.pair(i, j)) else {
                        continue;
                    };
                    if i == j || p.class == LinkClass::None {
                        continue;
                    }
                    report.compared += 1;
                    let (gi, gj) = (expect.gpus[i], expect.gpus[j]);
                    let floor = p.expected_gbps * both * o.min_ratio;
                    let peak = p.peak_gbps * both;
                    let label = format!("GPU{gi}{arrow}GPU{gj}");
                    if *v > peak * PEAK_SLACK {
                        let mut f = finding(
                            r,
                            t,
                            Kind::WrongTopology,
                            vec![gi, gj],
                            "topology",
                            format!(
                                "{label} {v:.1} GB/s is more than the topology allows ({}, peak {peak:.1} GB/s): the topology does not describe this machine (check --source)",
                                p.path
                            ),
                        );
                        f.measured_gbps = Some(*v);
                        f.expected_gbps = Some(peak);
                        report.findings.push(f);
                    } else if *v < floor {
                        let why = match p.class {
                            LinkClass::Nvlink | LinkClass::Nvswitch
                                if *v <= (p.pcie_gbps * 1.3).max(p.pcie_link_gbps * PEAK_SLACK) * both =>
                            {
                                "the pair runs over PCIe — NVLink down or P2P disabled".to_string()
                            }
                            LinkClass::Nvlink | LinkClass::Nvswitch => {
                                let lanes = (*v / (p.lane_gbps * both * p.class.fraction())).round();
                                format!(
                                    "NVLink degraded — what about {lanes:.0} of {} lanes carry: links down or trained slow",
                                    p.lanes
                                )
                            }
                            _ => "PCIe peer-to-peer slow — P2P bounced through host memory (ACS, IOMMU) or a link trained narrow".to_string(),
                        };
                        let mut f = finding(
                            r,
                            t,
                            Kind::SlowPair,
                            vec![gi, gj],
                            link_name(p.class),
                            format!(
                                "{label} {v:.1} GB/s, expected ≥ {floor:.1} GB/s over {}: {why}",
                                p.path
                            ),
                        );
                        f.measured_gbps = Some(*v);
                        f.expected_gbps = Some(floor);
                        report.findings.push(f);
                    }
                }
            }
        }
        (Axis::Cpu, Axis::Gpu) | (Axis::Gpu, Axis::Cpu) => {
            let host_to_device = match (m.rows, m.direction) {
                (_, Direction::Both) => "H2D+D2H",
                (Axis::Cpu, Direction::RowToColumn) | (Axis::Gpu, Direction::ColumnToRow) => "H2D",
                _ => "D2H",
            };
            // One row (CPU rows) or one column per GPU.
            let values: Vec<Option<f64>> = if m.rows == Axis::Cpu {
                m.values.last().cloned().unwrap_or_default()
            } else {
                m.values
                    .iter()
                    .map(|row| row.first().copied().flatten())
                    .collect()
            };
            for (k, v) in values.iter().enumerate() {
                let (Some(v), Some(h)) = (v, expect.host.get(k)) else {
                    continue;
                };
                report.compared += 1;
                let floor = h.expected_gbps * both * o.min_ratio;
                let peak = h.peak_gbps * both;
                let label = format!("GPU{} {host_to_device}", h.gpu);
                if *v > peak * PEAK_SLACK {
                    let mut f = finding(
                        r,
                        t,
                        Kind::WrongTopology,
                        vec![h.gpu],
                        "topology",
                        format!(
                            "{label} {v:.1} GB/s is more than its host link allows ({}, peak {peak:.1} GB/s): the topology does not describe this machine (check --source)",
                            h.link
                        ),
                    );
                    f.measured_gbps = Some(*v);
                    f.expected_gbps = Some(peak);
                    report.findings.push(f);
                } else if *v < floor {
                    let why = match (h.class, h.max_speed_mts, h.max_width) {
                        (LinkClass::Pcie, Some(speed), Some(width)) => {
                            let lane = pcie_lane_mbps(speed) / 1000.0 * PCIE_FRACTION * both;
                            let lanes = *v / lane;
                            // The widest standard width the measurement fits.
                            let trained = [16u32, 8, 4, 2, 1]
                                .into_iter()
                                .find(|w| f64::from(*w) <= lanes * 1.15)
                                .unwrap_or(1);
                            let seen = h
                                .current_width
                                .filter(|c| *c < width)
                                .map(|c| format!(" (the topology saw x{c})"))
                                .unwrap_or_default();
                            if trained < width {
                                format!("PCIe link trained x{trained}, expected x{width}{seen}")
                            } else {
                                format!(
                                    "PCIe link slower than {} — trained at a lower speed, or the copy crosses a slow bridge",
                                    h.link
                                )
                            }
                        }
                        _ => format!("{} slow", h.link),
                    };
                    let mut f = finding(
                        r,
                        t,
                        Kind::SlowHostLink,
                        vec![h.gpu],
                        link_name(h.class),
                        format!(
                            "{label} {v:.1} GB/s, expected ≥ {floor:.1} GB/s over {}: {why}",
                            h.link
                        ),
                    );
                    f.measured_gbps = Some(*v);
                    f.expected_gbps = Some(floor);
                    report.findings.push(f);
                }
            }
        }
        _ => {}
    }
}

fn check_collective(
    expect: &Expectations,
    r: &Results,
    t: &Test,
    c: &crate::results::Collective,
    o: Options,
    report: &mut Report,
) {
    let wrong: u64 = c
        .sizes
        .iter()
        .flat_map(|s| [s.out_of_place.wrong, s.in_place.wrong])
        .flatten()
        .sum();
    if wrong > 0 || c.out_of_bounds.is_some_and(|x| x > 0) {
        report.findings.push(finding(
            r,
            t,
            Kind::WrongResults,
            c.devices.clone(),
            "test",
            format!(
                "{} produced {wrong} wrong elements{} on {}: a data corruption, not a slow link",
                t.name,
                c.out_of_bounds
                    .filter(|x| *x > 0)
                    .map(|x| format!(" and {x} out-of-bounds values"))
                    .unwrap_or_default(),
                gpu_list(&c.devices)
            ),
        ));
    }
    if t.status == Status::Running {
        return;
    }
    // Bus bandwidth at the largest size against the slowest link among the GPUs: one
    // host only (across hosts the network is the bottleneck, which the topology does not
    // model).
    if c.hosts.len() > 1 || c.devices.len() < 2 {
        return;
    }
    let pos = |d: u32| expect.gpus.iter().position(|g| *g == d);
    let mut bottleneck: Option<&crate::expect::PairExpectation> = None;
    for (x, a) in c.devices.iter().enumerate() {
        for b in &c.devices[x + 1..] {
            let (Some(i), Some(j)) = (pos(*a), pos(*b)) else {
                continue;
            };
            if let Some(p) = expect.pair(i, j)
                && bottleneck.is_none_or(|q| p.expected_gbps < q.expected_gbps)
            {
                bottleneck = Some(p);
            }
        }
    }
    let (Some(p), Some(last)) = (bottleneck, c.sizes.iter().max_by_key(|s| s.bytes)) else {
        return;
    };
    let busbw = last.out_of_place.bus_bw.max(last.in_place.bus_bw);
    report.compared += 1;
    let floor = p.expected_gbps * o.min_ratio;
    if busbw < floor {
        let mut f = finding(
            r,
            t,
            Kind::SlowCollective,
            c.devices.clone(),
            link_name(p.class),
            format!(
                "{} busbw {busbw:.1} GB/s at {} bytes on {}, expected ≥ {floor:.1} GB/s: the slowest pair, GPU{} and GPU{}, has {}",
                t.name,
                last.bytes,
                gpu_list(&c.devices),
                p.a,
                p.b,
                p.path
            ),
        );
        f.measured_gbps = Some(busbw);
        f.expected_gbps = Some(floor);
        report.findings.push(f);
    }
}
