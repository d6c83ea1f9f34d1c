//! The walk of libpam's dispatcher and pam_faillock's lockout, each case a stack and
//! the module results, against the lines that run and the stack's result.

use super::lockout::{account_runs_faillock, lockout, Faillock, Lockout};
use super::*;
use crate::facts::pam::{stack, Stack};
use crate::facts::Facts;
use std::sync::Arc;

/// The stack of `common-auth` (and the other files) in a root without module
/// directories (so every module counts as installed).
fn stack_of(files: &[(&str, &str)]) -> Arc<Stack> {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = t.path().join("etc/pam.d").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let facts = Facts::new(t.path(), false);
    stack(&facts, files[0].0).unwrap()
}

/// Walks `kind` with module results given by the first matching `(module, result)`
/// (by file name; unlisted modules return auth_err): the lines that ran (by line
/// number of their file) and the result's name.
fn check(
    files: &[(&str, &str)],
    kind: &str,
    results: &[(&str, u8)],
) -> (Vec<String>, &'static str) {
    let st = stack_of(files);
    let chain = st.chain(kind);
    let w = walk(&chain, |i| match chain[i].call {
        Call::Module(l) => results
            .iter()
            .find(|(m, _)| st.lines[l].args.iter().any(|a| a == m) || st.lines[l].is(m))
            .map_or(AUTH_ERR, |(_, r)| *r),
        _ => AUTH_ERR,
    });
    let ran = (0..chain.len())
        .filter(|i| w.ran(*i))
        .map(|i| chain[i].source.rsplit('/').next().unwrap().to_string())
        .collect();
    (ran, result_name(w.result))
}

const CIS: &str = "auth requisite pam_faillock.so preauth\n\
auth [success=1 default=ignore] pam_unix.so\n\
auth [default=die] pam_faillock.so authfail\n\
auth sufficient pam_faillock.so authsucc\n\
auth requisite pam_deny.so\n\
auth required pam_permit.so\n";

