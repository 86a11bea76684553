//! Who holds a GPU: Kubernetes containers (from the kubelet's PodResources API) and Slurm
//! jobs (from a dcgm-exporter compatible job mapping directory).
//!
//! Both are pure functions of what was read, so the exporter's timers can call them and
//! tests can call them without a kubelet or a Slurm node.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::Path;

use linkwise_core::Topology;
use linkwise_core::conventions::jobdir;
use linkwise_kubelet::podresources::Assignment;

use crate::Attribution;

/// The GPU position (in `Topology::gpus`) a device plugin's device id names, if any.
///
/// Accepted: the GPU id, its UUID, its index as a decimal number (NVIDIA's device plugin
/// with `DEVICE_ID_STRATEGY=index`), any of these with a time-slicing replica suffix
/// (`GPU-…::3`), and MIG device ids of the old `MIG-GPU-<uuid>/<gi>/<ci>` form (mapped to
/// the parent GPU). Current `MIG-<uuid>` ids do not name their parent GPU and are not
/// resolved.
pub fn resolve_device_id(topo: &Topology, id: &str) -> Option<usize> {
    let id = id.split_once("::").map_or(id, |(base, _)| base);
    let id = match id.strip_prefix("MIG-") {
        Some(rest) if rest.starts_with("GPU-") => rest.split('/').next().unwrap_or(rest),
        Some(_) => return None,
        None => id,
    };
    if let Some(p) = topo
        .gpus
        .iter()
        .position(|g| g.id.0 == id || g.uuid.as_deref() == Some(id))
    {
        return Some(p);
    }
    let index: u32 = id.parse().ok()?;
    let host = local_host(topo)?;
    topo.gpus
        .iter()
        .position(|g| g.index == index && g.host == host)
}

/// Attribution from PodResources assignments: every device id of a resource whose name
/// starts with one of `resource_prefixes` (`nvidia.com/gpu` also matches
/// `nvidia.com/gpu.shared`) is resolved with [`resolve_device_id`]; ids that name no GPU
/// of `topo` are ignored.
///
/// A GPU held by more than one container (time slicing) gets the distinct namespaces,
/// pods and containers each sorted and comma-joined.
pub fn from_assignments(
    topo: &Topology,
    resource_prefixes: &[String],
    a: &[Assignment],
) -> BTreeMap<usize, Attribution> {
    #[derive(Default)]
    struct Holders {
        namespace: BTreeSet<String>,
        pod: BTreeSet<String>,
        container: BTreeSet<String>,
    }
    let mut held: BTreeMap<usize, Holders> = BTreeMap::new();
    for asg in a {
        if !resource_prefixes
            .iter()
            .any(|p| asg.resource_name.starts_with(p.as_str()))
        {
            continue;
        }
        for id in &asg.device_ids {
            let Some(g) = resolve_device_id(topo, id) else {
                continue;
            };
            let h = held.entry(g).or_default();
            h.namespace.insert(asg.namespace.clone());
            h.pod.insert(asg.pod.clone());
            h.container.insert(asg.container.clone());
        }
    }
    let join = |s: BTreeSet<String>| -> Option<String> {
        let v: Vec<String> = s.into_iter().filter(|x| !x.is_empty()).collect();
        (!v.is_empty()).then(|| v.join(","))
    };
    held.into_iter()
        .map(|(g, h)| {
            (
                g,
                Attribution {
                    namespace: join(h.namespace),
                    pod: join(h.pod),
                    container: join(h.container),
                    slurm_job: None,
                },
            )
        })
        .collect()
}

/// The host this exporter describes: the topology's first host (the exporter runs per
/// node), else the first GPU's.
fn local_host(topo: &Topology) -> Option<&str> {
    topo.hosts
        .first()
        .map(|h| h.name.as_str())
        .or_else(|| topo.gpus.first().map(|g| g.host.as_str()))
}

