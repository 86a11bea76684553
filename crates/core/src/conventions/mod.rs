//! Names, defaults and small file formats that more than one part of linkwise shares:
//! each has its one definition here, and the device plugin, the exporter, the extender,
//! discovery and the CLI import it.
//!
//! - [`resources`]: the Kubernetes extended resource names of GPUs.
//! - [`xid`]: the XIDs that do not make a GPU unhealthy by default.
//! - [`driver_version`]: the NVIDIA driver version in `/proc/driver/nvidia/version`,
//!   read by discovery, preflight and the fleet report.
//! - [`jobdir`]: the Slurm job-mapping directory (its default path, file names and file
//!   text), written by `linkwise slurm prolog`/`epilog` and read by the exporter.
//!
//! Pure like the rest of core: no I/O; whoever reads or writes the files does it.

pub mod jobdir;

/// The driver version in `/proc/driver/nvidia/version` (its text): the first dotted
/// number on the `NVRM version:` line (`550.54.15`).
pub fn driver_version(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("NVRM version"))?;
    let rest = line.split_once(':').map_or(line, |(_, r)| r);
    rest.split_whitespace()
        .find(|w| {
            w.contains('.')
                && w.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// The Kubernetes extended resource names of GPUs.
pub mod resources {
    /// NVIDIA's GPU resource name, the device plugin's default, so existing pod specs work.
    pub const NVIDIA_GPU: &str = "nvidia.com/gpu";
    /// linkwise's own GPU resource name, for a device plugin run beside NVIDIA's.
    pub const LINKWISE_GPU: &str = "linkwise.dev/gpu";
    /// The resource the device plugin advertises by default.
    pub const DEFAULT_RESOURCE: &str = NVIDIA_GPU;
    /// The GPU resources the exporter attributes and the extender manages by default.
    pub const GPU_RESOURCES: [&str; 2] = [NVIDIA_GPU, LINKWISE_GPU];
}

/// XIDs (NVIDIA driver error codes) and which of them mark a GPU unhealthy.
pub mod xid {
    /// XIDs that do not make a GPU unhealthy by default: application-level errors (13
    /// graphics engine exception, 31 GPU memory page fault, 43 GPU stopped processing, 45
    /// preemptive cleanup, 68 video processor exception, 109 context switch timeout): a
    /// faulty job, not a faulty GPU. The same set NVIDIA's device plugin ignores. The
    /// exporter still counts them; the agent's XID watch and the exporter both skip them.
    pub const DEFAULT_IGNORED_XIDS: &[u64] = &[13, 31, 43, 45, 68, 109];

    /// [`DEFAULT_IGNORED_XIDS`] as a comma list, the form a command-line default takes.
    pub const DEFAULT_IGNORED_XIDS_LIST: &str = "13,31,43,45,68,109";

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_list_is_the_set() {
            let listed: Vec<u64> = DEFAULT_IGNORED_XIDS_LIST
                .split(',')
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            assert_eq!(listed, DEFAULT_IGNORED_XIDS);
        }
    }
}