#[test]
fn walks_like_libpam() {
    let s = SUCCESS;
    let f = AUTH_ERR;
    let i = IGNORE;
    #[allow(clippy::type_complexity)]
    let table: &[(&str, &[(&str, &str)], &[(&str, u8)], &[&str], &str)] = &[
        (
            "wrong password: authfail dies",
            &[("common-auth", CIS)],
            &[("preauth", s), ("pam_unix.so", f), ("authfail", i)],
            &["common-auth:1", "common-auth:2", "common-auth:3"],
            "perm_denied",
        ),
        (
            "right password: the jump skips authfail, authsucc is done",
            &[("common-auth", CIS)],
            &[("preauth", s), ("pam_unix.so", s), ("authsucc", s)],
            &["common-auth:1", "common-auth:2", "common-auth:4"],
            "success",
        ),
        (
            "locked: requisite preauth dies first",
            &[("common-auth", CIS)],
            &[("preauth", f), ("pam_unix.so", s)],
            &["common-auth:1"],
            "auth_err",
        ),
        (
            "a jump counts a substack as one line",
            &[
                (
                    "common-auth",
                    "auth [success=2 default=ignore] pam_unix.so\nauth substack sub\nauth requisite pam_deny.so\nauth required pam_permit.so\n",
                ),
                ("sub", "auth required pam_deny.so\nauth required pam_deny.so\n"),
            ],
            &[("pam_unix.so", s), ("pam_permit.so", s)],
            &["common-auth:1", "common-auth:4"],
            "success",
        ),
        (
            "a jump counts included lines one by one",
            &[
                (
                    "common-auth",
                    "auth [success=1 default=ignore] pam_unix.so\nauth include sub\nauth required pam_permit.so\n",
                ),
                ("sub", "auth requisite pam_deny.so\nauth required pam_permit.so\n"),
            ],
            &[("pam_unix.so", s), ("pam_permit.so", s)],
            &["common-auth:1", "sub:2", "common-auth:3"],
            "success",
        ),
        (
            "die in a substack ends only the substack",
            &[
                (
                    "common-auth",
                    "auth substack sub\nauth required pam_permit.so\n",
                ),
                ("sub", "auth requisite pam_deny.so\nauth required pam_permit.so\n"),
            ],
            &[("pam_permit.so", s)],
            &["sub:1", "common-auth:2"],
            "auth_err",
        ),
        (
            "sufficient success ends the stack",
            &[(
                "common-auth",
                "auth sufficient pam_permit.so\nauth requisite pam_deny.so\n",
            )],
            &[("pam_permit.so", s)],
            &["common-auth:1"],
            "success",
        ),
        (
            "sufficient after a failure does not rescue it",
            &[(
                "common-auth",
                "auth required pam_deny.so\nauth sufficient pam_permit.so\nauth required pam_permit.so\n",
            )],
            &[("pam_permit.so", s)],
            &["common-auth:1", "common-auth:2", "common-auth:3"],
            "auth_err",
        ),
        (
            "a jump past the end fails",
            &[(
                "common-auth",
                "auth required pam_permit.so\nauth [success=2 default=ignore] pam_unix.so\nauth required pam_permit.so\n",
            )],
            &[("pam_permit.so", s), ("pam_unix.so", s)],
            &["common-auth:1", "common-auth:2"],
            "perm_denied",
        ),
        (
            "reset forgets a failure",
            &[(
                "common-auth",
                "auth required pam_deny.so\nauth [success=reset default=ignore] pam_permit.so\nauth required pam_permit.so\n",
            )],
            &[("pam_permit.so", s)],
            &["common-auth:1", "common-auth:2", "common-auth:3"],
            "success",
        ),
        (
            "only ignored results: the stack fails",
            &[("common-auth", "auth optional pam_deny.so\n")],
            &[],
            &["common-auth:1"],
            "perm_denied",
        ),
        (
            "a missing include fails where it stands; Debian's @include too",
            &[(
                "common-auth",
                "auth include nothere\n@include nothere2\nauth required pam_permit.so\n",
            )],
            &[("pam_permit.so", s)],
            &["common-auth:1", "common-auth:2", "common-auth:3"],
            "perm_denied",
        ),
        (
            "a line with an unknown type fails (here optional, so ignored)",
            &[(
                "common-auth",
                "bogus optional pam_permit.so\nauth required pam_permit.so\n",
            )],
            &[("pam_permit.so", s)],
            &["common-auth:1", "common-auth:2"],
            "success",
        ),
    ];
    for (what, files, results, ran, result) in table {
        let (r, res) = check(files, "auth", results);
        assert_eq!(
            (r, res),
            (ran.iter().map(|s| s.to_string()).collect(), *result),
            "{what}"
        );
    }
}

#[test]
fn controls() {
    let c = Control::parse("[success=1 default=ignore]");
    assert_eq!(c.action(SUCCESS), Action::Jump(1));
    assert_eq!(c.action(AUTH_ERR), Action::Ignore);
    let c = Control::parse("Required");
    assert_eq!(
        (c.action(SUCCESS), c.action(IGNORE), c.action(AUTH_ERR)),
        (Action::Ok, Action::Ignore, Action::Bad)
    );
    let c = Control::parse("requisite");
    assert_eq!(c.action(AUTH_ERR), Action::Die);
    let c = Control::parse("[success=ok]");
    assert_eq!(c.action(AUTH_ERR), Action::Bad, "unnamed results are bad");
    for bad in [
        "[success=ok bogus=1]",
        "[success=okay]",
        "[success=-1]",
        "nonsense",
        "[]",
        "",
    ] {
        let c = Control::parse(bad);
        assert_eq!(c.action(SUCCESS), Action::Bad, "{bad}");
    }
    assert_eq!(Control::parse("success=2").action(SUCCESS), Action::Jump(2));
    assert_eq!(
        Control::parse("[success=0]").action(SUCCESS),
        Action::Ignore
    );
}

