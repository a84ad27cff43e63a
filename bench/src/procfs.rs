//! What `/proc` says about a process: resident memory and CPU time.

/// Clock ticks per second of `/proc/PID/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The process's resident set in bytes, from `VmRSS` in `/proc/PID/status`.
pub fn rss(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    parse_vm_rss(&status).ok_or_else(|| format!("no VmRSS in {path}"))
}

/// CPU seconds (user + system) the process has used.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = read_stat(&pid.to_string())?;
    Ok((stat_field(&stat, 14)? + stat_field(&stat, 15)?) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds (user + system) used by this process's children that have been waited for.
pub fn children_cpu_seconds() -> Result<f64, String> {
    let stat = read_stat("self")?;
    Ok((stat_field(&stat, 16)? + stat_field(&stat, 17)?) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds (user + system) this process has used.
pub fn own_cpu_seconds() -> Result<f64, String> {
    let stat = read_stat("self")?;
    Ok((stat_field(&stat, 14)? + stat_field(&stat, 15)?) as f64 / TICKS_PER_SECOND)
}

/// The whole machine's CPU time so far, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    pub fn now() -> Result<MachineCpu, String> {
        let stat = std::fs::read_to_string("/proc/stat")
            .map_err(|e| format!("reading /proc/stat: {e}"))?;
        parse_machine_cpu(&stat).ok_or_else(|| "no cpu line in /proc/stat".to_owned())
    }

    /// Share of all cores busy (user, system, irq, softirq, steal) between `self` and `later`.
    pub fn busy_share_until(self, later: MachineCpu) -> f64 {
        let total = later.total.saturating_sub(self.total);
        later.busy.saturating_sub(self.busy) as f64 / total.max(1) as f64
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn parse_machine_cpu(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if ticks.len() < 5 {
        return None;
    }
    let total: u64 = ticks.iter().sum();
    let idle = ticks[3] + ticks[4];
    Some(MachineCpu {
        busy: total - idle,
        total,
    })
}

fn read_stat(pid: &str) -> Result<String, String> {
    let path = format!("/proc/{pid}/stat");
    std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))
}

/// Field `n` (1-based, as in proc(5)) of a `stat` line. The command name (field 2) may hold
/// spaces, so fields are counted from its closing parenthesis.
fn stat_field(stat: &str, n: usize) -> Result<u64, String> {
    let after_name = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or("malformed stat line")?;
    after_name
        .split_whitespace()
        .nth(n - 3)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("no field {n} in stat line"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\therald\nVmHWM:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn stat_fields_are_counted_past_a_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194304 10 0 0 0 250 30 7 9 20 0 1";
        assert!(stat_field(stat, 3).is_err());
        assert_eq!(stat_field(stat, 4), Ok(1));
        assert_eq!(stat_field(stat, 14), Ok(250));
        assert_eq!(stat_field(stat, 15), Ok(30));
        assert_eq!(stat_field(stat, 17), Ok(9));
    }

    #[test]
    fn machine_cpu_counts_idle_and_iowait_as_not_busy() {
        let a = parse_machine_cpu("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let b = parse_machine_cpu("cpu  250 0 100 900 50 0 100 0 0 0\n").unwrap();
        assert_eq!((a.busy, a.total), (150, 1000));
        assert!((a.busy_share_until(b) - 0.75).abs() < 1e-9);
        assert!(MachineCpu::now().is_ok());
    }

    #[test]
    fn own_figures_are_readable() {
        assert!(rss(std::process::id()).unwrap() > 0);
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
        assert!(children_cpu_seconds().unwrap() >= 0.0);
    }
}
