//! pwquality: the settings the real pam_pwquality applies. Debian 12's
//! libpam-pwquality, libpwquality and cracklib, unpacked into the copy from the
//! .debs `RAMPART_PWQUALITY_DEBS` names (tests/fixtures/fetch-pwquality-debs.sh,
//! which scripts/test.sh runs), driven by pamtester (see [`oracle`]), on
//! configurations generated from a seed (see [`generate`]), against the verdicts of
//! `rampart-agent facts pam` for each benchmark of [`BENCHMARKS`](super::BENCHMARKS)
//! (one oracle run and one agent run for them all). Ubuntu 22.04 (libpwquality
//! 1.4.4) and 24.04 (1.4.5) judge these settings with the same checks and bounds as
//! Debian 12.
//!
//! Each pwquality rule says pam_pwquality refuses some password in a
//! change through common-password; a probe built to be refused for that one reason
//! tells whether it does:
//!
//! | rule | probe (alice's unless said) |
//! |---|---|
//! | `pwquality_minlen` | 13 characters, all classes |
//! | `pwquality_maxrepeat` | a run of 4 |
//! | `pwquality_maxsequence` | a sequence of 4 |
//! | `pwquality_difok` | one character from the old password |
//! | `pwquality_dictcheck` | a dictionary word |
//! | `pwquality_enforcing` | a palindrome |
//! | `pwquality_enforce_for_root` | root's palindrome |
//!
//! A rule that passes where the module accepts its probe is a false pass: a
//! difference, and the test fails. A rule that fails where the module refuses its
//! probe but accepts the control (a strong password) is counted and printed: the
//! rule is stricter than the module, or the probe was refused for another reason.

pub mod generate;
pub mod oracle;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::pam::{agent, Answer};
use super::{for_benchmark, Rng, RootCopy, Settings, Tally};
use oracle::Truth;

/// Rule, the probe that tells, whose change.
const RULES: &[(&str, &str, &str)] = &[
    ("pwquality_minlen", "short", "alice"),
    ("pwquality_maxrepeat", "repeat", "alice"),
    ("pwquality_maxsequence", "sequence", "alice"),
    ("pwquality_difok", "similar", "alice"),
    ("pwquality_dictcheck", "dictionary", "alice"),
    ("pwquality_enforcing", "palindrome", "alice"),
    ("pwquality_enforce_for_root", "palindrome", "root"),
];

/// Where the .debs are: `RAMPART_PWQUALITY_DEBS`, else the cache
/// tests/fixtures/fetch-pwquality-debs.sh fills by default.
pub fn debs_dir() -> PathBuf {
    std::env::var_os("RAMPART_PWQUALITY_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/rampart-tests/pwquality-debian12"))
}

/// Compares one configuration: the false passes, and the rules stricter than the
/// module.
fn compare(t: &Truth, a: &Answer) -> (String, Vec<String>) {
    let mut false_pass = String::new();
    let mut stricter = Vec::new();
    for (slug, probe, user) in RULES {
        let verdict = a.verdict(slug);
        let Some(accepted) = t.accepted(user, probe) else {
            continue;
        };
        let evidence = a.evidence(slug);
        if accepted && verdict == "pass" {
            false_pass += &format!(
                "  {slug}: pam_pwquality accepts {user}'s {probe} probe; the agent says pass ({evidence})\n"
            );
        } else if !accepted && verdict != "pass" && t.accepted(user, "control") == Some(true) {
            stricter.push(format!(
                "  {slug}: pam_pwquality refuses {user}'s {probe} probe; the agent says {verdict} ({evidence})"
            ));
        }
    }
    (false_pass, stricter)
}

/// Runs the pwquality family: generate, drive pam_pwquality with pamtester, compare.
pub fn run(original: &Path, settings: Settings) -> Tally {
    let copy = RootCopy::sharing_usr(original);
    let debs = debs_dir();
    if let Err(e) = oracle::prepare(&copy, &debs) {
        panic!(
            "the pwquality family needs Debian 12's libpam-pwquality and its dependencies as .debs in {} (RAMPART_PWQUALITY_DEBS; tests/fixtures/fetch-pwquality-debs.sh fetches them, scripts/test.sh runs it): {e}",
            debs.display()
        );
    }
    let mut tally = Tally::new("pwquality", settings);
    let mut rng = Rng::new(settings.seed ^ 0x5057_5155);
    let mut stricter: BTreeMap<String, usize> = BTreeMap::new();
    let mut examples = Vec::new();
    // Configurations where the module refused some probe while the control password
    // went through: none at all would mean the oracle never saw pam_pwquality work
    // (not loaded, not reached), and every comparison would pass for nothing.
    let mut refused_seen = 0;
    while tally.more() {
        let desc = generate::generate(&mut rng, &copy);
        match oracle::run(&copy) {
            Ok(t) => {
                let control = t.accepted("alice", "control") == Some(true);
                if control
                    && RULES
                        .iter()
                        .any(|(_, p, u)| t.accepted(u, p) == Some(false))
                {
                    refused_seen += 1;
                }
                let mut what = String::new();
                let answers = match agent(&copy, &["common-password"]) {
                    Ok(answers) => answers,
                    Err(e) => {
                        tally.differ(&desc, &e);
                        tally.compared += 1;
                        continue;
                    }
                };
                for (b, a) in &answers {
                    let (w, strict) = compare(&t, a);
                    what += &for_benchmark(b, &w);
                    for s in strict {
                        let slug = s.trim().split(':').next().unwrap_or_default();
                        *stricter.entry(format!("{b} {slug}")).or_default() += 1;
                        if examples.len() < 3 {
                            examples.push(format!("{desc}  {b}: {}", s.trim_start()));
                        }
                    }
                }
                if !what.is_empty() {
                    tally.differ(&desc, &format!("{what}  (oracle: {t:?})\n"));
                }
            }
            Err(e) => tally.differ(&desc, &e),
        }
        tally.compared += 1;
    }
    println!(
        "pwquality: rules failing where pam_pwquality refuses their probe and accepts the control (not a false pass): {stricter:?}"
    );
    for e in &examples {
        println!("{e}\n");
    }
    assert!(
        tally.compared < 10 || refused_seen > 0,
        "in {} configurations pam_pwquality never refused a probe that the control password's change got past: the oracle is not exercising the module",
        tally.compared
    );
    tally
}