fn settings(st: &Stack, deny: u64) -> impl Fn(usize) -> Faillock + '_ {
    move |i| {
        let l = &st.lines[i];
        Faillock {
            deny: l
                .arg("deny")
                .and_then(|a| a.strip_prefix("deny="))
                .and_then(|d| d.parse().ok())
                .unwrap_or(deny),
            even_deny_root: l.arg("even_deny_root").is_some(),
            fail_interval: 900,
        }
    }
}

fn locks(auth: &str, root: bool) -> Lockout {
    let st = stack_of(&[("common-auth", auth)]);
    let set = settings(&st, 3);
    lockout(&st, root, &set)
}

fn failures(l: &Lockout) -> Option<u64> {
    match l {
        Lockout::Locks { failures, .. } => Some(*failures),
        _ => None,
    }
}

#[test]
fn lockout_follows_the_path() {
    let l = locks(CIS, false);
    assert_eq!(failures(&l), Some(3), "{l:?}");
    assert_eq!(
        failures(&locks(
            &CIS.replace("pam_faillock.so", "pam_faillock.so deny=5"),
            false
        )),
        Some(5)
    );
    // preauth's deny=5 is not the first to refuse: authsucc (deny 3) reads the tally
    // on the right password's path and refuses at 3.
    assert_eq!(
        failures(&locks(&CIS.replace("preauth", "preauth deny=5"), false)),
        Some(3)
    );
    // Root is locked only by lines with even_deny_root.
    assert_eq!(failures(&locks(CIS, true)), None);
    let all_root = CIS.replace("pam_faillock.so", "pam_faillock.so even_deny_root");
    assert_eq!(failures(&locks(&all_root, true)), Some(3));
    // authfail after pam_unix's jump target: never reached on a failure.
    let skipped = CIS.replace(
        "[success=1 default=ignore] pam_unix.so",
        "[success=1 default=2] pam_unix.so",
    );
    let l = locks(&skipped, false);
    assert!(
        matches!(&l, Lockout::Never { why, .. } if why.contains("no failure")),
        "{l:?}"
    );
    // authfail that does not end the walk: authsucc clears the tally.
    let clears = "auth requisite pam_faillock.so preauth\n\
        auth [success=2 default=ignore] pam_unix.so\n\
        auth optional pam_faillock.so authfail\n\
        auth [default=die] pam_faillock.so authsucc\n\
        auth required pam_permit.so\n";
    let l = locks(clears, false);
    assert!(
        matches!(&l, Lockout::Never { why, .. } if why.contains("clears")),
        "{l:?}"
    );
    // A deny= on a line never reached does not count; the preauth line's does.
    let unreached = format!(
        "{}auth required pam_faillock.so preauth deny=9\n",
        CIS.replace("pam_faillock.so", "pam_faillock.so deny=2")
    );
    assert_eq!(failures(&locks(&unreached, false)), Some(2));
    // authfail with a mistyped control: every result is bad, not die, so the walk
    // goes on to authsucc, which clears the failure just recorded.
    let l = locks(
        &CIS.replace(
            "[default=die] pam_faillock.so",
            "[defualt=die] pam_faillock.so",
        ),
        false,
    );
    assert!(
        matches!(&l, Lockout::Never { why, .. } if why.contains("clears")),
        "{l:?}"
    );
    // preauth optional: authsucc (reading the tally) still refuses the locked account.
    let optional = CIS.replace(
        "requisite pam_faillock.so preauth",
        "optional pam_faillock.so preauth",
    );
    assert_eq!(failures(&locks(&optional, false)), Some(3));
    // deny=0 never locks.
    let l = locks(
        &CIS.replace("pam_faillock.so", "pam_faillock.so deny=0"),
        false,
    );
    assert!(matches!(&l, Lockout::Never { .. }), "{l:?}");
    // A wrong password that authenticates.
    let l = locks(&format!("auth sufficient pam_permit.so\n{CIS}"), false);
    assert!(
        matches!(&l, Lockout::Never { why, .. } if why.contains("wrong password authenticates")),
        "{l:?}"
    );
    // A large deny is reached without walking every attempt.
    assert_eq!(
        failures(&locks(
            &CIS.replace("pam_faillock.so", "pam_faillock.so deny=60000"),
            false
        )),
        Some(60000)
    );
    // An unknown module may return anything: sufficient success on a wrong password.
    let l = locks(&format!("auth sufficient pam_sss.so\n{CIS}"), false);
    assert!(
        matches!(&l, Lockout::Never { assuming, .. } if assuming.contains("pam_sss.so returning success")),
        "{l:?}"
    );
}

