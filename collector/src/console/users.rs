//! Users and tokens (admin; SPEC §4): every user with their role and console password,
//! a form that creates one (its API token shown once), a user's revocation after a
//! confirmation page, a password set by an admin, and the enrollment tokens with their
//! revocation. Every change goes through the same App operations as the REST API's, so
//! it is audited with the admin as actor.
//!
//! After a change the browser is sent back to the list (`?done=…`); the message shown
//! there is derived from the store's state, so a crafted link cannot claim a change
//! that did not happen.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::view::{self, Chrome};
use super::{Failure, Page, Ui};
use crate::app::signin::ConsoleUser;
use crate::app::{App, AppError};
use crate::auth::Role;
use crate::store::{TokenRecord, UserRecord};

/// The most enrollment tokens listed, newest first.
const TOKENS_SHOWN: usize = 200;

const ROLES: [&str; 4] = ["viewer", "user", "provisioner", "admin"];

/// One user as the table shows them.
pub struct UserRow {
    name: String,
    /// The name percent-encoded, for URLs.
    path: String,
    role: String,
    has_password: bool,
    created: String,
    revoked: bool,
    /// The signed-in admin themselves (nobody revokes themselves).
    is_self: bool,
}

impl UserRow {
    fn new(u: &UserRecord, me: &str) -> UserRow {
        UserRow {
            name: u.name.clone(),
            path: view::url_encode(&u.name),
            role: u.role.clone(),
            has_password: u.password_hash.is_some(),
            created: view::when(u.created_at_ms),
            revoked: u.revoked,
            is_self: u.name == me,
        }
    }
}

/// One enrollment token as the table shows it: never its secret or hash.
pub struct TokenRow {
    id: String,
    path: String,
    project: String,
    created_by: String,
    created: String,
    expires: String,
    uses: u32,
    max_uses: u32,
    expired: bool,
    revoked: bool,
}

