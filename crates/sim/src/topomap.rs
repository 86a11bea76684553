//! `--topology-map`: NVLink islands for trace nodes, by GPU model and count.

use linkwise_core::placement::NodeSpec;
use linkwise_core::profiles;

use crate::Error;

/// The map `--topology-map default` stands for.
pub const DEFAULT_MAP: &str = "G2:8=dgx-h100,G3:8=dgx-h100,V100M32:8=dgx1-v100,V100M16:8=dgx1-v100,\
V100M32:4=pairs,V100M16:4=pairs,P100:2=pairs,T4:4=none,T4:2=none";

/// Help text for the flag.
pub const HELP: &str = "Give trace nodes NVLink islands, so the table and JSON report the share of \
multi-GPU pods placed inside one island. MAP is `default` or MODEL:COUNT=LAYOUT[,...] (later entries win; \
`default,T4:2=pairs` extends the default). MODEL `*` matches any model. LAYOUT is a built-in profile with COUNT \
GPUs (islands from its NVLinks; see `linkwise profiles`), `pairs` (GPUs {0,1},{2,3},...), `all` (one island, \
NVSwitch-like) or `none` (no NVLink). `default` = G2:8 and G3:8 as dgx-h100 (NVSwitch, one island of 8); \
V100M32:8 and V100M16:8 as dgx1-v100 (hybrid cube-mesh: one island of 8); V100M32:4, V100M16:4 and P100:2 as \
NVLink-bridged pairs; T4 nodes without NVLink; 1-GPU nodes are trivially one island. Unmapped nodes: each GPU \
its own island";

/// One entry: nodes of `model` with `count` GPUs get `islands`.
#[derive(Debug, Clone)]
struct Entry {
    model: String,
    count: u32,
    islands: Vec<Vec<u32>>,
}

/// A parsed map.
#[derive(Debug, Clone, Default)]
pub struct TopologyMap {
    entries: Vec<Entry>,
}

// === impl TopologyMap ===

impl TopologyMap {
    /// Parses MAP (see [`HELP`]). An entry may override one of `default`, but a key
    /// (MODEL:COUNT) given twice, `default` given twice or an empty item is bad input.
    pub fn parse(spec: &str) -> Result<TopologyMap, Error> {
        let mut map = TopologyMap::default();
        let mut keys: Vec<(String, u32)> = Vec::new();
        let mut has_default = false;
        let items: Vec<&str> = spec.split(',').map(str::trim).collect();
        if items.iter().all(|s| s.is_empty()) {
            return Err(Error::Input(
                "--topology-map: empty map (use `default` or MODEL:COUNT=LAYOUT[,...])".into(),
            ));
        }
        for item in items {
            if item.is_empty() {
                return Err(Error::Input(format!(
                    "--topology-map {spec:?}: empty item (expected `default` or MODEL:COUNT=LAYOUT entries separated by commas)"
                )));
            }
            if item == "default" {
                if has_default {
                    return Err(Error::Input(format!(
                        "--topology-map {spec:?}: `default` is given twice"
                    )));
                }
                has_default = true;
                let d = TopologyMap::parse(DEFAULT_MAP)?;
                map.entries.extend(d.entries);
                continue;
            }
            let bad = |why: &str| {
                Error::Input(format!(
                    "--topology-map {item:?}: {why} (expected MODEL:COUNT=LAYOUT, e.g. G2:8=dgx-h100 or P100:2=pairs, or `default`)"
                ))
            };
            let (key, layout) = item.split_once('=').ok_or_else(|| bad("no `=`"))?;
            let (model, count) = key
                .split_once(':')
                .ok_or_else(|| bad("no `:` in the key"))?;
            let model = model.trim();
            if model.is_empty() {
                return Err(bad("empty model"));
            }
            let count: u32 = count
                .trim()
                .parse()
                .ok()
                .filter(|&c| (1..=1024).contains(&c))
                .ok_or_else(|| bad("COUNT must be a GPU count 1..1024"))?;
            let islands = layout_islands(layout.trim(), count).map_err(|e| bad(&e))?;
            if keys.iter().any(|(m, c)| m == model && *c == count) {
                return Err(bad(&format!(
                    "{model}:{count} is given twice; give each MODEL:COUNT once (an entry may override `default`)"
                )));
            }
            keys.push((model.to_string(), count));
            map.entries.push(Entry {
                model: model.to_string(),
                count,
                islands,
            });
        }
        if map.entries.is_empty() {
            return Err(Error::Input(
                "--topology-map: empty map (use `default` or MODEL:COUNT=LAYOUT[,...])".into(),
            ));
        }
        Ok(map)
    }

