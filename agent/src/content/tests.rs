//! Loader tests: malformed content is refused by name; variants, parts and pending
//! recommendations resolve as the format says.

use super::*;

const HEAD: &str =
    "id='t'\ntitle='T'\nversion='1'\nos_id='debian'\nos_versions=['12']\n[sections]\n'1'='Setup'\n";

fn rule(slug: &str, extra: &str) -> String {
    format!(
        "[{slug}]\ntitle='A title long enough'\ndescription='A description long enough'\n\
         remediation='A remediation long enough'\nseverity='low'\n{extra}\n"
    )
}

const CHECK: &str = "check={kind='file.absent', paths=['/x']}";

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn try_load(rules: String, bench: String) -> Result<Vec<Benchmark>, ContentError> {
    load(&[("r.toml", leak(rules))], &[("b.toml", leak(bench))])
}

#[test]
fn compiled_content_is_valid() {
    let b = benchmarks().expect("compiled-in content must load");
    assert!(!b.is_empty());
}

#[test]
fn rejects_malformed_content() {
    let ok = rule("a_rule", CHECK);
    let control =
        |id: &str, slug: &str| format!("{HEAD}[controls]\n'{id}'={{rule='{slug}', server=1}}\n");
    let cases: Vec<(String, String, &str)> = vec![
        (rule("a_rule", "check={kind='file.nonsense'}"), control("1.1", "a_rule"), "file.nonsense"),
        (rule("a_rule", "check={kind='bogus.thing'}"), control("1.1", "a_rule"), "unknown check family"),
        (rule("a_rule", ""), control("1.1", "a_rule"), "missing field `check`"),
        (rule("A-Rule", CHECK), control("1.1", "a_rule"), "snake_case"),
        (ok.replace("A title long enough", ""), control("1.1", "a_rule"), "title is missing"),
        (ok.clone(), control("1.1", "other"), "no rule `other`"),
        (ok.clone(), control("x.1", "a_rule"), "dotted recommendation number"),
        (ok.clone(), control("2.1", "a_rule"), "no section title"),
        (ok.clone(), control("1.1", "a_rule").replace("server=1", "server=3"), "profiles must give"),
        (
            ok.clone() + "[a_rule.variants.nowhere]\nseverity='high'\n",
            control("1.1", "a_rule"),
            "names no benchmark",
        ),
        (
            ok.clone(),
            control("1.1", "a_rule")
                + "[manual.'1.1']\nserver=1\ntitle='A title long enough'\ndescription='A description long enough'\nremediation='A remediation long enough'\nseverity='low'\n",
            "both automated and manual",
        ),
    ];
    for (rules, bench, want) in cases {
        let err = try_load(rules.clone(), bench.clone())
            .expect_err(&format!("{rules}\n{bench}"))
            .to_string();
        assert!(err.contains(want), "expected {want:?} in {err:?}");
    }
    let dup = load(
        &[("a.toml", leak(ok.clone())), ("b.toml", leak(ok.clone()))],
        &[("b.toml", leak(control("1.1", "a_rule")))],
    )
    .unwrap_err()
    .to_string();
    assert!(dup.contains("duplicate rule slug"), "{dup}");
}

#[test]
fn benchmarks_choose_variants_and_levels_are_derived() {
    let rules = rule("a_rule", CHECK)
        + "[a_rule.variants.ubuntu]\ntitle='An Ubuntu title here'\ncheck={kind='file.absent', paths=['/y']}\n\
           [a_rule.variants.'u-1']\nseverity='high'\n";
    let other = HEAD
        .replace("id='t'", "id='u-1'")
        .replace("os_id='debian'", "os_id='ubuntu'");
    let benches = load(
        &[("r.toml", leak(rules))],
        &[
            (
                "t.toml",
                leak(format!(
                    "{HEAD}[controls]\n'1.1'={{rule='a_rule', server=1, workstation=2}}\n"
                )),
            ),
            (
                "u.toml",
                leak(format!(
                    "{other}[controls]\n'1.2'={{rule='a_rule', workstation=2}}\n"
                )),
            ),
        ],
    )
    .unwrap();
    let (t, u) = (&benches[0].rules[0], &benches[1].rules[0]);
    assert_eq!(
        (t.title.as_str(), t.level, t.check_variant.as_deref()),
        ("A title long enough", 1, None)
    );
    assert_eq!(t.slug.as_deref(), Some("a_rule"));
    // The benchmark's own variant wins over the os-release one.
    assert_eq!(
        (
            u.title.as_str(),
            u.level,
            u.severity,
            u.check_variant.as_deref()
        ),
        ("A title long enough", 2, Severity::High, None)
    );
    let names: Vec<&str> = t.profiles().iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        ["level1-server", "level2-server", "level2-workstation"]
    );
    assert_eq!(t.section, "Setup");
}

#[test]
fn parts_join_their_benchmark_and_pending_controls_are_not_checked() {
    let head = HEAD.replace("os_versions=['12']", "os_versions=['9']\nos_like=['rocky']");
    let part = "benchmark='t'\n[sections]\n'2'='Services'\n[controls]\n'2.1'={rule='a_rule', server=1}\n\
                [pending.'2.2']\nserver=2\ntitle='A title long enough'\nseverity='medium'\nneeds='the SELinux policy'\n";
    let b = load(
        &[("r.toml", leak(rule("a_rule", CHECK)))],
        &[
            ("t.toml", leak(head.clone())),
            ("t.2.toml", leak(part.into())),
        ],
    )
    .unwrap();
    let (auto, pending) = (&b[0].rules[0], &b[0].rules[1]);
    assert_eq!(
        (auto.id.as_str(), auto.section.as_str()),
        ("2.1", "Services")
    );
    assert_eq!(
        (
            pending.automated,
            pending.automated_in_benchmark(),
            pending.check.is_none()
        ),
        (false, true, true)
    );
    assert!(
        pending.description.contains("the SELinux policy"),
        "{}",
        pending.description
    );
    // Point releases and rebuilds choose the benchmark; other versions do not.
    assert!(b[0].is_for("debian", "9") && b[0].is_for("rocky", "9.4"));
    assert!(!b[0].is_for("debian", "90") && !b[0].is_for("alma", "9.4"));
    for (bench, want) in [
        (
            part.replace("benchmark='t'", "benchmark='x'"),
            "no file defines",
        ),
        (part.replace("'2.2'", "'2.1'"), "pending and also checked"),
        (
            part.to_string() + "[controls.'2.1']\nrule='a_rule'\nserver=1\n",
            "2.1",
        ),
    ] {
        let err = load(
            &[("r.toml", leak(rule("a_rule", CHECK)))],
            &[("t.toml", leak(head.clone())), ("t.2.toml", leak(bench))],
        )
        .expect_err("invalid part");
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
    let twice = load(
        &[("r.toml", leak(rule("a_rule", CHECK)))],
        &[
            ("t.toml", leak(head.clone())),
            ("t.2.toml", leak(part.into())),
            ("t.3.toml", leak(part.into())),
        ],
    )
    .expect_err("a control in two parts");
    assert!(twice.to_string().contains("given twice"), "{twice}");
}

#[test]
fn manual_controls_carry_their_text() {
    let bench = format!(
        "{HEAD}[manual.'1.3']\nworkstation=1\ntitle='A title long enough'\n\
         description='A description long enough'\nremediation='A remediation long enough'\nseverity='low'\n"
    );
    let b = try_load(String::new(), bench).unwrap();
    let m = &b[0].rules[0];
    assert_eq!(
        (m.automated, m.check.is_none(), m.slug.is_none(), m.level),
        (false, true, true, 1)
    );
}
