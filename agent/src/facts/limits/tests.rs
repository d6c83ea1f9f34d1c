//! Unit tests of the pam_limits reader: C's number parsing and the precedence rules.

use super::*;
use crate::facts::accounts::User;

fn acc() -> Accounts {
    let user = |name: &str, uid, gid| User {
        name: name.into(),
        password: "x".into(),
        uid,
        gid,
        home: "/".into(),
        shell: "/bin/sh".into(),
        line: 1,
    };
    let group = |name: &str, gid, members: &[&str]| Group {
        name: name.into(),
        gid,
        members: members.iter().map(|m| m.to_string()).collect(),
        line: 1,
    };
    Accounts {
        users: vec![user("root", 0, 0), user("ann", 1000, 1000)],
        groups: vec![
            group("root", 0, &[]),
            group("ann", 1000, &[]),
            group("staff", 50, &["ann"]),
        ],
        ..Accounts::default()
    }
}

fn limit(text: &str, name: &str) -> (Option<u64>, Option<u64>) {
    let mut c = Config::default();
    parse(text, "/l", &mut c.lines);
    let a = acc();
    let u = a.user(name).unwrap();
    let l = evaluate(
        &c,
        &Who {
            name,
            uid: u.uid,
            gid: u.gid,
            acc: &a,
        },
    );
    (l.soft, l.hard)
}

#[test]
fn values_and_ranges_read_as_c_does() {
    assert_eq!(value_of("0x10"), Some(0));
    assert_eq!(value_of("1e3"), Some(1024));
    assert_eq!(value_of("-5"), Some(UNLIMITED));
    assert_eq!(value_of("abc"), None);
    assert_eq!(value_of("infinity"), Some(UNLIMITED));
    assert_eq!(parse_range("1000:"), Ok(Range::Min(1000)));
    assert_eq!(parse_range("@:50"), Ok(Range::One(50)));
    assert_eq!(parse_range("1:2"), Ok(Range::MinMax(1, 2)));
    assert_eq!(parse_range(":"), Err(()));
    assert_eq!(parse_range("1000:x"), Err(()));
    assert_eq!(parse_range("root"), Ok(Range::None));
}

#[test]
fn precedence_follows_pam_limits() {
    // `*` does not reach uid 0; four words count, the rest is ignored.
    assert_eq!(limit("* hard core 0 junk\n", "root"), (None, None));
    assert_eq!(limit("* HARD Core 0 junk\n", "ann"), (None, Some(0)));
    // A group entry cannot override a user entry, in either order.
    assert_eq!(
        limit("@staff hard core 9\nann hard core 0\n", "ann").1,
        Some(0)
    );
    // A user's soft entry keeps a later `* -` from setting the hard side.
    assert_eq!(
        limit("ann soft core 5\n* - core 0\n", "ann"),
        (Some(5120), None)
    );
    // `ann -` ends the reading: nothing is set at all.
    assert_eq!(limit("* hard core 0\nann -\n", "ann"), (None, None));
    // For uid 0, `@0:0` ranks with `root` and `@root` never applies.
    assert_eq!(
        limit(
            "root hard core 0\n@0:0 hard core 1\n@root hard core 2\n",
            "root"
        )
        .1,
        Some(1024)
    );
    // `%` domains only limit logins.
    assert_eq!(
        limit("% hard core 3\n%staff hard core 3\n", "ann"),
        (None, None)
    );
}

/// Every pair of hostile fragments, as domains, types, items and values: the reader
/// and the precedence rules never panic, and every limit says why.
#[test]
fn garbage_never_panics() {
    use crate::checks::NASTY_INPUTS as NASTY;
    let a = acc();
    for x in NASTY {
        for y in NASTY {
            let text = format!(
                "{x} {y}\n{y}\t{x} core {x}\n@{x}:{y} hard core {y}\n{x}: - core {y}\n%{y} -\n{x}{y}"
            );
            let mut c = Config::default();
            parse(&text, "/l", &mut c.lines);
            let _ = parse_range(x);
            let _ = parse_range(&format!("{x}:{y}"));
            let _ = value_of(y);
            for u in &a.users {
                let l = evaluate(
                    &c,
                    &Who {
                        name: &u.name,
                        uid: u.uid,
                        gid: u.gid,
                        acc: &a,
                    },
                );
                assert!(!l.how.is_empty(), "{text:?}");
            }
        }
    }
}

/// Random lines made of the characters limits files are made of (digits, `:`, `@`,
/// `%`, `*`, `-`, `#`, blanks, the words pam_limits reads): nothing panics and
/// every limit says why.
#[test]
fn random_lines_never_panic() {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "9",
        "4294967295",
        "4294967296",
        "18446744073709551616",
        "-",
        "-1",
        "+",
        ":",
        "@",
        "%",
        "*",
        "#",
        " ",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "core",
        "hard",
        "soft",
        "HARD",
        "unlimited",
        "infinity",
        "root",
        "ann",
        "staff",
        "@staff",
        "0x10",
        "1e3",
        "é",
        "\0",
    ];
    let a = acc();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..5_000 {
        let n = 1 + next() % 24;
        let text: String = (0..n)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let mut c = Config::default();
        parse(&text, "/l", &mut c.lines);
        for word in text.split_whitespace() {
            let _ = parse_range(word);
            let _ = value_of(word);
        }
        for (name, uid, gid) in [
            ("root", 0, 0),
            ("ann", 1000, 1000),
            ("", u32::MAX, u32::MAX),
        ] {
            let l = evaluate(
                &c,
                &Who {
                    name,
                    uid,
                    gid,
                    acc: &a,
                },
            );
            assert!(!l.how.is_empty(), "{text:?}");
        }
    }
}
