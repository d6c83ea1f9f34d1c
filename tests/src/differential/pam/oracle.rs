//! The oracle: the root's libpam and modules, driven by pamtester chrooted into the
//! copy as PID 1 of its own PID namespace. Per configuration, from a fresh
//! /etc/shadow, /etc/security/opasswd and no faillock tallies:
//!
//! - `alice` and `root` authenticate through common-auth with their passwords (the
//!   baseline); then, per account, one more wrong password at a time until the right
//!   password is refused, the tally being restored after each right attempt: the
//!   number of failures after which pam_faillock locks the account (up to 6);
//! - `carol`, whose password is empty, authenticates with an empty answer;
//! - `alice` and `root` change their own password through common-password (alice as
//!   passwd does it for her: real uid hers, effective uid 0), first back to the old
//!   password seeded 30 times in /etc/security/opasswd (refused only where
//!   pam_pwhistory enforces the history: for root only with enforce_for_root, which
//!   is about the caller being root), then to a new one: the hash prefix pam_unix
//!   writes to /etc/shadow, and how many old passwords pam_pwhistory keeps.

use std::collections::BTreeMap;

use super::super::RootCopy;

const ALICE_HASH: &str = "$6$rampart27472$ouwxlFQfreq92MmOvudeAdKLkpJyfPo2ai5Z.QScZuJ/SJTN5Uzh8KqJOIYylK00KkBC5SJlS.S0zfLRZqEg71";
const ROOT_HASH: &str = "$6$rampart10836$99c2fVDqyp20UNWDo9KV8CBvf.9TWfiPd606WAXlX2/nkUe9aydrsKN4GAUwSghO04rDZ.CcqMZLp/YkSmv63.";
/// `Kx9#mQ-2vL!pRt7`, the seeded history (as strong as the new password, so that
/// only pam_pwhistory has a reason to refuse it).
const OLD_HASH: &str = "$6$rampart4242$fWI6f3fx6cSn0u.jbCuV.natI.p8o/qfJ83wyfb6kcwSui7O.am9gn4i1jNPSn6mtJXgbpf.pdMzgnaDOYZRx0";
/// How many old passwords opasswd holds per account before each configuration.
pub const SEEDED: usize = 30;

/// What libpam did with one configuration.
#[derive(Debug, Default)]
pub struct Truth {
    /// Per account (`alice`, `root`): whether the right password authenticates.
    pub auth_ok: BTreeMap<String, bool>,
    /// Per account: after how many failures the right password is refused (None: not
    /// within 6).
    pub locks_after: BTreeMap<String, Option<usize>>,
    /// Whether `carol`'s empty password authenticates.
    pub empty_ok: bool,
    /// Per account: whether the password change succeeded and wrote a new hash
    /// (a stack can succeed without pam_unix, e.g. `sufficient pam_permit.so`).
    pub changed: BTreeMap<String, bool>,
    /// Per account: whether changing back to the old password was refused.
    pub reuse_refused: BTreeMap<String, bool>,
    /// alice's hash in /etc/shadow after the change.
    pub alice_hash: String,
    /// Per account: the old passwords opasswd keeps after the change (`None`: the
    /// entry was left as seeded).
    pub kept: BTreeMap<String, Option<usize>>,
}

/// The copy's original /etc/shadow with the tested accounts, for [`reset`].
pub struct Accounts {
    shadow: String,
}

/// Sets up the accounts and pamtester once.
pub fn prepare(copy: &RootCopy) -> Accounts {
    copy.install_pamtester();
    let shadow = copy
        .seed_accounts(
            ROOT_HASH,
            &[("alice", 1001, ALICE_HASH), ("carol", 1003, "")],
        )
        .expect("seed the copy's accounts");
    Accounts { shadow }
}

fn seeded(user: &str, uid: u32) -> String {
    let hashes = vec![OLD_HASH; SEEDED].join(",");
    format!("{user}:{uid}:{SEEDED}:{hashes}")
}

/// Restores the accounts, the history and the tallies before a configuration.
pub fn reset(copy: &RootCopy, acc: &Accounts) {
    copy.write("/etc/shadow", &acc.shadow);
    copy.write(
        "/etc/security/opasswd",
        &format!("{}\n{}\n", seeded("alice", 1001), seeded("root", 0)),
    );
    copy.remove("/run/faillock");
    copy.remove("/run/faillock.keep");
}