/// The positions (in `Topology::gpus`) of the local host's GPUs in PCI bus order, then
/// index: Slurm's GRES device index order, the order `linkwise slurm gres` writes.
pub fn slurm_order(topo: &Topology) -> Vec<usize> {
    let Some(host) = local_host(topo) else {
        return Vec::new();
    };
    let mut v: Vec<usize> = (0..topo.gpus.len())
        .filter(|&i| topo.gpus[i].host == host)
        .collect();
    v.sort_by_key(|&i| (topo.gpus[i].pci_bus_id, topo.gpus[i].index));
    v
}

/// Reads a Slurm job mapping directory (the layout dcgm-exporter reads, written by a
/// prolog/epilog; the format is [`linkwise_core::conventions::jobdir`]): one file per GPU
/// named by the GPU's Slurm index (`<n>`, or `<n>.<m>` for a MIG slice of GPU `<n>`), one
/// job id per line.
///
/// Returns GPU position → the job ids, sorted (numerically where numeric) and
/// comma-joined. Empty files, blank lines and files with other names are ignored; a
/// directory that does not exist is an empty map (no job runs, or not a Slurm node); a
/// file that disappears while being read (a job ending) is skipped. Other I/O errors are
/// one-line reasons.
pub fn read_slurm_dir(topo: &Topology, dir: &Path) -> Result<BTreeMap<usize, String>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let order = slurm_order(topo);
    let mut jobs: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(&gpu) = jobdir::gpu_index(name).and_then(|n| order.get(n)) else {
            continue;
        };
        let path = entry.path();
        let text = match read_job_file(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            // A directory or socket named like a GPU is not a job file.
            Err(_) if !path.is_file() => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        for line in jobdir::parse(&text) {
            jobs.entry(gpu).or_default().insert(line.to_string());
        }
    }
    Ok(jobs
        .into_iter()
        .map(|(g, set)| {
            let mut v: Vec<String> = set.into_iter().collect();
            v.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Ok(_), Err(_)) => std::cmp::Ordering::Less,
                (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
                (Err(_), Err(_)) => a.cmp(b),
            });
            (g, v.join(","))
        })
        .collect())
}

/// The most a job file may hold: one job id per line, a few lines per GPU.
const MAX_JOB_FILE: u64 = 64 * 1024;

/// Reads a job file, bounded: a file that never ends (or a device node put there by
/// mistake) is an error, not an unbounded read.
fn read_job_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = String::new();
    std::fs::File::open(path)?
        .take(MAX_JOB_FILE + 1)
        .read_to_string(&mut buf)?;
    if buf.len() as u64 > MAX_JOB_FILE {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("larger than {MAX_JOB_FILE} bytes: not a job file"),
        ));
    }
    Ok(buf)
}

