//! The CSV export of Scan Results: the list's filters, every matching scan, at most
//! a few exports at once, each bounded in time; cells safe to open in a spreadsheet.

use rampart_report::Severity;

use super::*;

/// A CSV cell: quoted when it must be (RFC 4180), and a leading `=`, `+`, `-`, `@`,
/// tab or carriage return neutralised with `'` so that no spreadsheet runs it.
pub fn csv_cell(s: &str) -> String {
    // Spreadsheets skip leading spaces, and some read full-width signs as formulas.
    let risky = s.starts_with(['\t', '\r'])
        || s.trim_start()
            .starts_with(['=', '+', '-', '@', '＝', '＋', '－', '＠']);
    let s = if risky {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// CSV exports running at once (each holds a thread while it reads the store), and
/// the most time one may take.
pub(super) const EXPORTS_AT_ONCE: usize = 4;
pub(super) const EXPORT_TIME: std::time::Duration = std::time::Duration::from_secs(600);
pub(super) static EXPORTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the [`EXPORTS_AT_ONCE`] export slots, given back when dropped.
pub(super) struct ExportSlot;

impl ExportSlot {
    pub(super) fn take() -> Option<ExportSlot> {
        use std::sync::atomic::Ordering;
        if EXPORTS.fetch_add(1, Ordering::AcqRel) >= EXPORTS_AT_ONCE {
            EXPORTS.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ExportSlot)
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        EXPORTS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

pub const CSV_HEADER: &str = "scan_id,agent_id,host,provider,project,status,score,blocked,released_by,critical_failed,high_failed,created_at,finished_at\r\n";

pub(super) fn csv_row(s: &ScanRecord, a: Option<&AgentRecord>) -> String {
    let cells = [
        s.id.clone(),
        s.agent_id.clone(),
        view::host_of(s, a),
        a.map(|a| a.provider.clone()).unwrap_or_default(),
        s.project.clone().unwrap_or_default(),
        view::status_str(s.status).to_string(),
        s.score.map(|v| format!("{v:.1}")).unwrap_or_default(),
        s.is_blocking().to_string(),
        s.released_by.clone().unwrap_or_default(),
        s.failed_by_severity.get(Severity::Critical).to_string(),
        s.failed_by_severity.get(Severity::High).to_string(),
        rampart_report::rfc3339_ms(s.created_at_ms),
        s.finished_at_ms
            .map(rampart_report::rfc3339_ms)
            .unwrap_or_default(),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Sends the filtered list as CSV in chunks of about 64 KiB, in the list's order,
/// until done, the reader goes (`send` answers false) or `deadline` passes; a
/// failure or the deadline ends the stream with an error, so that the download is
/// seen to be cut short rather than taken for the whole list.
pub(super) fn export(
    app: &App,
    f: &Filters,
    deadline: std::time::Instant,
    send: &mut dyn FnMut(Result<String, std::io::Error>) -> bool,
) {
    let mut buf = String::from(CSV_HEADER);
    let mut gone = false;
    let r = walk(app, f, None, usize::MAX, usize::MAX, &mut |s, a| {
        buf.push_str(&csv_row(s, a));
        if buf.len() >= 64 * 1024 && !send(Ok(std::mem::take(&mut buf))) {
            gone = true;
        }
        !gone && std::time::Instant::now() < deadline
    });
    if gone {
        return;
    }
    if std::time::Instant::now() >= deadline {
        tracing::warn!(
            "a CSV export took longer than its {} s and stopped",
            EXPORT_TIME.as_secs()
        );
        send(Err(std::io::Error::other("the export took too long")));
        return;
    }
    if let Err(e) = r {
        tracing::error!(error = %e, "CSV export stopped");
        send(Err(std::io::Error::other(e.to_string())));
        return;
    }
    if !buf.is_empty() {
        send(Ok(buf));
    }
}

/// The filtered list, every page, as CSV; streamed as the store is read.
pub async fn csv(State(app): State<Arc<App>>, ui: Ui, uri: axum::http::Uri) -> Page {
    let u = ui.require(Role::Provisioner, "The CSV export")?;
    let q: ListQuery = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()).with_user(u))?;
    let f = Filters::parse(&q).map_err(|e| {
        Failure::new(StatusCode::BAD_REQUEST, format!("Not exported: {e}.")).with_user(u)
    })?;
    let slot = ExportSlot::take().ok_or_else(|| {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{EXPORTS_AT_ONCE} CSV exports are running; try again in a minute."),
        )
        .with_user(u)
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let deadline = std::time::Instant::now() + EXPORT_TIME;
        export(&app, &f, deadline, &mut |chunk| {
            tx.blocking_send(chunk).is_ok()
        });
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"rampart-scans.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
