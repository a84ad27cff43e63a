//! Sums the workers' report lines into one set of figures.

use crate::hist::{self, Hist};
use crate::wire::{self, Finished, Ready};

#[derive(Debug)]
pub struct ReadyTotals {
    pub ok: usize,
    pub failed: usize,
    /// Workers that sent no `ready` line (crashed or out of time).
    pub missing: usize,
    /// The slowest worker's first-connect-to-last-RECEIPT time.
    pub max_elapsed_us: u64,
    pub setup: Hist,
    pub first_error: Option<String>,
}

#[derive(Debug)]
pub struct FinishedTotals {
    pub received: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub complete: usize,
    pub closed_early: usize,
    pub error_frames: usize,
    pub missing: usize,
    pub latency: Hist,
    /// Per message number, the latest arrival over all workers (µs after the send; 0 = none).
    pub rounds: Vec<u64>,
    pub first_error: Option<String>,
}

pub fn ready(lines: &[Option<String>]) -> ReadyTotals {
    let mut t = ReadyTotals {
        ok: 0,
        failed: 0,
        missing: 0,
        max_elapsed_us: 0,
        setup: hist::new(),
        first_error: None,
    };
    for parsed in readable(lines, Ready::from_line, &mut t.missing, &mut t.first_error) {
        t.ok += parsed.ok;
        t.failed += parsed.failed;
        t.max_elapsed_us = t.max_elapsed_us.max(parsed.elapsed_us);
        if let Err(e) = hist::add_line(&mut t.setup, &parsed.setup) {
            t.first_error.get_or_insert(e);
        }
        if let Some(e) = parsed.err {
            t.first_error.get_or_insert(e);
        }
    }
    t
}

pub fn finished(lines: &[Option<String>]) -> FinishedTotals {
    let mut t = FinishedTotals {
        received: 0,
        first_ns: 0,
        last_ns: 0,
        complete: 0,
        closed_early: 0,
        error_frames: 0,
        missing: 0,
        latency: hist::new(),
        rounds: Vec::new(),
        first_error: None,
    };
    for parsed in readable(
        lines,
        Finished::from_line,
        &mut t.missing,
        &mut t.first_error,
    ) {
        t.received += parsed.received;
        if parsed.first_ns > 0 && (t.first_ns == 0 || parsed.first_ns < t.first_ns) {
            t.first_ns = parsed.first_ns;
        }
        t.last_ns = t.last_ns.max(parsed.last_ns);
        t.complete += parsed.complete;
        t.closed_early += parsed.closed_early;
        t.error_frames += parsed.error_frames;
        if let Err(e) = hist::add_line(&mut t.latency, &parsed.latency) {
            t.first_error.get_or_insert(e);
        }
        match wire::rounds_from_field(&parsed.rounds) {
            Ok(rounds) => {
                if t.rounds.len() < rounds.len() {
                    t.rounds.resize(rounds.len(), 0);
                }
                for (latest, arrival) in t.rounds.iter_mut().zip(rounds) {
                    *latest = (*latest).max(arrival);
                }
            }
            Err(e) => {
                t.first_error.get_or_insert(e);
            }
        }
        if let Some(e) = parsed.err {
            t.first_error.get_or_insert(e);
        }
    }
    t
}

/// The lines that parse; a worker without a line, or with one that does not parse, counts as
/// missing (the latter also as an error).
fn readable<T>(
    lines: &[Option<String>],
    parse: fn(&str) -> Result<T, String>,
    missing: &mut usize,
    first_error: &mut Option<String>,
) -> Vec<T> {
    let mut parsed = Vec::with_capacity(lines.len());
    for line in lines {
        match line.as_deref().map(parse) {
            Some(Ok(report)) => parsed.push(report),
            Some(Err(e)) => {
                *missing += 1;
                first_error.get_or_insert(format!("unreadable worker report: {e}"));
            }
            None => *missing += 1,
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_add_up_and_missing_workers_are_counted() {
        let a = Ready {
            ok: 5000,
            failed: 0,
            elapsed_us: 2_000_000,
            setup: "100:4000,2000:1000".to_owned(),
            err: None,
        };
        let b = Ready {
            ok: 4999,
            failed: 1,
            elapsed_us: 2_500_000,
            setup: "150:4999".to_owned(),
            err: Some("connect: refused".to_owned()),
        };
        let t = ready(&[Some(a.to_line()), Some(b.to_line()), None]);
        assert_eq!((t.ok, t.failed, t.missing), (9999, 1, 1));
        assert_eq!(t.max_elapsed_us, 2_500_000);
        assert_eq!(t.setup.len(), 9999);
        assert_eq!(t.first_error.as_deref(), Some("connect: refused"));
    }

    #[test]
    fn finished_lines_take_the_earliest_first_and_latest_last() {
        let line = |received, first_ns, last_ns| {
            Some(
                Finished {
                    received,
                    first_ns,
                    last_ns,
                    complete: 1,
                    closed_early: 0,
                    error_frames: 0,
                    latency: format!("1000:{received}"),
                    rounds: format!("{last_ns},{first_ns}"),
                    err: None,
                }
                .to_line(),
            )
        };
        let t = finished(&[line(10, 50, 90), line(0, 0, 0), line(20, 40, 80)]);
        assert_eq!(t.received, 30);
        assert_eq!((t.first_ns, t.last_ns), (40, 90));
        assert_eq!(t.complete, 3);
        assert_eq!(t.latency.len(), 30);
        assert_eq!(t.rounds, vec![90, 50]);
        assert_eq!(t.missing, 0);
        let bad = finished(&[Some("finished received=x".to_owned())]);
        assert_eq!(bad.missing, 1);
        assert!(bad.first_error.is_some());
    }
}
