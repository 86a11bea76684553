//! A `linkwise` server started by a test: killed when dropped (a failing test leaves
//! nothing running), its stderr collected line by line, its "serving on ADDR" line and
//! its sockets waited for against a deadline.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wait::poll_until;

/// A running process whose stderr is collected; killed and reaped on drop.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Spawned {
    /// Starts `cmd` with stdout discarded and stderr piped into the line collector.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn start(mut cmd: Command) -> Spawned {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Spawned { child, lines }
    }

    /// The stderr lines so far, joined.
    pub fn stderr(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// The first stderr line `pred` accepts, waiting up to `within`.
    ///
    /// # Panics
    ///
    /// When no such line comes in time: the message has `what` and the stderr so far.
    pub fn wait_for_line(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        poll_until(within, &format!("a stderr line {what}"), || {
            self.lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|l| pred(l))
                .cloned()
        })
        .unwrap_or_else(|e| panic!("{e}; stderr:\n{}", self.stderr()))
    }

    /// The address of the "serving on ADDR" line the servers print at any verbosity.
    ///
    /// # Panics
    ///
    /// When no such line comes within `within`.
    pub fn serving_addr(&self, within: Duration) -> SocketAddr {
        let line = self.wait_for_line(within, "saying where it serves", |l| {
            l.split_once("serving on ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|a| a.parse::<SocketAddr>().is_ok())
        });
        let rest = line.split_once("serving on ").map(|(_, r)| r).unwrap_or("");
        rest.split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .expect("checked above")
    }

    /// Waits until `path` exists (a server's Unix socket, which linkwise binds under a
    /// temporary name and renames into place, so it exists only once it accepts).
    ///
    /// # Panics
    ///
    /// When it does not appear within `within`, or the process exited.
    pub fn wait_for_path(&mut self, path: &Path, within: Duration) {
        let res = poll_until(within, &format!("{} to appear", path.display()), || {
            path.exists().then_some(())
        });
        if let Err(e) = res {
            let status = self.child.try_wait().ok().flatten();
            panic!("{e} (process: {status:?}); stderr:\n{}", self.stderr());
        }
    }

    /// The process, for signals and exit status.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}
