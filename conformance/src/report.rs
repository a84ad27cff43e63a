//! Result lines as cases finish, the summary line, and the JSON file.

use std::io::Write;
use std::path::Path;

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One case on one transport.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Name with the transport suffix, e.g. `negotiation.highest_common [ws]`.
    pub name: String,
    pub case: &'static str,
    pub transport: &'static str,
    pub tags: &'static [&'static str],
    pub status: Status,
    pub reason: String,
    pub millis: u128,
}

/// Every outcome so far; each is printed when recorded.
#[derive(Debug, Default)]
pub struct Report {
    outcomes: Vec<Outcome>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    pub fn record(&mut self, outcome: Outcome) {
        let line = match outcome.status {
            Status::Pass => format!("PASS {}", outcome.name),
            Status::Fail => format!("FAIL {}: {}", outcome.name, one_line(&outcome.reason)),
            Status::Skip => format!("SKIP {}: {}", outcome.name, one_line(&outcome.reason)),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        self.outcomes.push(outcome);
    }

    fn count(&self, status: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == status).count()
    }

    pub fn failed(&self) -> usize {
        self.count(Status::Fail)
    }

    /// Prints the summary line.
    pub fn finish(&self) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Skip)
        );
        let _ = out.flush();
    }

    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        let cases: Vec<serde_json::Value> = self
            .outcomes
            .iter()
            .map(|o| {
                serde_json::json!({
                    "name": o.name,
                    "case": o.case,
                    "transport": o.transport,
                    "tags": o.tags,
                    "status": o.status.label(),
                    "reason": o.reason,
                    "millis": o.millis as u64,
                })
            })
            .collect();
        let document = serde_json::json!({
            "passed": self.count(Status::Pass),
            "failed": self.count(Status::Fail),
            "skipped": self.count(Status::Skip),
            "cases": cases,
        });
        let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Reasons may quote server text; keep each result on one line.
fn one_line(reason: &str) -> String {
    reason.replace(['\r', '\n'], " ")
}
