//! Running (policy, seed) replays on worker threads, with a progress line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use linkwise_core::placement::frag::TypicalPods;
use linkwise_core::placement::replay::{self, ReplayConfig};
use linkwise_core::placement::{Cluster, GPU_MILLI, NodeSpec, PodSpec, Rng, policies};

use crate::Error;
use crate::metrics::{RunCollector, RunSummary};

/// One replay to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub policy: String,
    pub seed: u64,
}

/// What every job shares.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub nodes: &'a [NodeSpec],
    pub trace: &'a [PodSpec],
    pub typical: &'a TypicalPods,
    pub tune: f64,
}

/// Shared progress counters.
#[derive(Debug, Default)]
struct Counters {
    pods_done: AtomicU64,
    pods_planned: AtomicU64,
    started: AtomicUsize,
}

/// Runs one job: the seed's prepared pod list replayed with a fresh cluster and policy.
fn run_one(inp: &Inputs<'_>, job: &Job, counters: &Counters) -> Result<RunSummary, String> {
    let total_gpus: u64 = inp.nodes.iter().map(|n| u64::from(n.gpus)).sum();
    let mut rng = Rng::new(job.seed);
    let pods = replay::prepare(
        inp.trace,
        total_gpus * u64::from(GPU_MILLI),
        ReplayConfig { tune: inp.tune },
        &mut rng,
    );
    counters.started.fetch_add(1, Ordering::Relaxed);
    counters
        .pods_planned
        .fetch_add(pods.len() as u64, Ordering::Relaxed);
    let mut policy = policies::by_name(&job.policy, inp.typical)
        .ok_or_else(|| format!("unknown policy {:?}", job.policy))?;
    let mut collector = RunCollector::new(total_gpus);
    replay::replay(
        Cluster::new(inp.nodes.to_vec()),
        &pods,
        policy.as_mut(),
        inp.typical,
        &mut rng,
        |p| {
            collector.push(p);
            counters.pods_done.fetch_add(1, Ordering::Relaxed);
        },
    );
    Ok(collector.finish())
}

/// Runs every job on `threads` workers; results come back in job order whatever the
/// thread count (each job is independent and seeded).
pub fn run_all(inp: &Inputs<'_>, jobs: &[Job], threads: usize) -> crate::Result<Vec<RunSummary>> {
    let threads = threads.clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let counters = Counters::default();
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut results: Vec<Option<Result<RunSummary, String>>> = vec![None; jobs.len()];
    let (tx, rx) = mpsc::channel::<(usize, Result<RunSummary, String>, Duration)>();
    let panicked = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, counters) = (&next, &counters);
            handles.push(scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let t0 = Instant::now();
                    let r = run_one(inp, job, counters);
                    if tx.send((i, r, t0.elapsed())).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let mut done = 0usize;
        loop {
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok((i, r, took)) => {
                    done += 1;
                    if let (Some(job), Ok(s)) = (jobs.get(i), &r) {
                        tracing::info!(
                            policy = %job.policy,
                            seed = job.seed,
                            pods = s.pods,
                            failed = s.failed,
                            secs = format_args!("{:.2}", took.as_secs_f64()),
                            done,
                            total = jobs.len(),
                            "run finished"
                        );
                    }
                    results[i] = Some(r);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if tty {
                progress_line(&counters, done, jobs.len(), start.elapsed());
            }
        }
        if tty {
            eprint!("\r{:79}\r", "");
        }
        handles.into_iter().filter_map(|h| h.join().err()).count()
    });
    if panicked > 0 {
        return Err(Error::Run(format!(
            "{panicked} simulation worker(s) panicked (a policy bug); see the message above"
        )));
    }
    results
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| match r {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(Error::Run(format!("{} seed {}: {e}", job.policy, job.seed))),
            None => Err(Error::Run(format!(
                "{} seed {}: no result (worker stopped)",
                job.policy, job.seed
            ))),
        })
        .collect()
}

fn progress_line(c: &Counters, done: usize, total: usize, elapsed: Duration) {
    let pods = c.pods_done.load(Ordering::Relaxed);
    let planned = c.pods_planned.load(Ordering::Relaxed);
    let started = c.started.load(Ordering::Relaxed).max(1);
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = pods as f64 / secs;
    // Every job of a seed replays about as many pods: extrapolate from those started.
    let expected = planned as f64 / started as f64 * total as f64;
    let eta = if rate > 0.0 && expected > pods as f64 {
        let s = (expected - pods as f64) / rate;
        if s >= 60.0 {
            format!("{}m{:02}s", (s / 60.0).floor(), (s % 60.0).floor())
        } else {
            format!("{s:.0}s")
        }
    } else {
        "-".into()
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\rsim: runs {done}/{total}, {:.0} pods/s, elapsed {:.0}s, ETA {eta}   ",
        rate,
        elapsed.as_secs_f64()
    );
    let _ = err.flush();
}
