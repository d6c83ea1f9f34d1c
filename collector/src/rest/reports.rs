//! A scan's reports over the API (HTML, JSON, ARF), with the console's own routes
//! answering through the same [`scan_report`].

use super::*;

/// The kinds of report a scan has (SPEC §4 reports).
#[derive(Clone, Copy)]
pub(crate) enum ReportKind {
    Html,
    Json,
    Arf,
}

/// One scan's report as a download: the body, its content type, the attachment's
/// file name; the HTML report with the CSP that lets only its own inline parts run.
/// The API and the console both answer with this.
pub(crate) fn scan_report(app: &App, id: &str, kind: ReportKind) -> Result<Response, AppError> {
    let (s, results) = app.scan_with_results(id)?;
    let agent = app.agent(&s.agent_id).ok();
    let cat = app.catalog_for_scan(&s);
    let input = crate::report::ReportInput {
        scan: &s,
        agent: agent.as_ref(),
        catalog: cat.as_deref(),
        results: &results,
    };
    let now = app.clock.now_ms();
    let (ext, content_type, body) = match kind {
        ReportKind::Html => (
            "html",
            "text/html; charset=utf-8",
            crate::report::html(&input, now),
        ),
        ReportKind::Json => ("json", "application/json", crate::report::json(&input, now)),
        ReportKind::Arf => (
            "arf.xml",
            "application/xml",
            crate::report::arf(&input, now),
        ),
    };
    let name = crate::report::file_name(&crate::report::host_label(&s, agent.as_ref()), &s.id, ext);
    let mut resp = (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff".to_string(),
            ),
        ],
        body,
    )
        .into_response();
    if let ReportKind::Html = kind {
        // The report's own inline style and script only; nothing is ever loaded.
        resp.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:",
            ),
        );
    }
    Ok(resp)
}

/// The scan's HTML report
///
/// Self-contained, as an attachment. Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{id}/report.html",
    tag = "reports",
    params(("id" = String, Path, description = "Scan ID", min_length = 1)),
    responses(
        (status = 200, description = "The report", body = String, content_type = "text/html; charset=utf-8"),
        (status = 404, description = "No scan has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn report_html(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    c.require(Role::Provisioner)?;
    Ok(scan_report(&app, &id, ReportKind::Html)?)
}

/// The scan's JSON report
///
/// The versioned scan document (`"schema": "rampart-scan"`, docs/scan-document.md),
/// the one `rampart-agent check --format json` prints, with every rule's details, as
/// an attachment. Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{id}/report.json",
    tag = "reports",
    params(("id" = String, Path, description = "Scan ID", min_length = 1)),
    responses(
        (status = 200, description = "The report", body = Object, content_type = "application/json"),
        (status = 404, description = "No scan has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn report_json(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    c.require(Role::Provisioner)?;
    Ok(scan_report(&app, &id, ReportKind::Json)?)
}

/// The scan's SCAP ARF 1.1 report
///
/// An XCCDF 1.2 TestResult with the benchmark in a SCAP 1.3 source data stream, as an
/// XML attachment. Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{id}/report.arf.xml",
    tag = "reports",
    params(("id" = String, Path, description = "Scan ID", min_length = 1)),
    responses(
        (status = 200, description = "The report", body = String, content_type = "application/xml"),
        (status = 404, description = "No scan has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn report_arf(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    c.require(Role::Provisioner)?;
    Ok(scan_report(&app, &id, ReportKind::Arf)?)
}
