//! The AIDE configuration reader and its checks on fixture trees.

use super::*;

#[test]
fn expressions_and_groups() {
    let g = builtin_groups();
    let (a, u) = expand("p+i+n+u+g+s+b+acl+xattrs+sha512", &g);
    assert!(u.is_empty());
    assert_eq!(a.len(), 10);
    let (a, _) = expand("R+b+sha512-m", &g);
    assert!(a.contains("acl") && a.contains("b") && !a.contains("m"));
    let (_, u) = expand("Bogus+p", &g);
    assert_eq!(u, vec!["Bogus"]);
    assert!(is_option("database_in") && is_option("gzip_dbout") && is_option("database"));
    assert!(!is_option("CONTENT_EX") && !is_option("NORMAL"));
}

#[test]
fn nodes() {
    assert_eq!(node_of("/sbin/auditctl"), "/sbin/auditctl");
    assert_eq!(node_of("/usr/s?bin/auditctl"), "/usr");
    assert_eq!(node_of("/var/log/.*\\.log$"), "/var/log");
    assert_eq!(node_of("/"), "/");
    assert_eq!(node_of("/etc/"), "/etc");
}

#[test]
fn database_option_after_macros() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc")).unwrap();
    std::fs::write(
        t.path().join("etc/aide.conf"),
        "@@define DBDIR /var/lib/aide\ndatabase_in=file:@@{DBDIR}/aide.db.gz\n/etc p\n",
    )
    .unwrap();
    let facts = Facts::new(t.path(), false);
    let conf = aide_conf(&facts, "/etc/aide.conf").unwrap();
    let (v, src) = database_option(&conf).unwrap();
    assert_eq!(v, "file:/var/lib/aide/aide.db.gz");
    assert_eq!(src, "/etc/aide.conf:2");
    let (ok, ev) = database(&facts, "/etc/aide.conf").unwrap();
    assert!(!ok, "{ev:?}");
}

#[test]
fn config_end_to_end_and_garbage() {
    let t = tempfile::tempdir().unwrap();
    let etc = t.path().join("etc/aide");
    std::fs::create_dir_all(etc.join("aide.conf.d")).unwrap();
    std::fs::write(
        etc.join("aide.conf"),
        "@@define TOOLS /usr/sbin\n@@ifhost otherhost\n/ E\n@@else\nT = p+i+n+u+g+s+b+acl+xattrs+sha512\n@@endif\n\
         @@include /etc/aide/aide.conf.d ^[a-z]+$\n@@{TOOLS}/auditctl$ f T\n/usr/sbin d R\n\
         /usr/sbin/augenrules T\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("aide.conf.d/extra"),
        "=/usr/sbin/ R\n!/usr/sbin/autrace$\n",
    )
    .unwrap();
    std::fs::write(etc.join("aide.conf.d/skip.me"), "/ T\n").unwrap();
    let facts = Facts::new(t.path(), false);
    let conf = aide_conf(&facts, AIDE_CONF).unwrap();
    assert_eq!(conf.files.len(), 2, "{:?}", conf.files);
    // Equals rules of the deepest node come before its regular rules.
    match verdict(&conf, "/usr/sbin/auditctl") {
        Verdict::Rule(r) => assert_eq!(r.pattern, "/usr/sbin/"),
        _ => panic!("auditctl not selected"),
    }
    // A deeper node wins.
    match verdict(&conf, "/usr/sbin/augenrules") {
        Verdict::Rule(r) => {
            assert!(r.attrs.contains("sha512") && r.attrs.contains("b"), "{r:?}")
        }
        _ => panic!("augenrules not selected"),
    }
    match verdict(&conf, "/usr/sbin/ausearch") {
        Verdict::Rule(r) => assert_eq!(r.pattern, "/usr/sbin/"),
        _ => panic!("ausearch not selected"),
    }
    assert!(matches!(
        verdict(&conf, "/usr/sbin/autrace"),
        Verdict::Excluded(_)
    ));

    let alphabet: Vec<char> = "@/=!-+ RHXEpbf0d,\\()[]*.$^{}%\n#é".chars().collect();
    let mut seed: u64 = 0x1234_5678_9abc_def1;
    for len in 0..200 {
        let mut g = String::new();
        for _ in 0..(len % 90) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            g.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        std::fs::write(etc.join("aide.conf"), &g).unwrap();
        let facts = Facts::new(t.path(), false);
        if let Ok(conf) = aide_conf(&facts, AIDE_CONF).as_ref() {
            let _ = verdict(conf, "/usr/sbin/auditctl");
        }
        let _ = node_of(&g);
        let _ = decode_url(&g);
        let _ = expand(&g, &builtin_groups());
    }
}

#[test]
fn url_decoding() {
    assert_eq!(decode_url("/a%20b"), "/a b");
    assert_eq!(decode_url("/a%2"), "/a%2");
    assert_eq!(decode_url("%"), "%");
}
