//! `compare` on files written by NumPy (and safetensors' NumPy API, and ml_dtypes for
//! bfloat16): exactly the planted mismatches (a wrong value, a NaN, an infinity) with
//! their indices; identical and within-tolerance pairs pass; half, bfloat16, big-endian,
//! column-major, integer and multi-tensor files; shape and ULP rules. And a property
//! test: truncated or mutated files never make it panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use linkwise_testkit::{Prerequisite, require};
use linkwise_validate::compare::{DType, Tolerance, compare};
use proptest::prelude::*;

const WRITE: &str = r#"
import sys, numpy as np, ml_dtypes
from safetensors.numpy import save_file
d = sys.argv[1]
rng = np.random.default_rng(7)
ref = rng.standard_normal((40, 25)).astype(np.float32)
np.save(f"{d}/ref.npy", ref)
np.save(f"{d}/same.npy", ref.copy())
np.save(f"{d}/close.npy", (ref * (1 + 1e-7)).astype(np.float32))
out = ref.copy()
out[3, 7] += 1.0
out[10, 2] = np.nan
out[20, 5] = np.inf
np.save(f"{d}/planted.npy", out)
np.save(f"{d}/ref16.npy", ref.astype(np.float16))
o16 = ref.astype(np.float16); o16[0, 1] = np.float16(o16[0, 1] * 1.5)
np.save(f"{d}/out16.npy", o16)
np.save(f"{d}/refbf.npy", ref.astype(ml_dtypes.bfloat16))
obf = ref.astype(ml_dtypes.bfloat16); obf[39, 24] = ml_dtypes.bfloat16(100.0)
np.save(f"{d}/outbf.npy", obf)
np.save(f"{d}/big.npy", ref.astype(">f8"))
np.save(f"{d}/fortran.npy", np.asfortranarray(ref))
f2 = np.asfortranarray(ref.copy()); f2[1, 0] = 9.0
np.save(f"{d}/fortran2.npy", f2)
np.save(f"{d}/ints.npy", np.arange(100, dtype=np.int32))
i2 = np.arange(100, dtype=np.int32); i2[42] = -1
np.save(f"{d}/ints2.npy", i2)
np.save(f"{d}/shape.npy", ref.reshape(25, 40))
ulp = ref.copy(); ulp.view(np.int32)[5, 5] += 3
np.save(f"{d}/ulp.npy", ulp)
save_file({"w": ref, "b": np.ones(8, np.float32), "n": np.zeros(3, np.float64)}, f"{d}/ref.safetensors")
save_file({"w": ref, "b": np.array([1, 1, 1, 2, 1, 1, 1, 1], np.float32), "extra": np.zeros(2, np.float32)}, f"{d}/out.safetensors")
"#;

