//! The shadow suite: /etc/login.defs and /etc/default/useradd defaults, password
//! aging in /etc/shadow, and the password fields of /etc/passwd and /etc/shadow.

use super::{cap, valid_shells, ShadowField};
use crate::facts::account_defaults::{login_defs_value, shadow_long, useradd_default, visible};
use crate::facts::accounts::accounts;
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

pub(super) fn login_defs(
    facts: &Facts,
    key: &str,
    allowed: &[String],
    min: Option<i64>,
    max: Option<i64>,
    default: &Option<String>,
) -> Result<Outcome, FactError> {
    let read = login_defs_value(facts, key)?;
    let numeric = min.is_some() || max.is_some();
    let (value, desc) = match (read.value, default) {
        // The shadow tools use their default for a number they cannot read.
        (Some(v), Some(d)) if numeric && read.number.is_none() => (
            Some(d.clone()),
            format!(
                "{}: {} is not a number to the shadow tools, which use the default {d}",
                read.desc,
                visible(&v)
            ),
        ),
        (Some(v), _) => (Some(v), read.desc),
        (None, _) => (
            default.clone(),
            match default {
                Some(d) => format!("{key} not set in /etc/login.defs; default {d}"),
                None => format!("{key} not set in /etc/login.defs"),
            },
        ),
    };
    Ok(judge(value.as_deref(), &desc, allowed, min, max))
}

pub(super) fn useradd_default_check(
    facts: &Facts,
    key: &str,
    min: Option<i64>,
    max: Option<i64>,
    default: &Option<String>,
) -> Result<Outcome, FactError> {
    let read = useradd_default(facts, key)?;
    let (value, desc) = match (read.value, read.number) {
        (Some(_), Some(n)) => (Some(n.to_string()), read.desc),
        // useradd ignores a value it cannot read and keeps its default.
        (Some(v), None) => (
            default.clone(),
            format!(
                "{}: useradd cannot read {} as a number and uses its default {}",
                read.desc,
                visible(&v),
                default.as_deref().unwrap_or("none")
            ),
        ),
        (None, _) => (
            default.clone(),
            format!(
                "{key} not set in /etc/default/useradd; useradd default {}",
                default.as_deref().unwrap_or("none")
            ),
        ),
    };
    Ok(judge(value.as_deref(), &desc, &[], min, max))
}

pub(super) fn shadow_field(
    facts: &Facts,
    field: ShadowField,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    let name = match field {
        ShadowField::MinDays => "minimum days",
        ShadowField::MaxDays => "maximum days",
        ShadowField::WarnDays => "warning days",
        ShadowField::Inactive => "inactive days",
    };
    let mut failures = Vec::new();
    let mut n = 0;
    for s in acc.shadow.iter().filter(|s| s.has_password()) {
        n += 1;
        let v = match field {
            ShadowField::MinDays => s.min_days,
            ShadowField::MaxDays => s.max_days,
            ShadowField::WarnDays => s.warn_days,
            ShadowField::Inactive => s.inactive,
        };
        let bad = match v {
            None => Some("empty".to_string()),
            Some(v) if min.is_some_and(|lo| v < lo) => {
                Some(format!("{v}, below {}", min.unwrap_or_default()))
            }
            Some(v) if max.is_some_and(|hi| v > hi) => {
                Some(format!("{v}, above {}", max.unwrap_or_default()))
            }
            Some(_) => None,
        };
        if let Some(b) = bad {
            failures.push(format!("/etc/shadow:{}: {}: {name} {b}", s.line, s.name));
        }
    }
    let range = range_text(min, max);
    let mut out = if failures.is_empty() {
        Outcome::pass(format!(
            "all {n} accounts with a password in /etc/shadow have {name} {range}"
        ))
    } else {
        Outcome::new(Status::Fail, cap(failures))
    };
    out.evidence.extend(acc.malformed.iter().cloned());
    Ok(out)
}

pub(super) fn shadow_no_future_change(facts: &Facts) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    let today = today_days();
    let failures: Vec<String> = acc
        .shadow
        .iter()
        .filter(|s| s.last_change.is_some_and(|d| d > today))
        .map(|s| {
            let d = s.last_change.unwrap_or_default();
            format!(
                "/etc/shadow:{}: {} last changed on day {d} ({}), after today ({})",
                s.line,
                s.name,
                date_of(d),
                date_of(today)
            )
        })
        .collect();
    Ok(if failures.is_empty() {
        Outcome::pass(format!(
            "no /etc/shadow last-change date is after today ({})",
            date_of(today)
        ))
    } else {
        Outcome::new(Status::Fail, cap(failures))
    })
}

