//! Fractional GPUs (milli-GPU shares, as the openb trace's `gpu_milli`) and MIG slices.
//!
//! Both go to the GPU that leaves the node least fragmented for the requests that
//! typically follow (whole GPUs, NVLink pairs, large MIG profiles):
//!
//! 1. a GPU that is already partly used and still fits the request, the tightest fit
//!    first (best fit), so that untouched GPUs stay whole;
//! 2. otherwise an untouched GPU, chosen like a one-GPU request under the default
//!    policy: the one whose NVLink ties to the other untouched GPUs are weakest (an
//!    orphan), so intact pairs and islands stay intact;
//!
//! ties going to the lower GPU number. For MIG, the slice position on the GPU is the one
//! that keeps the largest profile still placeable there, then the most placements of
//! every profile (a `1g` on an empty GPU goes to slice 6, keeping `4g@0` and `2g@4`).
//! Profiles are modelled by their compute slices; memory-doubled variants such as
//! `1g.20gb` on H100 80GB, which take two memory slices, are placed like `1g`.

use serde::Serialize;

use super::{AllocRequest, Allocator};
use crate::GpuId;

/// A full GPU in milli-GPU.
pub const FULL: u32 = 1000;

/// Why a fraction or slice cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FracError {
    /// The share is outside 1..=1000.
    #[error("a GPU share must be 1..=1000 milli-GPU, got {milli}")]
    OutOfRange {
        /// The share.
        milli: u32,
    },
    /// A device id is not in the topology.
    #[error("unknown device {id}")]
    UnknownDevice {
        /// The device.
        id: GpuId,
    },
    /// A usage value is impossible (over 1000 milli, or a slice mask over 7 slices).
    #[error("device {id}: usage {value} is impossible ({why})")]
    BadUsage {
        /// The device.
        id: GpuId,
        /// The value.
        value: u32,
        /// Why.
        why: &'static str,
    },
    /// No available GPU has room.
    #[error("no available GPU has room for {what}")]
    NoFit {
        /// What was asked for.
        what: String,
    },
}

/// Where a share or slice went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FracPlacement {
    /// The GPU's position.
    pub position: usize,
    /// The GPU.
    pub device: GpuId,
    /// Milli-GPU in use on it afterwards (shares), or slices in use (MIG).
    pub used_after: u32,
    /// First slice of a MIG placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig_start: Option<u32>,
    /// Why this GPU.
    pub reason: String,
}

fn position(al: &Allocator, id: &GpuId) -> Result<usize, FracError> {
    al.position(id)
        .ok_or_else(|| FracError::UnknownDevice { id: id.clone() })
}

/// The untouched GPU a one-GPU default request would take among `whole`.
fn orphan(al: &Allocator, whole: &[usize]) -> Option<usize> {
    let req = AllocRequest {
        available: whole.iter().map(|&p| al.ids()[p].clone()).collect(),
        size: 1,
        ..AllocRequest::default()
    };
    al.allocate(&req)
        .ok()
        .and_then(|a| a.positions.first().copied())
}

/// Places a share of `milli` milli-GPU. `used` gives the milli-GPU already in use per
/// device (absent: 0); `available` lists the GPUs that may take shares.
pub fn place_fraction(
    al: &Allocator,
    available: &[GpuId],
    used: &[(GpuId, u32)],
    milli: u32,
) -> Result<FracPlacement, FracError> {
    if milli == 0 || milli > FULL {
        return Err(FracError::OutOfRange { milli });
    }
    let mut use_of = vec![0u32; al.len()];
    for (id, u) in used {
        if *u > FULL {
            return Err(FracError::BadUsage {
                id: id.clone(),
                value: *u,
                why: "more than 1000 milli-GPU",
            });
        }
        use_of[position(al, id)?] = *u;
    }
    let mut avail = Vec::new();
    for id in available {
        avail.push(position(al, id)?);
    }
    avail.sort_unstable();
    avail.dedup();
    let partial = avail
        .iter()
        .copied()
        .filter(|&p| use_of[p] > 0 && FULL - use_of[p] >= milli)
        .min_by_key(|&p| (FULL - use_of[p] - milli, p));
    let (p, reason) = match partial {
        Some(p) => (
            p,
            format!(
                "best fit on a partly used GPU ({} milli free before)",
                FULL - use_of[p]
            ),
        ),
        None => {
            let whole: Vec<usize> = avail.iter().copied().filter(|&p| use_of[p] == 0).collect();
            let p = orphan(al, &whole).ok_or_else(|| FracError::NoFit {
                what: format!("{milli} milli-GPU"),
            })?;
            (p, "no partly used GPU fits; the untouched GPU whose loss tears the least NVLink bandwidth".to_string())
        }
    };
    Ok(FracPlacement {
        position: p,
        device: al.ids()[p].clone(),
        used_after: use_of[p] + milli,
        mig_start: None,
        reason,
    })
}

