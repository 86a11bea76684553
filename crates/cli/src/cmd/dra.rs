//! `linkwise dra`: Dynamic Resource Allocation objects (`resource.k8s.io/v1`) for the fabric.

use std::collections::BTreeMap;

use linkwise_core::Topology;
use serde_json::{Value, json};

/// Render DRA objects: ResourceSlices for the GPUs, a DeviceClass, an example claim.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise dra slices --source profile:dgx-h100\n  \
linkwise dra class\n  linkwise dra claim --count 4 --keep-together island\n  \
linkwise dra slices --source profile:nvl72 -o json | jq '.items | length'"
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// One ResourceSlice per host (one pool per node, at most 128 devices per slice).
    Slices {
        #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
        source: String,
        #[command(flatten)]
        nvlink: super::NvlinkArgs,
        #[command(flatten)]
        common: Common,
    },
    /// The DeviceClass selecting this driver's GPUs.
    Class {
        #[command(flatten)]
        common: Common,
    },
    /// An example ResourceClaim for COUNT GPUs kept inside one NVLink island (or domain, or PCIe root).
    Claim {
        /// GPUs to claim.
        #[arg(long, default_value_t = 4)]
        count: u32,
        /// The attribute every GPU of the claim must share.
        #[arg(long, value_enum, default_value_t = Together::Island)]
        keep_together: Together,
        /// Claim name.
        #[arg(long, default_value = "gpus-one-island")]
        name: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The DRA driver name (a DNS subdomain); attributes are published in its domain.
    #[arg(long, default_value = "gpu.linkwise.dev")]
    driver: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Together {
    Island,
    Domain,
    PcieRoot,
}

/// Devices per ResourceSlice (the API's limit).
const MAX_DEVICES: usize = 128;

/// A Kubernetes quantity for bytes: whole GiB as `NGi`, else whole MiB as `NMi`, else bytes.
fn quantity(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}Gi", bytes >> 30)
    } else if bytes.is_multiple_of(1 << 20) {
        format!("{}Mi", bytes >> 20)
    } else {
        bytes.to_string()
    }
}

/// A DNS-1123 label from any text.
fn dns_label(s: &str) -> String {
    let v: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    v.trim_matches('-')
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// A semantic version from a driver version (`550.54.15`; `535.86` gains `.0`), if it is one.
fn semver(v: &str) -> Option<String> {
    let parts: Vec<&str> = v.split('.').collect();
    let nums = |p: &[&str]| {
        p.iter().all(|x| {
            !x.is_empty()
                && x.chars().all(|c| c.is_ascii_digit())
                && (x.len() == 1 || !x.starts_with('0'))
        })
    };
    match parts.len() {
        3 if nums(&parts) => Some(v.to_string()),
        2 if nums(&parts) => Some(format!("{v}.0")),
        _ => None,
    }
}

/// The ResourceSlices for every host of `topo`.
pub fn slices(topo: &Topology, driver: &str) -> Vec<Value> {
    let islands = topo.islands();
    let island_of: BTreeMap<&linkwise_core::GpuId, String> = islands
        .iter()
        .flat_map(|is| is.gpus.iter().map(move |g| (g, is.name())))
        .collect();
    let domains = topo.domains();
    let domain_of: BTreeMap<&linkwise_core::GpuId, String> = domains
        .iter()
        .flat_map(|d| d.gpus.iter().map(move |g| (g, d.id.clone())))
        .collect();
    let mut out = Vec::new();
    for h in &topo.hosts {
        let gpus: Vec<&linkwise_core::Gpu> =
            topo.gpus.iter().filter(|g| g.host == h.name).collect();
        let chunks: Vec<&[&linkwise_core::Gpu]> = gpus.chunks(MAX_DEVICES).collect();
        let count = chunks.len().max(1);
        for (n, chunk) in chunks.iter().enumerate() {
            let devices: Vec<Value> = chunk
                .iter()
                .map(|g| {
                    let mut attrs = serde_json::Map::new();
                    let s = |v: &str| json!({ "string": v.chars().take(64).collect::<String>() });
                    attrs.insert("index".into(), json!({ "int": g.index }));
                    if let Some(u) = &g.uuid {
                        attrs.insert("uuid".into(), s(u));
                    }
                    attrs.insert("productName".into(), s(&g.model));
                    if let Some(p) = g.pci_bus_id {
                        attrs.insert("resource.kubernetes.io/pciBusID".into(), s(&p.to_string()));
                    }
                    if let Some(r) = &g.pcie_root {
                        attrs.insert("resource.kubernetes.io/pcieRoot".into(), s(r));
                    }
                    if let Some(nn) = g.numa_node {
                        attrs.insert("numaNode".into(), json!({ "int": nn }));
                    }
                    if let Some(is) = island_of.get(&g.id) {
                        attrs.insert("nvlinkIsland".into(), s(&format!("{}-{is}", h.name)));
                    }
                    if let Some(d) = domain_of.get(&g.id) {
                        // Islands are per host; cliques span hosts and keep their own id.
                        let v = if g.fabric.is_some() {
                            d.clone()
                        } else {
                            format!("{}-{d}", h.name)
                        };
                        attrs.insert("nvlinkDomain".into(), s(&v));
                    }
                    if let Some(f) = &g.fabric {
                        attrs.insert("clique".into(), s(&f.clique()));
                    }
                    if let Some(v) = g.driver_version.as_deref().and_then(semver) {
                        attrs.insert("driverVersion".into(), json!({ "version": v }));
                    }
                    let mut dev =
                        json!({ "name": format!("gpu-{}", g.index), "attributes": attrs });
                    if let Some(m) = g.memory_bytes {
                        dev["capacity"] = json!({ "memory": { "value": quantity(m) } });
                    }
                    dev
                })
                .collect();
            let node = dns_label(&h.name);
            out.push(json!({
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceSlice",
                "metadata": { "name": format!("{node}-{}-{n}", dns_label(driver)) },
                "spec": {
                    "driver": driver,
                    "nodeName": h.name,
                    "pool": { "name": h.name, "generation": 1, "resourceSliceCount": count },
                    "devices": devices,
                }
            }));
        }
    }
    out
}

/// The DeviceClass selecting the driver's devices.
pub fn class(driver: &str) -> Value {
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": { "name": driver },
        "spec": { "selectors": [ { "cel": { "expression": format!("device.driver == \"{driver}\"") } } ] }
    })
}

