//! The web console (SPEC §4 views), served on the REST port under `/ui/`: pages
//! rendered on the server from askama templates (compile-time checked, escaped), one
//! stylesheet and one pinned htmx file compiled into the binary. Every read view works
//! without JavaScript. docs/console.md is the contract (routes, roles, markup).
//!
//! Here: the router, the headers every answer carries, the signed-in user, forms'
//! same-origin and CSRF checks, and the error page. Pages live in the submodules.
//! The REST API never reads the console's cookie; the console never takes a token.

mod assets;
mod audit;
mod auth;
mod enroll;
mod overview;
mod scan;
mod scans;
mod settings;
mod users;
mod view;
mod vms;

use std::sync::Arc;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::app::signin::ConsoleUser;
use crate::app::{App, AppError};
use crate::auth::Role;
pub use assets::Assets;

/// The session cookie. `__Host-`: Secure, Path=/, no Domain, so no other host sets it.
pub const SESSION_COOKIE: &str = "__Host-rampart_session";
/// The sign-in form's own CSRF cookie, before any session exists.
pub const LOGIN_COOKIE: &str = "__Host-rampart_login";
/// Set at a successful sign-in: this browser signed in as that user before (see
/// `app::signin`).
pub const DEVICE_COOKIE: &str = "__Host-rampart_device";

/// The console's Content-Security-Policy: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The console's routes, to merge with the API's.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview::page))
        .route("/ui/login", get(auth::form).post(auth::sign_in))
        .route("/ui/logout", axum::routing::post(auth::sign_out))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/scans", get(scans::list))
        .route("/ui/scans.csv", get(scans::csv))
        .route("/ui/scans/{id}", get(scan::detail))
        .route("/ui/scans/{id}/progress", get(scan::progress))
        .route("/ui/scans/{id}/row", get(scan::row))
        .route("/ui/scans/{id}/rules/{rule}", get(scan::rule))
        .route("/ui/scans/{id}/report.html", get(scan::report_html))
        .route("/ui/scans/{id}/report.json", get(scan::report_json))
        .route("/ui/scans/{id}/report.arf.xml", get(scan::report_arf))
        .route(
            "/ui/scans/{id}/release",
            get(scan::release_form).post(scan::release),
        )
        .route("/ui/scans/{id}/rescan", axum::routing::post(scan::rescan))
        .route("/ui/scans/{id}/cancel", axum::routing::post(scan::cancel))
        .route("/ui/vms/{id}", get(vms::page))
        .route("/ui/vms/{id}/revoke", axum::routing::post(vms::revoke))
        .route("/ui/settings", get(settings::form).post(settings::save))
        .route("/ui/enroll", get(enroll::form).post(enroll::create))
        .route("/ui/audit", get(audit::page))
        .route("/ui/users", get(users::list).post(users::create))
        .route(
            "/ui/users/{name}/revoke",
            get(users::revoke_form).post(users::revoke),
        )
        .route(
            "/ui/users/{name}/password",
            get(users::password_form).post(users::set_password),
        )
        .route(
            "/ui/tokens/{id}/revoke",
            get(users::to_list).post(users::revoke_token),
        )
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::map_response(headers))
}

/// The headers of every console answer: the CSP, no sniffing, no referrer beyond
/// this origin, and no caching of pages (assets set their own).
async fn headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// The page every refusal and error shows: its status, a heading and a sentence.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub c: view::Chrome,
    pub heading: &'static str,
    pub message: String,
}

/// An error answer of the console: a status, a heading, the reason in words, and the
/// user (for the navigation) when there is one.
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    /// Boxed: a `Failure` travels in every page's `Result`.
    pub user: Option<Box<ConsoleUser>>,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            user: None,
        }
    }
    pub fn forbidden(user: &ConsoleUser, message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            user: Some(Box::new(user.clone())),
        }
    }
    pub fn with_user(mut self, user: &ConsoleUser) -> Failure {
        self.user = Some(Box::new(user.clone()));
        self
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        let (status, message) = match e {
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, format!("{m} not found")),
            AppError::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            AppError::Rejected(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::Refused(m) => (StatusCode::FORBIDDEN, m),
            AppError::Limited(m) => (StatusCode::TOO_MANY_REQUESTS, m),
            AppError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            AppError::Ca(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            AppError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage is unavailable; try again later".to_string(),
                )
            }
        };
        Failure::new(status, message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let heading = match self.status {
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "Not accepted",
            StatusCode::CONFLICT => "Not possible now",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            c: view::Chrome::new(heading, self.user.as_deref(), ""),
            heading,
            message: self.message,
        };
        (self.status, view::html(&page)).into_response()
    }
}