#[test]
fn account_phase() {
    let st = stack_of(&[(
        "common-account",
        "account required pam_faillock.so\naccount [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\naccount requisite pam_deny.so\naccount required pam_permit.so\n",
    )]);
    assert!(account_runs_faillock(&st).is_ok());
    let st = stack_of(&[(
        "common-account",
        "account [success=2 new_authtok_reqd=done default=ignore] pam_unix.so\naccount requisite pam_deny.so\naccount required pam_faillock.so\naccount required pam_permit.so\n",
    )]);
    let e = account_runs_faillock(&st).unwrap_err();
    assert!(e.0.contains("without running pam_faillock"), "{e:?}");
}

/// A change through `common-password` refusing a password the history holds
/// (`Ok`), or the reason it does not; remember and enforce_for_root from each
/// line's own arguments (remember 10 when absent, pam_pwhistory's default).
fn reuse(password: &str, root: bool) -> Result<String, String> {
    use super::history::{refuses_reuse, History};
    let st = stack_of(&[("common-password", password)]);
    let set = |i: usize| {
        let l = &st.lines[i];
        History {
            remember: l
                .arg("remember")
                .and_then(|a| a.strip_prefix("remember="))
                .and_then(|d| d.parse().ok())
                .unwrap_or(10),
            enforce_for_root: l.arg("enforce_for_root").is_some(),
        }
    };
    refuses_reuse(&st, root, &set).map_err(|(why, _)| why)
}

#[test]
fn a_password_change_keeps_the_history_only_where_no_path_lets_pam_unix_write() {
    const UNIX: &str = "password [success=1 default=ignore] pam_unix.so obscure yescrypt";
    const TAIL: &str = "password requisite pam_deny.so\npassword required pam_permit.so\n";
    let stack = |first: &str, unix_args: &str| format!("{first}\n{UNIX}{unix_args}\n{TAIL}");
    const PWQUALITY: &str =
        "password optional pam_pwhistory.so\npassword optional pam_pwquality.so";
    // (the lines before pam_unix, pam_unix's further arguments, root, whether the
    // reuse is refused)
    let cases: &[(&str, &str, bool, bool)] = &[
        // requisite before pam_unix: the refusal ends the change.
        (
            "password requisite pam_pwhistory.so remember=5",
            "",
            false,
            true,
        ),
        // root without enforce_for_root is only told.
        (
            "password requisite pam_pwhistory.so remember=5",
            "",
            true,
            false,
        ),
        (
            "password requisite pam_pwhistory.so enforce_for_root",
            "",
            true,
            true,
        ),
        // remember=0: the module returns at once.
        (
            "password requisite pam_pwhistory.so remember=0",
            "",
            false,
            false,
        ),
        // optional: pam_unix asks again, unless it takes the password held.
        ("password optional pam_pwhistory.so", "", false, false),
        (
            "password optional pam_pwhistory.so",
            " use_authtok",
            false,
            true,
        ),
        // a module not modelled between them may ask again.
        (PWQUALITY, " use_authtok", false, false),
    ];
    for (first, args, root, refused) in cases {
        let text = stack(first, args);
        let got = reuse(&text, *root);
        assert_eq!(got.is_ok(), *refused, "root {root}:\n{text}\n→ {got:?}");
    }
    // After pam_unix's jump target: pam_unix has written it already.
    let after = format!("{UNIX}\npassword requisite pam_pwhistory.so\n{TAIL}");
    let got = reuse(&after, false);
    assert!(
        got.as_ref()
            .is_err_and(|w| w.contains("common-password:1 writes")),
        "{got:?}"
    );
    // No module that writes a password.
    assert!(reuse("password requisite pam_pwhistory.so\n", false).is_ok());
}
