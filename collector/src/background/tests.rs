//! The background loop on tokio's paused time: stalled scans and schedules, minutes
//! of the collector's clock in milliseconds of real time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::app::tests::{agent, app_on};
use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{ScanFilter, ScanRecord, ScanStatus};

/// 2026-12-07 10:00:30 UTC: the tests' clocks start half a minute past a minute.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 30).unwrap()
}

fn at(h: u32, m: u32, s: u32) -> i64 {
    Utc.with_ymd_and_hms(2026, 12, 7, h, m, s)
        .unwrap()
        .timestamp_millis()
}

/// Runs the loop until the returned sender is dropped or fires.
fn start(
    app: &Arc<App>,
) -> (
    tokio::sync::broadcast::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, rx) = tokio::sync::broadcast::channel(1);
    (stop, tokio::spawn(super::run(app.clone(), rx)))
}

async fn stop(
    running: (
        tokio::sync::broadcast::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
) {
    let _ = running.0.send(());
    running.1.await.unwrap();
}

/// Sleeps until the clock reads `ms`.
async fn until(app: &App, ms: i64) {
    let left = ms - app.clock.now_ms();
    assert!(left >= 0, "{ms} is past");
    tokio::time::sleep(Duration::from_millis(left as u64)).await;
}

fn scans(app: &App) -> Vec<ScanRecord> {
    app.store
        .scans(&ScanFilter::default(), 0, usize::MAX)
        .unwrap()
        .0
}

#[tokio::test(start_paused = true)]
async fn a_stalled_scan_fails_after_its_timeout_and_not_before() {
    let d = tempfile::tempdir().unwrap();
    let config = Config {
        scan_timeout_secs: 60,
        ..Config::default()
    };
    let app = Arc::new(app_on(
        d.path(),
        Clock::tokio(t0().timestamp_millis()),
        config,
    ));
    agent(&app, "ag-1", None, "");
    let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
    app.scan_started("ag-1", &scan.id).unwrap();
    let status = || app.store.scan(&scan.id).unwrap().unwrap();
    // The loop runs every 5 s from 10:00:30: at 10:01:30 the scan has been silent
    // for exactly its timeout, which is not yet more.
    let running = start(&app);
    until(&app, at(10, 1, 32)).await;
    assert_eq!(status().status, ScanStatus::Running);
    // The next pass, at 10:01:35, fails it.
    until(&app, at(10, 1, 37)).await;
    let s = status();
    assert_eq!(s.status, ScanStatus::Failed);
    assert_eq!(s.finished_at_ms, Some(at(10, 1, 35)));
    assert_eq!(
        s.failure_reason.as_deref(),
        Some("no progress from the agent for 60 s")
    );
    stop(running).await;
}

/// An app with two agents and a schedule of `cron` (no spread: a 1 s window).
fn scheduled_app(dir: &std::path::Path, clock: Clock, cron: &str) -> Arc<App> {
    let config = Config {
        schedule_window_secs: 1,
        ..Config::default()
    };
    let app = Arc::new(app_on(dir, clock, config));
    agent(&app, "ag-1", None, "");
    agent(&app, "ag-2", None, "");
    set_schedule(&app, cron);
    app
}

fn set_schedule(app: &App, cron: &str) {
    let mut s = app.settings();
    s.schedule_enabled = true;
    s.schedule_cron = cron.into();
    app.update_settings(s, "admin").unwrap();
}

/// The scheduled scans: (agent, created at), oldest first.
fn scheduled(app: &App) -> Vec<(String, i64)> {
    let mut v: Vec<_> = scans(app)
        .into_iter()
        .filter(|s| s.trigger == "schedule")
        .map(|s| (s.agent_id, s.created_at_ms))
        .collect();
    v.sort_by_key(|(a, t)| (*t, a.clone()));
    v
}

/// Ends every pending scan, as agents that ran them would: an agent has one
/// pending scan at most, so the next slot's scan is new only then.
fn run_pending(app: &App) {
    for s in scans(app) {
        if s.status == ScanStatus::Pending {
            app.cancel_scan(&s.id, "test").unwrap();
        }
    }
}

fn both(at_ms: i64) -> Vec<(String, i64)> {
    vec![("ag-1".into(), at_ms), ("ag-2".into(), at_ms)]
}

#[tokio::test(start_paused = true)]
async fn a_schedule_every_minute_makes_one_scan_per_agent_and_minute() {
    let d = tempfile::tempdir().unwrap();
    let app = scheduled_app(d.path(), Clock::tokio(t0().timestamp_millis()), "* * * * *");
    let running = start(&app);
    let mut want = Vec::new();
    for minute in 1..=3 {
        // Half a pass after the minute: its scans are made, each once.
        until(&app, at(10, minute, 2) + 500).await;
        want.extend(both(at(10, minute, 0)));
        assert_eq!(scheduled(&app), want, "minute {minute}");
        run_pending(&app);
    }
    // Nothing more within the minute.
    until(&app, at(10, 3, 57) + 500).await;
    assert_eq!(scheduled(&app), want);
    stop(running).await;
}

#[tokio::test(start_paused = true)]
async fn after_a_gap_the_schedule_catches_up_two_minutes_and_skips_older_slots() {
    let d = tempfile::tempdir().unwrap();
    let app = scheduled_app(d.path(), Clock::tokio(t0().timestamp_millis()), "* * * * *");
    let running = start(&app);
    until(&app, at(10, 1, 2) + 500).await;
    assert_eq!(scheduled(&app), both(at(10, 1, 0)));
    run_pending(&app);
    // The collector stops; its schedule now fires at 10:05 only.
    stop(running).await;
    set_schedule(&app, "5 * * * *");
    // Back at 10:06:02.5: 10:05 is less than two minutes ago, so it is made up
    // at once, once.
    until(&app, at(10, 6, 2) + 500).await;
    let running = start(&app);
    until(&app, at(10, 6, 3)).await;
    let mut want = both(at(10, 1, 0));
    want.extend(both(at(10, 6, 2) + 500));
    assert_eq!(scheduled(&app), want);
    stop(running).await;
    run_pending(&app);
    // Down again, now past 11:05 by more than two minutes: that slot is skipped,
    // and nothing is made until 12:05.
    until(&app, at(11, 7, 30)).await;
    let running = start(&app);
    until(&app, at(11, 9, 0)).await;
    assert_eq!(scheduled(&app), want);
    until(&app, at(12, 5, 2) + 500).await;
    want.extend(both(at(12, 5, 0)));
    assert_eq!(scheduled(&app), want);
    stop(running).await;
}
