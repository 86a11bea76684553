//! Every metric family the exporter serves: name, type, unit, help and labels.
//!
//! The renderer emits exactly these families; `linkwise exporter --list-metrics` prints
//! them and `docs/metrics.md` is generated from the same list (a test keeps it current);
//! the dashboard and alert checks read it to reject unknown metric names.

/// An OpenMetrics family type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing count; samples end in `_total`.
    Counter,
    /// Constant labels with value 1; samples end in `_info`.
    Info,
}

impl Kind {
    /// The OpenMetrics type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Info => "info",
        }
    }
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The family name as in `# TYPE` (unit suffix included; `_total` / `_info` not).
    pub name: &'static str,
    /// The type.
    pub kind: Kind,
    /// The OpenMetrics unit (`# UNIT`), when the name ends in one.
    pub unit: Option<&'static str>,
    /// The help text (without the trailing period the encoder adds).
    pub help: &'static str,
    /// The labels every sample carries, in order. Attribution labels (`namespace`, `pod`,
    /// `container`, `slurm_job`) are listed separately in [`ATTRIBUTION_LABELS`].
    pub labels: &'static [&'static str],
    /// Whether per-GPU attribution labels are added when a pod or job holds the GPU.
    pub attributed: bool,
    /// The entity a series describes: `exporter`, `gpu`, `nvlink`, `pcie`, `island`.
    pub per: &'static str,
}

impl Family {
    /// The sample name a scrape shows.
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Gauge => self.name.to_string(),
            Kind::Counter => format!("{}_total", self.name),
            Kind::Info => format!("{}_info", self.name),
        }
    }
}

/// Labels every per-GPU series carries.
pub const GPU_LABELS: &[&str] = &["gpu", "uuid", "pci_bus_id", "model", "hostname"];
/// Labels every per-NVLink-link series carries.
pub const LINK_LABELS: &[&str] = &["gpu", "uuid", "hostname", "link", "peer_type", "peer"];
/// Labels added to per-GPU series while a pod or a Slurm job holds the GPU.
pub const ATTRIBUTION_LABELS: &[&str] = &["namespace", "pod", "container", "slurm_job"];

macro_rules! labels {
    ($($l:literal),* $(,)?) => { &[$($l),*] };
}

