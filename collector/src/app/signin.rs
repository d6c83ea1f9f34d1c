//! Console sign-in: passwords (argon2id), server-side sessions, and the bounds on
//! failed attempts. The REST API never sees any of this: it takes bearer tokens only.
//!
//! A session's secret lives only in the browser's cookie; the store keeps its SHA-256
//! with the user, a CSRF token and two times. A session is over when it has been idle
//! for [`IDLE_MS`], lived [`ABSOLUTE_MS`], was signed out, or its user was revoked or
//! changed password since it began.
//!
//! Failed sign-ins are bounded so that guessing is slow, without letting a stranger lock
//! a user out: a browser that signed in as a user before carries a device cookie (an
//! HMAC of the user name under a key of this collector's), and its attempts are bounded
//! on their own (per user and device), never by the failures of other browsers or of
//! its address. Browsers without one are bounded per user name and per address.
//! Only failures against existing users are audited; the rest are counted in a metric,
//! so strangers cannot grow the audit log.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, OnceLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use super::{App, AppError, Result};
use crate::auth::{self, Role};
use crate::store::{SessionRecord, UserRecord};

/// A session idle this long is over.
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// A session this old is over, however busy.
pub const ABSOLUTE_MS: i64 = 12 * 3600 * 1000;
/// Failed sign-ins allowed per user name, and per client address, in [`WINDOW_MS`].
pub const FAILS_PER_USER: usize = 5;
pub const FAILS_PER_ADDRESS: usize = 20;
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Password lengths accepted, in bytes.
pub const PASSWORD_BYTES: std::ops::RangeInclusive<usize> = 12..=1024;
/// Password hashes computed at once (each costs 19 MiB and tens of milliseconds of a
/// core); more sign-ins wait, up to [`HASH_WAIT`], in turn.
const HASHES_AT_ONCE: usize = 4;
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The meta key of the device cookies' HMAC key.
const DEVICE_KEY: &str = "console_device_key";
/// `last_seen_ms` is written at most this often per session.
const TOUCH_MS: i64 = 60 * 1000;

/// argon2id with the OWASP minimum: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid"),
    )
}

/// Checks a new password's length; the error names the bound.
pub fn check_password(password: &str) -> Result<()> {
    if PASSWORD_BYTES.contains(&password.len()) {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "a password must be {} to {} bytes long; this one is {}",
            PASSWORD_BYTES.start(),
            PASSWORD_BYTES.end(),
            password.len()
        )))
    }
}

/// The argon2id PHC string of a password (random 16-byte salt).
pub fn hash_password(password: &str) -> Result<String> {
    check_password(password)?;
    let salt = auth::random_bytes::<16>(auth::system_random())?;
    let h = hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| AppError::Invalid(format!("the password cannot be hashed: {e}")))?;
    Ok(h.to_string())
}

/// Whether `password` matches the PHC string `phc` (a malformed string never does).
fn password_matches(password: &str, phc: &str) -> bool {
    hasher().verify_password(password.as_bytes(), phc).is_ok()
}

/// A hash no password matches, verified against for unknown users so that a wrong
/// name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password("decoy password that nobody has").unwrap_or_else(|_| String::new())
    })
}

/// Seconds until a key whose failures happened at `times` may try again, when
/// `limit` or more of them fall in the window ending at `now`.
fn wait_secs(mut times: Vec<i64>, limit: usize, now: i64) -> Option<i64> {
    times.retain(|t| now - t < WINDOW_MS);
    if limit == 0 || times.len() < limit {
        return None;
    }
    // The window frees a try when the limit-th newest failure leaves it.
    times.sort_unstable_by(|a, b| b.cmp(a));
    Some(((times[limit - 1] + WINDOW_MS - now) / 1000).max(1))
}

/// Failed sign-ins by key (`user:NAME`, `addr:IP`, `device:NAME`) within the window,
/// and the password hashes running.
#[derive(Default)]
pub struct SignInFailures {
    by_key: Mutex<HashMap<String, Vec<i64>>>,
    hashing: Mutex<usize>,
    freed: Condvar,
}

