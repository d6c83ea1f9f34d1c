//! The rooted reader: symlinks, limits, special files and globs.

use super::*;
use std::fs;
use std::os::unix::fs::symlink;

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("etc/real")).unwrap();
    fs::write(t.path().join("etc/real/f"), "inside").unwrap();
    symlink("/etc/real", t.path().join("etc/link")).unwrap();
    let facts = Facts::new(t.path(), false);
    assert_eq!(
        facts.read("/etc/link/f").unwrap().as_deref(),
        Some("inside")
    );
    let m = facts.stat("/etc/link").unwrap().unwrap();
    assert_eq!(m.path, "/etc/real");
    assert_eq!(m.kind, FileKind::Dir);
}

#[test]
fn symlink_loops_are_errors_not_hangs() {
    let t = tempfile::tempdir().unwrap();
    symlink("/b", t.path().join("a")).unwrap();
    symlink("/a", t.path().join("b")).unwrap();
    let facts = Facts::new(t.path(), false);
    assert!(matches!(
        facts.read("/a"),
        Err(FactError::SymlinkLoop { .. })
    ));
}

#[test]
fn dotdot_cannot_escape_the_root() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("etc")).unwrap();
    symlink("../../../../etc/hostname", t.path().join("etc/esc")).unwrap();
    let facts = Facts::new(t.path(), false);
    let host = facts.resolve("/etc/esc", true).unwrap();
    assert!(host.starts_with(t.path()), "{host:?} escaped the root");
}

#[test]
fn oversized_and_garbage_files() {
    let t = tempfile::tempdir().unwrap();
    let f = fs::File::create(t.path().join("big")).unwrap();
    f.set_len(MAX_CONFIG_BYTES + 10).unwrap();
    fs::write(t.path().join("garbage"), [0xff, 0xfe, b'a', 0, 0x80]).unwrap();
    let facts = Facts::new(t.path(), false);
    assert!(matches!(
        facts.read("/big"),
        Err(FactError::TooLarge { .. })
    ));
    assert!(facts.read("/garbage").unwrap().unwrap().contains('a'));
    assert_eq!(facts.read("/missing").unwrap(), None);
    assert!(matches!(
        facts.read_runtime("/proc/modules"),
        Err(FactError::RuntimeOnly { .. })
    ));
}

/// A globbed directory that is a symlink to an absolute path lists what that
/// path holds *inside the root*, never the host's directory of that name.
#[test]
fn glob_lists_symlinked_directories_inside_the_root_only() {
    let host_dir = tempfile::tempdir().unwrap();
    fs::write(host_dir.path().join("evil.conf"), "PermitRootLogin yes\n").unwrap();
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("etc/ssh")).unwrap();
    fs::create_dir_all(t.path().join("etc/audit")).unwrap();
    fs::write(t.path().join("etc/inside.conf"), "x\n").unwrap();
    // To a host directory the root does not have: nothing.
    symlink(host_dir.path(), t.path().join("etc/ssh/sshd_config.d")).unwrap();
    // To the host's /etc: the root's /etc.
    symlink("/etc", t.path().join("etc/audit/rules.d")).unwrap();
    let facts = Facts::new(t.path(), false);
    assert_eq!(
        facts.glob("/etc/ssh/sshd_config.d/*.conf").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        facts.glob("/etc/audit/rules.d/*.conf").unwrap(),
        vec!["/etc/audit/rules.d/inside.conf".to_string()]
    );
    // `**` does not wander through the symlink either, nor out of the root.
    assert_eq!(
        facts.glob("/etc/**/*.conf").unwrap(),
        vec!["/etc/inside.conf".to_string()]
    );
    // The same absolute path inside the root is what is listed.
    let mirror = t.path().join(host_dir.path().strip_prefix("/").unwrap());
    fs::create_dir_all(&mirror).unwrap();
    fs::write(mirror.join("mine.conf"), "x\n").unwrap();
    assert_eq!(
        facts.glob("/etc/ssh/sshd_config.d/*.conf").unwrap(),
        vec!["/etc/ssh/sshd_config.d/mine.conf".to_string()]
    );
}

#[test]
fn glob_matches_like_glob3() {
    let t = tempfile::tempdir().unwrap();
    for f in [
        "etc/audit/auditd.conf",
        "etc/audit/rules.d/a.rules",
        "etc/audit/rules.d/.hidden.rules",
        "etc/audit/plugins.d/deep/x.conf",
        "etc/ssh/ssh_host_rsa_key",
        "etc/ssh/ssh_host_rsa_key.pub",
    ] {
        let p = t.path().join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "").unwrap();
    }
    symlink("/etc/audit", t.path().join("etc/audit/loop")).unwrap();
    let facts = Facts::new(t.path(), false);
    let g = |p: &str| facts.glob(p).unwrap();
    assert_eq!(
        g("/etc/audit/**/*.conf"),
        ["/etc/audit/auditd.conf", "/etc/audit/plugins.d/deep/x.conf"]
    );
    assert_eq!(g("/etc/audit/**/*.rules"), ["/etc/audit/rules.d/a.rules"]);
    assert_eq!(
        g("/etc/audit/rules.d/.*"),
        ["/etc/audit/rules.d/.hidden.rules"]
    );
    assert_eq!(g("/etc/ssh/ssh_host_*_key"), ["/etc/ssh/ssh_host_rsa_key"]);
    assert_eq!(
        g("/etc/ssh/ssh_host_[a-r]sa_key"),
        ["/etc/ssh/ssh_host_rsa_key"]
    );
    assert_eq!(g("/etc/*/missing/*"), Vec::<String>::new());
    assert_eq!(
        g("/etc/ssh/ssh_host_rsa_key"),
        ["/etc/ssh/ssh_host_rsa_key"]
    );
}