fn written() -> Option<tempfile::TempDir> {
    if !require(Prerequisite::command(
        "python3",
        &["-c", "import numpy, ml_dtypes, safetensors"],
        "python3 -m pip install numpy ml_dtypes safetensors",
    )) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new("python3")
        .args(["-c", WRITE, dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some(dir)
}

fn p(d: &Path, name: &str) -> PathBuf {
    d.join(name)
}

#[test]
fn numpy_files_compare_to_exactly_the_planted_mismatches() {
    let Some(dir) = written() else { return };
    let d = dir.path();
    let c = compare(&p(d, "ref.npy"), &p(d, "planted.npy"), Tolerance::Default).unwrap();
    assert!(!c.pass);
    let t = &c.tensors[0];
    assert_eq!(
        (t.elements, t.mismatches, t.nan_mismatches, t.inf_mismatches),
        (1000, 3, 1, 1),
        "{t:#?}"
    );
    assert_eq!(t.first_mismatches, [vec![3, 7], vec![10, 2], vec![20, 5]]);
    assert!((t.max_abs_error - 1.0).abs() < 1e-6, "{}", t.max_abs_error);
    assert_eq!(t.dtype, DType::F32);

    for same in ["same.npy", "close.npy", "big.npy"] {
        let c = compare(&p(d, "ref.npy"), &p(d, same), Tolerance::Default).unwrap();
        assert!(c.pass, "{same}: {:#?}", c.tensors[0]);
    }
    // Identical files: zero ULP everywhere.
    let c = compare(
        &p(d, "ref.npy"),
        &p(d, "same.npy"),
        Tolerance::Ulp { max: 0 },
    )
    .unwrap();
    assert!(c.pass && c.tensors[0].ulp.as_ref().unwrap().max == 0);
    // Three ULP off in one element: passes at 4, fails at 2, and the statistics say so.
    let c = compare(
        &p(d, "ref.npy"),
        &p(d, "ulp.npy"),
        Tolerance::Ulp { max: 4 },
    )
    .unwrap();
    assert!(c.pass);
    let u = c.tensors[0].ulp.as_ref().unwrap();
    assert_eq!((u.max, u.within[&0], u.within[&4]), (3, 999, 1000));
    let c = compare(
        &p(d, "ref.npy"),
        &p(d, "ulp.npy"),
        Tolerance::Ulp { max: 2 },
    )
    .unwrap();
    assert_eq!(c.tensors[0].first_mismatches, [vec![5, 5]]);
}

#[test]
fn half_bfloat16_column_major_integers_and_shapes() {
    let Some(dir) = written() else { return };
    let d = dir.path();
    let c = compare(&p(d, "ref16.npy"), &p(d, "out16.npy"), Tolerance::Default).unwrap();
    assert_eq!(
        (c.tensors[0].dtype, c.tensors[0].mismatches),
        (DType::F16, 1)
    );
    assert_eq!(c.tensors[0].first_mismatches, [vec![0, 1]]);
    let c = compare(&p(d, "refbf.npy"), &p(d, "outbf.npy"), Tolerance::Default).unwrap();
    assert_eq!(
        (c.tensors[0].dtype, c.tensors[0].mismatches),
        (DType::Bf16, 1)
    );
    assert_eq!(c.tensors[0].first_mismatches, [vec![39, 24]]);
    // Column-major against column-major: the index is still [row, column].
    let c = compare(
        &p(d, "fortran.npy"),
        &p(d, "fortran2.npy"),
        Tolerance::Default,
    )
    .unwrap();
    assert_eq!(c.tensors[0].first_mismatches, [vec![1, 0]]);
    let c = compare(&p(d, "ref.npy"), &p(d, "fortran.npy"), Tolerance::Default).unwrap();
    assert!(
        c.tensors[0]
            .problem
            .as_deref()
            .unwrap()
            .contains("column-major")
    );
    let c = compare(&p(d, "ints.npy"), &p(d, "ints2.npy"), Tolerance::Default).unwrap();
    assert_eq!(
        (
            c.tensors[0].mismatches,
            c.tensors[0].first_mismatches.clone()
        ),
        (1, vec![vec![42]])
    );
    let c = compare(&p(d, "ref.npy"), &p(d, "shape.npy"), Tolerance::Default).unwrap();
    assert!(!c.pass && c.tensors[0].problem.as_deref().unwrap().contains("shape"));
    // ULP across dtypes is refused, not guessed.
    let c = compare(
        &p(d, "ref.npy"),
        &p(d, "ref16.npy"),
        Tolerance::Ulp { max: 1 },
    )
    .unwrap();
    assert!(
        c.tensors[0]
            .problem
            .as_deref()
            .unwrap()
            .contains("same float dtype")
    );
}

#[test]
fn safetensors_compare_every_tensor_by_name() {
    let Some(dir) = written() else { return };
    let d = dir.path();
    let c = compare(
        &p(d, "ref.safetensors"),
        &p(d, "out.safetensors"),
        Tolerance::Default,
    )
    .unwrap();
    assert!(!c.pass);
    let names: Vec<(&str, bool)> = c
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.pass))
        .collect();
    assert_eq!(names, [("b", false), ("w", true)]);
    assert_eq!(c.tensors[0].first_mismatches, [vec![3]]);
    assert_eq!(
        c.missing,
        ["n: not in the output", "extra: not in the reference"]
    );
    let c = compare(
        &p(d, "ref.safetensors"),
        &p(d, "ref.safetensors"),
        Tolerance::Default,
    )
    .unwrap();
    assert!(c.pass);
}

/// A small valid `.npy` (float32, 4×4) and `.safetensors` (two tensors), byte by byte.
fn samples() -> Vec<Vec<u8>> {
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for i in 0..16u8 {
        npy.extend_from_slice(&f32::from(i).to_le_bytes());
    }
    let h = r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]}}"#;
    let mut st = (h.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(h.as_bytes());
    st.extend((0..24u8).collect::<Vec<_>>());
    vec![npy, st]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Guards the readers: a truncated or mutated file is an error or a comparison, never a panic.
    #[test]
    fn truncated_or_mutated_files_never_panic(which in 0usize..2, cut in 0usize..200, at in 0usize..200, byte in any::<u8>()) {
        let good = &samples()[which];
        let mut bad = good[..cut.min(good.len())].to_vec();
        if !bad.is_empty() {
            let i = at % bad.len();
            bad[i] = byte;
        }
        let dir = tempfile::tempdir().unwrap();
        let (g, b) = (dir.path().join("g.bin"), dir.path().join("b.bin"));
        std::fs::write(&g, good).unwrap();
        std::fs::write(&b, &bad).unwrap();
        let _ = compare(&g, &b, Tolerance::Default);
        let _ = compare(&b, &g, Tolerance::Ulp { max: 1 });
        prop_assert!(compare(&g, &g, Tolerance::Default).unwrap().pass);
    }
}
