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

/// User plus system CPU time of a process, in milliseconds.
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ms(&text, 100)
}

/// Fields 14 and 15 (utime, stime) of a /proc stat line, in clock ticks of `hz`. The
/// command name (field 2) may hold spaces and parentheses: fields are counted from
/// the last `)`.
pub fn parse_cpu_ms(stat: &str, hz: u64) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, index 11.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1000 / hz)
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
    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 5";
        assert_eq!(super::parse_cpu_ms(line, 100), Some(3250));
        assert_eq!(super::parse_cpu_ms("42 (x) S 1", 100), None);
    }

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