/// Pod attribution with the Slurm jobs added: one [`Attribution`] per GPU that a
/// container or a job holds.
pub fn merge(
    pods: &BTreeMap<usize, Attribution>,
    slurm: &BTreeMap<usize, String>,
) -> BTreeMap<usize, Attribution> {
    let mut out = pods.clone();
    for (g, jobs) in slurm {
        out.entry(*g).or_default().slurm_job = Some(jobs.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use linkwise_core::{Gpu, PciAddress};

    fn topo() -> Topology {
        // Index order differs from bus order: GPU index 0 sits on the highest bus.
        let mut gpus = Vec::new();
        for (i, bus) in [0xc1_u8, 0x1b, 0x41].into_iter().enumerate() {
            let mut g = Gpu::new(format!("GPU-{i}"), u32::try_from(i).unwrap(), "n1", "H100");
            g.uuid = Some(format!("GPU-{i}"));
            g.pci_bus_id = Some(PciAddress {
                domain: 0,
                bus,
                device: 0,
                function: 0,
            });
            gpus.push(g);
        }
        Topology {
            source: "test".into(),
            gpus,
            ..Topology::default()
        }
    }

    fn asg(pod: &str, res: &str, ids: &[&str]) -> Assignment {
        Assignment {
            namespace: "ml".into(),
            pod: pod.into(),
            container: "main".into(),
            resource_name: res.into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn device_ids_resolve_in_every_accepted_form() {
        let t = topo();
        assert_eq!(resolve_device_id(&t, "GPU-1"), Some(1));
        assert_eq!(resolve_device_id(&t, "GPU-2::4"), Some(2));
        assert_eq!(resolve_device_id(&t, "MIG-GPU-0/1/0"), Some(0));
        assert_eq!(
            resolve_device_id(&t, "MIG-8f3c0a62-4c1e-5b4e-9b0a-2f6a1c2d3e4f"),
            None
        );
        assert_eq!(resolve_device_id(&t, "2"), Some(2));
        assert_eq!(resolve_device_id(&t, "7"), None);
        assert_eq!(resolve_device_id(&t, "GPU-nope"), None);
    }

    #[test]
    fn assignments_attribute_only_matching_resources() {
        let t = topo();
        let prefixes = vec!["nvidia.com/gpu".to_string()];
        let a = [
            asg("train", "nvidia.com/gpu", &["GPU-0", "GPU-unknown"]),
            asg("nic", "example.com/nic", &["GPU-1"]),
            asg("share-a", "nvidia.com/gpu.shared", &["GPU-2::0"]),
            asg("share-b", "nvidia.com/gpu.shared", &["GPU-2::1"]),
        ];
        let m = from_assignments(&t, &prefixes, &a);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&0].pod.as_deref(), Some("train"));
        assert_eq!(m[&0].namespace.as_deref(), Some("ml"));
        assert_eq!(m[&0].container.as_deref(), Some("main"));
        assert_eq!(m[&2].pod.as_deref(), Some("share-a,share-b"));
        assert!(!m.contains_key(&1));
    }

    #[test]
    fn slurm_files_map_by_bus_order() {
        let t = topo();
        assert_eq!(slurm_order(&t), [1, 2, 0]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0"), "1234\n").unwrap();
        std::fs::write(dir.path().join("2"), "99\n\n1000\n99\n").unwrap();
        std::fs::write(dir.path().join("1.3"), "77").unwrap();
        std::fs::write(dir.path().join("1"), "").unwrap();
        std::fs::write(dir.path().join("7"), "5").unwrap();
        std::fs::write(dir.path().join("README"), "5").unwrap();
        std::fs::create_dir(dir.path().join("1.0")).unwrap();
        let m = read_slurm_dir(&t, dir.path()).unwrap();
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[&1], "1234");
        assert_eq!(m[&0], "99,1000");
        assert_eq!(m[&2], "77");
        assert!(
            read_slurm_dir(&t, &dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_endless_job_file_is_an_error_not_an_unbounded_read() {
        // Regression: job files were read whole, so /dev/zero under a GPU's name grew memory.
        let t = topo();
        let dir = tempfile::tempdir().unwrap();
        // A device node is no job file: skipped, after a bounded read.
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("0")).unwrap();
        assert!(read_slurm_dir(&t, dir.path()).unwrap().is_empty());
        // A regular file over the bound is an error naming it.
        std::fs::write(dir.path().join("1"), vec![b'7'; 70_000]).unwrap();
        let err = read_slurm_dir(&t, dir.path()).unwrap_err();
        assert!(err.contains("not a job file"), "{err}");
    }

    #[test]
    fn merge_adds_jobs_to_pods() {
        let mut pods = BTreeMap::new();
        pods.insert(
            0,
            Attribution {
                pod: Some("p".into()),
                ..Attribution::default()
            },
        );
        let slurm = BTreeMap::from([(0, "1".to_string()), (2, "2".to_string())]);
        let m = merge(&pods, &slurm);
        assert_eq!(m[&0].pod.as_deref(), Some("p"));
        assert_eq!(m[&0].slurm_job.as_deref(), Some("1"));
        assert_eq!(m[&2].slurm_job.as_deref(), Some("2"));
        assert_eq!(m[&2].pod, None);
    }
}