pub(super) fn root_password(facts: &Facts, require_password: bool) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    Ok(match acc.shadow_of("root") {
        None => Outcome::fail("root has no /etc/shadow entry"),
        Some(s) if s.password.is_empty() => Outcome::fail(format!(
            "/etc/shadow:{}: root has an empty password",
            s.line
        )),
        Some(s) if s.is_locked() && require_password => Outcome::fail(format!(
            "/etc/shadow:{}: root is locked (password field starts with {}), so it has no usable password",
            s.line,
            &s.password[..1]
        )),
        Some(s) if s.is_locked() => {
            Outcome::pass(format!("/etc/shadow:{}: root is locked", s.line))
        }
        Some(s) => {
            Outcome::pass(format!("/etc/shadow:{}: root has a password set", s.line))
        }
    })
}

pub(super) fn nologin_locked(facts: &Facts) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    let valid = valid_shells(facts)?;
    let mut failures = Vec::new();
    let mut n = 0;
    for u in acc
        .users
        .iter()
        .filter(|u| u.name != "root" && !valid.contains(&u.shell))
    {
        n += 1;
        match acc.shadow_of(&u.name) {
            None => failures.push(format!(
                "/etc/passwd:{}: {} (shell {}) has no /etc/shadow entry",
                u.line, u.name, u.shell
            )),
            Some(s) if !s.is_locked() => failures.push(format!(
                "/etc/shadow:{}: {} (shell {}) is not locked",
                s.line, u.name, u.shell
            )),
            Some(_) => {}
        }
    }
    Ok(if failures.is_empty() {
        Outcome::pass(format!(
            "all {n} accounts without a valid login shell are locked"
        ))
    } else {
        Outcome::new(Status::Fail, cap(failures))
    })
}

pub(super) fn passwd_shadowed(facts: &Facts) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    let failures: Vec<String> = acc
        .users
        .iter()
        .filter(|u| u.password != "x")
        .map(|u| {
            let what = if u.password.is_empty() {
                "is empty".to_string()
            } else {
                "is not x".to_string()
            };
            format!(
                "/etc/passwd:{}: the password field of {} {what}",
                u.line, u.name
            )
        })
        .collect();
    let mut out = if failures.is_empty() {
        Outcome::pass(format!(
            "all {} /etc/passwd entries use shadowed passwords (x)",
            acc.users.len()
        ))
    } else {
        Outcome::new(Status::Fail, cap(failures))
    };
    out.evidence.extend(acc.malformed.iter().cloned());
    Ok(out)
}

pub(super) fn shadow_no_empty(facts: &Facts) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    if facts.read("/etc/shadow")?.is_none() {
        return Ok(Outcome::fail("/etc/shadow does not exist"));
    }
    let failures: Vec<String> = acc
        .shadow
        .iter()
        .filter(|s| s.password.is_empty())
        .map(|s| {
            format!(
                "/etc/shadow:{}: {} has an empty password field",
                s.line, s.name
            )
        })
        .collect();
    let mut out = if failures.is_empty() {
        Outcome::pass(format!(
            "none of the {} /etc/shadow entries has an empty password field",
            acc.shadow.len()
        ))
    } else {
        Outcome::new(Status::Fail, cap(failures))
    };
    out.evidence.extend(
        acc.malformed
            .iter()
            .filter(|m| m.starts_with("/etc/shadow"))
            .cloned(),
    );
    Ok(out)
}

fn judge(
    value: Option<&str>,
    desc: &str,
    allowed: &[String],
    min: Option<i64>,
    max: Option<i64>,
) -> Outcome {
    let Some(v) = value else {
        return Outcome::fail(desc.to_string());
    };
    if !allowed.is_empty() && !allowed.iter().any(|a| a == v) {
        return Outcome::fail(format!(
            "{desc}: {} is not {}",
            visible(v),
            allowed.join(" or ")
        ));
    }
    if min.is_some() || max.is_some() {
        let Some(n) = shadow_long(v) else {
            return Outcome::fail(format!("{desc}: {} is not a number", visible(v)));
        };
        if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
            return Outcome::fail(format!("{desc}: {n} is not {}", range_text(min, max)));
        }
    }
    Outcome::pass(desc.to_string())
}

fn range_text(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => "set".into(),
    }
}

/// Days since the epoch, today (UTC).
pub(super) fn today_days() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs() / 86400) as i64)
        .unwrap_or(0)
}

pub(super) fn date_of(days: i64) -> String {
    let days = days.clamp(-100_000, 2_000_000);
    match time::OffsetDateTime::UNIX_EPOCH.checked_add(time::Duration::days(days)) {
        Some(d) => d.date().to_string(),
        None => format!("day {days}"),
    }
}