impl SignInFailures {
    /// This collector's failures under `key` (what counts where the store keeps
    /// none).
    fn local(&self, key: &str) -> Vec<i64> {
        let m = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).cloned().unwrap_or_default()
    }

    fn record(&self, key: String, now: i64) {
        let mut m = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            m.retain(|_, v| v.iter().any(|t| now - t < WINDOW_MS));
        }
        let v = m.entry(key).or_default();
        v.retain(|t| now - t < WINDOW_MS);
        // Never more than the largest limit is needed to decide.
        if v.len() >= FAILS_PER_ADDRESS {
            v.remove(0);
        }
        v.push(now);
    }

    fn clear(&self, key: &str) {
        self.by_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// One of the [`HASHES_AT_ONCE`] hashing slots, waiting up to [`HASH_WAIT`] in
    /// turn for one to free (sign-in runs where blocking is allowed).
    fn slot(&self) -> Result<HashSlot<'_>> {
        let guard = self.hashing.lock().unwrap_or_else(|p| p.into_inner());
        let (mut n, timeout) = self
            .freed
            .wait_timeout_while(guard, HASH_WAIT, |n| *n >= HASHES_AT_ONCE)
            .unwrap_or_else(|p| p.into_inner());
        if timeout.timed_out() && *n >= HASHES_AT_ONCE {
            return Err(AppError::Unavailable(
                "too many sign-ins at once; try again in a moment".into(),
            ));
        }
        *n += 1;
        Ok(HashSlot(self))
    }
}

/// A hashing slot, given back (and a waiter woken) when dropped.
struct HashSlot<'a>(&'a SignInFailures);

impl Drop for HashSlot<'_> {
    fn drop(&mut self) {
        *self.0.hashing.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub name: String,
    pub role: Role,
    pub session: SessionRecord,
}

impl App {
    /// Sets (or replaces) a user's console password; every session of theirs ends.
    pub fn set_password(&self, name: &str, password: &str, actor: &str) -> Result<()> {
        let phc = hash_password(password)?;
        let _guard = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let mut u = self
            .store
            .user(name)?
            .ok_or_else(|| AppError::NotFound(format!("user {name}")))?;
        if u.revoked {
            return Err(AppError::Conflict(format!(
                "user {name} is revoked; a revoked user gets no password"
            )));
        }
        let had = u.password_hash.is_some();
        u.password_hash = Some(phc);
        u.password_changed_at_ms = self.clock.now_ms();
        self.store.put_user(&u)?;
        self.tokens_seen.clear();
        let ended = self.store.delete_sessions(&mut |s| s.user != name)?;
        self.audit(
            actor,
            "user.password",
            Some(name),
            format!(
                "console password {}; {ended} session(s) ended",
                if had { "changed" } else { "set" }
            ),
        )?;
        self.sync_store()?;
        Ok(())
    }

