//! Users (people and pipelines calling the REST API) and enrollment tokens: creation,
//! listing and revocation, each change audited with its actor.

use super::{App, AppError, Result};
use crate::auth::{self, Role};
use crate::store::{TokenRecord, UserRecord};

/// Checks a user name: 1-64 characters of letters, digits, `-`, `_`, `.`, `@`; not
/// `.` or `..` (a URL path cannot hold those as a segment).
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// How long an API token once found in the store is taken without asking it again.
/// Changes to users made through this collector take effect at once; those made
/// through another collector sharing the store, or by the CLI, within this.
pub const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// Most tokens remembered; past it the table starts again empty.
const TOKENS_KEPT: usize = 10_000;

/// API tokens found in the store in the last [`TOKEN_TTL`] (by their SHA-256), so
/// that a pipeline polling the handover gate, or a page of calls, costs the store
/// one read per token and period. Unknown and revoked tokens are never kept.
#[derive(Default)]
pub struct TokenCache(std::sync::Mutex<Tokens>);

/// The tokens kept, and how many times they were all forgotten.
#[derive(Default)]
struct Tokens {
    by_hash: std::collections::HashMap<String, (String, Role, std::time::Instant)>,
    cleared: u64,
}

impl TokenCache {
    /// The token's user and role if kept and fresh; otherwise the clear count to
    /// hand [`TokenCache::put`] with what the store says.
    fn get(&self, hash: &str) -> std::result::Result<(String, Role), u64> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.by_hash
            .get(hash)
            .filter(|(.., at)| at.elapsed() < TOKEN_TTL)
            .map(|(name, role, _)| (name.clone(), *role))
            .ok_or(m.cleared)
    }

    /// Keeps what the store said, unless the tokens were forgotten since it was
    /// asked (`cleared` from [`TokenCache::get`]): a change made meanwhile wins.
    fn put(&self, cleared: u64, hash: String, name: &str, role: Role) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.cleared != cleared {
            return;
        }
        if m.by_hash.len() >= TOKENS_KEPT {
            m.by_hash.clear();
        }
        m.by_hash
            .insert(hash, (name.to_string(), role, std::time::Instant::now()));
    }

    /// Forgets every token (a user changed here).
    pub fn clear(&self) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.by_hash.clear();
        m.cleared += 1;
    }
}

impl App {
    /// Creates a user and returns its API token (shown once). Names are never
    /// reused, not even a revoked user's: the audit log names actors by name.
    pub fn add_user(&self, name: &str, role: Role, actor: &str) -> Result<String> {
        self.add_user_with_password(name, role, None, actor)
    }

    /// [`App::add_user`], with a console password when one is given.
    pub fn add_user_with_password(
        &self,
        name: &str,
        role: Role,
        password: Option<&str>,
        actor: &str,
    ) -> Result<String> {
        if !valid_user_name(name) {
            return Err(AppError::Invalid(format!(
                "user name `{name}` must be 1-64 characters of letters, digits, - _ . @"
            )));
        }
        let _guard = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = self.store.users()?.into_iter().find(|u| u.name == name) {
            return Err(AppError::Conflict(format!(
                "user {name} already exists{}; choose another name",
                if u.revoked { " (revoked)" } else { "" }
            )));
        }
        let password_hash = password.map(super::signin::hash_password).transpose()?;
        let token = auth::new_secret("rpt_")?;
        let now = self.clock.now_ms();
        self.store.put_user(&UserRecord {
            name: name.into(),
            role: role.as_str().into(),
            token_hash: auth::hash_secret(&token),
            created_at_ms: now,
            revoked: false,
            password_changed_at_ms: if password_hash.is_some() { now } else { 0 },
            password_hash,
        })?;
        self.audit(
            actor,
            "user.create",
            Some(name),
            format!(
                "role {}{}",
                role.as_str(),
                if password.is_some() {
                    ", console password set"
                } else {
                    ""
                }
            ),
        )?;
        self.sync_store()?;
        Ok(token)
    }

