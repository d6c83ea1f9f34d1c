//! The collector's clock, owned by `App`: every "now" of the domain and the sleeps
//! of its background loops (schedules, stalled scans, webhook backoff) go through
//! it. In production it is the system clock; tests choose one that follows tokio's
//! (paused) time, or a manual one they advance themselves, which suits tests that
//! talk to a real PostgreSQL server (paused tokio time would jump ahead while the
//! runtime waits on its I/O, firing pool and statement timeouts).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// A source of wall time in milliseconds since the Unix epoch, and of sleeps.
#[derive(Clone)]
pub struct Clock(Kind);

#[derive(Clone)]
enum Kind {
    System,
    /// A wall-clock base plus the tokio time elapsed since it was taken.
    Tokio {
        base_ms: i64,
        start: tokio::time::Instant,
    },
    Manual(Arc<Manual>),
}

/// A clock that moves only when the test advances it.
struct Manual {
    now: watch::Sender<i64>,
    /// The deadlines of the tasks sleeping on this clock, by sleep.
    sleepers: Mutex<Vec<(u64, i64)>>,
    next_id: AtomicU64,
}

/// Milliseconds since the Unix epoch, by the system clock.
pub fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Kind::System => "system",
            Kind::Tokio { .. } => "tokio",
            Kind::Manual(_) => "manual",
        };
        write!(f, "Clock({kind}, {})", self.now_ms())
    }
}

impl Clock {
    /// The system clock; sleeps are tokio's.
    pub fn system() -> Clock {
        Clock(Kind::System)
    }

    /// Starts at `base_ms` and follows tokio's time from now on, so that
    /// `tokio::time::pause`, `advance` and `start_paused` move it.
    pub fn tokio(base_ms: i64) -> Clock {
        Clock(Kind::Tokio {
            base_ms,
            start: tokio::time::Instant::now(),
        })
    }

    /// Starts at `base_ms` and moves only by [`Clock::advance`]; its sleeps wake
    /// when it is advanced past their deadline.
    pub fn manual(base_ms: i64) -> Clock {
        Clock(Kind::Manual(Arc::new(Manual {
            now: watch::Sender::new(base_ms),
            sleepers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        })))
    }

    /// Milliseconds since the Unix epoch, now.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Kind::System => system_ms(),
            Kind::Tokio { base_ms, start } => base_ms + start.elapsed().as_millis() as i64,
            Kind::Manual(m) => *m.now.borrow(),
        }
    }

    /// Now, as a date.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }

    /// Waits `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        match &self.0 {
            Kind::System | Kind::Tokio { .. } => tokio::time::sleep(d).await,
            Kind::Manual(m) => {
                let until = m.now.borrow().saturating_add(d.as_millis() as i64);
                m.sleep_until(until).await
            }
        }
    }

    /// Ticks every `period`, the first tick at once; a late tick is taken at once.
    pub fn ticker(&self, period: Duration) -> Ticker {
        Ticker {
            clock: self.clone(),
            period,
            next: None,
        }
    }

    /// Moves a manual clock `d` ahead, waking the sleeps now due. Other clocks are
    /// not moved (a test's tokio clock moves with `tokio::time::advance`).
    pub fn advance(&self, d: Duration) {
        if let Kind::Manual(m) = &self.0 {
            m.now
                .send_modify(|n| *n = n.saturating_add(d.as_millis() as i64));
        }
    }

    /// For tests on a manual clock: waits (in real time, up to 10 s) until `n`
    /// tasks sleep on it, none of them due — the work the last advance woke is
    /// done. False when that did not happen in time.
    pub async fn settle(&self, n: usize) -> bool {
        let Kind::Manual(m) = &self.0 else {
            return true;
        };
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < give_up {
            let now = *m.now.borrow();
            let settled = {
                let s = m.sleepers.lock().unwrap_or_else(|p| p.into_inner());
                s.len() == n && s.iter().all(|(_, t)| *t > now)
            };
            if settled {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }
}

impl Manual {
    async fn sleep_until(&self, until: i64) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _asleep = Asleep::new(self, id, until);
        let mut rx = self.now.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = rx.wait_for(|n| *n >= until).await;
    }
}

/// One task asleep on a manual clock, while this lives.
struct Asleep<'a> {
    m: &'a Manual,
    id: u64,
}

impl<'a> Asleep<'a> {
    fn new(m: &'a Manual, id: u64, until: i64) -> Asleep<'a> {
        m.sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, until));
        Asleep { m, id }
    }
}

impl Drop for Asleep<'_> {
    fn drop(&mut self) {
        self.m
            .sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _)| *id != self.id);
    }
}

/// Periodic ticks on a [`Clock`] (see [`Clock::ticker`]).
pub struct Ticker {
    clock: Clock,
    period: Duration,
    /// When the next tick is due (ms); none before the first.
    next: Option<i64>,
}

impl Ticker {
    /// Waits for the next tick.
    pub async fn tick(&mut self) {
        let now = self.clock.now_ms();
        let due = self.next.unwrap_or(now);
        if due > now {
            self.clock
                .sleep(Duration::from_millis((due - now) as u64))
                .await;
        }
        // Ticks missed while late are not made up: the next is a period after this.
        let at = self.clock.now_ms().max(due);
        self.next = Some(at + self.period.as_millis() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_follows_paused_time() {
        let c = Clock::tokio(1_000);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(c.now_ms(), 6_000);
        c.sleep(Duration::from_millis(250)).await;
        assert_eq!(c.now_ms(), 6_250);
    }

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_when_advanced_past_them() {
        let c = Clock::manual(0);
        let woke = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (c, woke) = (c.clone(), woke.clone());
            async move {
                let mut t = c.ticker(Duration::from_secs(5));
                loop {
                    t.tick().await;
                    woke.store(c.now_ms() as u64, Ordering::SeqCst);
                }
            }
        });
        assert!(c.settle(1).await);
        assert_eq!(woke.load(Ordering::SeqCst), 0, "the first tick at once");
        c.advance(Duration::from_millis(4_999));
        assert!(c.settle(1).await);
        assert_eq!(woke.load(Ordering::SeqCst), 0, "not before its time");
        c.advance(Duration::from_millis(1));
        assert!(c.settle(1).await);
        assert_eq!(woke.load(Ordering::SeqCst), 5_000);
        // Late by two periods: one tick, the next a period after it.
        c.advance(Duration::from_secs(12));
        assert!(c.settle(1).await);
        assert_eq!(woke.load(Ordering::SeqCst), 17_000);
        c.advance(Duration::from_secs(4));
        assert!(c.settle(1).await);
        assert_eq!(woke.load(Ordering::SeqCst), 17_000);
        task.abort();
    }
}
