//! Figures: latency percentiles and a process's resident memory.

use std::time::Duration;

/// The `p`-th percentile (0–100) of `samples`, nearest rank; 0 when empty.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Milliseconds with three decimals, for the JSON line.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// VmRSS of process `pid` in KiB, from /proc; `None` if it cannot be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&text)
}

/// The `VmRSS:` line of a /proc status file, in KiB.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let mut s: Vec<Duration> = (1..=100).rev().map(ms).collect();
        for (p, want) in [(50.0, 50), (99.0, 99), (100.0, 100), (0.0, 1), (1.0, 1)] {
            assert_eq!(percentile(&mut s, p), ms(want), "p{p}");
        }
        assert_eq!(percentile(&mut [], 99.0), Duration::ZERO);
        assert_eq!(percentile(&mut [ms(7)], 50.0), ms(7));
    }

    #[test]
    fn vmrss_from_proc_status() {
        let text = "Name:\tx\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads: 4\n";
        assert_eq!(parse_vmrss(text), Some(12345));
        assert_eq!(parse_vmrss("Name: x\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
