//! Running a plan, crash-safe.
//!
//! Every node goes `pending → draining → applying → verifying → returning → done`; a
//! failure goes `rolling-back → quarantined` and stops the rollout. Each step is written
//! to the fleet database before it starts and after it ends (`rollout_nodes`, and a line
//! in `rollout_log` with the command, exit code and the end of its output), so a run
//! killed at any point resumes where it was: a node whose apply was in flight is not
//! applied again blindly — its apply's process group (recorded when it started) is waited
//! for, then the node is verified, and applied again only when verify fails. One run at a
//! time holds the rollout's lease; a lease whose holder died on this host is taken over at
//! once, any other when it expires.
//!
//! Commands run as `sh -c` with `{node}` replaced, each in a process group of its own,
//! with a timeout that kills the group.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use tokio::io::AsyncReadExt;

use linkwise_fleet::store::{Store, now_us, rfc3339_us};

use crate::plan::{Executor, Plan};

/// What a run can fail with, besides a node failing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The database failed.
    #[error("rollout store: {0}")]
    Store(String),
    /// The rollout cannot run as asked (unknown change, another run holds it, a plan that
    /// differs from the stored one, something not supported).
    #[error("{0}")]
    Refused(String),
}

fn db(e: sqlx::Error) -> RunError {
    RunError::Store(e.to_string())
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Print what would run; change nothing.
    pub dry_run: bool,
    /// The limit of one command.
    pub command_timeout: Duration,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How long a drain may wait for jobs to end (or evictions to be allowed).
    pub drain_timeout: Duration,
    /// How often a blocked eviction is asked again, and a drained pod looked for.
    pub poll_interval: Duration,
    /// The Kubernetes API, for the `kubernetes` executor: a client, or why there is none.
    pub kube: Result<crate::kubernetes::Kube, String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            command_timeout: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(5),
            kube: Err("no Kubernetes client was given".into()),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    /// Every node done.
    Succeeded {
        /// Nodes done.
        nodes: usize,
    },
    /// A node failed: rolled back (where a rollback command is given) and quarantined.
    Failed {
        /// The node.
        node: String,
        /// The step that failed.
        step: String,
        /// Why.
        message: String,
    },
    /// `rollback`: every node the change reached is rolled back.
    RolledBack {
        /// Nodes rolled back.
        nodes: usize,
    },
    /// `--dry-run`: the commands and calls that would run, in order.
    DryRun {
        /// One line each.
        actions: Vec<String>,
    },
}

/// A rollout's state for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The change.
    pub change: String,
    /// `running`, `succeeded`, `failed`, `aborted`.
    pub state: String,
    /// Why it stopped, where it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who holds the lease, until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// Every node, wave by wave.
    pub nodes: Vec<NodeStatus>,
    /// What ran.
    pub log: Vec<LogLine>,
}

/// One node's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// Its wave.
    pub wave: i64,
    /// Its step.
    pub state: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// When (RFC 3339).
    pub at: String,
    /// The node, where the line is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The step.
    pub step: String,
    /// The command, where one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The end of its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A node name is put into shell commands: only the characters of host and Kubernetes
/// node names.
fn safe_node(node: &str) -> bool {
    !node.is_empty()
        && !node.starts_with('-')
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn fill(template: &str, node: &str) -> String {
    template.replace("{node}", node)
}

/// This process's lease name: host and pid.
fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// True when `owner` is a process of this host that no longer runs.
fn owner_dead(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return false;
    };
    let this = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host != this {
        return false;
    }
    let Some(pid) = pid
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    rustix::process::test_kill_process(pid).is_err()
}

/// `exit N: output` (or how it ended without a code), for messages.
fn ended(r: &Ran) -> String {
    let code = r
        .code
        .map_or_else(|| "did not exit".to_string(), |c| format!("exited {c}"));
    let out = r.output.trim();
    if out.is_empty() {
        code
    } else {
        format!("{code}: {out}")
    }
}

/// The output a command left: its last 4 KiB.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(4096);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

struct Ran {
    code: Option<i32>,
    output: String,
}

/// The rollout engine over one store.
#[derive(Debug)]
pub struct Engine<'a> {
    store: &'a Store,
    change: String,
    owner: String,
    o: RunOptions,
}

