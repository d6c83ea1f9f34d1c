//! `GET /api/v1/admin/backup`: a backup of the collector (`crate::backup`), written
//! by a blocking task while it streams, so that neither the snapshot nor the answer
//! is ever held whole in memory.

use std::io::{self, Write};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hyper::body::Bytes;

use super::{ApiError, Binary, Caller, ErrorBody};
use crate::app::App;
use crate::auth::Role;

/// Bytes sent to the client at a time.
const CHUNK: usize = 256 << 10;

/// The answer's body, fed by the task that writes the backup; a client that goes
/// away ends the task (and the snapshot) at its next write.
struct ToBody {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ToBody {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ToBody {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A backup of the collector
///
/// A consistent snapshot of the store taken while the collector runs (writes are
/// held only for the moment of the cut), with the result log and the CA — **its
/// private key included**: keep the file as you keep the CA (mode 0600). Streamed in
/// the backup format (`rampart-collector restore --from FILE --data NEWDIR` reads
/// it); audited as `backup.create` before the cut, so the backup holds its own entry.
/// One backup at a time. A collector on PostgreSQL refuses: back the database up with
/// `pg_dump`. Needs the admin role.
#[utoipa::path(
    get,
    path = "/api/v1/admin/backup",
    tag = "operations",
    responses(
        (status = 200, description = "The backup, streamed", body = Binary,
            content_type = "application/octet-stream"),
        (status = 409, description = "A backup is already being taken, or the store is PostgreSQL (use pg_dump)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn backup(State(app): State<Arc<App>>, c: Caller) -> Result<Response, ApiError> {
    c.require(Role::Admin)?;
    let snap = app.begin_backup(&c.name)?;
    let at = app.clock.now_ms();
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let data_dir = app.config.data_dir.clone();
    let by = c.name.clone();
    tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        let mut out = ToBody {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        match crate::backup::write(&*snap, &data_dir, &by, at, &mut out) {
            Ok((m, bytes)) => tracing::info!(
                by,
                scans = m.counts.scans,
                audit_entries = m.counts.audit,
                bytes,
                pause_us = m.cut_pause_us,
                seconds = start.elapsed().as_secs_f64(),
                "backup streamed"
            ),
            Err(e) => {
                tracing::error!(by, error = %e, "backup failed; its answer is cut short");
                // Ends the answer with an error: the client sees it incomplete.
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    let name = format!(
        "rampart-{}.backup",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}