/// Every family, in the order a scrape shows them.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "linkwise_exporter",
        kind: Kind::Info,
        unit: None,
        help: "The exporter: version, where its values come from, and synthetic=\"true\" when they are generated (profile or snapshot source, no GPU)",
        labels: labels!["version", "source", "synthetic", "hostname"],
        attributed: false,
        per: "exporter",
    },
    Family {
        name: "linkwise_exporter_collection_duration_seconds",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        help: "How long the last collection from a source took",
        labels: labels!["source"],
        attributed: false,
        per: "exporter",
    },
    Family {
        name: "linkwise_exporter_collection_errors",
        kind: Kind::Counter,
        unit: None,
        help: "Failed collections per source (gpu, podresources, slurm)",
        labels: labels!["source"],
        attributed: false,
        per: "exporter",
    },
    Family {
        name: "linkwise_exporter_last_success_timestamp_seconds",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        help: "Unix time of the last successful collection per source",
        labels: labels!["source"],
        attributed: false,
        per: "exporter",
    },
    Family {
        name: "linkwise_gpu",
        kind: Kind::Info,
        unit: None,
        help: "A GPU with its driver, NVLink island and NVLink domain (for grouping)",
        labels: labels![
            "gpu",
            "uuid",
            "pci_bus_id",
            "model",
            "hostname",
            "driver",
            "island",
            "domain"
        ],
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_utilization_ratio",
        kind: Kind::Gauge,
        unit: Some("ratio"),
        help: "Fraction of the last sample period a kernel ran on the GPU (0..1)",
        labels: GPU_LABELS,
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_memory_used_bytes",
        kind: Kind::Gauge,
        unit: Some("bytes"),
        help: "GPU memory in use",
        labels: GPU_LABELS,
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_memory_total_bytes",
        kind: Kind::Gauge,
        unit: Some("bytes"),
        help: "GPU memory installed",
        labels: GPU_LABELS,
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_temperature_celsius",
        kind: Kind::Gauge,
        unit: Some("celsius"),
        help: "GPU core temperature",
        labels: GPU_LABELS,
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_power_watts",
        kind: Kind::Gauge,
        unit: Some("watts"),
        help: "GPU power draw",
        labels: GPU_LABELS,
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_ecc_errors",
        kind: Kind::Counter,
        unit: None,
        help: "ECC memory errors since the driver loaded, by type (corrected, uncorrected)",
        labels: labels!["gpu", "uuid", "pci_bus_id", "model", "hostname", "type"],
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_xid_events",
        kind: Kind::Counter,
        unit: None,
        help: "XID events per GPU and XID code since the exporter started (a count, not the last code)",
        labels: labels!["gpu", "uuid", "pci_bus_id", "model", "hostname", "xid"],
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_healthy",
        kind: Kind::Gauge,
        unit: None,
        help: "1 when the GPU is healthy (advertised to the kubelet as Healthy), 0 when not",
        labels: GPU_LABELS,
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_gpu_health_events",
        kind: Kind::Counter,
        unit: None,
        help: "Events that marked the GPU unhealthy, by reason (xid, link_down, gpu_lost, external)",
        labels: labels!["gpu", "uuid", "pci_bus_id", "model", "hostname", "reason"],
        attributed: true,
        per: "gpu",
    },
    Family {
        name: "linkwise_nvlink_up",
        kind: Kind::Gauge,
        unit: None,
        help: "1 when the NVLink link is up, 0 when it is down",
        labels: LINK_LABELS,
        attributed: false,
        per: "nvlink",
    },
    Family {
        name: "linkwise_nvlink_bandwidth_bytes_per_second",
        kind: Kind::Gauge,
        unit: Some("bytes_per_second"),
        help: "Line rate of the NVLink link per direction",
        labels: LINK_LABELS,
        attributed: false,
        per: "nvlink",
    },
    Family {
        name: "linkwise_nvlink_transmit_bytes",
        kind: Kind::Counter,
        unit: Some("bytes"),
        help: "Bytes sent over the NVLink link",
        labels: LINK_LABELS,
        attributed: false,
        per: "nvlink",
    },
    Family {
        name: "linkwise_nvlink_receive_bytes",
        kind: Kind::Counter,
        unit: Some("bytes"),
        help: "Bytes received over the NVLink link",
        labels: LINK_LABELS,
        attributed: false,
        per: "nvlink",
    },
    Family {
        name: "linkwise_nvlink_errors",
        kind: Kind::Counter,
        unit: None,
        help: "NVLink link errors by type (crc_flit, crc_data, replay, recovery)",
        labels: labels![
            "gpu",
            "uuid",
            "hostname",
            "link",
            "peer_type",
            "peer",
            "type"
        ],
        attributed: false,
        per: "nvlink",
    },
    Family {
        name: "linkwise_pcie_link_speed_transfers_per_second",
        kind: Kind::Gauge,
        unit: Some("transfers_per_second"),
        help: "PCIe link speed of the GPU, current and max (idle GPUs lower the current speed to save power)",
        labels: labels!["gpu", "uuid", "pci_bus_id", "hostname", "which"],
        attributed: false,
        per: "pcie",
    },
    Family {
        name: "linkwise_pcie_link_width",
        kind: Kind::Gauge,
        unit: None,
        help: "PCIe link width of the GPU in lanes, current and max",
        labels: labels!["gpu", "uuid", "pci_bus_id", "hostname", "which"],
        attributed: false,
        per: "pcie",
    },
    Family {
        name: "linkwise_pcie_link_downtrained",
        kind: Kind::Gauge,
        unit: None,
        help: "1 when the GPU's PCIe link trained to fewer lanes than its maximum",
        labels: labels!["gpu", "uuid", "pci_bus_id", "hostname"],
        attributed: false,
        per: "pcie",
    },
    Family {
        name: "linkwise_island_gpus",
        kind: Kind::Gauge,
        unit: None,
        help: "GPUs in an NVLink island (GPUs joined by NVLink, directly or through NVSwitches), with its NVLink domain",
        labels: labels!["hostname", "island", "domain"],
        attributed: false,
        per: "island",
    },
];

/// The family called `name` (the `# TYPE` name or a sample name).
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES
        .iter()
        .find(|f| f.name == name || f.sample_name() == name)
}
