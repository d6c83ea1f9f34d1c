//! Sign-in and sign-out. The sign-in form has its own CSRF token, kept in a short
//! cookie until a session exists (double submit), and the same-origin check every
//! form has. The session's secret goes only into the `__Host-` cookie.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::view::{self, Chrome};
use super::{
    check_form, check_origin, cookie, parse_form, tls, Failure, Page, DEVICE_COOKIE, LOGIN_COOKIE,
    SESSION_COOKIE,
};
use crate::app::{App, AppError};
use crate::net::ClientAddr;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    csrf: String,
    next: String,
    name: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a console path, never anywhere else.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control())
                && n.len() <= 2048 =>
        {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

fn cookie_header(name: &str, value: &str, max_age: Option<i64>) -> String {
    let age = max_age.map_or(String::new(), |a| format!("; Max-Age={a}"));
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}")
}

/// The form, with a fresh CSRF token in its cookie.
fn login_page(status: StatusCode, next: String, name: String, error: Option<String>) -> Page {
    let csrf = crate::auth::new_secret("").map_err(AppError::from)?;
    let page = LoginPage {
        c: Chrome::new("Sign in", None, ""),
        csrf: csrf.clone(),
        next,
        name,
        error,
    };
    Ok((
        status,
        [(
            header::SET_COOKIE,
            cookie_header(LOGIN_COOKIE, &csrf, Some(3600)),
        )],
        view::html(&page),
    )
        .into_response())
}

pub async fn form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Page {
    let next = safe_next(q.next.as_deref());
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        if app.console_session(secret)?.is_some() {
            return Ok(Redirect::to(&next).into_response());
        }
    }
    login_page(StatusCode::OK, next, String::new(), None)
}

#[derive(Deserialize)]
struct SignInForm {
    csrf: Option<String>,
    next: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

pub async fn sign_in(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    addr: Option<axum::Extension<ClientAddr>>,
    body: axum::body::Bytes,
) -> Page {
    let f: SignInForm = parse_form(&body)?;
    let next = safe_next(f.next.as_deref());
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if let Err(why) = check_form(&headers, tls(&app), f.csrf.as_deref(), expected) {
        return login_page(StatusCode::FORBIDDEN, next, String::new(), Some(why));
    }
    let addr = addr.map_or_else(|| "unknown".to_string(), |a| a.0 .0.to_string());
    let shown_name = if crate::app::valid_user_name(&f.name) {
        f.name.clone()
    } else {
        String::new()
    };
    let device = cookie(&headers, DEVICE_COOKIE);
    match app.sign_in(&f.name, &f.password, &addr, device) {
        Ok((secret, user)) => {
            let mut resp = Redirect::to(&next).into_response();
            let device = app.device_cookie(&user.name)?;
            let h = resp.headers_mut();
            // A year: this browser's attempts are then bounded on their own, so a
            // stranger's failures never lock this user out of it.
            h.append(
                header::SET_COOKIE,
                cookie_header(DEVICE_COOKIE, &device, Some(366 * 86400))
                    .parse()
                    .map_err(|_| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "bad cookie"))?,
            );
            h.append(
                header::SET_COOKIE,
                cookie_header(SESSION_COOKIE, &secret, None)
                    .parse()
                    .map_err(|_| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "bad cookie"))?,
            );
            h.append(
                header::SET_COOKIE,
                cookie_header(LOGIN_COOKIE, "", Some(0))
                    .parse()
                    .map_err(|_| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "bad cookie"))?,
            );
            Ok(resp)
        }
        Err(AppError::Refused(m)) => login_page(
            StatusCode::UNAUTHORIZED,
            next,
            shown_name,
            Some(format!("{m}.")),
        ),
        Err(AppError::Limited(m)) => login_page(
            StatusCode::TOO_MANY_REQUESTS,
            next,
            shown_name,
            Some(format!("{m}.")),
        ),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf: Option<String>,
}

pub async fn sign_out(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    let f: SignOutForm = parse_form(&body)?;
    let live = match cookie(&headers, SESSION_COOKIE) {
        Some(secret) => app.console_session(secret)?.map(|u| (secret, u)),
        None => None,
    };
    // A form from elsewhere is refused as such, session or not.
    if let Err(why) = check_origin(&headers, tls(&app)) {
        let f = Failure::new(StatusCode::FORBIDDEN, why);
        return Err(match &live {
            Some((_, u)) => f.with_user(u),
            None => f,
        });
    }
    let Some((secret, user)) = live else {
        return Ok(Redirect::to("/ui/login").into_response());
    };
    check_form(&headers, tls(&app), f.csrf.as_deref(), &user.session.csrf)
        .map_err(|why| Failure::forbidden(&user, why))?;
    app.sign_out(secret)?;
    Ok((
        [(
            header::SET_COOKIE,
            cookie_header(SESSION_COOKIE, "", Some(0)),
        )],
        Redirect::to("/ui/login"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(
            safe_next(Some("/ui/scans?status=failed")),
            "/ui/scans?status=failed"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil",
            "/ui/\\evil",
            "/api/v1/settings",
            "/ui/\nx",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }
}
