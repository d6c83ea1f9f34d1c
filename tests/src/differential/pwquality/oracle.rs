//! The oracle: Debian 12's own pam_pwquality (libpwquality 1.4.5 and cracklib, from
//! the .debs unpacked into the copy, with cracklib's dictionary packed there from its
//! word list), driven by pamtester through common-password, chrooted into the copy.
//!
//! Per configuration, alice changes her password as passwd does it for her (real uid
//! hers, so pam_pwquality enforces; pam_unix asks her current password, which becomes
//! the old password pam_pwquality compares with) to each probe, from the same seeded
//! /etc/shadow each time; root changes its own to the palindrome and the control. The
//! answers are alice's current password, then the probe again and again; where no
//! "Current password" prompt came (a stack whose first walk ends before pam_unix), the
//! change is made again with the probe alone, as she would type it. A probe is
//! accepted when it was written: /etc/shadow changed and the probe then authenticates
//! through the root's own common-auth, whatever pamtester's status (pam_unix writes
//! before a later line can fail the change). Each probe is
//! strong but for one thing, built from libpwquality's `password_check`
//! (src/check.c): no character twice in a row and no two neighbours in ASCII order
//! (so maxrepeat=1 and maxsequence=1 refuse none but their own), at least three of
//! each class (so no credit or negative credit down to -3 tells them apart), no part
//! of a user name, and cracklib's check passes but for the dictionary probe.

use std::collections::BTreeMap;

use super::super::RootCopy;

/// alice's and root's password before each change (24 characters, all classes).
pub const OLD: &str = "+jLwXqmRtp#^5*8294&7@GWT";
/// `OLD`'s SHA-512 crypt (openssl passwd -6 -salt rampart1).
const OLD_HASH: &str = "$6$rampart1$Ze5uhXp/V3QhrP1frocCx.affpnPD6/0fbXATuZXnPmgc6/jMUeG/FBcz9Y/xrER06j5QQcRi76soOhFMsEPP/";

/// The probes: name, password, what refusing it shows.
pub const PROBES: &[(&str, &str)] = &[
    // Strong and unlike OLD: a stack that refuses it refuses everything.
    ("control", "Y8#Eq&9J*@xC!H4tB7p2+zd5"),
    // 13 characters, at least three of each class: refused only where the shortest
    // password accepted (minlen less the positive credits) is 14 or more.
    ("short", "#*GB+8pTk9b5Q"),
    // The control with a run of four `4`: refused where maxrepeat is 1 to 3.
    ("repeat", "Y8#Eq&9J*@xC!H4444tB7p2+zd5"),
    // The control with `4567`: refused where maxsequence is 1 to 3.
    ("sequence", "Y8#Eq&9J*@xC!H4567tB7p2+zd5"),
    // OLD with its last character changed (edit distance 1): refused where difok is
    // 2 or more.
    ("similar", "+jLwXqmRtp#^5*8294&7@GWK"),
    // A cracklib dictionary word, capitalised, with a digit and a sign: refused where
    // dictcheck is not 0 (and the dictionary is there).
    ("dictionary", "Counterargument4%"),
    // A palindrome: libpwquality always refuses one, so accepting it shows that
    // nothing is enforced.
    ("palindrome", "+dXM5vY&8k7!H!7k8&Yv5MXd+"),
];

/// What the module did with one configuration: per user, per probe, accepted.
#[derive(Debug, Default)]
pub struct Truth {
    pub alice: BTreeMap<String, bool>,
    pub root: BTreeMap<String, bool>,
}

impl Truth {
    pub fn accepted(&self, user: &str, probe: &str) -> Option<bool> {
        let m = if user == "root" {
            &self.root
        } else {
            &self.alice
        };
        m.get(probe).copied()
    }
}

/// Unpacks the packages from `debs`, packs cracklib's dictionary, and sets up alice,
/// root and pamtester in the copy.
pub fn prepare(copy: &RootCopy, debs: &std::path::Path) -> Result<(), String> {
    let names = copy.install_debs(debs)?;
    for want in [
        "libpam-pwquality",
        "libpwquality1",
        "libcrack2",
        "cracklib-runtime",
    ] {
        if !names.iter().any(|n| n == want) {
            return Err(format!(
                "{} has no {want} .deb (tests/fixtures/fetch-pwquality-debs.sh fetches them)",
                debs.display()
            ));
        }
    }
    let out = copy.chroot_sh(
        "cracklib-format /usr/share/dict/cracklib-small | cracklib-packer /var/cache/cracklib/cracklib_dict >/dev/null && echo packed",
        60,
    );
    if !String::from_utf8_lossy(&out.stdout).contains("packed") {
        return Err(format!("packing cracklib's dictionary failed: {out:?}"));
    }
    copy.install_pamtester();
    let shadow = copy.seed_accounts(OLD_HASH, &[("alice", 1001, OLD_HASH)])?;
    copy.write("/etc/shadow.rampart-seed", &shadow);
    copy.write("/etc/shadow", &shadow);
    Ok(())
}

/// The script run in the chroot; prints `USER PROBE ok|no` lines.
fn script() -> String {
    let mut s = String::from(
        r#"
try() {
  cp /etc/shadow.rampart-seed /etc/shadow
  p=$3
  if [ $1 = alice ]; then
    printf '%s\n' "$OLD" "$p" "$p" "$p" "$p" "$p" "$p" "$p" "$p" | setpriv --ruid 1001 pamtester common-password alice chauthtok >/dev/null 2>/tmp/prompts
    if ! grep -q 'Current password' /tmp/prompts; then
      cp /etc/shadow.rampart-seed /etc/shadow
      printf '%s\n' "$p" "$p" "$p" "$p" "$p" "$p" "$p" "$p" | setpriv --ruid 1001 pamtester common-password alice chauthtok >/dev/null 2>&1
    fi
  else
    printf '%s\n' "$p" "$p" "$p" "$p" "$p" "$p" "$p" "$p" | pamtester common-password root chauthtok >/dev/null 2>&1
  fi
  if ! cmp -s /etc/shadow /etc/shadow.rampart-seed && printf '%s\n' "$p" | pamtester common-auth $1 authenticate >/dev/null 2>&1; then echo "$1 $2 ok"; else echo "$1 $2 no"; fi
}
"#,
    );
    s += &format!("OLD='{OLD}'\n");
    for (name, pw) in PROBES {
        s += &format!("try alice {name} '{pw}'\n");
    }
    for (name, pw) in PROBES {
        if ["control", "palindrome"].contains(name) {
            s += &format!("try root {name} '{pw}'\n");
        }
    }
    s + "echo done\n"
}

/// Runs the oracle on the configuration in the copy.
pub fn run(copy: &RootCopy) -> Result<Truth, String> {
    let out = copy.chroot_sh(&script(), 60);
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.lines().any(|l| l == "done") {
        return Err(format!("  the oracle did not finish: {out:?}"));
    }
    let mut t = Truth::default();
    for l in text.lines() {
        let w: Vec<&str> = l.split(' ').collect();
        if let [user, probe, verdict] = w[..] {
            let m = if user == "root" {
                &mut t.root
            } else {
                &mut t.alice
            };
            m.insert(probe.to_string(), verdict == "ok");
        }
    }
    Ok(t)
}