impl<'a> Engine<'a> {
    async fn log(
        &self,
        node: Option<&str>,
        step: &str,
        command: Option<&str>,
        code: Option<i32>,
        output: Option<&str>,
    ) -> Result<(), RunError> {
        let mut tx = self.store.pool().begin().await.map_err(db)?;
        let next: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM rollout_log WHERE change_name = $1")
                .bind(&self.change)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?
                .try_get(0)
                .map_err(db)?;
        sqlx::query(
            "INSERT INTO rollout_log (change_name, seq, at_us, node, step, command, exit_code, output) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&self.change)
        .bind(next)
        .bind(now_us())
        .bind(node.map(str::to_string))
        .bind(step)
        .bind(command.map(str::to_string))
        .bind(code.map(i64::from))
        .bind(output.map(str::to_string))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn set_node(&self, node: &str, state: &str, pgid: Option<i64>) -> Result<(), RunError> {
        sqlx::query("UPDATE rollout_nodes SET state = $1, pgid = $2, updated_us = $3 WHERE change_name = $4 AND node = $5")
            .bind(state)
            .bind(pgid)
            .bind(now_us())
            .bind(&self.change)
            .bind(node)
            .execute(self.store.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn set_rollout(&self, state: &str, message: Option<&str>) -> Result<(), RunError> {
        sqlx::query(
            "UPDATE rollouts SET state = $1, message = $2, updated_us = $3 WHERE change_name = $4",
        )
        .bind(state)
        .bind(message.map(str::to_string))
        .bind(now_us())
        .bind(&self.change)
        .execute(self.store.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Takes or renews the lease; refused when another live run holds it.
    async fn lease(&self) -> Result<(), RunError> {
        let now = now_us();
        let until = now + i64::try_from(self.o.lease.as_micros()).unwrap_or(i64::MAX / 2);
        let row =
            sqlx::query("SELECT lease_owner, lease_until_us FROM rollouts WHERE change_name = $1")
                .bind(&self.change)
                .fetch_one(self.store.pool())
                .await
                .map_err(db)?;
        let holder: Option<String> = row.try_get(0).map_err(db)?;
        let holder_until: Option<i64> = row.try_get(1).map_err(db)?;
        let free = match (&holder, holder_until) {
            (None, _) => true,
            (Some(h), _) if *h == self.owner => true,
            (Some(h), Some(u)) => u < now || owner_dead(h),
            (Some(h), None) => owner_dead(h),
        };
        if !free {
            return Err(RunError::Refused(format!(
                "rollout {} is being run by {} (lease until {}); wait, or stop that run",
                self.change,
                holder.unwrap_or_default(),
                rfc3339_us(holder_until.unwrap_or(0))
            )));
        }
        // Compare-and-set on the holder seen, so two runs cannot both take it.
        let done = sqlx::query(
            "UPDATE rollouts SET lease_owner = $1, lease_until_us = $2 WHERE change_name = $3 \
             AND (lease_owner IS NULL AND $4 = '' OR lease_owner = $4)",
        )
        .bind(&self.owner)
        .bind(until)
        .bind(&self.change)
        .bind(holder.clone().unwrap_or_default())
        .execute(self.store.pool())
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(RunError::Refused(format!(
                "rollout {}: another run took the lease first",
                self.change
            )));
        }
        Ok(())
    }

    async fn release_lease(&self) -> Result<(), RunError> {
        sqlx::query("UPDATE rollouts SET lease_owner = NULL, lease_until_us = NULL WHERE change_name = $1 AND lease_owner = $2")
            .bind(&self.change)
            .bind(&self.owner)
            .execute(self.store.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Runs `command` for `node` in its own process group, recording the group first
    /// when `record` names the node's step.
    async fn command(
        &self,
        node: &str,
        step: &str,
        command: &str,
        record: Option<&str>,
    ) -> Result<Ran, RunError> {
        // The command starts only once its process group is recorded: the wrapper waits
        // for a `go` line on standard input, which a run that dies first never sends
        // (the wrapper then sees end of file and exits without running anything).
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg("IFS= read -r go && [ \"$go\" = go ] || exit 97; exec sh -c \"$0\"")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("cannot start sh: {e}");
                self.log(Some(node), step, Some(command), None, Some(&msg))
                    .await?;
                return Ok(Ran {
                    code: None,
                    output: msg,
                });
            }
        };
        let pgid = child.id().map(i64::from);
        if let Some(state) = record {
            self.set_node(node, state, pgid).await?;
        }
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(b"go\n").await;
        }
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let read = async {
            let mut buf = Vec::new();
            let mut ebuf = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut buf).await;
            }
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut ebuf).await;
            }
            buf.extend_from_slice(&ebuf);
            let status = child.wait().await;
            (buf, status)
        };
        // The lease is renewed while the command runs, so a long apply keeps it.
        let finished = async {
            let mut read = std::pin::pin!(read);
            let deadline = tokio::time::sleep(self.o.command_timeout);
            let mut deadline = std::pin::pin!(deadline);
            loop {
                tokio::select! {
                    r = &mut read => return Ok(Ok(r)),
                    () = &mut deadline => return Ok(Err(())),
                    () = tokio::time::sleep(self.o.lease / 3) => self.lease().await?,
                }
            }
        };
        let finished: Result<Result<_, ()>, RunError> = finished.await;
        let (code, output) = match finished? {
            Ok((buf, status)) => (status.ok().and_then(|s| s.code()), tail(&buf)),
            Err(_) => {
                if let Some(p) = pgid
                    .and_then(|p| i32::try_from(p).ok())
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
                }
                (
                    None,
                    format!(
                        "timed out after {:?}; its process group was killed",
                        self.o.command_timeout
                    ),
                )
            }
        };
        self.log(Some(node), step, Some(command), code, Some(&output))
            .await?;
        Ok(Ran { code, output })
    }

    /// Waits for a process group that a dead run left (an apply in flight), up to the
    /// command timeout, then kills it.
    async fn wait_group(&self, node: &str, pgid: i64) -> Result<(), RunError> {
        let Some(p) = i32::try_from(pgid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return Ok(());
        };
        if rustix::process::test_kill_process_group(p).is_err() {
            return Ok(());
        }
        self.log(
            Some(node),
            "wait-inflight",
            None,
            None,
            Some(&format!(
                "process group {pgid} of the last run still runs: waiting for it"
            )),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + self.o.command_timeout;
        while rustix::process::test_kill_process_group(p).is_ok() {
            if tokio::time::Instant::now() > deadline {
                let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    fn executor_command(plan: &Plan, node: &str, what: &str) -> Option<String> {
        match (plan.executor, what) {
            (Executor::Slurm, "drain") => Some(format!(
                "scontrol update NodeName={node} State=DRAIN Reason='linkwise rollout {}'",
                plan.change
            )),
            (Executor::Slurm, "return") => {
                Some(format!("scontrol update NodeName={node} State=RESUME"))
            }
            (Executor::Slurm, "quarantine") => Some(format!(
                "scontrol update NodeName={node} State=DRAIN Reason='linkwise quarantine: {} failed'",
                plan.change
            )),
            _ => None,
        }
    }

    async fn drain(&self, plan: &Plan, node: &str) -> Result<Option<String>, RunError> {
        if plan.executor == Executor::Kubernetes {
            return self.kube_drain(node).await;
        }
        let Some(cmd) = Self::executor_command(plan, node, "drain") else {
            return Ok(None);
        };
        let r = self.command(node, "drain", &cmd, None).await?;
        if r.code != Some(0) {
            return Ok(Some(format!("drain {}", ended(&r))));
        }
        // Wait until no job runs on the node.
        let deadline = tokio::time::Instant::now() + self.o.drain_timeout;
        loop {
            let out = tokio::process::Command::new("squeue")
                .args(["-h", "-w", node, "-o", "%i"])
                .output()
                .await;
            match out {
                Ok(o) if o.status.success() && o.stdout.iter().all(u8::is_ascii_whitespace) => {
                    return Ok(None);
                }
                Ok(o) if !o.status.success() => {
                    return Ok(Some(format!(
                        "squeue failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    )));
                }
                Err(e) => return Ok(Some(format!("squeue: {e}"))),
                _ => {}
            }
            if tokio::time::Instant::now() > deadline {
                return Ok(Some(format!(
                    "jobs still run on {node} after {:?}",
                    self.o.drain_timeout
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Every verify command passes (none given: false, so an in-flight apply is applied
    /// again — give a verify command to make resume exact).
    async fn verify(&self, plan: &Plan, node: &str) -> Result<Result<(), String>, RunError> {
        if plan.verify.is_empty() {
            return Ok(Err("no verify command".into()));
        }
        for v in &plan.verify {
            let cmd = fill(v, node);
            let r = self.command(node, "verify", &cmd, None).await?;
            if r.code != Some(0) {
                return Ok(Err(format!(
                    "verify `{cmd}` exited {:?}: {}",
                    r.code,
                    r.output.trim()
                )));
            }
        }
        Ok(Ok(()))
    }

    /// One Kubernetes API call for `node`, logged as `step` with what it did
    /// (`call`) and its outcome; `Err(why)` when it failed.
    async fn kube_call<'k, F, Fut>(
        &'k self,
        node: &str,
        step: &str,
        call: &str,
        f: F,
    ) -> Result<Result<(), String>, RunError>
    where
        F: FnOnce(&'k crate::kubernetes::Kube) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let kube = self.o.kube.as_ref().map_err(|e| {
            RunError::Refused(format!("the kubernetes executor has no API access: {e}"))
        })?;
        let r = f(kube).await;
        let (code, out) = match &r {
            Ok(()) => (0, "ok".to_string()),
            Err(e) => (1, e.clone()),
        };
        self.log(
            Some(node),
            step,
            Some(&format!("{call} {node}")),
            Some(code),
            Some(&out),
        )
        .await?;
        Ok(r)
    }

    /// Cordons `node`, evicts its GPU pods (retrying while a PodDisruptionBudget refuses)
    /// and waits until they are gone; `Some(why)` when it cannot.
    async fn kube_drain(&self, node: &str) -> Result<Option<String>, RunError> {
        if let Err(why) = self
            .kube_call(node, "drain", "cordon", |k| async move {
                k.set_unschedulable(node, true).await
            })
            .await?
        {
            return Ok(Some(why));
        }
        let kube = self
            .o
            .kube
            .as_ref()
            .map_err(|e| RunError::Refused(e.clone()))?;
        let pods = match kube.gpu_pods(node).await {
            Ok(p) => p,
            Err(e) => return Ok(Some(e)),
        };
        let names: Vec<String> = pods.iter().map(ToString::to_string).collect();
        self.log(
            Some(node),
            "drain",
            Some(&format!("list GPU pods on {node}")),
            Some(0),
            Some(&if names.is_empty() {
                "no GPU pod to evict".to_string()
            } else {
                format!("to evict: {}", names.join(", "))
            }),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + self.o.drain_timeout;
        for pod in &pods {
            let mut told = false;
            loop {
                self.lease().await?;
                match kube.evict(pod).await {
                    Ok(crate::kubernetes::Evicted::Done) => {
                        self.log(
                            Some(node),
                            "evict",
                            Some(&format!("evict {pod}")),
                            Some(0),
                            Some("evicted"),
                        )
                        .await?;
                        break;
                    }
                    Ok(crate::kubernetes::Evicted::Blocked(why)) => {
                        if tokio::time::Instant::now() > deadline {
                            return Ok(Some(format!(
                                "evicting {pod} still refused after {:?}: {why}",
                                self.o.drain_timeout
                            )));
                        }
                        if !told {
                            self.log(
                                Some(node),
                                "evict",
                                Some(&format!("evict {pod}")),
                                Some(1),
                                Some(&format!(
                                    "{why} (a PodDisruptionBudget: asking again every {:?})",
                                    self.o.poll_interval
                                )),
                            )
                            .await?;
                            told = true;
                        }
                        tokio::time::sleep(self.o.poll_interval).await;
                    }
                    Err(e) => return Ok(Some(e)),
                }
            }
        }
        for pod in &pods {
            loop {
                match kube.gone(pod).await {
                    Ok(true) => break,
                    Ok(false) if tokio::time::Instant::now() > deadline => {
                        return Ok(Some(format!(
                            "{pod} still runs {:?} after its eviction",
                            self.o.drain_timeout
                        )));
                    }
                    Ok(false) => tokio::time::sleep(self.o.poll_interval).await,
                    Err(e) => return Ok(Some(e)),
                }
            }
        }
        Ok(None)
    }

    /// The `kubernetes` executor's quarantine: cordoned, tainted and labelled. A failure
    /// to mark it is logged; the node is quarantined in the store all the same.
    async fn kube_quarantine(&self, plan: &Plan, node: &str) -> Result<(), RunError> {
        if plan.executor != Executor::Kubernetes {
            return Ok(());
        }
        let change = plan.change.clone();
        self.kube_call(node, "quarantine", "taint and label", |k| async move {
            k.quarantine(node, &change).await
        })
        .await
        .map(drop)
    }

    /// Marks in the log when wave `w` started (once: a resumed wave keeps its start).
    async fn wave_started(&self, w: usize) -> Result<(), RunError> {
        if self.wave_log_us("wave", w).await?.is_none() {
            self.log(None, "wave", Some(&format!("wave {w}")), None, None)
                .await?;
        }
        Ok(())
    }

    /// When the log got a `step` line for wave `w`, if it did.
    async fn wave_log_us(&self, step: &str, w: usize) -> Result<Option<i64>, RunError> {
        let row = sqlx::query(
            "SELECT MIN(at_us) FROM rollout_log WHERE change_name = $1 AND step = $2 AND command = $3",
        )
        .bind(&self.change)
        .bind(step)
        .bind(format!("wave {w}"))
        .fetch_one(self.store.pool())
        .await
        .map_err(db)?;
        row.try_get::<Option<i64>, _>(0).map_err(db)
    }

    /// Wave `w`'s gates, evaluated now and every interval until its bake time is over;
    /// the first failing one rolls back and quarantines the nodes it names. Passed once,
    /// a wave's gates are not evaluated again on resume.
    async fn gate(&self, plan: &Plan, w: usize) -> Result<Option<Outcome>, RunError> {
        if self.wave_log_us("gates-passed", w).await?.is_some() {
            return Ok(None);
        }
        let prometheus = plan.prometheus.as_deref().unwrap_or_default();
        let nodes: Vec<String> = plan.waves[w].iter().map(|n| n.node.clone()).collect();
        let started = self.wave_log_us("wave", w).await?.unwrap_or_else(now_us);
        let interval = Duration::from_secs(plan.gate_interval_seconds.max(1));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(plan.bake_seconds);
        self.log(
            None,
            "bake",
            None,
            None,
            Some(&format!(
                "wave {w}: {} gate{} every {} s for {} s",
                plan.gates.len(),
                if plan.gates.len() == 1 { "" } else { "s" },
                interval.as_secs(),
                plan.bake_seconds
            )),
        )
        .await?;
        loop {
            self.lease().await?;
            if rollout_state(self.store, &self.change).await? == "aborted" {
                self.log(
                    None,
                    "aborted",
                    None,
                    None,
                    Some("aborted by an operator while baking"),
                )
                .await?;
                return Err(RunError::Refused(format!(
                    "rollout {} was aborted",
                    self.change
                )));
            }
            let since = Duration::from_micros(u64::try_from(now_us() - started).unwrap_or(0));
            for g in &plan.gates {
                let query = crate::gate::expand(g, &nodes, w, since);
                let (failing, message) = match crate::gate::evaluate(prometheus, &query, 3).await {
                    Ok(series) if series.is_empty() => continue,
                    Ok(series) => {
                        let shown: Vec<String> =
                            series.iter().take(5).map(ToString::to_string).collect();
                        let more = series.len().saturating_sub(5);
                        (
                            crate::gate::blamed(&series, &nodes),
                            format!(
                                "gate `{query}` returned {}{}",
                                shown.join("; "),
                                if more > 0 {
                                    format!(" and {more} more")
                                } else {
                                    String::new()
                                }
                            ),
                        )
                    }
                    Err(e) => (
                        nodes.clone(),
                        format!("gate `{query}` could not be evaluated: {e}"),
                    ),
                };
                self.log(None, "gate", Some(&query), Some(1), Some(&message))
                    .await?;
                return self.fail_nodes(plan, &failing, &message).await.map(Some);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
        }
        self.log(
            None,
            "gates-passed",
            Some(&format!("wave {w}")),
            Some(0),
            Some(&format!(
                "{} gates passed on {}",
                plan.gates.len(),
                nodes.join(", ")
            )),
        )
        .await?;
        Ok(None)
    }

    /// A failed gate: each named node (already returned to service) drained again,
    /// rolled back and quarantined; the rollout stops.
    async fn fail_nodes(
        &self,
        plan: &Plan,
        nodes: &[String],
        message: &str,
    ) -> Result<Outcome, RunError> {
        for node in nodes {
            self.set_node(node, "rolling-back", None).await?;
            if let Some(why) = self.drain(plan, node).await? {
                self.log(
                    Some(node),
                    "drain",
                    None,
                    None,
                    Some(&format!("drain for rollback: {why}")),
                )
                .await?;
            }
            self.roll_back_and_quarantine(
                plan,
                node,
                &format!("{} failed its gate: {message}", plan.change),
            )
            .await?;
        }
        let why = format!("{} failed at gate: {message}", nodes.join(", "));
        self.set_rollout("failed", Some(&why)).await?;
        self.log(None, "failed", None, None, Some(&why)).await?;
        Ok(Outcome::Failed {
            node: nodes.join(","),
            step: "gate".into(),
            message: message.to_string(),
        })
    }

    /// A failed node: the plan's rollback command (where it has one), kept out of service
    /// by the executor, quarantined in the store with `reason`.
    async fn roll_back_and_quarantine(
        &self,
        plan: &Plan,
        node: &str,
        reason: &str,
    ) -> Result<(), RunError> {
        if let Some(rb) = &plan.rollback {
            self.command(node, "rollback", &fill(rb, node), None)
                .await?;
        }
        if let Some(q) = Self::executor_command(plan, node, "quarantine") {
            self.command(node, "quarantine", &q, None).await?;
        }
        self.kube_quarantine(plan, node).await?;
        self.store
            .quarantine(node, reason, Some(&plan.change))
            .await
            .map_err(|e| RunError::Store(e.to_string()))?;
        self.set_node(node, "quarantined", None).await
    }

    /// Returns `node` to service through the executor; `Err(why)` when it could not.
    async fn return_to_service(
        &self,
        plan: &Plan,
        node: &str,
    ) -> Result<Result<(), String>, RunError> {
        if plan.executor == Executor::Kubernetes
            && let Err(why) = self
                .kube_call(node, "return", "uncordon", |k| async move {
                    k.set_unschedulable(node, false).await
                })
                .await?
        {
            return Ok(Err(why));
        }
        if let Some(cmd) = Self::executor_command(plan, node, "return") {
            let r = self.command(node, "return", &cmd, None).await?;
            if r.code != Some(0) {
                return Ok(Err(format!("return to service {}", ended(&r))));
            }
        }
        Ok(Ok(()))
    }

    async fn fail(
        &self,
        plan: &Plan,
        node: &str,
        step: &str,
        message: String,
    ) -> Result<Outcome, RunError> {
        if plan.rollback.is_some() {
            self.set_node(node, "rolling-back", None).await?;
        }
        self.roll_back_and_quarantine(
            plan,
            node,
            &format!("{} failed at {step}: {message}", plan.change),
        )
        .await?;
        let why = format!("{node} failed at {step}: {message}");
        self.set_rollout("failed", Some(&why)).await?;
        self.log(Some(node), "failed", None, None, Some(&why))
            .await?;
        Ok(Outcome::Failed {
            node: node.to_string(),
            step: step.to_string(),
            message,
        })
    }

    /// One node from wherever it stopped.
    async fn node(
        &self,
        plan: &Plan,
        node: &str,
        state: &str,
        pgid: Option<i64>,
    ) -> Result<Option<Outcome>, RunError> {
        let mut state = state.to_string();
        loop {
            self.lease().await?;
            match state.as_str() {
                "pending" | "draining" => {
                    self.set_node(node, "draining", None).await?;
                    if let Some(why) = self.drain(plan, node).await? {
                        return self.fail(plan, node, "drain", why).await.map(Some);
                    }
                    state = "apply".into();
                }
                "apply" => {
                    self.set_node(node, "applying", None).await?;
                    let cmd = fill(&plan.apply, node);
                    let r = self.command(node, "apply", &cmd, Some("applying")).await?;
                    if r.code != Some(0) {
                        let why = format!("apply {}", ended(&r));
                        return self.fail(plan, node, "apply", why).await.map(Some);
                    }
                    state = "verifying".into();
                }
                "applying" => {
                    // The last run died with this node's apply in flight.
                    if let Some(g) = pgid {
                        self.wait_group(node, g).await?;
                    }
                    match self.verify(plan, node).await? {
                        Ok(()) => {
                            self.log(Some(node), "resume", None, None, Some("apply was in flight when the last run stopped; verify passes: not applied again")).await?;
                            state = "returning".into();
                        }
                        Err(_) => {
                            self.log(Some(node), "resume", None, None, Some("apply was in flight when the last run stopped; verify fails: applying again")).await?;
                            state = "apply".into();
                        }
                    }
                }
                "verifying" => {
                    self.set_node(node, "verifying", None).await?;
                    if !plan.verify.is_empty()
                        && let Err(why) = self.verify(plan, node).await?
                    {
                        return self.fail(plan, node, "verify", why).await.map(Some);
                    }
                    state = "returning".into();
                }
                "returning" => {
                    self.set_node(node, "returning", None).await?;
                    if let Err(why) = self.return_to_service(plan, node).await? {
                        return self.fail(plan, node, "return", why).await.map(Some);
                    }
                    self.set_node(node, "done", None).await?;
                    return Ok(None);
                }
                "done" => return Ok(None),
                other => {
                    let why = format!("{node} is {other} from an earlier run");
                    return Ok(Some(Outcome::Failed {
                        node: node.to_string(),
                        step: other.to_string(),
                        message: why,
                    }));
                }
            }
        }
    }
}

/// Checks that `plan` can run in this build.
fn supported(plan: &Plan) -> Result<(), RunError> {
    if !plan.gates.is_empty() && plan.prometheus.as_deref().is_none_or(str::is_empty) {
        return Err(RunError::Refused(
            "the plan has gates but no `prometheus` URL to ask (rollout plan --prometheus URL, or add `prometheus:` to the plan)".into(),
        ));
    }
    if let Some(n) = plan.nodes().find(|n| !safe_node(&n.node)) {
        return Err(RunError::Refused(format!(
            "node name {:?} is not a host name; it would be put into commands",
            n.node
        )));
    }
    Ok(())
}

/// Refuses a `kubernetes` plan without API access before anything runs.
fn reachable(plan: &Plan, o: &RunOptions) -> Result<(), RunError> {
    match (&o.kube, plan.executor, o.dry_run) {
        (Err(e), Executor::Kubernetes, false) => Err(RunError::Refused(format!(
            "the kubernetes executor needs the Kubernetes API (an in-cluster service account or KUBECONFIG): {e}"
        ))),
        _ => Ok(()),
    }
}

/// What `run --dry-run` would do.
pub fn dry_run(plan: &Plan) -> Result<Outcome, RunError> {
    supported(plan)?;
    let mut actions = Vec::new();
    for (i, wave) in plan.waves.iter().enumerate() {
        actions.push(format!("# wave {i}: {} nodes", wave.len()));
        for n in wave {
            let node = n.node.as_str();
            if let Some(c) = Engine::executor_command(plan, node, "drain") {
                actions.push(format!("{node}: {c}"));
                actions.push(format!("{node}: squeue -h -w {node} -o %i  (until empty)"));
            }
            if plan.executor == Executor::Kubernetes {
                actions.push(format!(
                    "{node}: PATCH /api/v1/nodes/{node} {{\"spec\":{{\"unschedulable\":true}}}}"
                ));
                actions.push(format!(
                    "{node}: GET /api/v1/pods?fieldSelector=spec.nodeName={node}  (GPU pods, not of a DaemonSet)"
                ));
                actions.push(format!(
                    "{node}: POST /api/v1/namespaces/NS/pods/POD/eviction  (each; asked again while a PodDisruptionBudget refuses)"
                ));
            }
            actions.push(format!("{node}: {}", fill(&plan.apply, node)));
            for v in &plan.verify {
                actions.push(format!("{node}: {}", fill(v, node)));
            }
            if let Some(c) = Engine::executor_command(plan, node, "return") {
                actions.push(format!("{node}: {c}"));
            }
            if plan.executor == Executor::Kubernetes {
                actions.push(format!(
                    "{node}: PATCH /api/v1/nodes/{node} {{\"spec\":{{\"unschedulable\":false}}}}"
                ));
            }
        }
        let names: Vec<String> = wave.iter().map(|n| n.node.clone()).collect();
        for g in &plan.gates {
            actions.push(format!(
                "# wave {i}: gate GET {}/api/v1/query?query={} (every {} s for {} s; fails on any series)",
                plan.prometheus.as_deref().unwrap_or_default().trim_end_matches('/'),
                crate::gate::expand(g, &names, i, Duration::from_secs(plan.bake_seconds)),
                plan.gate_interval_seconds.max(1),
                plan.bake_seconds
            ));
        }
        if plan.bake_seconds > 0 && plan.gates.is_empty() {
            actions.push(format!("# wave {i}: bake {} s", plan.bake_seconds));
        }
    }
    Ok(Outcome::DryRun { actions })
}

/// Registers `plan` (a new rollout) or checks it is the stored one, then runs it.
///
/// # Errors
///
/// [`RunError`]: a store failure, or a run that is refused.
pub async fn run(store: &Store, plan: &Plan, o: RunOptions) -> Result<Outcome, RunError> {
    supported(plan)?;
    reachable(plan, &o)?;
    if o.dry_run {
        return dry_run(plan);
    }
    let text = serde_json::to_string(plan).map_err(|e| RunError::Refused(e.to_string()))?;
    let existing = sqlx::query("SELECT plan FROM rollouts WHERE change_name = $1")
        .bind(&plan.change)
        .fetch_optional(store.pool())
        .await
        .map_err(db)?;
    match existing {
        Some(row) => {
            let stored: String = row.try_get(0).map_err(db)?;
            if stored != text {
                return Err(RunError::Refused(format!(
                    "a rollout of {} with another plan is in the store: `linkwise rollout resume {}` continues it, `abort` ends it",
                    plan.change, plan.change
                )));
            }
        }
        None => {
            let mut tx = store.pool().begin().await.map_err(db)?;
            let now = now_us();
            sqlx::query(
                "INSERT INTO rollouts (change_name, plan, state, created_us, updated_us) VALUES ($1, $2, 'running', $3, $3)",
            )
            .bind(&plan.change)
            .bind(&text)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let mut position = 0i64;
            for (w, wave) in plan.waves.iter().enumerate() {
                for n in wave {
                    sqlx::query(
                        "INSERT INTO rollout_nodes (change_name, node, wave, position, state, updated_us) \
                         VALUES ($1, $2, $3, $4, 'pending', $5)",
                    )
                    .bind(&plan.change)
                    .bind(&n.node)
                    .bind(i64::try_from(w).unwrap_or(i64::MAX))
                    .bind(position)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                    position += 1;
                }
            }
            tx.commit().await.map_err(db)?;
        }
    }
    resume(store, &plan.change, o).await
}

/// The state of the rollout of `change` (`running`, `aborted`, ...).
async fn rollout_state(store: &Store, change: &str) -> Result<String, RunError> {
    let row = sqlx::query("SELECT state FROM rollouts WHERE change_name = $1")
        .bind(change)
        .fetch_one(store.pool())
        .await
        .map_err(db)?;
    row.try_get(0).map_err(db)
}

/// The stored plan of `change`.
async fn stored_plan(store: &Store, change: &str) -> Result<(Plan, String), RunError> {
    let row = sqlx::query("SELECT plan, state FROM rollouts WHERE change_name = $1")
        .bind(change)
        .fetch_optional(store.pool())
        .await
        .map_err(db)?
        .ok_or_else(|| {
            RunError::Refused(format!(
                "no rollout of {change} in the store (`linkwise rollout run PLAN` starts one)"
            ))
        })?;
    let text: String = row.try_get(0).map_err(db)?;
    let state: String = row.try_get(1).map_err(db)?;
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| RunError::Store(format!("stored plan of {change}: {e}")))?;
    Ok((plan, state))
}

/// Continues the rollout of `change` from its stored state.
///
/// # Errors
///
/// [`RunError`].
pub async fn resume(store: &Store, change: &str, o: RunOptions) -> Result<Outcome, RunError> {
    let (plan, state) = stored_plan(store, change).await?;
    match state.as_str() {
        "succeeded" => {
            return Ok(Outcome::Succeeded {
                nodes: plan.nodes().count(),
            });
        }
        "aborted" | "failed" | "rolled-back" | "rolling-back" => {
            return Err(RunError::Refused(format!(
                "rollout {change} is {state}; start a new change to go on"
            )));
        }
        _ => {}
    }
    supported(&plan)?;
    reachable(&plan, &o)?;
    if o.dry_run {
        return dry_run(&plan);
    }
    let engine = Engine {
        store,
        change: change.to_string(),
        owner: owner(),
        o,
    };
    engine.lease().await?;
    engine
        .log(
            None,
            "run",
            None,
            None,
            Some(&format!("run by {}", engine.owner)),
        )
        .await?;
    let waves = plan.waves.len();
    for w in 0..waves {
        let rows = sqlx::query(
            "SELECT node, state, pgid FROM rollout_nodes WHERE change_name = $1 AND wave = $2 ORDER BY position",
        )
        .bind(change)
        .bind(i64::try_from(w).unwrap_or(i64::MAX))
        .fetch_all(store.pool())
        .await
        .map_err(db)?;
        engine.wave_started(w).await?;
        for row in &rows {
            if rollout_state(store, change).await? == "aborted" {
                engine
                    .log(
                        None,
                        "aborted",
                        None,
                        None,
                        Some("aborted by an operator: no further node"),
                    )
                    .await?;
                engine.release_lease().await?;
                return Err(RunError::Refused(format!("rollout {change} was aborted")));
            }
            let node: String = row.try_get(0).map_err(db)?;
            let st: String = row.try_get(1).map_err(db)?;
            let pgid: Option<i64> = row.try_get(2).map_err(db)?;
            if let Some(failed) = engine.node(&plan, &node, &st, pgid).await? {
                engine.release_lease().await?;
                return Ok(failed);
            }
        }
        if !plan.gates.is_empty() {
            if let Some(failed) = engine.gate(&plan, w).await? {
                engine.release_lease().await?;
                return Ok(failed);
            }
        } else if plan.bake_seconds > 0 && w + 1 < waves {
            engine
                .log(
                    None,
                    "bake",
                    None,
                    None,
                    Some(&format!("wave {w}: baking {} s", plan.bake_seconds)),
                )
                .await?;
            tokio::time::sleep(Duration::from_secs(plan.bake_seconds)).await;
        }
    }
    engine.set_rollout("succeeded", None).await?;
    engine.log(None, "succeeded", None, None, None).await?;
    engine.release_lease().await?;
    Ok(Outcome::Succeeded {
        nodes: plan.nodes().count(),
    })
}

/// Ends the rollout of `change`: no further node is touched.
///
/// # Errors
///
/// [`RunError`].
pub async fn abort(store: &Store, change: &str) -> Result<(), RunError> {
    stored_plan(store, change).await?;
    sqlx::query("UPDATE rollouts SET state = 'aborted', message = 'aborted by an operator', updated_us = $1 WHERE change_name = $2")
        .bind(now_us())
        .bind(change)
        .execute(store.pool())
        .await
        .map_err(db)?;
    Ok(())
}

/// Undoes the change on every node it reached, last changed first: each node whose apply
/// ran (or may have: in flight when a run died) is drained, its rollback command run and
/// it is returned to service, then marked `rolled-back`; quarantined nodes were rolled
/// back when they failed and pending ones were never touched. The rollout ends
/// `rolled-back` (not resumable). Run again after a crash, it goes on with the nodes not
/// yet rolled back (a node caught mid-rollback is rolled back again: rollback commands
/// must be safe to repeat, as apply commands must). A rollback command failing stops it
/// there, the node quarantined.
///
/// # Errors
///
/// [`RunError`]: no such rollout, no rollback command, another run holds the lease.
pub async fn rollback(store: &Store, change: &str, o: RunOptions) -> Result<Outcome, RunError> {
    let (plan, _) = stored_plan(store, change).await?;
    let Some(command) = plan.rollback.clone() else {
        return Err(RunError::Refused(format!(
            "the plan of {change} has no rollback command: nothing to undo the change with"
        )));
    };
    supported(&plan)?;
    reachable(&plan, &o)?;
    let rows = sqlx::query(
        "SELECT node, state, pgid FROM rollout_nodes WHERE change_name = $1 ORDER BY position DESC",
    )
    .bind(change)
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    let mut todo = Vec::new();
    for r in &rows {
        let node: String = r.try_get(0).map_err(db)?;
        let state: String = r.try_get(1).map_err(db)?;
        let pgid: Option<i64> = r.try_get(2).map_err(db)?;
        if !matches!(
            state.as_str(),
            "pending" | "draining" | "quarantined" | "rolled-back"
        ) {
            todo.push((node, pgid));
        }
    }
    if o.dry_run {
        let mut actions = Vec::new();
        for (node, _) in &todo {
            if let Some(c) = Engine::executor_command(&plan, node, "drain") {
                actions.push(format!("{node}: {c}"));
            }
            actions.push(format!("{node}: {}", fill(&command, node)));
            if let Some(c) = Engine::executor_command(&plan, node, "return") {
                actions.push(format!("{node}: {c}"));
            }
        }
        return Ok(Outcome::DryRun { actions });
    }
    let engine = Engine {
        store,
        change: change.to_string(),
        owner: owner(),
        o,
    };
    engine.lease().await?;
    engine
        .set_rollout("rolling-back", Some("rollback by an operator"))
        .await?;
    engine
        .log(
            None,
            "rollback",
            None,
            None,
            Some(&format!("{} nodes to roll back", todo.len())),
        )
        .await?;
    for (node, pgid) in &todo {
        engine.lease().await?;
        // An apply a dead run left in flight ends before its node is rolled back.
        if let Some(g) = pgid {
            engine.wait_group(node, *g).await?;
        }
        engine.set_node(node, "rolling-back", None).await?;
        if let Some(why) = engine.drain(&plan, node).await? {
            return engine.fail(&plan, node, "drain", why).await;
        }
        let r = engine
            .command(node, "rollback", &fill(&command, node), None)
            .await?;
        if r.code != Some(0) {
            let why = format!("rollback {}", ended(&r));
            let mut p = plan.clone();
            p.rollback = None; // it just failed: not run again
            return engine.fail(&p, node, "rollback", why).await;
        }
        if let Err(why) = engine.return_to_service(&plan, node).await? {
            return engine.fail(&plan, node, "return", why).await;
        }
        engine.set_node(node, "rolled-back", None).await?;
    }
    engine
        .set_rollout("rolled-back", Some("rolled back by an operator"))
        .await?;
    engine.log(None, "rolled-back", None, None, None).await?;
    engine.release_lease().await?;
    Ok(Outcome::RolledBack { nodes: todo.len() })
}

/// The state of the rollout of `change`, with its audit log.
///
/// # Errors
///
/// [`RunError`].
pub async fn status(store: &Store, change: &str) -> Result<Status, RunError> {
    let (_, state) = stored_plan(store, change).await?;
    let row = sqlx::query(
        "SELECT message, lease_owner, lease_until_us FROM rollouts WHERE change_name = $1",
    )
    .bind(change)
    .fetch_one(store.pool())
    .await
    .map_err(db)?;
    let message: Option<String> = row.try_get(0).map_err(db)?;
    let holder: Option<String> = row.try_get(1).map_err(db)?;
    let until: Option<i64> = row.try_get(2).map_err(db)?;
    let nodes = sqlx::query(
        "SELECT node, wave, state FROM rollout_nodes WHERE change_name = $1 ORDER BY position",
    )
    .bind(change)
    .fetch_all(store.pool())
    .await
    .map_err(db)?
    .iter()
    .map(|r| {
        Ok(NodeStatus {
            node: r.try_get(0).map_err(db)?,
            wave: r.try_get(1).map_err(db)?,
            state: r.try_get(2).map_err(db)?,
        })
    })
    .collect::<Result<Vec<_>, RunError>>()?;
    let log = sqlx::query(
        "SELECT at_us, node, step, command, exit_code, output FROM rollout_log WHERE change_name = $1 ORDER BY seq",
    )
    .bind(change)
    .fetch_all(store.pool())
    .await
    .map_err(db)?
    .iter()
    .map(|r| {
        Ok(LogLine {
            at: rfc3339_us(r.try_get(0).map_err(db)?),
            node: r.try_get(1).map_err(db)?,
            step: r.try_get(2).map_err(db)?,
            command: r.try_get(3).map_err(db)?,
            exit_code: r.try_get(4).map_err(db)?,
            output: r.try_get(5).map_err(db)?,
        })
    })
    .collect::<Result<Vec<_>, RunError>>()?;
    Ok(Status {
        change: change.to_string(),
        state,
        message,
        lease: holder.map(|h| format!("{h} until {}", rfc3339_us(until.unwrap_or(0)))),
        nodes,
        log,
    })
}
