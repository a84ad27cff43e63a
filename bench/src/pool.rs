//! The parent's side of its workers: spawns them (this executable, `worker` subcommand),
//! gathers their report lines, stops them, and makes sure none outlives the run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::cli::{Common, WorkerArgs};
use crate::wire;

#[derive(Debug)]
pub struct Pool {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    /// Report lines received so far, per worker, not yet taken by [`Pool::collect`].
    pending: Vec<Vec<String>>,
    /// Workers whose stdout has closed.
    gone: Vec<bool>,
    lines: mpsc::UnboundedReceiver<(usize, Option<String>)>,
}

impl Pool {
    pub fn spawn(common: &Common, shares: &[WorkerArgs]) -> Result<Pool, String> {
        let exe = std::env::current_exe().map_err(|e| format!("finding own executable: {e}"))?;
        let (tx, lines) = mpsc::unbounded_channel();
        let mut pool = Pool {
            children: Vec::new(),
            stdins: Vec::new(),
            pending: vec![Vec::new(); shares.len()],
            gone: vec![false; shares.len()],
            lines,
        };
        for (i, share) in shares.iter().enumerate() {
            let mut child = Command::new(&exe)
                .args(share.command_line(common))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("starting worker {i}: {e}"))?;
            let stdout = child.stdout.take().expect("stdout is piped");
            pool.stdins.push(child.stdin.take());
            pool.children.push(child);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send((i, Some(line))).is_err() {
                        return;
                    }
                }
                let _ = tx.send((i, None));
            });
        }
        Ok(pool)
    }

    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Waits until every worker has sent a line of `kind` (or has exited), or the deadline.
    /// Returns each worker's line, `None` for those that did not send one.
    pub async fn collect(&mut self, kind: &str, deadline: Instant) -> Vec<Option<String>> {
        let mut found: Vec<Option<String>> = vec![None; self.len()];
        loop {
            for (i, pending) in self.pending.iter_mut().enumerate() {
                if found[i].is_none() {
                    if let Some(at) = pending.iter().position(|l| wire::kind(l) == kind) {
                        found[i] = Some(pending.remove(at));
                    }
                }
            }
            let waiting = (0..self.len()).any(|i| found[i].is_none() && !self.gone[i]);
            if !waiting {
                return found;
            }
            match tokio::time::timeout_at(deadline.into(), self.lines.recv()).await {
                Ok(Some((i, Some(line)))) => self.pending[i].push(line),
                Ok(Some((i, None))) => self.gone[i] = true,
                Ok(None) | Err(_) => return found,
            }
        }
    }

    /// Tells every worker to stop; each then reports `finished` and exits.
    pub async fn stop_all(&mut self) {
        for stdin in self.stdins.iter_mut().flatten() {
            let _ = stdin.write_all(b"stop\n").await;
            let _ = stdin.flush().await;
        }
    }

    /// Waits up to `grace` for the workers to exit, then kills those still running.
    pub async fn reap(mut self, grace: Duration) {
        self.stdins.clear();
        let deadline = Instant::now() + grace;
        for child in &mut self.children {
            if tokio::time::timeout_at(deadline.into(), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}
