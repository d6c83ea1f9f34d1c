//! Tests of the options resolution: configuration files, arguments and defaults as
//! each module reads them.

use super::*;
use crate::facts::Facts;

#[test]
fn conf_lines() {
    let s = parse_conf(
        "deny=4\n  unlock_time = 900 # x\neven_deny_root\n#deny=1\nfoo bar\n",
        "/f",
    );
    let v: Vec<(&str, &str)> = s
        .iter()
        .map(|x| (x.name.as_str(), x.value.as_str()))
        .collect();
    assert_eq!(
        v,
        vec![
            ("deny", "4"),
            ("unlock_time", "900"),
            ("even_deny_root", ""),
            ("foo", "bar")
        ]
    );
    assert_eq!(s[1].from, "/f:2");
}

#[test]
fn conf_garbage() {
    for s in [
        "",
        "=",
        "==",
        "= =",
        "\u{0}",
        "é = ü",
        "a=\n=b",
        "#=#",
        "   =x",
        "deny=99999999999999999999999",
    ] {
        for x in parse_conf(s, "/f") {
            let _ = leading_int(&x.value);
        }
    }
}

fn line(args: &[&str]) -> PamLine {
    PamLine {
        kind: "password".into(),
        control: "requisite".into(),
        module: "pam_pwhistory.so".into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        source: "/etc/pam.d/common-password:1".into(),
        via: None,
    }
}

fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    crate::checks::test_tree(files, &[])
}

const PAM_153: &str =
    "Package: libpam-modules\nStatus: install ok installed\nVersion: 1.5.3-5ubuntu5\n";
const PAM_140: &str =
    "Package: libpam-modules\nStatus: install ok installed\nVersion: 1.4.0-11ubuntu2\n";

#[test]
fn pwhistory_conf_first_line_wins() {
    let t = root_with(&[
        ("/var/lib/dpkg/status", PAM_153),
        (
            "/etc/security/pwhistory.conf",
            "Remember = 5\nremember = 24\n",
        ),
    ]);
    let f = Facts::new(t.path(), false);
    let (r, notes) = resolve(
        &f,
        Module::Pwhistory,
        &line(&["use_authtok"]),
        "remember",
        &PwhistoryConf::default(),
    )
    .unwrap();
    assert_eq!(r.value, Some(5));
    assert!(notes.iter().any(|n| n.contains("uses the first line")));
    // Arguments still come after the file.
    let (r, _) = resolve(
        &f,
        Module::Pwhistory,
        &line(&["remember=24"]),
        "remember",
        &PwhistoryConf::default(),
    )
    .unwrap();
    assert_eq!(r.value, Some(24));
    // A bad number in the file is ignored; the default stays.
    let t = root_with(&[
        ("/var/lib/dpkg/status", PAM_153),
        ("/etc/security/pwhistory.conf", "remember = many\n"),
    ]);
    let f = Facts::new(t.path(), false);
    let (r, _) = resolve(
        &f,
        Module::Pwhistory,
        &line(&[]),
        "remember",
        &PwhistoryConf::default(),
    )
    .unwrap();
    assert_eq!((r.value, r.explicit), (Some(10), false));
}

#[test]
fn pwhistory_conf_needs_pam_153() {
    let t = root_with(&[
        ("/var/lib/dpkg/status", PAM_140),
        (
            "/etc/security/pwhistory.conf",
            "remember = 24\nenforce_for_root\n",
        ),
    ]);
    let f = Facts::new(t.path(), false);
    let (r, notes) = resolve(
        &f,
        Module::Pwhistory,
        &line(&[]),
        "remember",
        &PwhistoryConf::default(),
    )
    .unwrap();
    assert_eq!(r.value, Some(10));
    assert!(notes
        .iter()
        .any(|n| n.contains("1.4.0-11ubuntu2 is installed")));
    let (r, _) = resolve(
        &f,
        Module::Pwhistory,
        &line(&[]),
        "enforce_for_root",
        &PwhistoryConf::default(),
    )
    .unwrap();
    assert_eq!(r.value, Some(0));
}

#[test]
fn faillock_times_over_a_week_are_ignored() {
    let t = root_with(&[(
        "/etc/security/faillock.conf",
        "unlock_time = 900\nunlock_time = 700000\n",
    )]);
    let f = Facts::new(t.path(), false);
    let mut l = line(&["authfail"]);
    l.module = "pam_faillock.so".into();
    let (r, notes) = resolve(
        &f,
        Module::Faillock,
        &l,
        "unlock_time",
        &PwhistoryConf::default(),
    )
    .unwrap();
    assert_eq!(r.value, Some(900));
    assert!(notes.iter().any(|n| n.contains("longer than 604800")));
    let (r, _) = resolve(
        &f,
        Module::Faillock,
        &l,
        "root_unlock_time",
        &PwhistoryConf::default(),
    )
    .unwrap();
    assert_eq!(r.value, Some(900));
    l.args.push("unlock_time=604800".into());
    let (r, _) = resolve(
        &f,
        Module::Faillock,
        &l,
        "unlock_time",
        &PwhistoryConf::default(),
    )
    .unwrap();
    assert_eq!(r.value, Some(604800));
}

#[test]
fn ints() {
    assert_eq!(leading_int("5abc"), Some(5));
    assert_eq!(leading_int(" 12"), Some(12));
    assert_eq!(leading_int("x"), None);
    assert_eq!(leading_int("-3"), Some(-3));
    assert_eq!(leading_int("999999999999999999999999"), Some(i64::MAX));
}
