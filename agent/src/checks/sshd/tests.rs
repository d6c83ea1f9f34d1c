//! sshd checks: options, Match blocks, files and banners on fixture trees.

use super::*;

#[test]
fn banner_names_match_whole_words() {
    assert!(contains_word("welcome to ol 9", "ol"));
    assert!(contains_word("red hat's servers", "red hat"));
    assert!(contains_word("(rhel)", "rhel"));
    assert!(!contains_word("access is controlled by policy", "ol"));
    assert!(!contains_word("anything", ""));
    assert!(contains_word("debian-based", "debian"));
}

#[test]
fn convtime_like_sshd() {
    assert_eq!(convtime("60"), Some(60));
    assert_eq!(convtime("1m"), Some(60));
    assert_eq!(convtime("1m30s"), Some(90));
    assert_eq!(convtime("2H"), Some(7200));
    assert_eq!(convtime("1x"), None);
    assert_eq!(convtime(""), None);
    assert_eq!(convtime("-5"), None);
    assert_eq!(convtime("99999999999999999999"), None);
    assert_eq!(convtime("3550w"), Some(3550 * 604800));
    assert_eq!(convtime("3551w"), None);
}

#[test]
fn algorithm_lists() {
    let l = assemble("+aes128-cbc", DEFAULT_CIPHERS, ALL_CIPHERS).unwrap();
    assert!(l.contains(&"aes128-cbc".to_string()) && l.len() == 7);
    let l = assemble("-umac-64*", DEFAULT_MACS, ALL_MACS).unwrap();
    assert!(!l.iter().any(|m| m.starts_with("umac-64")) && l.len() == 8);
    let l = assemble("aes*", DEFAULT_CIPHERS, ALL_CIPHERS).unwrap();
    assert!(l.contains(&"aes256-cbc".to_string()) && !l.contains(&"3des-cbc".to_string()));
    let l = assemble("^aes256-ctr", DEFAULT_CIPHERS, ALL_CIPHERS).unwrap();
    assert_eq!(l[0], "aes256-ctr");
    assert_eq!(l.len(), 6);
    assert!(assemble("!aes", DEFAULT_CIPHERS, ALL_CIPHERS).is_err());
    assert!(assemble("bogus", DEFAULT_CIPHERS, ALL_CIPHERS).is_err());
}

#[test]
fn release_defaults() {
    // Only the key exchange list differs between the releases: same methods,
    // another order.
    for kw in [
        "Ciphers",
        "MACs",
        "PermitRootLogin",
        "MaxStartups",
        "UsePAM",
    ] {
        assert_eq!(default_in(kw, Openssh::V8_9), default_of(kw));
        assert_eq!(default_in(kw, Openssh::V9_6), default_of(kw));
    }
    let debian = default_in("KexAlgorithms", Openssh::V9_2).unwrap();
    assert_eq!(
        debian.split_once(',').map(|(_, rest)| rest),
        Some(DEFAULT_KEX)
    );
    let old = default_in("KexAlgorithms", Openssh::V8_9).unwrap();
    assert!(old.starts_with("curve25519-sha256,"));
    let mut a: Vec<&str> = old.split(',').collect();
    let mut b: Vec<&str> = DEFAULT_KEX.split(',').collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(
        default_in("KexAlgorithms", Openssh::V9_6),
        Some(DEFAULT_KEX)
    );
    let l = assemble("^diffie-hellman-group14-sha256", old, ALL_KEX).unwrap();
    assert_eq!(l[0], "diffie-hellman-group14-sha256");
    assert_eq!(l[1], "curve25519-sha256");
    #[derive(Deserialize)]
    struct W {
        v: Openssh,
    }
    let w: W = toml::from_str("v = \"8.9\"").unwrap();
    assert_eq!(w.v, Openssh::V8_9);
    assert!(toml::from_str::<W>("v = \"9.0\"").is_err());
}

#[test]
fn max_startups() {
    assert!(judge_max_startups("10:30:60", 10, 30, 60).is_ok());
    assert!(judge_max_startups("10:30:100", 10, 30, 60).is_err());
    assert!(judge_max_startups("5:50:20", 10, 30, 60).is_ok());
    assert!(judge_max_startups("10:10:60", 10, 30, 60).is_err());
    assert!(judge_max_startups("8", 10, 30, 60).is_ok());
    assert!(judge_max_startups("x", 10, 30, 60).is_err());
}

#[test]
fn values() {
    assert!(judge_value("No", &["no".into()], None, None, false, false).is_ok());
    assert!(judge_value("No", &["no".into()], None, None, false, true).is_err());
    assert!(judge_value("1m", &[], Some(1), Some(60), true, false).is_ok());
    assert!(judge_value("2m", &[], Some(1), Some(60), true, false).is_err());
    assert!(judge_value("0", &[], Some(1), Some(60), true, false).is_err());
    assert!(judge_value("five", &[], None, Some(4), false, false).is_err());
}
