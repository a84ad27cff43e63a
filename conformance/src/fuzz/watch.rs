//! The broker process as the fuzzer sees it from outside: alive or not, its resident memory
//! (`VmRSS` in /proc/<pid>/status), and new `panicked` lines in its log.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

#[derive(Debug)]
pub struct Broker {
    pid: Option<u32>,
    log: Option<PathBuf>,
    log_offset: u64,
}

impl Broker {
    pub fn new(pid: Option<u32>, log: Option<PathBuf>) -> Broker {
        // Panics logged before the run started are not this run's findings.
        let log_offset = log
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        Broker {
            pid,
            log,
            log_offset,
        }
    }

    /// `Err` when the process has exited (or is a zombie).
    pub fn alive(&self) -> Result<(), String> {
        let Some(pid) = self.pid else { return Ok(()) };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|_| format!("the broker (pid {pid}) has exited"))?;
        // The state is the first field after the parenthesised command name.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?");
        match state {
            "Z" | "X" => Err(format!("the broker (pid {pid}) has exited (state {state})")),
            _ => Ok(()),
        }
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        rss_from_status(&status)
    }

    /// Log lines with `panicked` written since the last call (the last lines that are whole).
    pub fn new_panics(&mut self) -> Vec<String> {
        let Some(path) = &self.log else {
            return Vec::new();
        };
        let Ok(mut file) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let mut text = Vec::new();
        if file.seek(SeekFrom::Start(self.log_offset)).is_err()
            || file.read_to_end(&mut text).is_err()
        {
            return Vec::new();
        }
        // A line still being written is read again next time.
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.log_offset += whole as u64;
        String::from_utf8_lossy(&text[..whole])
            .lines()
            .filter(|line| line.contains("panicked"))
            .map(str::to_owned)
            .collect()
    }
}

fn rss_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `Err` when memory still grows at the end of a run: the highest sample of the last quarter
/// is above 1.5 × the highest of the second quarter plus 32 MiB. The first quarter is warm-up
/// (queues and caches filling to their bounds).
pub fn growth_verdict(samples_kib: &[u64]) -> Result<(), String> {
    if samples_kib.len() < 8 {
        return Ok(());
    }
    let quarter = samples_kib.len() / 4;
    let second = samples_kib[quarter..2 * quarter]
        .iter()
        .max()
        .copied()
        .unwrap_or(0);
    let last = samples_kib[samples_kib.len() - quarter..]
        .iter()
        .max()
        .copied()
        .unwrap_or(0);
    if last > second + second / 2 + 32 * 1024 {
        Err(format!(
            "resident memory still growing: {} MiB at most in the second quarter of the run, {} MiB in the last",
            second / 1024,
            last / 1024
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\therald\nVmPeak:\t  9000 kB\nVmRSS:\t    6144 kB\nThreads:\t3\n";
        assert_eq!(rss_from_status(status), Some(6144));
    }

    #[test]
    fn a_plateau_passes_and_steady_growth_fails() {
        let plateau: Vec<u64> = (0..40).map(|i| 20_000 + (i.min(10) * 2_000)).collect();
        assert!(growth_verdict(&plateau).is_ok());
        let growing: Vec<u64> = (0..40).map(|i| 20_000 + i * 10_000).collect();
        assert!(growth_verdict(&growing).is_err());
    }

    #[test]
    fn this_process_is_alive_and_has_memory() {
        let broker = Broker::new(Some(std::process::id()), None);
        assert!(broker.alive().is_ok());
        assert!(broker.rss_kib().unwrap() > 0);
    }

    #[test]
    fn panics_are_read_once() {
        let path = std::env::temp_dir().join(format!("fz-watch-{}.log", std::process::id()));
        std::fs::write(&path, "old panicked line\n").unwrap();
        let mut broker = Broker::new(None, Some(path.clone()));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"ok\nthread 'x' panicked at a.rs\npartial").unwrap();
        assert_eq!(
            broker.new_panics(),
            vec!["thread 'x' panicked at a.rs".to_owned()]
        );
        assert!(broker.new_panics().is_empty());
        std::fs::remove_file(&path).unwrap();
    }
}