    /// The HMAC key of device cookies: made once, kept in the store.
    fn device_key(&self) -> Result<ring::hmac::Key> {
        let key = match self.store.get_meta(DEVICE_KEY)? {
            Some(k) if k.len() == 32 => k,
            _ => {
                let k = auth::random_bytes::<32>(auth::system_random())?.to_vec();
                self.store.put_meta(DEVICE_KEY, &k)?;
                self.sync_store()?;
                k
            }
        };
        Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key))
    }

    /// The device cookie of a browser that signed in as `user`.
    pub fn device_cookie(&self, user: &str) -> Result<String> {
        let tag = ring::hmac::sign(&self.device_key()?, format!("device:{user}").as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok(hex)
    }

    /// Whether `cookie` is the device cookie of `user`.
    fn is_device_of(&self, cookie: &str, user: &str) -> Result<bool> {
        let Some(tag) = (cookie.len() == 64)
            .then(|| {
                (0..32)
                    .map(|i| u8::from_str_radix(cookie.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()
            })
            .flatten()
        else {
            return Ok(false);
        };
        Ok(ring::hmac::verify(
            &self.device_key()?,
            format!("device:{user}").as_bytes(),
            &tag,
        )
        .is_ok())
    }

    /// Refuses a sign-in when one of its `keys` (name, limit, words) has reached
    /// its limit of failures in the window ending at `now`: every collector's, where
    /// the store keeps them (`names` are the keys' names).
    fn signin_bounded(
        &self,
        keys: &[(String, usize, &str)],
        names: &[String],
        now: i64,
    ) -> Result<()> {
        let shared = self.store.signin_failures(names, now - WINDOW_MS)?;
        for (key, limit, what) in keys {
            let times = match &shared {
                Some(rows) => rows
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, t)| *t)
                    .collect(),
                None => self.signin_failures.local(key),
            };
            if let Some(secs) = wait_secs(times, *limit, now) {
                self.metrics.console_signin_failures.inc();
                self.metrics.refused(crate::metrics::Limit::SigninRate);
                return Err(AppError::Limited(format!(
                    "too many failed sign-ins {what}; try again in {secs} s"
                )));
            }
        }
        Ok(())
    }

    /// Signs a user in from `addr`: the new session's secret (for the cookie) and the
    /// user. `device` is the browser's device cookie, if it has one. Failed attempts
    /// are bounded (see the module's header); those against existing users audited.
    pub fn sign_in(
        &self,
        name: &str,
        password: &str,
        addr: &str,
        device: Option<&str>,
    ) -> Result<(String, ConsoleUser)> {
        let now = self.clock.now_ms();
        let name_ok = super::accounts::valid_user_name(name);
        let trusted = match (name_ok, device) {
            (true, Some(d)) => self.is_device_of(d, name)?,
            _ => false,
        };
        // A trusted browser is bounded on its own; others per name and per address.
        let keys: Vec<(String, usize, &str)> = if trusted {
            vec![(
                format!("device:{name}"),
                FAILS_PER_USER,
                "from this browser",
            )]
        } else {
            let mut k = vec![(
                format!("addr:{addr}"),
                FAILS_PER_ADDRESS,
                "from this address",
            )];
            if name_ok {
                k.push((format!("user:{name}"), FAILS_PER_USER, "for this user"));
            }
            k
        };
        // Where collectors share the store, every collector's failures count.
        let names: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        self.signin_bounded(&keys, &names, now)?;
        let user = if name_ok {
            self.store.user(name)?
        } else {
            None
        };
        // Checked again once a hashing slot is ours, and a failure written before the
        // slot is given back: attempts sent together overshoot the bound by at most
        // the slots (per collector), not by all that waited for one.
        let slot = self.signin_failures.slot()?;
        self.signin_bounded(&keys, &names, self.clock.now_ms())?;
        let ok = {
            let phc = user
                .as_ref()
                .and_then(|u| u.password_hash.as_deref())
                .unwrap_or_else(|| decoy_hash());
            let matches =
                password.len() <= *PASSWORD_BYTES.end() && password_matches(password, phc);
            matches
                && user
                    .as_ref()
                    .is_some_and(|u| !u.revoked && u.password_hash.is_some())
        };
        let role = user.as_ref().and_then(|u| Role::parse(&u.role));
        let (Some(user), Some(role), true) = (user.clone(), role, ok) else {
            self.store.note_signin_failure(&names, now)?;
            for (key, ..) in keys {
                self.signin_failures.record(key, now);
            }
            drop(slot);
            self.metrics.console_signin_failures.inc();
            // Only attempts on real accounts reach the audit log: a stranger trying
            // names cannot grow it.
            if let Some(u) = &user {
                self.audit(
                    &u.name,
                    "console.signin_failed",
                    None,
                    format!(
                        "from {addr}{}",
                        if trusted {
                            ", from a browser that signed in before"
                        } else {
                            ""
                        }
                    ),
                )?;
            }
            return Err(AppError::Refused("wrong user name or password".into()));
        };
        drop(slot);
        let cleared = format!("{}:{name}", if trusted { "device" } else { "user" });
        self.store.clear_signin_failures(&cleared)?;
        self.signin_failures.clear(&cleared);
        let secret = auth::new_secret("rps_")?;
        let csrf = auth::new_secret("")?;
        let session = SessionRecord {
            id_hash: auth::hash_secret(&secret),
            user: user.name.clone(),
            csrf,
            created_at_ms: now,
            last_seen_ms: now,
        };
        self.store.put_session(&session)?;
        self.audit(&user.name, "console.signin", None, format!("from {addr}"))?;
        self.sync_store()?;
        Ok((
            secret,
            ConsoleUser {
                name: user.name,
                role,
                session,
            },
        ))
    }

    /// The user of a live session, or `None` (unknown, expired, signed out, user
    /// revoked or password changed since). An expired session is removed.
    pub fn console_session(&self, secret: &str) -> Result<Option<ConsoleUser>> {
        let hash = auth::hash_secret(secret);
        let Some(mut s) = self.store.session(&hash)? else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let user: Option<UserRecord> = self.store.user(&s.user)?;
        let live = now - s.last_seen_ms < IDLE_MS
            && now - s.created_at_ms < ABSOLUTE_MS
            && user.as_ref().is_some_and(|u| {
                !u.revoked
                    && u.password_hash.is_some()
                    && u.password_changed_at_ms <= s.created_at_ms
            });
        let role = user.as_ref().and_then(|u| Role::parse(&u.role));
        let (true, Some(role)) = (live, role) else {
            self.store.delete_session(&hash)?;
            return Ok(None);
        };
        if now - s.last_seen_ms >= TOUCH_MS {
            s.last_seen_ms = now;
            self.store.put_session(&s)?;
        }
        Ok(Some(ConsoleUser {
            name: s.user.clone(),
            role,
            session: s,
        }))
    }

    /// Ends the session with this secret (sign-out); audited when it was live.
    pub fn sign_out(&self, secret: &str) -> Result<()> {
        let hash = auth::hash_secret(secret);
        if let Some(s) = self.store.session(&hash)? {
            self.store.delete_session(&hash)?;
            self.audit(&s.user, "console.signout", None, "session ended")?;
            self.sync_store()?;
        }
        Ok(())
    }

    /// Removes sessions that are over by time (run with the other periodic work).
    pub fn prune_sessions(&self, now: i64) -> Result<usize> {
        Ok(self.store.delete_sessions(&mut |s| {
            now - s.last_seen_ms < IDLE_MS && now - s.created_at_ms < ABSOLUTE_MS
        })?)
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

    fn actions(app: &App) -> Vec<String> {
        let (log, _) = app.store.audit(0, usize::MAX).unwrap();
        log.into_iter().rev().map(|e| e.action).collect()
    }

    #[test]
    fn passwords_are_argon2id_and_bounded() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("correct horse batterY", &h));
        assert!(!password_matches("x", "not a phc string"));
        assert!(
            matches!(hash_password("short"), Err(AppError::Invalid(m)) if m.contains("12 to 1024"))
        );
        assert!(hash_password(&"p".repeat(1025)).is_err());
    }

    #[test]
    fn sessions_live_and_end() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        app.add_user("root", Role::Admin, "system").unwrap();
        app.add_user("ann", Role::Provisioner, "root").unwrap();
        assert!(
            matches!(
                app.sign_in("ann", "anything at all", "10.0.0.1", None),
                Err(AppError::Refused(_))
            ),
            "no password set: no sign-in"
        );
        app.set_password("ann", "ann's long password", "root")
            .unwrap();
        let (secret, u) = app
            .sign_in("ann", "ann's long password", "10.0.0.1", None)
            .unwrap();
        assert_eq!((u.name.as_str(), u.role), ("ann", Role::Provisioner));
        let s = app.console_session(&secret).unwrap().unwrap();
        assert_eq!(s.session.csrf, u.session.csrf);
        assert!(app.console_session("rps_forged").unwrap().is_none());

        // Sign-out ends it on the server.
        app.sign_out(&secret).unwrap();
        assert!(app.console_session(&secret).unwrap().is_none());

        // A password change ends every session of the user.
        let (s1, _) = app
            .sign_in("ann", "ann's long password", "10.0.0.1", None)
            .unwrap();
        app.set_password("ann", "ann's new password", "root")
            .unwrap();
        assert!(app.console_session(&s1).unwrap().is_none());
        assert!(app
            .sign_in("ann", "ann's long password", "10.0.0.1", None)
            .is_err());

        // Revoking the user ends their sessions at once.
        let (s2, _) = app
            .sign_in("ann", "ann's new password", "10.0.0.1", None)
            .unwrap();
        app.revoke_user("ann", "root").unwrap();
        assert!(app.console_session(&s2).unwrap().is_none());

        // Idle and absolute expiry.
        app.set_password("root", "root's long password", "cli")
            .unwrap();
        let (s3, u3) = app
            .sign_in("root", "root's long password", "10.0.0.2", None)
            .unwrap();
        let mut rec = u3.session.clone();
        rec.last_seen_ms -= IDLE_MS;
        app.store.put_session(&rec).unwrap();
        assert!(app.console_session(&s3).unwrap().is_none(), "idle");
        assert!(
            app.store.session(&rec.id_hash).unwrap().is_none(),
            "removed"
        );
        let (s4, u4) = app
            .sign_in("root", "root's long password", "10.0.0.2", None)
            .unwrap();
        let mut rec = u4.session.clone();
        rec.created_at_ms -= ABSOLUTE_MS;
        app.store.put_session(&rec).unwrap();
        assert!(app.console_session(&s4).unwrap().is_none(), "absolute");

        let a = actions(&app);
        for want in [
            "user.password",
            "console.signin",
            "console.signin_failed",
            "console.signout",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} audited: {a:?}");
        }
    }

    #[test]
    fn failed_sign_ins_are_bounded_per_user_and_address() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        app.add_user("root", Role::Admin, "system").unwrap();
        app.set_password("root", "root's long password", "cli")
            .unwrap();
        // root signed in once from their own browser, which keeps the device cookie.
        app.sign_in("root", "root's long password", "10.7.0.1", None)
            .unwrap();
        let device = app.device_cookie("root").unwrap();
        for i in 0..FAILS_PER_USER {
            let r = app.sign_in("root", "wrong password!", &format!("10.1.0.{i}"), None);
            assert!(matches!(r, Err(AppError::Refused(_))), "{i}");
        }
        // The right password from a fresh browser is refused for now: the name is
        // under attack...
        let r = app.sign_in("root", "root's long password", "10.2.0.1", None);
        assert!(matches!(r, Err(AppError::Limited(m)) if m.contains("for this user")));
        // ...but root's own browser still gets in: a stranger cannot lock them out.
        app.sign_in("root", "root's long password", "10.2.0.1", Some(&device))
            .unwrap();
        // A device cookie is for its user only, and cannot be made up.
        app.add_user("ann", Role::Viewer, "root").unwrap();
        app.set_password("ann", "ann's long password", "root")
            .unwrap();
        assert!(!app.is_device_of(&device, "ann").unwrap());
        assert!(!app.is_device_of(&"0".repeat(64), "root").unwrap());
        assert!(!app.is_device_of("short", "root").unwrap());
        // A trusted browser guessing is bounded on its own.
        for _ in 0..FAILS_PER_USER {
            let _ = app.sign_in("root", "wrong password!", "10.3.0.1", Some(&device));
        }
        let r = app.sign_in("root", "root's long password", "10.3.0.1", Some(&device));
        assert!(matches!(r, Err(AppError::Limited(m)) if m.contains("from this browser")));

        // One address trying many names is cut off by address (not trusted browsers).
        for i in 0..FAILS_PER_ADDRESS {
            let _ = app.sign_in(&format!("u{i}"), "wrong password!", "10.9.9.9", None);
        }
        let r = app.sign_in("someone", "wrong password!", "10.9.9.9", None);
        assert!(matches!(r, Err(AppError::Limited(m)) if m.contains("from this address")));
        // Names that are no user's reach no audit entry, only the metric.
        let before = app.store.audit(0, 0).unwrap().1;
        let r = app.sign_in("<script>", "x", "10.4.0.1", None);
        assert!(matches!(r, Err(AppError::Refused(_))));
        let _ = app.sign_in("nobody", "wrong password!", "10.4.0.1", None);
        assert_eq!(app.store.audit(0, 0).unwrap().1, before);
        assert!(app.metrics.console_signin_failures.get() >= 30);
    }

    #[test]
    fn hash_slots_wait_their_turn() {
        let f = SignInFailures::default();
        let held: Vec<_> = (0..HASHES_AT_ONCE).map(|_| f.slot().unwrap()).collect();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| f.slot().map(|_| ()));
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(held);
            assert!(
                waiter.join().unwrap().is_ok(),
                "a freed slot goes to the waiter"
            );
        });
    }
}
