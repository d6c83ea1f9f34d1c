//! The process's own figures for `/metrics`, read from `/proc/self` at each scrape.

use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// The process's own figures, read from `/proc/self` at each scrape, under the
/// names every Prometheus client library uses.
#[derive(Debug)]
pub(super) struct Process;

/// `/proc/self/stat` fields after the command name: utime and stime (clock ticks,
/// fields 14 and 15), starttime (ticks after boot, field 22), rss (pages, field 24).
struct Stat {
    cpu_ticks: u64,
    start_ticks: u64,
    rss_pages: u64,
}

fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let num = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: num(14)? + num(15)?,
        start_ticks: num(22)?,
        rss_pages: num(24)?,
    })
}

/// The number in word `word` (from 0) of the first line of `path` that starts with
/// `prefix`.
fn number_in(path: &str, prefix: &str, word: usize) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(prefix))?
        .split_whitespace()
        .nth(word)?
        .parse()
        .ok()
}

fn boot_time() -> Option<u64> {
    number_in("/proc/stat", "btime ", 1)
}

fn max_fds() -> Option<u64> {
    number_in("/proc/self/limits", "Max open files", 3)
}

/// Clock ticks per second and the page size: fixed on Linux x86_64 and aarch64
/// (`getconf CLK_TCK` 100, `PAGESIZE` 4096) unless read otherwise.
const TICKS: f64 = 100.0;

static PAGE: AtomicI64 = AtomicI64::new(0);

fn page_size() -> i64 {
    let p = PAGE.load(Ordering::Relaxed);
    if p > 0 {
        return p;
    }
    let p = rustix::param::page_size() as i64;
    PAGE.store(p, Ordering::Relaxed);
    p
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(st) = read_stat() {
            let c = ConstCounter::new(st.cpu_ticks as f64 / TICKS);
            c.encode(encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time spent",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?)?;
            let g = ConstGauge::new(st.rss_pages as i64 * page_size());
            g.encode(encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                g.metric_type(),
            )?)?;
            if let Some(boot) = boot_time() {
                let g = ConstGauge::new(boot as f64 + st.start_ticks as f64 / TICKS);
                g.encode(encoder.encode_descriptor(
                    "process_start_time",
                    "When the process started (Unix time)",
                    Some(&Unit::Seconds),
                    g.metric_type(),
                )?)?;
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let g = ConstGauge::new(dir.count() as i64);
            g.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                g.metric_type(),
            )?)?;
        }
        if let Some(n) = max_fds() {
            let g = ConstGauge::new(n as i64);
            g.encode(encoder.encode_descriptor(
                "process_max_fds",
                "The limit on open file descriptors",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
