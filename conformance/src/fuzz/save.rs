//! Saving a failing iteration: every connection's bytes as sent, write by write, and the
//! command that regenerates the iteration from its seed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::oracle::escaped;
use super::plan::Plan;
use crate::wire::{Target, WsKind};

/// Writes `<out>/seed<S>-it<N>-<kind>/` and returns its path.
pub fn save(
    out: &Path,
    seed: u64,
    target: &Target,
    plans: &[&Plan],
    kind: &str,
    message: &str,
) -> Result<PathBuf, String> {
    let last = plans.last().map_or(0, |p| p.iteration);
    let dir = out.join(format!("seed{seed}-it{last}-{kind}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut summary = format!(
        "failure: {kind}: {message}\nseed: {seed}\ntarget: {}\n",
        target.url
    );
    for plan in plans {
        let _ = writeln!(
            summary,
            "regenerate iteration {}: herald-conformance fuzz --url {} --seed {seed} --start-iteration {} --iterations 1",
            plan.iteration, target.url, plan.iteration
        );
        for sub in &plan.subscribers {
            let subscriptions: Vec<String> = sub
                .subscriptions
                .iter()
                .map(|s| format!("{} {} ack:{}", s.id, s.destination, s.ack))
                .collect();
            let _ = writeln!(
                summary,
                "  subscriber {} (accept-version {}): {}",
                sub.index,
                sub.version,
                subscriptions.join(", ")
            );
        }
        for script in &plan.scripts {
            let stem = format!("it{}-conn{}", plan.iteration, script.index);
            let all: Vec<u8> = script.writes.iter().flat_map(|w| w.bytes.clone()).collect();
            write(&dir.join(format!("{stem}.bin")), &all)?;
            let mut writes = String::new();
            for w in &script.writes {
                let kind = match w.kind {
                    WsKind::Text => "text",
                    WsKind::Binary => "binary",
                };
                let _ = writeln!(
                    writes,
                    "pause {} ms, {kind}, {} bytes: {}",
                    w.pause_ms,
                    w.bytes.len(),
                    full_escape(&w.bytes)
                );
            }
            write(&dir.join(format!("{stem}.writes.txt")), writes.as_bytes())?;
            let _ = writeln!(
                summary,
                "  connection {}: {stem}.bin ({} bytes in {} writes), starts {}",
                script.index,
                all.len(),
                script.writes.len(),
                escaped(&all)
            );
        }
    }
    write(&dir.join("failure.txt"), summary.as_bytes())?;
    Ok(dir)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every byte, escaped (long bodies included), so a write can be read and retyped.
fn full_escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