type Page = Result<Response, Failure>;

async fn not_found(user: Option<Ui>) -> Failure {
    let f = Failure::new(StatusCode::NOT_FOUND, "There is no such page.");
    match user {
        Some(u) => f.with_user(&u.0),
        None => f,
    }
}

/// The signed-in user of a request. Without a live session a page (GET) redirects to
/// the sign-in form and comes back after; a form (POST) is refused.
pub struct Ui(pub ConsoleUser);

/// The `csrf` field every console form carries.
#[derive(serde::Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl Ui {
    /// A state-changing form of this session, in the one order every form takes: its
    /// body read as `T` (422 when unreadable), then its origin and the session's CSRF
    /// token (403), then the role (403). The form and the user.
    pub fn form<T: serde::de::DeserializeOwned>(
        &self,
        app: &App,
        headers: &HeaderMap,
        body: &[u8],
        role: Role,
        what: &str,
    ) -> Result<(T, &ConsoleUser), Failure> {
        let f: T = parse_form(body).map_err(|e| e.with_user(&self.0))?;
        let c: CsrfField = parse_form(body).map_err(|e| e.with_user(&self.0))?;
        check_form(headers, tls(app), c.csrf.as_deref(), &self.0.session.csrf)
            .map_err(|why| Failure::forbidden(&self.0, why))?;
        Ok((f, self.require(role, what)?))
    }

    /// The user, when their role is at least `role`; else the 403 page.
    pub fn require(&self, role: Role, what: &str) -> Result<&ConsoleUser, Failure> {
        if self.0.role >= role {
            Ok(&self.0)
        } else {
            Err(Failure::forbidden(
                &self.0,
                format!(
                    "{what} needs the {} role; {} has the {} role.",
                    role.as_str(),
                    self.0.name,
                    self.0.role.as_str()
                ),
            ))
        }
    }
}

/// The value of a cookie in the request, if it is there once. Pairs that are not
/// UTF-8 (a cookie another site on the same domain planted, say) are skipped, never a
/// reason to drop the whole header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for h in headers.get_all(header::COOKIE) {
        for pair in h.as_bytes().split(|b| *b == b';') {
            let Ok(pair) = std::str::from_utf8(pair) else {
                continue;
            };
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == name {
                    if found.is_some() {
                        // Two cookies of one name: one was planted; trust neither.
                        return None;
                    }
                    found = Some(v);
                }
            }
        }
    }
    found
}

impl FromRequestParts<Arc<App>> for Ui {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let live = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(secret) => app
                .console_session(secret)
                .map_err(|e| Failure::from(e).into_response())?,
            None => None,
        };
        if let Some(u) = live {
            return Ok(Ui(u));
        }
        if parts.headers.contains_key("hx-request") {
            // An htmx refresh whose session ended: the whole page goes to sign-in,
            // never the sign-in form swapped into a fragment.
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert("hx-redirect", HeaderValue::from_static("/ui/login"));
            return Err(r);
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/ui/");
            let to = format!("/ui/login?next={}", view::url_encode(next));
            return Err(Redirect::to(&to).into_response());
        }
        Err(Failure::new(
            StatusCode::FORBIDDEN,
            "Your session has ended; sign in again and repeat the change.",
        )
        .into_response())
    }
}

impl axum::extract::OptionalFromRequestParts<Arc<App>> for Ui {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|s| app.console_session(s).ok().flatten())
            .map(Ui))
    }
}

