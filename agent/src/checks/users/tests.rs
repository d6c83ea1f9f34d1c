//! User and group checks on fixture trees.

use super::shadow::{date_of, today_days};
use super::*;
use crate::facts::account_defaults::parse_login_defs;
use crate::facts::sudoers::has_tag;
use crate::model::Status;

fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    crate::checks::test_tree(files, &[])
}

fn sudo(version: &str) -> String {
    format!("Package: sudo\nStatus: install ok installed\nVersion: {version}\n")
}

#[test]
fn use_pty_default_follows_the_sudo_release() {
    let check = Check::SudoDefaults {
        option: "use_pty".into(),
        want: Want::On,
    };
    for (version, want) in [
        ("1.9.13p3-1+deb12u1", Status::Fail),
        ("1.9.9-1ubuntu2.4", Status::Fail),
        ("1.9.15p5-3ubuntu5", Status::Pass),
    ] {
        let t = root_with(&[
            ("/var/lib/dpkg/status", &sudo(version)),
            ("/etc/sudoers", "Defaults env_reset\n"),
        ]);
        let o = check.eval(&Facts::new(t.path(), false));
        assert_eq!(o.status, want, "{version}: {:?}", o.evidence);
        assert!(
            o.evidence.iter().any(|e| e.contains(version)),
            "{:?}",
            o.evidence
        );
    }
    // Turned off explicitly, it fails whatever the release.
    let t = root_with(&[
        ("/var/lib/dpkg/status", &sudo("1.9.15p5-3ubuntu5")),
        ("/etc/sudoers", "Defaults !use_pty\n"),
    ]);
    assert_eq!(
        check.eval(&Facts::new(t.path(), false)).status,
        Status::Fail
    );
    // Flags without a changed default keep failing when unset.
    let check = Check::SudoDefaults {
        option: "requiretty".into(),
        want: Want::On,
    };
    let t = root_with(&[
        ("/var/lib/dpkg/status", &sudo("1.9.15p5-3ubuntu5")),
        ("/etc/sudoers", "Defaults env_reset\n"),
    ]);
    assert_eq!(
        check.eval(&Facts::new(t.path(), false)).status,
        Status::Fail
    );
}

#[test]
fn root_password_required_or_locked() {
    let shadow = |pw: &str| format!("root:{pw}:19500:0:99999:7:::\n");
    let passwd = "root:x:0:0:root:/root:/bin/bash\n";
    for (pw, require, want) in [
        ("$y$j9T$abc$def", false, Status::Pass),
        ("$y$j9T$abc$def", true, Status::Pass),
        ("!", false, Status::Pass),
        ("*", true, Status::Fail),
        ("!$y$j9T$abc$def", true, Status::Fail),
        ("", false, Status::Fail),
    ] {
        let t = root_with(&[
            ("/etc/passwd", passwd),
            ("/etc/group", "root:x:0:\n"),
            ("/etc/shadow", &shadow(pw)),
        ]);
        let o = Check::RootPassword {
            require_password: require,
        }
        .eval(&Facts::new(t.path(), false));
        assert_eq!(o.status, want, "{pw:?} {require}: {:?}", o.evidence);
    }
}

#[test]
fn tags() {
    assert!(has_tag("%admin ALL=(ALL) NOPASSWD: ALL", "NOPASSWD"));
    assert!(has_tag(
        "bob ALL = (root) NOEXEC:NOPASSWD :/bin/ls",
        "NOPASSWD"
    ));
    assert!(!has_tag("Cmnd_Alias NOPASSWDX = /bin/ls", "NOPASSWD"));
    assert!(!has_tag("bob ALL=(ALL) PASSWD: ALL", "NOPASSWD"));
}

#[test]
fn dates() {
    assert_eq!(date_of(0), "1970-01-01");
    assert_eq!(date_of(19723), "2024-01-01");
    assert!(today_days() > 19723);
    assert!(!date_of(i64::MAX).is_empty());
}

#[test]
fn login_defs_garbage() {
    for s in [
        "", "\"", "A\"", "A \"", "A \"\"", "\tA\t\t", "é ü", "# A 1", "A  \"x",
    ] {
        let _ = parse_login_defs(s, "/l");
        let _ = has_tag(s, "NOPASSWD");
    }
}
