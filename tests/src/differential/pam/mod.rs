//! pam: the PAM stacks as libpam runs them. The root's libpam and modules, driven by
//! pamtester (see [`oracle`]), on configurations generated from a seed (see
//! [`generate`]), against the agent's view (`rampart-agent facts pam`): the
//! verdicts of the rules that judge common-auth, common-account and common-password,
//! for each benchmark of [`BENCHMARKS`] (one oracle run and one agent run for
//! them all), and the effective pam_faillock and pam_pwhistory values.
//!
//! The three benchmarks judge these stacks with the same checks: Ubuntu 22.04's
//! Linux-PAM 1.4.0 and 24.04's 1.5.3 walk the stacks as Debian 12's 1.5.2 does, and
//! where a module's reading changed (pwhistory.conf, read from 1.5.3 on) the agent
//! follows the installed package's version, which is the root's.
//!
//! What is compared, per configuration:
//! - `faillock_deny` passes exactly when alice is locked after at most 5 failures
//!   (when her right password authenticates at all);
//! - `pam_faillock_enabled` and `faillock_even_deny_root` do not pass when alice,
//!   or root, is never locked although every deny the agent reads is at most 6;
//! - where the account's password change writes a new hash (a stack that lets no
//!   change through lets no old password back, nor a weak one in):
//!   `pam_pwhistory_enabled` passes exactly when alice's old password is refused;
//!   `pwhistory_remember` exactly when it is and pam_pwhistory keeps at least 24;
//!   `pwhistory_enforce_for_root` exactly when root's old password is refused;
//!   `pam_unix_strong_hash` exactly when alice's new hash is yescrypt or SHA-512
//!   (also where the password line names no algorithm and pam_unix takes
//!   login.defs' ENCRYPT_METHOD: the run counts those configurations);
//! - `pam_unix_no_nullok` passes exactly when carol's empty password is refused (the
//!   generated `nullok` sits in common-auth, on lines some paths reach and others
//!   not), where alice's right password authenticates; where it does not, the rule
//!   does not pass when carol's empty one authenticates;
//! - `pam_pwquality_enabled` and every `pwquality_*` rule fail when the root has no
//!   pam_pwquality.so (the Debian 12 test root does not install libpam-pwquality; the
//!   `pwquality` family unpacks it into its own copy and compares what it refuses)
//!   and alice's password change succeeds.

pub mod generate;
pub mod oracle;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{agent_facts, for_benchmark, Rng, RootCopy, Settings, Tally, BENCHMARKS};
use oracle::Truth;

const SERVICES: &[&str] = &["common-auth", "common-account", "common-password"];

/// What `rampart-agent facts pam` says of a copy under one benchmark's rules (also
/// the pwquality family's view).
pub(super) struct Answer {
    pub(super) verdicts: BTreeMap<String, String>,
    /// The whole answer: the stacks, and every benchmark's verdicts and evidence.
    pub(super) json: Value,
    benchmark: &'static str,
}

impl Answer {
    pub(super) fn verdict(&self, slug: &str) -> &str {
        self.verdicts.get(slug).map_or("missing", String::as_str)
    }

    fn pass(&self, slug: &str) -> bool {
        self.verdict(slug) == "pass"
    }

