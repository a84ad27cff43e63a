//! `--cpu-pid LABEL=PID`: the CPU time of other processes (a cluster's other nodes, its NATS
//! server) over the same window as the broker's, so one run shows where the CPU went.

use serde_json::{Map, Value};

use crate::cli::CpuPid;
use crate::procfs;
use crate::report::{Report, round3};

/// The processes' CPU seconds at the start of the window.
#[derive(Debug)]
pub struct Watched {
    start: Vec<(CpuPid, f64)>,
}

impl Watched {
    /// Reads every process's CPU time now; a process that cannot be read is an error, since
    /// its figure would silently be missing.
    pub fn start(pids: &[CpuPid]) -> Result<Watched, String> {
        let start = pids
            .iter()
            .map(|p| Ok((p.clone(), procfs::cpu_seconds(p.pid)?)))
            .collect::<Result<_, String>>()?;
        Ok(Watched { start })
    }

    /// Reads every process's CPU time again: what each used since [`Watched::start`].
    pub fn stop(&self) -> Spent {
        Spent {
            rows: self
                .start
                .iter()
                .map(|(p, before)| {
                    let spent = procfs::cpu_seconds(p.pid).map(|after| after - before);
                    (p.label.clone(), spent)
                })
                .collect(),
        }
    }
}

/// Each watched process's CPU seconds over the window.
#[derive(Debug)]
pub struct Spent {
    rows: Vec<(String, Result<f64, String>)>,
}

impl Spent {
    /// Prints each process's CPU seconds and their share of one core over `window_s`; JSON
    /// `cpu_seconds` maps each label to its seconds.
    pub fn report(&self, report: &mut Report, window_s: f64, window: &str) {
        if self.rows.is_empty() {
            return;
        }
        let mut figures = Map::new();
        for (label, spent) in &self.rows {
            match spent {
                Ok(cpu) => {
                    report.say(format!(
                        "{label} CPU: {cpu:.2} s from {window} ({:.0}% of one core)",
                        100.0 * cpu / window_s.max(1e-9)
                    ));
                    figures.insert(label.clone(), Value::from(round3(*cpu)));
                }
                Err(e) => report.say(format!("{label} CPU: unknown ({e})")),
            }
        }
        report.set("cpu_seconds", Value::Object(figures));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_watched_and_a_missing_one_is_refused() {
        let me = CpuPid {
            label: "self".to_owned(),
            pid: std::process::id(),
        };
        let watched = Watched::start(std::slice::from_ref(&me)).unwrap();
        let spent = watched.stop();
        let [(label, Ok(cpu))] = spent.rows.as_slice() else {
            panic!("{spent:?}")
        };
        assert_eq!(label, "self");
        assert!(*cpu >= 0.0);
        let mut report = Report::default();
        spent.report(&mut report, 1.0, "test");
        assert!(report.figures()["cpu_seconds"]["self"].is_number());
        let gone = CpuPid {
            label: "gone".to_owned(),
            pid: u32::MAX,
        };
        assert!(Watched::start(&[gone]).is_err());
    }
}