/// The script run in the chroot; prints `KEY VALUE` lines.
const SCRIPT: &str = r#"
au() { printf '%s\n' "$2" | pamtester common-auth "$1" authenticate >/dev/null 2>&1 && echo ok || echo no; }
NEW='Nw7#kq-Zr4!pLx2'
OLD='Kx9#mQ-2vL!pRt7'
for u in alice root; do
  if [ $u = alice ]; then pw='Alice-Pw-1'; else pw='Root-Pw-1'; fi
  b=$(au $u "$pw")
  echo "auth_$u $b"
  if [ "$b" = ok ]; then
    rm -rf /run/faillock
    j=1; r=none
    while [ $j -le 6 ]; do
      au $u wrong >/dev/null
      rm -rf /run/faillock.keep; [ -d /run/faillock ] && cp -a /run/faillock /run/faillock.keep
      if [ "$(au $u "$pw")" = no ]; then r=$j; break; fi
      rm -rf /run/faillock; [ -d /run/faillock.keep ] && mv /run/faillock.keep /run/faillock
      j=$((j+1))
    done
    echo "locks_$u $r"
    rm -rf /run/faillock
  fi
done
echo "empty $(au carol '')"
# alice changes her own password as passwd does (real uid hers, effective uid 0:
# pam_unix asks her current password, pam_pwhistory enforces the history); root
# changes its own (enforced only with enforce_for_root).
ch() { if [ $1 = alice ]; then setpriv --ruid 1001 pamtester common-password alice chauthtok; else pamtester common-password root chauthtok; fi; }
for u in alice root; do
  # Root is not asked its current password: only alice's answers start with it.
  if [ $u = alice ]; then cur='Alice-Pw-1'; else cur=''; fi
  if printf '%s\n' $cur "$OLD" "$OLD" "$OLD" "$OLD" "$OLD" | ch $u >/dev/null 2>&1; then echo "reuse_$u ok"; [ $u = alice ] && cur=$OLD; else echo "reuse_$u no"; fi
  printf '%s\n' $cur "$NEW" "$NEW" "$NEW" "$NEW" "$NEW" | ch $u >/dev/null 2>&1 && echo "changed_$u ok" || echo "changed_$u no"
done
echo done
"#;

/// Runs the oracle on the configuration in the copy.
pub fn run(copy: &RootCopy) -> Result<Truth, String> {
    let out = copy.chroot_sh(SCRIPT, 60);
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.lines().any(|l| l == "done") {
        return Err(format!("  the oracle did not finish: {out:?}"));
    }
    let mut t = Truth::default();
    for l in text.lines() {
        let Some((k, v)) = l.split_once(' ') else {
            continue;
        };
        if let Some(u) = k.strip_prefix("auth_") {
            t.auth_ok.insert(u.into(), v == "ok");
        } else if let Some(u) = k.strip_prefix("locks_") {
            t.locks_after.insert(u.into(), v.parse().ok());
        } else if let Some(u) = k.strip_prefix("changed_") {
            t.changed.insert(u.into(), v == "ok");
        } else if let Some(u) = k.strip_prefix("reuse_") {
            t.reuse_refused.insert(u.into(), v == "no");
        } else if k == "empty" {
            t.empty_ok = v == "ok";
        }
    }
    let shadow = std::fs::read_to_string(copy.path("/etc/shadow")).map_err(|e| e.to_string())?;
    let hash = |u: &str| {
        shadow
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{u}:")))
            .and_then(|r| r.split(':').next())
            .unwrap_or_default()
            .to_string()
    };
    t.alice_hash = hash("alice");
    for (u, seed) in [("alice", ALICE_HASH), ("root", ROOT_HASH)] {
        let new = hash(u) != seed;
        if let Some(c) = t.changed.get_mut(u) {
            *c = *c && new;
        }
    }
    let opasswd = std::fs::read_to_string(copy.path("/etc/security/opasswd")).unwrap_or_default();
    for (u, uid) in [("alice", 1001), ("root", 0)] {
        let seed = seeded(u, uid);
        let line = opasswd.lines().find(|l| l.starts_with(&format!("{u}:")));
        let kept = match line {
            Some(l) if l == seed => None,
            Some(l) => Some(
                l.rsplit(':')
                    .next()
                    .map_or(0, |h| h.split(',').filter(|x| !x.is_empty()).count()),
            ),
            None => Some(0),
        };
        t.kept.insert(u.into(), kept);
    }
    Ok(t)
}
