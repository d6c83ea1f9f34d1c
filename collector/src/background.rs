//! The collector's background loop, every 5 s of the app's clock: the heartbeat,
//! the lease, and for the lease holder retention, stalled scans, orphaned scans
//! over SSH and scheduled scans.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::server::ServerError;

/// How often the loop runs.
pub const TICK: Duration = Duration::from_secs(5);
/// Background ticks between two retention passes: 10 minutes. A pass that
/// finds nothing to delete reads one meta key and at most the unfinished scans.
const RETENTION_EVERY: u64 = 120;
/// Background ticks between two counts of expiring agent certificates and of the
/// store's size for `/metrics`: a minute.
const FLEET_METRICS_EVERY: u64 = 12;
/// Meta key: up to when scheduled scans were created (ms), by whichever collector.
const SCHEDULE_DONE_KEY: &str = "schedule_done_to";
/// The longest a collector taking the lease over looks back for missed schedules.
pub const SCHEDULE_CATCH_UP: chrono::Duration = chrono::Duration::minutes(2);

/// Runs the loop until `stop` fires.
pub async fn run(app: Arc<App>, mut stop: tokio::sync::broadcast::Receiver<()>) {
    let mut tick = app.clock.ticker(TICK);
    let mut last_schedule = app.clock.now();
    // Retention runs at start and then every RETENTION_EVERY ticks.
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.recv() => break,
        }
        let app = app.clone();
        let now = app.clock.now();
        let since = last_schedule;
        last_schedule = now;
        let retention = ticks.is_multiple_of(RETENTION_EVERY);
        let fleet_metrics = ticks.is_multiple_of(FLEET_METRICS_EVERY);
        ticks += 1;
        let _ =
            tokio::task::spawn_blocking(move || once(&app, now, since, retention, fleet_metrics))
                .await;
    }
}

/// One pass of the loop at `now`; `since` is the previous pass.
fn once(app: &App, now: DateTime<Utc>, since: DateTime<Utc>, retention: bool, fleet_metrics: bool) {
    // Every collector says it is alive (its streams count as connected) and learns
    // how many share the deployment's rates: first, so that slow work cannot delay it.
    app.heartbeat();
    // Every collector's own `/metrics`: at start, then every minute.
    if fleet_metrics {
        app.refresh_fleet_metrics();
    }
    // Once for every collector sharing the store: where the lease is.
    if !app.take_lead() {
        return;
    }
    if retention {
        if let Err(e) = app.store.maintain(now.timestamp_millis()) {
            tracing::error!(error = %e, "store upkeep failed");
        }
        if let Err(e) = app.apply_retention(now.timestamp_millis()) {
            tracing::error!(error = %e, "results retention failed");
        }
        if let Err(e) = app.prune_sessions(now.timestamp_millis()) {
            tracing::error!(error = %e, "removing ended console sessions failed");
        }
    }
    if let Err(e) = app.expire_stalled() {
        tracing::error!(error = %e, "expiring stalled scans failed");
    }
    // Every minute: pending scans of targets that no collector runs.
    if fleet_metrics {
        if let Err(e) = app.run_orphaned_ssh_scans() {
            tracing::error!(error = %e, "starting orphaned scans over SSH failed");
        }
    }
    // Another collector may have held the lease until now: its last run
    // is in the store (looking back at most SCHEDULE_CATCH_UP).
    let since = schedule_done_to(app)
        .map(|t| t.max(now - SCHEDULE_CATCH_UP))
        .unwrap_or(since);
    match scheduled_scans(app, since, now) {
        Ok(()) => {
            let done = now.timestamp_millis().to_string();
            if let Err(e) = app.store.put_meta(SCHEDULE_DONE_KEY, done.as_bytes()) {
                tracing::error!(error = %e, "cannot record the schedule's progress");
            }
        }
        Err(e) => tracing::error!(error = %e, "scheduled scans failed"),
    }
}

fn schedule_done_to(app: &App) -> Option<DateTime<Utc>> {
    let v = app.store.get_meta(SCHEDULE_DONE_KEY).ok()??;
    let ms: i64 = std::str::from_utf8(&v).ok()?.parse().ok()?;
    DateTime::from_timestamp_millis(ms)
}

/// Creates the scans whose (per-agent offset) schedule time fell in `(since, now]`.
pub(crate) fn scheduled_scans(
    app: &App,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), ServerError> {
    let s = app.settings();
    if !s.schedule_enabled || !s.scanning_enabled {
        return Ok(());
    }
    let sched = crate::schedule::parse(&s.schedule_cron).map_err(ServerError::Schedule)?;
    let window = chrono::Duration::seconds(app.config.schedule_window_secs);
    let due: Vec<String> = app
        .store
        .agents()?
        .into_iter()
        .filter(|a| !a.revoked)
        .filter(|a| {
            sched
                .next_for_agent(&a.id, since, window)
                .is_some_and(|t| t <= now)
        })
        .map(|a| a.id)
        .collect();
    // The slot's scans share one sync.
    app.create_scans(&due, "schedule", "system")?;
    Ok(())
}

#[cfg(test)]
mod tests;