impl TokenRow {
    fn new(t: &TokenRecord, now: i64) -> TokenRow {
        TokenRow {
            id: t.id.clone(),
            path: view::url_encode(&t.id),
            project: t.project.clone().unwrap_or_default(),
            created_by: t.created_by.clone(),
            created: view::when(t.created_at_ms),
            expires: view::when(t.expires_at_ms),
            uses: t.uses,
            max_uses: t.max_uses,
            expired: now >= t.expires_at_ms,
            revoked: t.revoked,
        }
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    c: Chrome,
    csrf: String,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    tokens_total: usize,
    roles: [&'static str; 4],
    /// The create form's values (kept when it is refused; never the password).
    name: String,
    role: String,
    status: Option<String>,
    error: Option<String>,
    /// A new user's API token, shown this once.
    new_secret: Option<String>,
}

fn users_page(app: &App, u: &ConsoleUser) -> Result<UsersPage, Failure> {
    let fail = |e: AppError| Failure::from(e).with_user(u);
    let now = app.clock.now_ms();
    let tokens = app.tokens().map_err(fail)?;
    Ok(UsersPage {
        c: Chrome::new("Users and tokens", Some(u), "users"),
        csrf: u.session.csrf.clone(),
        users: app
            .users()
            .map_err(fail)?
            .iter()
            .map(|x| UserRow::new(x, &u.name))
            .collect(),
        tokens_total: tokens.len(),
        tokens: tokens
            .iter()
            .take(TOKENS_SHOWN)
            .map(|t| TokenRow::new(t, now))
            .collect(),
        roles: ROLES,
        name: String::new(),
        role: "viewer".into(),
        status: None,
        error: None,
        new_secret: None,
    })
}

/// The list with an error of an App operation in `[role=alert]`, with its status
/// (404, 409, 422…); `edit` may fill in more of the page.
fn refused_with(
    app: &App,
    u: &ConsoleUser,
    e: AppError,
    edit: impl FnOnce(&mut UsersPage),
) -> Page {
    let f = Failure::from(e).with_user(u);
    let mut page = users_page(app, u)?;
    page.error = Some(format!("Not done: {}.", f.message));
    edit(&mut page);
    Ok((f.status, view::html(&page)).into_response())
}

fn refused(app: &App, u: &ConsoleUser, e: AppError) -> Page {
    refused_with(app, u, e, |_| {})
}

/// Which change the list reports after a redirect (`?done=…`).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
    user: Option<String>,
    token: Option<String>,
}

/// The message of a `Done`, only when the store agrees that it happened.
fn done_message(d: &Done, users: &[UserRecord], tokens: &[TokenRow]) -> Option<String> {
    let user = |name: &Option<String>| {
        let name = name.as_deref()?;
        users.iter().find(|u| u.name == name)
    };
    match d.done.as_deref()? {
        "revoked" => user(&d.user).filter(|u| u.revoked).map(|u| {
            format!(
                "{} is revoked: their API token is refused and their console sessions have ended.",
                u.name
            )
        }),
        "password" => user(&d.user)
            .filter(|u| u.password_hash.is_some() && !u.revoked)
            .map(|u| {
                format!(
                    "{}'s console password was set {}; their earlier console sessions have ended.",
                    u.name,
                    view::when(u.password_changed_at_ms)
                )
            }),
        "token-revoked" => {
            let id = d.token.as_deref()?;
            tokens.iter().find(|t| t.id == id && t.revoked).map(|t| {
                format!(
                    "Enrollment token {} is revoked: no VM enrolls with it from now on.",
                    t.id
                )
            })
        }
        _ => None,
    }
}

pub async fn list(State(app): State<Arc<App>>, ui: Ui, Query(d): Query<Done>) -> Page {
    let u = ui.require(Role::Admin, "Users and tokens")?;
    let mut page = users_page(&app, u)?;
    let users = app.users().map_err(|e| Failure::from(e).with_user(u))?;
    page.status = done_message(&d, &users, &page.tokens);
    Ok(view::html(&page))
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn create(
    State(app): State<Arc<App>>,
    ui: Ui,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    let (f, u) = ui.form::<CreateForm>(&app, &headers, &body, Role::Admin, "Creating users")?;
    let name = f.name.trim();
    let result = match Role::parse(&f.role) {
        Some(role) => {
            let password = Some(f.password.as_str()).filter(|p| !p.is_empty());
            app.add_user_with_password(name, role, password, &u.name)
                .map(|token| (role, token))
        }
        None => Err(AppError::Invalid(format!(
            "role `{}` is not viewer, user, provisioner or admin",
            crate::limits::echo(&f.role)
        ))),
    };
    match result {
        Ok((role, token)) => {
            let mut page = users_page(&app, u)?;
            page.status = Some(format!(
                "User {name} created with the {} role{}. Copy their API token now: it is shown only here, once.",
                role.as_str(),
                if f.password.is_empty() {
                    "; they have no console password yet"
                } else {
                    "; their console password is set"
                }
            ));
            page.new_secret = Some(token);
            Ok(view::html(&page))
        }
        // The form again with what was sent, so that nothing typed is lost (but the
        // password).
        Err(e) => refused_with(&app, u, e, |page| {
            page.name = name.to_string();
            page.role = f.role.clone();
        }),
    }
}

/// A user by name, if there is one.
fn find_user(app: &App, u: &ConsoleUser, name: &str) -> Result<Option<UserRecord>, Failure> {
    Ok(app
        .users()
        .map_err(|e| Failure::from(e).with_user(u))?
        .into_iter()
        .find(|x| x.name == name))
}

/// The list with a 404 alert for a user that does not exist.
fn no_such_user(app: &App, u: &ConsoleUser, name: &str) -> Page {
    refused(app, u, AppError::NotFound(format!("user {name}")))
}

#[derive(Template)]
#[template(path = "user_revoke.html")]
struct RevokePage {
    c: Chrome,
    csrf: String,
    user: UserRow,
}

fn revoke_confirmation(app: &App, u: &ConsoleUser, name: &str) -> Page {
    let Some(target) = find_user(app, u, name)? else {
        return no_such_user(app, u, name);
    };
    if target.revoked {
        return Ok(Redirect::to(&format!(
            "/ui/users?done=revoked&user={}",
            view::url_encode(name)
        ))
        .into_response());
    }
    Ok(view::html(&RevokePage {
        c: Chrome::new(&format!("Revoke {name}"), Some(u), "users"),
        csrf: u.session.csrf.clone(),
        user: UserRow::new(&target, &u.name),
    }))
}

pub async fn revoke_form(State(app): State<Arc<App>>, ui: Ui, Path(name): Path<String>) -> Page {
    let u = ui.require(Role::Admin, "Revoking users")?;
    revoke_confirmation(&app, u, &name)
}

#[derive(Deserialize)]
struct RevokeForm {
    /// Present on the confirmation page's form; without it the page is shown.
    confirm: Option<String>,
}

pub async fn revoke(
    State(app): State<Arc<App>>,
    ui: Ui,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    let (f, u) = ui.form::<RevokeForm>(&app, &headers, &body, Role::Admin, "Revoking users")?;
    if f.confirm.as_deref() != Some("yes") {
        return revoke_confirmation(&app, u, &name);
    }
    match app.revoke_user(&name, &u.name) {
        Ok(_) => Ok(Redirect::to(&format!(
            "/ui/users?done=revoked&user={}",
            view::url_encode(&name)
        ))
        .into_response()),
        Err(e) => refused(&app, u, e),
    }
}

#[derive(Template)]
#[template(path = "user_password.html")]
struct PasswordPage {
    c: Chrome,
    csrf: String,
    user: UserRow,
    error: Option<String>,
}

fn password_page(
    app: &App,
    u: &ConsoleUser,
    name: &str,
    status: StatusCode,
    error: Option<String>,
) -> Page {
    let Some(target) = find_user(app, u, name)? else {
        return no_such_user(app, u, name);
    };
    let page = PasswordPage {
        c: Chrome::new(&format!("Console password of {name}"), Some(u), "users"),
        csrf: u.session.csrf.clone(),
        user: UserRow::new(&target, &u.name),
        error,
    };
    Ok((status, view::html(&page)).into_response())
}

pub async fn password_form(State(app): State<Arc<App>>, ui: Ui, Path(name): Path<String>) -> Page {
    let u = ui.require(Role::Admin, "Setting passwords")?;
    password_page(&app, u, &name, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
}

pub async fn set_password(
    State(app): State<Arc<App>>,
    ui: Ui,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    let (f, u) =
        ui.form::<PasswordForm>(&app, &headers, &body, Role::Admin, "Setting passwords")?;
    if f.password != f.password_again {
        return password_page(
            &app,
            u,
            &name,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Not set: the two passwords differ.".into()),
        );
    }
    match app.set_password(&name, &f.password, &u.name) {
        Ok(()) => Ok(Redirect::to(&format!(
            "/ui/users?done=password&user={}",
            view::url_encode(&name)
        ))
        .into_response()),
        Err(AppError::NotFound(m)) => refused(&app, u, AppError::NotFound(m)),
        Err(e) => {
            let f = Failure::from(e).with_user(u);
            password_page(
                &app,
                u,
                &name,
                f.status,
                Some(format!("Not set: {}.", f.message)),
            )
        }
    }
}

/// A typed `GET /ui/tokens/{id}/revoke`: the list, whose buttons revoke.
pub async fn to_list(ui: Ui) -> Page {
    ui.require(Role::Admin, "Revoking enrollment tokens")?;
    Ok(Redirect::to("/ui/users").into_response())
}

pub async fn revoke_token(
    State(app): State<Arc<App>>,
    ui: Ui,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    let (_, u) = ui.form::<serde::de::IgnoredAny>(
        &app,
        &headers,
        &body,
        Role::Admin,
        "Revoking enrollment tokens",
    )?;
    match app.revoke_token(&id, &u.name) {
        Ok(_) => Ok(Redirect::to(&format!(
            "/ui/users?done=token-revoked&token={}",
            view::url_encode(&id)
        ))
        .into_response()),
        Err(e) => refused(&app, u, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, revoked: bool, password: bool) -> UserRecord {
        UserRecord {
            name: name.into(),
            role: "viewer".into(),
            token_hash: String::new(),
            created_at_ms: 0,
            revoked,
            password_hash: password.then(|| "$argon2id$…".into()),
            password_changed_at_ms: 0,
        }
    }

    fn token(id: &str, revoked: bool) -> TokenRow {
        TokenRow::new(
            &TokenRecord {
                id: id.into(),
                hash: String::new(),
                project: None,
                created_by: "ada".into(),
                created_at_ms: 0,
                expires_at_ms: 1,
                max_uses: 1,
                uses: 0,
                revoked,
            },
            0,
        )
    }

    #[test]
    fn messages_say_only_what_the_store_shows() {
        let users = [
            user("gone", true, true),
            user("kept", false, true),
            user("bare", false, false),
        ];
        let tokens = [token("tok-1", true), token("tok-2", false)];
        let d = |done: &str, user: &str, token: &str| Done {
            done: Some(done.into()),
            user: Some(user.into()),
            token: Some(token.into()),
        };
        // (query) → the message begins so, or there is none.
        let cases = [
            (d("revoked", "gone", ""), Some("gone is revoked")),
            (d("revoked", "kept", ""), None),
            (d("revoked", "nobody", ""), None),
            (
                d("password", "kept", ""),
                Some("kept's console password was set"),
            ),
            (d("password", "bare", ""), None),
            (d("password", "gone", ""), None),
            (
                d("token-revoked", "", "tok-1"),
                Some("Enrollment token tok-1 is revoked"),
            ),
            (d("token-revoked", "", "tok-2"), None),
            (d("token-revoked", "", "tok-9"), None),
            (d("<b>owned</b>", "gone", "tok-1"), None),
            (Done::default(), None),
        ];
        for (q, want) in cases {
            let got = done_message(&q, &users, &tokens);
            match want {
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.starts_with(w)),
                    "{q:?}: {got:?}"
                ),
                None => assert_eq!(got, None, "{q:?}"),
            }
        }
    }
}