/// The origin this request was sent to, from its Host header.
fn own_origin(headers: &HeaderMap, tls: bool) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    Some(format!("{}://{host}", if tls { "https" } else { "http" }))
}

/// A state-changing request must come from a page of this console: the browser's
/// `Sec-Fetch-Site` says same-origin (or that the user typed it), or, without it, the
/// `Origin` is this origin. Then its CSRF token must match (`expected`).
pub fn check_form(
    headers: &HeaderMap,
    tls: bool,
    csrf: Option<&str>,
    expected: &str,
) -> Result<(), String> {
    check_origin(headers, tls)?;
    match csrf {
        Some(t) if !expected.is_empty() && constant_time_eq(t.as_bytes(), expected.as_bytes()) => {
            Ok(())
        }
        _ => Err(
            "The form's security token is missing or stale; reload the page and try again.".into(),
        ),
    }
}

/// The same-origin half of [`check_form`].
pub fn check_origin(headers: &HeaderMap, tls: bool) -> Result<(), String> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") | Some("none") => {}
        Some(other) => {
            return Err(format!(
                "The form was sent from another site ({other}); changes are accepted only from this console's own pages."
            ))
        }
        None => match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            Some(o) if Some(o) == own_origin(headers, tls).as_deref() => {}
            Some(_) => {
                return Err(
                    "The form was sent from another origin; changes are accepted only from this console's own pages."
                        .into(),
                )
            }
            None => {
                return Err(
                    "The request carries neither Sec-Fetch-Site nor Origin, so it cannot be shown to come from this console."
                        .into(),
                )
            }
        },
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a form body (`application/x-www-form-urlencoded`); the error names the field.
pub fn parse_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_urlencoded::from_bytes(body).map_err(|e| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The form could not be read: {e}."),
        )
    })
}

/// Whether the REST port serves TLS (for the origin check).
pub fn tls(app: &App) -> bool {
    app.config.rest_tls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn forms_need_this_origin_and_the_token() {
        let ok = h(&[("sec-fetch-site", "same-origin"), ("host", "c:8443")]);
        assert_eq!(check_form(&ok, true, Some("t0k"), "t0k"), Ok(()));
        for (headers, why) in [
            (h(&[("sec-fetch-site", "cross-site")]), "another site"),
            (h(&[("sec-fetch-site", "same-site")]), "another site"),
            (
                h(&[("origin", "https://evil.example"), ("host", "c:8443")]),
                "another origin",
            ),
            (
                h(&[("origin", "http://c:8443"), ("host", "c:8443")]),
                "another origin",
            ),
            (h(&[("host", "c:8443")]), "neither"),
        ] {
            let e = check_form(&headers, true, Some("t0k"), "t0k").unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let by_origin = h(&[("origin", "https://c:8443"), ("host", "c:8443")]);
        assert_eq!(check_form(&by_origin, true, Some("t0k"), "t0k"), Ok(()));
        for token in [None, Some(""), Some("t0K"), Some("t0k0")] {
            assert!(check_form(&ok, true, token, "t0k")
                .unwrap_err()
                .contains("token"));
        }
        assert!(
            check_form(&ok, true, Some(""), "").is_err(),
            "no empty pair"
        );
    }

    #[test]
    fn cookies_are_read_once() {
        let m = h(&[("cookie", "a=1; __Host-rampart_session=s3; b=2")]);
        assert_eq!(cookie(&m, SESSION_COOKIE), Some("s3"));
        let two = h(&[
            ("cookie", "__Host-rampart_session=s3"),
            ("cookie", "__Host-rampart_session=planted"),
        ]);
        assert_eq!(cookie(&two, SESSION_COOKIE), None);
        assert_eq!(cookie(&m, "__Host-rampart"), None);
        // A planted cookie that is not UTF-8 does not hide the session.
        let mut tossed = HeaderMap::new();
        tossed.insert(
            header::COOKIE,
            HeaderValue::from_bytes(b"pref=caf\xc3\xa9; x=\xff; __Host-rampart_session=s3")
                .unwrap(),
        );
        assert_eq!(cookie(&tossed, SESSION_COOKIE), Some("s3"));
    }
}