    /// Sets the islands of every node the map covers; returns how many nodes it covered.
    pub fn apply(&self, nodes: &mut [NodeSpec]) -> usize {
        let mut covered = 0;
        for n in nodes.iter_mut() {
            let model = n.model.as_deref().unwrap_or("");
            // The last matching entry wins; an exact model beats nothing but order only.
            if let Some(e) = self
                .entries
                .iter()
                .rev()
                .find(|e| e.count == n.gpus && (e.model == "*" || e.model == model))
            {
                n.islands.clone_from(&e.islands);
                covered += 1;
            }
        }
        covered
    }
}

/// The islands of a layout with `count` GPUs.
fn layout_islands(layout: &str, count: u32) -> Result<Vec<Vec<u32>>, String> {
    match layout {
        "pairs" => Ok((0..count)
            .collect::<Vec<_>>()
            .chunks(2)
            .map(<[u32]>::to_vec)
            .collect()),
        "all" => Ok(vec![(0..count).collect()]),
        "none" => Ok((0..count).map(|g| vec![g]).collect()),
        profile => {
            let topo = profiles::get(profile)
                .map_err(|e| format!("{e:#}; or use a layout shortcut: pairs, all, none"))?;
            if topo.gpus.len() != count as usize {
                return Err(format!(
                    "profile {profile} has {} GPUs, not {count}",
                    topo.gpus.len()
                ));
            }
            let mut out = Vec::new();
            for island in topo.islands() {
                let mut members = Vec::new();
                for id in &island.gpus {
                    let pos = topo
                        .gpus
                        .iter()
                        .position(|g| &g.id == id)
                        .and_then(|p| u32::try_from(p).ok())
                        .ok_or_else(|| format!("profile {profile}: island GPU {id} not found"))?;
                    members.push(pos);
                }
                out.push(members);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_gives_the_documented_islands() {
        let map = TopologyMap::parse("default").unwrap_or_default();
        let node = |model: &str, gpus: u32| NodeSpec {
            name: "n".into(),
            cpu_milli: 1,
            memory_mib: 1,
            gpus,
            model: Some(model.into()),
            islands: Vec::new(),
        };
        let mut nodes = vec![
            node("G2", 8),
            node("V100M32", 8),
            node("V100M16", 4),
            node("P100", 2),
            node("T4", 2),
            node("A10", 1),
        ];
        assert_eq!(map.apply(&mut nodes), 5);
        assert_eq!(nodes[0].islands, vec![(0..8).collect::<Vec<u32>>()]);
        assert_eq!(nodes[1].islands, vec![(0..8).collect::<Vec<u32>>()]);
        assert_eq!(nodes[2].islands, vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(nodes[3].islands, vec![vec![0, 1]]);
        assert_eq!(nodes[4].islands, vec![vec![0], vec![1]]);
        assert!(nodes[5].islands.is_empty());
        assert!(TopologyMap::parse("G2:4=dgx-h100").is_err());
        assert!(TopologyMap::parse("G2:8=nope").is_err());
        assert!(TopologyMap::parse("G2=pairs").is_err());
        // Overriding the default is fine; repeating oneself is not.
        assert!(TopologyMap::parse("default,T4:2=pairs").is_ok());
        for bad in [
            "G2:8=pairs,G2:8=all",
            "default,default",
            "G2:8=pairs,,T4:2=none",
            "",
            " , ",
        ] {
            assert!(TopologyMap::parse(bad).is_err(), "{bad}");
        }
    }
}
