//! Output: plain text lines as the run goes, and the same figures as JSON for `--json`.

use std::path::Path;

use serde_json::{Map, Value};

use crate::cli::Common;
use crate::procfs;

/// Bytes in a MiB, for memory figures.
pub const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Default)]
pub struct Report {
    figures: Map<String, Value>,
}

impl Report {
    /// Prints one line of the text report.
    pub fn say(&self, text: impl AsRef<str>) {
        println!("{}", text.as_ref());
    }

    /// Records a figure for the JSON file.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.figures.insert(key.to_owned(), value.into());
    }

    pub fn figures(&self) -> &Map<String, Value> {
        &self.figures
    }

    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.figures).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

/// Records which broker a run measured: its URL and its label (the URL unless given).
/// With `--sub-url`, also which endpoints the subscribers were spread over.
pub fn target(report: &mut Report, common: &Common) {
    report.set("url", common.url.as_str());
    report.set("label", common.label.as_deref().unwrap_or(&common.url));
    if !common.sub_urls.is_empty() {
        report.say(format!(
            "subscriber connections round-robin over: {} (publishers on {})",
            common.sub_urls.join(", "),
            common.url
        ));
        report.set("sub_urls", common.sub_urls.clone());
    }
}

/// A producer's pace for the opening line: "full speed" or "R msgs/s".
pub fn pace(rate: u64) -> String {
    match rate {
        0 => "full speed".to_owned(),
        r => format!("{r} msgs/s"),
    }
}

/// Rounds for display and JSON: 3 decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The load tool's own CPU time, parent and (reaped) workers: if it nears the machine's
/// capacity, the figures measure the tool as much as the broker.
pub fn own_cpu(report: &mut Report) {
    if let (Ok(own), Ok(workers)) = (procfs::own_cpu_seconds(), procfs::children_cpu_seconds()) {
        report.say(format!(
            "load tool CPU: {:.2} s (parent {own:.2} s, workers {workers:.2} s)",
            own + workers
        ));
        report.set("load_tool_cpu_seconds", round3(own + workers));
    }
}

/// How busy the whole machine was: near 100%, the broker and this tool were competing for
/// the cores (with each other, with kernel network processing, or with anything else running).
pub fn machine_cpu(report: &mut Report, share: f64, window: &str) {
    report.say(format!(
        "machine CPU: {:.0}% of {} core(s) busy from {window} (all processes, kernel included)",
        100.0 * share,
        procfs::cores()
    ));
    report.set("machine_cpu_busy_share", round3(share));
}