    /// The values of `option` on the agent's `module` lines of `service`.
    fn values(&self, service: &str, module: &str, option: &str) -> Vec<Option<i64>> {
        self.json["services"][service]["lines"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .filter(|l| {
                        l["module"]
                            .as_str()
                            .is_some_and(|m| m.rsplit('/').next() == Some(module))
                    })
                    .map(|l| l["options"][option].as_i64())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn evidence(&self, slug: &str) -> String {
        self.json["benchmarks"][self.benchmark]["evidence"][slug].to_string()
    }
}

/// The agent's PAM facts on `copy`, for `services`, and the verdicts of the rules of
/// every benchmark of [`BENCHMARKS`]: one agent run (`--benchmark` repeated), one
/// [`Answer`] per benchmark, in order.
pub(super) fn agent(
    copy: &RootCopy,
    services: &[&str],
) -> Result<Vec<(&'static str, Answer)>, String> {
    let mut args: Vec<String> = services
        .iter()
        .flat_map(|s| ["--service".to_string(), s.to_string()])
        .collect();
    for b in BENCHMARKS {
        args.extend(["--benchmark".to_string(), b.to_string()]);
    }
    let json = agent_facts("pam", &copy.root, &args)?;
    Ok(BENCHMARKS
        .iter()
        .map(|b| {
            let verdicts = json["benchmarks"][b]["verdicts"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let answer = Answer {
                verdicts,
                json: json.clone(),
                benchmark: b,
            };
            (*b, answer)
        })
        .collect())
}

/// Compares one configuration under one benchmark's rules; returns the differences.
fn compare(t: &Truth, a: &Answer, pwquality_installed: bool) -> String {
    let mut what = String::new();
    let mut extra = Vec::new();
    let mut differ = |slug: &str, real: bool, why: String| {
        what += &format!(
            "  {slug}: {why}, so PAM {}; the agent says {} ({})\n",
            if real { "complies" } else { "does not" },
            a.verdict(slug),
            a.evidence(slug)
        );
    };
    let alice_ok = t.auth_ok.get("alice") == Some(&true);
    // Every deny the agent reads is small enough for the oracle's 6 attempts.
    let small = a
        .values("common-auth", "pam_faillock.so", "deny")
        .iter()
        .all(|d| d.is_some_and(|d| (1..=6).contains(&d)));
    let locks = |u: &str| t.locks_after.get(u).copied().flatten();
    if alice_ok {
        let real = locks("alice").is_some_and(|n| n <= 5);
        if real != a.pass("faillock_deny") {
            differ(
                "faillock_deny",
                real,
                format!("alice is locked after {:?} failures", locks("alice")),
            );
        }
        if locks("alice").is_none() && small && a.pass("pam_faillock_enabled") {
            differ(
                "pam_faillock_enabled",
                false,
                "alice is never locked".into(),
            );
        }
    }
    if t.auth_ok.get("root") == Some(&true)
        && locks("root").is_none()
        && small
        && a.pass("faillock_even_deny_root")
    {
        differ(
            "faillock_even_deny_root",
            false,
            "root is never locked".into(),
        );
    }
    let kept = |u: &str| t.kept.get(u).copied().flatten();
    // Where no password can be changed, no old one comes back: the history rules
    // are judged only where a change succeeds.
    let changed = |u: &str| t.changed.get(u) == Some(&true);
    let refused = |u: &str| t.reuse_refused.get(u) == Some(&true);
    let say = |r: bool| if r { "refused" } else { "accepted" };
    let real = refused("alice");
    if changed("alice") && real != a.pass("pam_pwhistory_enabled") {
        differ(
            "pam_pwhistory_enabled",
            real,
            format!("alice's old password is {}", say(real)),
        );
    }
    let real = refused("alice") && kept("alice").is_some_and(|n| n >= 24);
    if changed("alice") && real != a.pass("pwhistory_remember") {
        differ(
            "pwhistory_remember",
            real,
            format!(
                "pam_pwhistory keeps {:?} of alice's old passwords",
                kept("alice")
            ),
        );
    }
    if let (Some(n), [Some(v)]) = (
        kept("alice"),
        a.values("common-password", "pam_pwhistory.so", "remember")
            .as_slice(),
    ) {
        // opasswd holds `remember` entries (more than seeded: one more than seeded).
        let expect = (*v).min(oracle::SEEDED as i64 + 1);
        if n as i64 != expect {
            extra.push(format!(
                "  remember: pam_pwhistory keeps {n} old passwords, the agent reads remember={v}\n"
            ));
        }
    }
    let real = refused("root");
    if changed("root") && real != a.pass("pwhistory_enforce_for_root") {
        differ(
            "pwhistory_enforce_for_root",
            real,
            format!("root's old password is {}", say(real)),
        );
    }
    if changed("alice") {
        let real = t.alice_hash.starts_with("$y$") || t.alice_hash.starts_with("$6$");
        if real != a.pass("pam_unix_strong_hash") {
            let prefix: String = t.alice_hash.chars().take(4).collect();
            differ(
                "pam_unix_strong_hash",
                real,
                format!("the new hash starts {prefix}"),
            );
        }
    }
    // Where alice's right password is refused too (the stack or the account phase
    // lets nobody in), the agent failing the rule for a walk that would let an empty
    // password through is not a difference.
    let anyone = t.auth_ok.get("alice") == Some(&true);
    if t.empty_ok == a.pass("pam_unix_no_nullok") && (t.empty_ok || anyone) {
        differ(
            "pam_unix_no_nullok",
            !t.empty_ok,
            format!("carol's empty password is {}", say(!t.empty_ok)),
        );
    }
    if !pwquality_installed && changed("alice") {
        for slug in a.verdicts.keys() {
            if (slug == "pam_pwquality_enabled" || slug.starts_with("pwquality_")) && a.pass(slug) {
                differ(slug, false, "the root has no pam_pwquality.so".into());
            }
        }
    }
    what.extend(extra);
    what
}

/// Runs the pam family: generate, drive libpam with pamtester, compare.
pub fn run(original: &Path, settings: Settings) -> Tally {
    let copy = RootCopy::sharing_usr(original);
    let accounts = oracle::prepare(&copy);
    let pwquality_installed = ["/usr/lib/x86_64-linux-gnu/security/pam_pwquality.so"]
        .iter()
        .any(|p| copy.path(p).exists());
    let mut rng = Rng::new(settings.seed ^ 0x5041_4d53);
    let mut tally = Tally::new("pam", settings);
    // Configurations whose new hash pam_unix took from login.defs' ENCRYPT_METHOD
    // (alice's change wrote a hash and the line names no algorithm).
    let mut fallback = 0;
    while tally.more() {
        let desc = generate::generate(&mut rng, &copy);
        oracle::reset(&copy, &accounts);
        match oracle::run(&copy) {
            Ok(t) => {
                let what: String = match agent(&copy, SERVICES) {
                    Ok(answers) => {
                        let from_defs = answers.first().is_some_and(|(_, a)| {
                            a.evidence("pam_unix_strong_hash")
                                .contains("no algorithm argument")
                        });
                        if from_defs && t.changed.get("alice") == Some(&true) {
                            fallback += 1;
                        }
                        answers
                            .iter()
                            .map(|(b, a)| for_benchmark(b, &compare(&t, a, pwquality_installed)))
                            .collect()
                    }
                    Err(e) => e,
                };
                if !what.is_empty() {
                    tally.differ(&desc, &format!("{what}  (oracle: {t:?})\n"));
                }
            }
            Err(e) => tally.differ(&desc, &e),
        }
        tally.compared += 1;
    }
    let line = format!("differential pam: {fallback} new hash(es) from login.defs' ENCRYPT_METHOD");
    println!("{line}");
    eprintln!("{line}");
    tally
}