    /// The user and role behind an API token; `None` for an unknown or revoked token
    /// (see [`TokenCache`]).
    pub fn authenticate(&self, token: &str) -> Result<Option<(String, Role)>> {
        let hash = auth::hash_secret(token);
        let cleared = match self.tokens_seen.get(&hash) {
            Ok(known) => return Ok(Some(known)),
            Err(cleared) => cleared,
        };
        let found = self
            .store
            .user_by_token_hash(&hash)?
            .filter(|u| !u.revoked)
            .and_then(|u| Role::parse(&u.role).map(|r| (u.name, r)));
        if let Some((name, role)) = &found {
            self.tokens_seen.put(cleared, hash, name, *role);
        }
        Ok(found)
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRecord>> {
        let mut users = self.store.users()?;
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    /// Revokes a user: their token is refused from now on. Revoking a revoked user
    /// changes nothing. Nobody revokes themselves (another admin must), and the last
    /// active admin is never revoked, so the collector always keeps an administrator.
    pub fn revoke_user(&self, name: &str, actor: &str) -> Result<UserRecord> {
        let _guard = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let users = self.store.users()?;
        let mut u = users
            .iter()
            .find(|u| u.name == name)
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("user {name}")))?;
        if u.revoked {
            return Ok(u);
        }
        if name == actor {
            return Err(AppError::Conflict(format!(
                "{actor} cannot revoke their own user; another admin must"
            )));
        }
        let active_admins = users
            .iter()
            .filter(|x| !x.revoked && x.role == Role::Admin.as_str())
            .count();
        if u.role == Role::Admin.as_str() && active_admins <= 1 {
            return Err(AppError::Conflict(format!(
                "{name} is the last active admin; create another admin first"
            )));
        }
        u.revoked = true;
        self.store.put_user(&u)?;
        self.tokens_seen.clear();
        let ended = self.store.delete_sessions(&mut |s| s.user != name)?;
        self.audit(
            actor,
            "user.revoke",
            Some(name),
            format!(
                "role {}; its API token is refused from now on; {ended} console session(s) ended",
                u.role
            ),
        )?;
        self.sync_store()?;
        Ok(u)
    }

    /// Creates an enrollment token; returns (token ID, secret, expiry).
    /// Agents take their project from the token alone, so a token for a project
    /// that is exempt from scanning (never scanned, never blocked) is an admin's to
    /// make.
    pub fn create_token(
        &self,
        project: Option<&str>,
        ttl_secs: i64,
        max_uses: u32,
        actor: &str,
        actor_role: Role,
    ) -> Result<(String, String, i64)> {
        if let Some(p) = project {
            if p.is_empty()
                || p.len() > 128
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
            {
                return Err(AppError::Invalid(format!(
                    "project `{}` must be 1 to 128 letters, digits, `.`, `_`, `-` or `/`",
                    crate::limits::echo(p)
                )));
            }
            if actor_role < Role::Admin && self.settings().exempt_projects.contains(p) {
                return Err(AppError::Refused(format!(
                    "project {p} is exempt from scanning: only an admin may create its tokens"
                )));
            }
        }
        if !(1..=366 * 86400).contains(&ttl_secs) {
            return Err(AppError::Invalid(format!(
                "ttl_seconds {ttl_secs} must be between 1 and 31622400"
            )));
        }
        if !(1..=100_000).contains(&max_uses) {
            return Err(AppError::Invalid(format!(
                "max_uses {max_uses} must be between 1 and 100000"
            )));
        }
        let secret = auth::new_secret("rpe_")?;
        let id = auth::new_id("tok-")?;
        let expires = self.clock.now_ms() + ttl_secs * 1000;
        self.store.put_token(&TokenRecord {
            id: id.clone(),
            hash: auth::hash_secret(&secret),
            project: project.map(String::from),
            created_by: actor.into(),
            created_at_ms: self.clock.now_ms(),
            expires_at_ms: expires,
            max_uses,
            uses: 0,
            revoked: false,
        })?;
        self.audit(
            actor,
            "token.create",
            Some(&id),
            format!(
                "project {}, {max_uses} use(s), expires in {ttl_secs} s",
                project.unwrap_or("(none)")
            ),
        )?;
        self.sync_store()?;
        Ok((id, secret, expires))
    }

