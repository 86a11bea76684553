//! CPU lists in the kernel's `cpulist` syntax (`0-47,96-143`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A set of logical CPU numbers, kept sorted and free of duplicates.
///
/// Reads and writes the kernel's cpulist syntax as used by `local_cpulist`,
/// `/sys/devices/system/node/node*/cpulist` and the `CPU Affinity` column of
/// `nvidia-smi topo -m`: comma-separated numbers and inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuSet(Vec<u32>);

// === impl CpuSet ===

impl CpuSet {
    /// The set of the given CPUs (any order, duplicates dropped).
    pub fn from_cpus(cpus: impl IntoIterator<Item = u32>) -> Self {
        let mut v: Vec<u32> = cpus.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        CpuSet(v)
    }

    /// The inclusive range `first..=last`.
    pub fn range(first: u32, last: u32) -> Self {
        CpuSet((first..=last).collect())
    }

    /// The CPUs, ascending.
    pub fn cpus(&self) -> &[u32] {
        &self.0
    }

    /// Number of CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no CPU is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }

    /// The union of two sets.
    pub fn union(&self, other: &CpuSet) -> CpuSet {
        CpuSet::from_cpus(self.0.iter().chain(other.0.iter()).copied())
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

/// Largest CPU number accepted, so that a typo such as `0-4000000000` cannot
/// allocate gigabytes.
const MAX_CPU: u32 = 1 << 20;

impl FromStr for CpuSet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::Parse {
            what: "CPU list",
            value: s.to_string(),
            reason,
        };
        let mut cpus = Vec::new();
        let t = s.trim();
        if t.is_empty() {
            return Ok(CpuSet::default());
        }
        for part in t.split(',') {
            let part = part.trim();
            let num = |x: &str| -> Result<u32, Error> {
                let n: u32 = x
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("{x:?} is not a CPU number")))?;
                if n > MAX_CPU {
                    return Err(err(format!("CPU {n} is larger than {MAX_CPU}")));
                }
                Ok(n)
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if b < a {
                        return Err(err(format!("range {part} runs backwards")));
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(num(part)?),
            }
        }
        Ok(CpuSet::from_cpus(cpus))
    }
}

impl Serialize for CpuSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CpuSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_lists() {
        let s: CpuSet = "0-3,8,10-11".parse().unwrap();
        assert_eq!(s.cpus(), &[0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(s.to_string(), "0-3,8,10-11");
        let l: CpuSet = "6,14,22,30".parse().unwrap();
        assert_eq!(l.to_string(), "6,14,22,30");
        assert_eq!(" 0-47,96-143\n".parse::<CpuSet>().unwrap().len(), 96);
        assert!("".parse::<CpuSet>().unwrap().is_empty());
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["a", "3-1", "1,,2", "0-99999999", "1-", "N/A"] {
            assert!(bad.parse::<CpuSet>().is_err(), "{bad} should be rejected");
        }
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(cpus in proptest::collection::vec(0u32..512, 0..64)) {
            let s = CpuSet::from_cpus(cpus);
            let back: CpuSet = s.to_string().parse().unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }
}
