//! Unit tests of the pam_limits reader: C's number parsing and the precedence rules.

use super::*;
use crate::facts::accounts::Group;

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