/// An example claim for `count` GPUs that share an attribute.
fn claim(driver: &str, name: &str, count: u32, together: Together) -> Value {
    let attr = match together {
        Together::Island => format!("{driver}/nvlinkIsland"),
        Together::Domain => format!("{driver}/nvlinkDomain"),
        Together::PcieRoot => "resource.kubernetes.io/pcieRoot".to_string(),
    };
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": { "name": name },
        "spec": { "devices": {
            "requests": [ { "name": "gpus", "exactly": { "deviceClassName": driver, "allocationMode": "ExactCount", "count": count } } ],
            "constraints": [ { "requests": ["gpus"], "matchAttribute": attr } ]
        } }
    })
}

fn print(objects: Vec<Value>, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            let v = if objects.len() == 1 {
                objects.into_iter().next().unwrap_or(Value::Null)
            } else {
                json!({ "apiVersion": "v1", "kind": "List", "items": objects })
            };
            crate::emitln!("{}", serde_json::to_string_pretty(&v)?)?;
        }
        Output::Yaml => {
            let mut text = String::new();
            for o in objects {
                text.push_str("---\n");
                text.push_str(&linkwise_core::yaml::to_yaml(&o));
            }
            crate::emit(&text)?;
        }
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let check = |driver: &str| {
        if linkwise_core::labels::is_label_key(&format!("{driver}/x")) && driver.contains('.') {
            Ok(())
        } else {
            Err(crate::exit::BadInput(format!(
                "--driver {driver:?} must be a DNS subdomain such as gpu.example.com"
            )))
        }
    };
    match args.what {
        What::Slices {
            source,
            nvlink,
            common,
        } => {
            check(&common.driver)?;
            let topo = super::discover_published(&source, nvlink, "ResourceSlices")?;
            print(slices(&topo, &common.driver), common.output)
        }
        What::Class { common } => {
            check(&common.driver)?;
            print(vec![class(&common.driver)], common.output)
        }
        What::Claim {
            count,
            keep_together,
            name,
            common,
        } => {
            check(&common.driver)?;
            if count == 0 {
                return Err(crate::exit::BadInput("--count must be at least 1".into()).into());
            }
            if !linkwise_core::labels::is_dns_subdomain(&name) {
                return Err(crate::exit::BadInput(format!(
                    "--name {name:?} is not a Kubernetes object name (a DNS subdomain: lower-case \
                     letters, digits, '-' and '.'); for example {:?}",
                    dns_label(&name)
                ))
                .into());
            }
            print(
                vec![claim(&common.driver, &name, count, keep_together)],
                common.output,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_versions() {
        assert_eq!(quantity(80 << 30), "80Gi");
        assert_eq!(quantity(81_559 << 20), "81559Mi");
        assert_eq!(semver("550.54.15").as_deref(), Some("550.54.15"));
        assert_eq!(semver("535.86").as_deref(), Some("535.86.0"));
        assert_eq!(semver("550.054.15"), None);
        assert_eq!(dns_label("nvl72-tray01"), "nvl72-tray01");
        assert_eq!(dns_label("Host_A.example"), "host-a-example");
    }
}
