//! Latency histograms in microseconds, and their one-line text form for worker reports.

use hdrhistogram::Histogram;

pub type Hist = Histogram<u64>;

/// Highest value tracked: one hour in microseconds. Larger values are clamped to it.
const MAX_US: u64 = 3_600_000_000;

pub fn new() -> Hist {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant bounds are valid")
}

/// `value:count,value:count,...` over the recorded buckets, or `-` when empty.
pub fn to_line(hist: &Hist) -> String {
    if hist.is_empty() {
        return "-".to_owned();
    }
    let mut out = String::new();
    for bucket in hist.iter_recorded() {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&format!(
            "{}:{}",
            bucket.value_iterated_to(),
            bucket.count_at_value()
        ));
    }
    out
}

/// Adds the buckets of a [`to_line`] text into `into`.
pub fn add_line(into: &mut Hist, line: &str) -> Result<(), String> {
    if line == "-" || line.is_empty() {
        return Ok(());
    }
    for pair in line.split(',') {
        let (value, count) = pair
            .split_once(':')
            .ok_or_else(|| format!("bad histogram entry {pair:?}"))?;
        let value: u64 = value
            .parse()
            .map_err(|_| format!("bad histogram value {value:?}"))?;
        let count: u64 = count
            .parse()
            .map_err(|_| format!("bad histogram count {count:?}"))?;
        into.saturating_record_n(value.min(MAX_US), count);
    }
    Ok(())
}

/// The quantile as milliseconds.
pub fn ms(hist: &Hist, quantile: f64) -> f64 {
    hist.value_at_quantile(quantile) as f64 / 1000.0
}

/// `p50 X ms, p99 Y ms, p99.9 Z ms, max W ms`.
pub fn summary(hist: &Hist) -> String {
    if hist.is_empty() {
        return "no samples".to_owned();
    }
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        ms(hist, 0.5),
        ms(hist, 0.99),
        ms(hist, 0.999),
        hist.max() as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_worker_lines_keeps_counts_and_quantiles() {
        let mut a = new();
        let mut b = new();
        for v in 1..=1000u64 {
            a.saturating_record(v);
            b.saturating_record(v * 1000);
        }
        let mut merged = new();
        add_line(&mut merged, &to_line(&a)).unwrap();
        add_line(&mut merged, &to_line(&b)).unwrap();
        add_line(&mut merged, "-").unwrap();
        assert_eq!(merged.len(), 2000);
        let mut direct = a.clone();
        direct.add(&b).unwrap();
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert!(merged.equivalent(merged.value_at_quantile(q), direct.value_at_quantile(q)));
        }
        assert!(merged.equivalent(merged.max(), 1_000_000));
    }

    #[test]
    fn empty_and_malformed_lines() {
        assert_eq!(to_line(&new()), "-");
        assert!(add_line(&mut new(), "12").is_err());
        assert!(add_line(&mut new(), "x:1").is_err());
        assert_eq!(summary(&new()), "no samples");
    }
}