/// A MIG profile by its compute slices out of 7 (`1g`, `2g`, `3g`, `4g`, `7g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MigProfile {
    /// Compute slices.
    pub slices: u32,
}

impl MigProfile {
    /// Parses `3g`, `3g.40gb`, `1g.10gb+me` and the like.
    pub fn parse(s: &str) -> Option<Self> {
        let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
        let slices: u32 = digits.parse().ok()?;
        let rest = &s.trim()[digits.len()..];
        (rest.starts_with('g') && matches!(slices, 1 | 2 | 3 | 4 | 7))
            .then_some(MigProfile { slices })
    }

    /// First slices a profile may start at (A100 / H100 placement rules).
    pub fn starts(self) -> &'static [u32] {
        match self.slices {
            1 => &[0, 1, 2, 3, 4, 5, 6],
            2 => &[0, 2, 4],
            3 => &[0, 4],
            _ => &[0],
        }
    }

    fn mask(self, start: u32) -> u8 {
        let bits = ((1u16 << self.slices) - 1) << start;
        u8::try_from(bits & 0x7f).unwrap_or(0)
    }

    fn fits(self, used: u8, start: u32) -> bool {
        start + self.slices <= 7 && used & self.mask(start) == 0
    }
}

/// Slices in use on a MIG GPU, as a 7-bit mask (bit `i` = slice `i`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MigState(pub u8);

/// How many (profile, start) placements are still possible on a GPU with `used` slices.
fn placements(used: u8) -> usize {
    [1, 2, 3, 4, 7]
        .into_iter()
        .map(|s| {
            let p = MigProfile { slices: s };
            p.starts().iter().filter(|&&st| p.fits(used, st)).count()
        })
        .sum()
}

/// The largest profile still placeable on a GPU with `used` slices.
fn largest(used: u8) -> u32 {
    [7, 4, 3, 2, 1]
        .into_iter()
        .find(|&s| {
            let p = MigProfile { slices: s };
            p.starts().iter().any(|&st| p.fits(used, st))
        })
        .unwrap_or(0)
}

/// Places a MIG profile on one of `available` (MIG-enabled) GPUs with the given slice
/// usage (absent: all free).
pub fn place_mig(
    al: &Allocator,
    available: &[GpuId],
    state: &[(GpuId, MigState)],
    profile: MigProfile,
) -> Result<FracPlacement, FracError> {
    let mut used = vec![0u8; al.len()];
    for (id, s) in state {
        if s.0 & 0x80 != 0 {
            return Err(FracError::BadUsage {
                id: id.clone(),
                value: u32::from(s.0),
                why: "a GPU has 7 slices",
            });
        }
        used[position(al, id)?] = s.0;
    }
    let mut avail = Vec::new();
    for id in available {
        avail.push(position(al, id)?);
    }
    avail.sort_unstable();
    avail.dedup();
    // Best start on one GPU: keeps the largest profile placeable, then the most
    // placements of every profile, then the lowest start.
    let best_start = |p: usize| -> Option<(u32, u32)> {
        profile
            .starts()
            .iter()
            .filter(|&&st| profile.fits(used[p], st))
            .map(|&st| {
                let after = used[p] | profile.mask(st);
                (
                    (largest(after), placements(after), std::cmp::Reverse(st)),
                    st,
                )
            })
            .max_by_key(|&(key, _)| key)
            .map(|((l, _, _), st)| (l, st))
    };
    let partial = avail
        .iter()
        .copied()
        .filter(|&p| used[p] != 0)
        .filter_map(|p| best_start(p).map(|(l, st)| (p, l, st)))
        .min_by_key(|&(p, _, _)| (7 - used[p].count_ones(), p));
    let (p, st, reason) = match partial {
        Some((p, _, st)) => (
            p,
            st,
            format!(
                "tightest partly used GPU ({} slices free before)",
                7 - used[p].count_ones()
            ),
        ),
        None => {
            let whole: Vec<usize> = avail.iter().copied().filter(|&p| used[p] == 0).collect();
            let p = orphan(al, &whole).ok_or_else(|| FracError::NoFit {
                what: format!("MIG {}g", profile.slices),
            })?;
            let (_, st) = best_start(p).ok_or_else(|| FracError::NoFit {
                what: format!("MIG {}g", profile.slices),
            })?;
            (p, st, "no partly used GPU fits; the untouched GPU whose loss tears the least NVLink bandwidth".to_string())
        }
    };
    Ok(FracPlacement {
        position: p,
        device: al.ids()[p].clone(),
        used_after: (used[p] | profile.mask(st)).count_ones(),
        mig_start: Some(st),
        reason,
    })
}