    /// Every enrollment token, newest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut tokens = self.store.tokens()?;
        tokens.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(tokens)
    }

    /// Revokes an enrollment token: no agent enrolls with it from now on. Revoking a
    /// revoked token changes nothing.
    pub fn revoke_token(&self, id: &str, actor: &str) -> Result<TokenRecord> {
        let before = self
            .store
            .revoke_token(id)?
            .ok_or_else(|| AppError::NotFound(format!("enrollment token {id}")))?;
        if !before.revoked {
            self.audit(
                actor,
                "token.revoke",
                Some(id),
                format!(
                    "project {}, {} of {} use(s) spent",
                    before.project.as_deref().unwrap_or("(none)"),
                    before.uses,
                    before.max_uses
                ),
            )?;
            self.sync_store()?;
        }
        Ok(TokenRecord {
            revoked: true,
            ..before
        })
    }

    /// Test hook: a token that expires `ttl_ms` from now (may be under a minute).
    #[doc(hidden)]
    pub fn create_token_unchecked(
        &self,
        project: Option<&str>,
        ttl_ms: i64,
        max_uses: u32,
    ) -> Result<String> {
        let secret = auth::new_secret("rpe_")?;
        self.store.put_token(&TokenRecord {
            id: auth::new_id("tok-")?,
            hash: auth::hash_secret(&secret),
            project: project.map(String::from),
            created_by: "test".into(),
            created_at_ms: self.clock.now_ms(),
            expires_at_ms: self.clock.now_ms() + ttl_ms,
            max_uses,
            uses: 0,
            revoked: false,
        })?;
        self.sync_store()?;
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Ca;
    use crate::config::Config;
    use crate::store::sled_store::SledStore;
    use std::sync::Arc;

    fn app(dir: &std::path::Path) -> App {
        let store = Arc::new(SledStore::open(&dir.join("db")).unwrap());
        let ca = Ca::open_or_create(&dir.join("ca")).unwrap();
        App::new(store, ca, Config::default()).unwrap()
    }

    fn actions(app: &App) -> Vec<(String, String, Option<String>)> {
        let (log, _) = app.store.audit(0, usize::MAX).unwrap();
        log.into_iter()
            .rev()
            .map(|e| (e.actor, e.action, e.target))
            .collect()
    }

    #[test]
    fn revoking_users_is_audited_and_keeps_an_admin() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let root = app.add_user("root", Role::Admin, "system").unwrap();
        let ann = app.add_user("ann", Role::Viewer, "root").unwrap();
        assert!(matches!(
            app.add_user("ann", Role::Admin, "root"),
            Err(AppError::Conflict(m)) if m.contains("already exists")
        ));
        for bad in ["bad name", ".", "..", ""] {
            assert!(
                matches!(
                    app.add_user(bad, Role::Admin, "root"),
                    Err(AppError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        assert!(valid_user_name("a.b") && valid_user_name("..a"));
        assert_eq!(
            app.authenticate(&ann).unwrap(),
            Some(("ann".into(), Role::Viewer))
        );
        let u = app.revoke_user("ann", "root").unwrap();
        assert!(u.revoked && u.name == "ann");
        assert_eq!(app.authenticate(&ann).unwrap(), None, "refused at once");
        assert!(
            app.revoke_user("ann", "root").unwrap().revoked,
            "idempotent"
        );
        assert!(matches!(
            app.add_user("ann", Role::Viewer, "root"),
            Err(AppError::Conflict(m)) if m.contains("(revoked)")
        ));
        assert!(matches!(
            app.revoke_user("nobody", "root"),
            Err(AppError::NotFound(_))
        ));
        // Nobody revokes themselves; the last admin stays, whoever asks.
        assert!(matches!(
            app.revoke_user("root", "root"),
            Err(AppError::Conflict(m)) if m.contains("own user")
        ));
        assert!(matches!(
            app.revoke_user("root", "cli"),
            Err(AppError::Conflict(m)) if m.contains("last active admin")
        ));
        app.add_user("bob", Role::Admin, "root").unwrap();
        app.revoke_user("root", "bob").unwrap();
        assert_eq!(app.authenticate(&root).unwrap(), None);
        let names: Vec<_> = app.users().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["ann", "bob", "root"]);
        let revokes: Vec<_> = actions(&app)
            .into_iter()
            .filter(|(_, a, _)| a == "user.revoke")
            .collect();
        assert_eq!(
            revokes,
            [
                ("root".into(), "user.revoke".into(), Some("ann".into())),
                ("bob".into(), "user.revoke".into(), Some("root".into())),
            ],
            "one entry per real revocation, with its actor"
        );
    }

    #[test]
    fn revoking_tokens_is_audited_once() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let (id, _, _) = app
            .create_token(Some("web"), 3600, 2, "ann", Role::Provisioner)
            .unwrap();
        let t = app.revoke_token(&id, "root").unwrap();
        assert!(t.revoked && t.project.as_deref() == Some("web"));
        assert!(app.revoke_token(&id, "root").unwrap().revoked);
        assert!(matches!(
            app.revoke_token("tok-none", "root"),
            Err(AppError::NotFound(_))
        ));
        assert!(app.tokens().unwrap()[0].revoked);
        let revokes: Vec<_> = actions(&app)
            .into_iter()
            .filter(|(_, a, _)| a == "token.revoke")
            .collect();
        assert_eq!(revokes, [("root".into(), "token.revoke".into(), Some(id))]);
    }
}
