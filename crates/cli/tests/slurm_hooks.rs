//! `linkwise slurm prolog|epilog`: the job-mapping files Slurm's hooks keep, run as slurmd
//! runs them (the job in the environment, several jobs at once).

// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Barrier};

use linkwise_testkit::cli::linkwise;

/// Runs `linkwise slurm <hook> --dir DIR` with exactly the given Slurm variables set (the
/// ones the hooks read are removed first, in case the tests run inside a Slurm job).
fn hook(hook: &str, dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = linkwise();
    cmd.args(["slurm", hook, "--dir"])
        .arg(dir)
        .env_remove("RUST_LOG")
        .env_remove("SLURM_JOB_ID")
        .env_remove("SLURM_JOB_GPUS")
        .env_remove("CUDA_VISIBLE_DEVICES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run linkwise")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn prolog(dir: &Path, job: &str, gpus: &str) {
    ok(&hook(
        "prolog",
        dir,
        &[("SLURM_JOB_ID", job), ("SLURM_JOB_GPUS", gpus)],
    ));
}

fn epilog(dir: &Path, job: &str) {
    ok(&hook("epilog", dir, &[("SLURM_JOB_ID", job)]));
}

/// The mapping files (hidden files skipped): name → content.
fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn prolog_records_each_job_on_its_gpus_and_epilog_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("slurm-jobs");
    prolog(&dir, "101", "0-1");
    prolog(&dir, "102", "1,2");
    assert_eq!(
        files(&dir),
        map(&[("0", "101\n"), ("1", "101\n102\n"), ("2", "102\n")])
    );
    // Idempotent: a second run (a requeued prolog) adds nothing.
    prolog(&dir, "102", "2,1");
    assert_eq!(
        files(&dir),
        map(&[("0", "101\n"), ("1", "101\n102\n"), ("2", "102\n")])
    );

    epilog(&dir, "101");
    assert_eq!(files(&dir), map(&[("1", "102\n"), ("2", "102\n")]));
    assert!(!dir.join("0").exists(), "an emptied file is deleted");
    // An epilog for a job that is not recorded changes nothing.
    epilog(&dir, "999");
    assert_eq!(files(&dir), map(&[("1", "102\n"), ("2", "102\n")]));
    epilog(&dir, "102");
    assert_eq!(files(&dir), BTreeMap::new());
}

#[test]
fn prolog_falls_back_to_cuda_visible_devices_and_skips_jobs_without_gpus() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("jobs");
    // No GPU list at all: nothing to do, and the directory is not even created.
    ok(&hook("prolog", &dir, &[("SLURM_JOB_ID", "5")]));
    ok(&hook(
        "prolog",
        &dir,
        &[("SLURM_JOB_ID", "5"), ("SLURM_JOB_GPUS", "")],
    ));
    assert!(!dir.exists());
    ok(&hook(
        "prolog",
        &dir,
        &[("SLURM_JOB_ID", "6"), ("CUDA_VISIBLE_DEVICES", "3")],
    ));
    assert_eq!(files(&dir), map(&[("3", "6\n")]));
    // An epilog on a node that never ran a prolog succeeds.
    ok(&hook(
        "epilog",
        &tmp.path().join("absent"),
        &[("SLURM_JOB_ID", "6")],
    ));
}

#[test]
fn missing_job_id_is_bad_input_naming_the_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("jobs");
    for which in ["prolog", "epilog"] {
        let out = hook(which, &dir, &[("SLURM_JOB_GPUS", "0")]);
        assert_eq!(out.status.code(), Some(2), "{which}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("SLURM_JOB_ID"), "{which}: {err}");
    }
    assert!(!dir.exists(), "nothing written");
}

#[test]
fn malformed_gpu_list_is_bad_input_naming_the_value_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("jobs");
    let out = hook(
        "prolog",
        &dir,
        &[("SLURM_JOB_ID", "7"), ("SLURM_JOB_GPUS", "a,b")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SLURM_JOB_GPUS") && err.contains("\"a,b\""),
        "{err}"
    );
    assert!(!dir.exists(), "nothing written");

    // A good first item does not get written either: the whole list is checked first.
    let out = hook(
        "prolog",
        &dir,
        &[
            ("SLURM_JOB_ID", "7"),
            ("CUDA_VISIBLE_DEVICES", "0,GPU-1234"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CUDA_VISIBLE_DEVICES") && err.contains("GPU-1234"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing written");
}

#[test]
fn concurrent_prologs_on_overlapping_gpus_lose_no_job() {
    const JOBS: u32 = 8;
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(tmp.path().join("jobs"));
    // Job j holds GPUs j%4, (j+1)%4 and (j+2)%4 of a 4-GPU node: every GPU is shared by 6 jobs.
    let gpus = |j: u32| -> Vec<u32> { (0..3).map(|k| (j + k) % 4).collect() };
    let start = Arc::new(Barrier::new(JOBS as usize));
    let threads: Vec<_> = (0..JOBS)
        .map(|j| {
            let (dir, start) = (Arc::clone(&dir), Arc::clone(&start));
            let list = gpus(j)
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            std::thread::spawn(move || {
                start.wait();
                hook(
                    "prolog",
                    &dir,
                    &[
                        ("SLURM_JOB_ID", &(1000 + j).to_string()),
                        ("SLURM_JOB_GPUS", &list),
                    ],
                )
            })
        })
        .collect();
    for t in threads {
        ok(&t.join().unwrap());
    }
    let got = files(&dir);
    for gpu in 0..4u32 {
        let text = got.get(&gpu.to_string()).expect("a file per GPU");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        let mut want: Vec<String> = (0..JOBS)
            .filter(|&j| gpus(j).contains(&gpu))
            .map(|j| (1000 + j).to_string())
            .collect();
        want.sort_unstable();
        assert_eq!(lines, want, "GPU {gpu}: {text:?}");
    }
    assert_eq!(got.len(), 4, "{got:?}");

    // And concurrent epilogs leave nothing behind.
    let threads: Vec<_> = (0..JOBS)
        .map(|j| {
            let dir = Arc::clone(&dir);
            std::thread::spawn(move || {
                hook("epilog", &dir, &[("SLURM_JOB_ID", &(1000 + j).to_string())])
            })
        })
        .collect();
    for t in threads {
        ok(&t.join().unwrap());
    }
    assert_eq!(files(&dir), BTreeMap::new());
}
