//! `docs/metrics.md`, generated from [`FAMILIES`] so the reference cannot drift from
//! what a scrape serves (a test compares the file with [`metrics_markdown`]).

use std::fmt::Write as _;

use crate::catalogue::{ATTRIBUTION_LABELS, FAMILIES};

/// The headings of the per-entity tables, in order; an entity not listed here gets a
/// table after these, headed by its name.
const ENTITIES: &[(&str, &str)] = &[
    ("exporter", "Exporter"),
    ("gpu", "Per GPU"),
    ("nvlink", "Per NVLink link"),
    ("pcie", "Per GPU PCIe link"),
    ("island", "Per NVLink island"),
];

const INTRO: &str = "\
# Metrics

<!-- Generated from `linkwise_exporter::catalogue::FAMILIES` by
`linkwise_exporter::docs::metrics_markdown()`; do not edit by hand.
Regenerate: `UPDATE_DOCS=1 cargo test -p linkwise-exporter --test render`. -->

`linkwise exporter` serves OpenMetrics text (`application/openmetrics-text; version=1.0.0`)
about GPUs, their NVLink links and their PCIe links. `linkwise exporter --list-metrics`
prints the same list.

## How values are collected

The exporter reads its sources on a timer into a cache: the GPU source (NVML, or a
built-in profile or snapshot when there is no GPU) on the collection interval, pod and
Slurm job attribution on their own timers. After each collection it renders the cache
into text once. A scrape only serves the last rendered text: no driver, kubelet or file
access happens on the scrape path, so a slow or failing source never slows a scrape; it
shows up in `linkwise_exporter_collection_errors_total` and an old
`linkwise_exporter_last_success_timestamp_seconds` instead.

## Conventions

- Metric and label names are lowercase `snake_case`; every metric starts with `linkwise_`.
- Counters end in `_total`; info families end in `_info` and have the value 1. A unit is
  part of the name (`_bytes`, `_seconds`, ...) and declared in a `# UNIT` line.
- `gpu` is the GPU's index on its host (`nvidia-smi` order), `uuid` its UUID (its id
  where the UUID is unknown), `hostname` the host it sits in. NVLink series add `link`
  (the link number on that GPU), `peer_type` (`gpu`, `nvswitch`, `cpu`) and `peer`.
- Families marked *attributed* get the labels `namespace`, `pod`, `container` and
  `slurm_job` while a pod or a Slurm job holds the GPU, each only when its value is
  known: an absent label means nobody holds the GPU (or that part is unknown), never an
  empty value.
- XIDs are counted: `linkwise_gpu_xid_events_total` is a counter per (`gpu`, `xid`),
  never a sticky gauge holding the last XID code. Alert on `increase(...[5m]) > 0`.
- A value that could not be read has no sample; it is never rendered as 0.
- Generated values are marked: `linkwise_exporter_info{synthetic=\"true\"}` when the
  values come from a profile or snapshot rather than a GPU.
";

/// The whole of `docs/metrics.md`: an introduction, the conventions, and a table per
/// entity (`exporter`, `gpu`, `nvlink`, `pcie`, `island`) of sample name, type, unit,
/// labels and help.
pub fn metrics_markdown() -> String {
    let mut out = String::from(INTRO);
    let mut entities: Vec<(&str, String)> = ENTITIES
        .iter()
        .map(|(per, title)| (*per, (*title).to_string()))
        .collect();
    for f in FAMILIES {
        if !entities.iter().any(|(per, _)| *per == f.per) {
            entities.push((f.per, format!("Per {}", f.per)));
        }
    }
    // Writing to a `String` cannot fail.
    let _ = write!(
        out,
        "\n## Families\n\n*attributed*: the family also carries {} while a pod or job \
         holds the GPU.\n",
        ATTRIBUTION_LABELS
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (per, title) in &entities {
        let families: Vec<_> = FAMILIES.iter().filter(|f| f.per == *per).collect();
        if families.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n### {title}\n\n| Sample | Type | Unit | Labels | Help |\n|---|---|---|---|---|\n"
        );
        for f in families {
            let mut labels = f
                .labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ");
            if f.attributed {
                labels.push_str(", *attributed*");
            }
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {}. |",
                f.sample_name(),
                f.kind.as_str(),
                f.unit.map_or_else(|| "-".to_string(), |u| format!("`{u}`")),
                labels,
                cell(f.help),
            );
        }
    }
    out
}

/// `s` safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
