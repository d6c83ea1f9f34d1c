//! Settings validation, the score, enforcement and the handover decision as tables;
//! webhook URLs.

use super::*;

fn counts(passed: u32, failed: u32, error: u32, crit: u32, high: u32) -> Counts {
    Counts {
        passed,
        failed,
        error,
        not_applicable: 5,
        failed_by_severity: [(Severity::Critical, crit), (Severity::High, high)]
            .into_iter()
            .collect(),
    }
}

#[test]
fn the_handover_decision_table() {
    let on = Settings {
        exempt_projects: ["lab".to_string()].into_iter().collect(),
        ..Settings::default()
    };
    let off = Settings {
        scanning_enabled: false,
        ..on.clone()
    };
    let scan = |status: ScanStatus, blocked: bool, released: bool| {
        let mut s = ScanRecord::pending("sc-1".into(), "ag", None, "manual", Profile::default(), 0);
        s.status = status;
        s.blocked = blocked;
        s.block_reasons = if blocked {
            vec!["low score".into()]
        } else {
            vec![]
        };
        s.released_by = released.then(|| "ann".to_string());
        s.failure_reason = Some("disk full".into());
        s
    };
    use ScanStatus::*;
    // Settings, project, newest scan; allowed, state, reasons, rests on the scan.
    type Case<'a> = (
        &'a Settings,
        Option<&'a str>,
        Option<ScanRecord>,
        bool,
        &'a str,
        &'a str,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            &on,
            Some("lab"),
            Some(scan(Completed, true, false)),
            true,
            "exempt",
            "project lab is exempt from scanning",
            false,
        ),
        (
            &off,
            Some("web"),
            Some(scan(Completed, true, false)),
            true,
            "allowed",
            "CIS scanning is disabled",
            false,
        ),
        (
            &on,
            None,
            None,
            false,
            "pending",
            "no scan has been made yet",
            false,
        ),
        (
            &on,
            None,
            Some(scan(Pending, false, false)),
            false,
            "pending",
            "scan sc-1 is pending",
            true,
        ),
        (
            &on,
            None,
            Some(scan(Running, false, false)),
            false,
            "pending",
            "scan sc-1 is running",
            true,
        ),
        (
            &on,
            None,
            Some(scan(Failed, false, false)),
            false,
            "failed",
            "scan sc-1 failed: disk full",
            true,
        ),
        (
            &on,
            None,
            Some(scan(Cancelled, false, false)),
            false,
            "pending",
            "scan sc-1 was cancelled; no completed scan",
            true,
        ),
        (
            &on,
            Some("web"),
            Some(scan(Completed, false, false)),
            true,
            "allowed",
            "",
            true,
        ),
        (
            &on,
            None,
            Some(scan(Completed, true, false)),
            false,
            "blocked",
            "low score",
            true,
        ),
        (
            &on,
            None,
            Some(scan(Completed, true, true)),
            true,
            "released",
            "released by ann despite: low score",
            true,
        ),
    ];
    for (s, project, latest, allowed, state, reasons, on_scan) in cases {
        let h = handover(s, project, latest.as_ref());
        assert_eq!(
            (h.allowed, h.state, h.reasons.join("; "), h.on_scan),
            (allowed, state, reasons.to_string(), on_scan),
            "{project:?} {latest:?}"
        );
    }
}

#[test]
fn webhook_settings_are_checked() {
    let with = |url: &str, secret: Option<&str>| Settings {
        webhook_url: url.into(),
        webhook_secret: secret.map(|k| WebhookSecret(k.into())),
        ..Settings::default()
    };
    for ok in [
        with("", None),
        with(
            "https://hooks.example/rampart?x=1",
            Some("0123456789abcdef"),
        ),
        with("http://127.0.0.1:9000/hook", Some("")),
    ] {
        assert_eq!(ok.validate(), Ok(()), "{ok:?}");
    }
    for (bad, want) in [
        (with("ftp://x/", None), "http:// or https://"),
        (with("hooks.example/x", None), "not a URL"),
        (with("https://u:p@hooks.example/", None), "credentials"),
        (with("https://hooks.example/#x", None), "fragment"),
        (with("http://", None), "not a URL"),
        (with("https://h.example/", Some("short")), "16 to 512"),
    ] {
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{bad:?}: {e}");
    }
    assert!(
        !format!("{:?}", with("", Some("0123456789abcdef"))).contains("0123456789abcdef"),
        "Debug never shows the secret"
    );
}

#[test]
fn webhook_destinations_table() {
    for (url, allow_loopback, want) in [
        ("https://hooks.example/x", false, None),
        ("http://10.1.2.3:8080/x", false, None),
        ("http://192.168.1.5/x", false, None),
        ("http://127.0.0.1:9000/x", false, Some("loopback")),
        ("http://127.0.0.1:9000/x", true, None),
        ("http://127.9.9.9/x", false, Some("loopback")),
        ("http://[::1]:80/x", false, Some("loopback")),
        ("http://[::1]:80/x", true, None),
        ("http://[::ffff:127.0.0.1]/x", false, Some("loopback")),
        (
            "http://169.254.169.254/latest/meta-data/",
            false,
            Some("link-local"),
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            true,
            Some("link-local"),
        ),
        ("http://[fe80::1]/x", true, Some("link-local")),
        ("http://[fd00:ec2::254]/x", false, Some("cloud metadata")),
        ("http://100.100.100.200/x", false, Some("cloud metadata")),
        ("http://0.0.0.0:80/x", true, Some("unspecified")),
        ("http://[::]/x", false, Some("unspecified")),
        ("http://224.0.0.1/x", false, Some("multicast")),
        ("http://[ff02::1]/x", false, Some("multicast")),
        ("http://255.255.255.255/x", false, Some("broadcast")),
        // Names are checked when resolved, at delivery time.
        ("http://localhost:9000/x", false, None),
    ] {
        let got = check_webhook_destination(url, allow_loopback);
        match want {
            None => assert_eq!(got, Ok(()), "{url}"),
            Some(kind) => {
                let e = got.unwrap_err().to_string();
                assert!(e.contains(&format!(" {kind} address")), "{url}: {e}");
                assert!(!e.contains("/x") && !e.contains("meta-data"), "{e}");
                assert_eq!(
                    e.contains("webhook_allow_loopback = true"),
                    kind == "loopback",
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn webhook_urls_are_redacted() {
    let slack = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX";
    let r = redact_url(slack);
    assert!(r.starts_with("https://hooks.slack.com/…(sha256 "), "{r}");
    assert!(!r.contains("services") && !r.contains("secret"), "{r}");
    assert_ne!(
        r,
        redact_url("https://hooks.slack.com/services/T000/B000/other")
    );
    assert_eq!(r, redact_url(slack));
    assert_eq!(
        redact_url("http://[::1]:8080/hook?token=abc")
            .split('…')
            .next(),
        Some("http://[::1]:8080/")
    );
    assert!(!redact_url("http://h.example/?token=abc").contains("abc"));
    assert_eq!(redact_url("https://h.example"), "https://h.example/");
    assert_eq!(redact_url(""), "");
    let odd = redact_url("not a url with a secret");
    assert!(
        odd.starts_with("(unreadable URL") && !odd.contains("secret"),
        "{odd}"
    );
    // Errors about a URL show it redacted.
    let bad = Settings {
        webhook_url: "ftp://x.example/secret-token".into(),
        ..Settings::default()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("ftp://x.example/…") && !e.contains("secret-token"),
        "{e}"
    );
}

#[test]
fn score_table() {
    for (c, want) in [
        (counts(7, 3, 0, 0, 0), Some(70.0)),
        (counts(2, 1, 0, 0, 0), Some(66.7)),
        (counts(1, 0, 1, 0, 0), Some(50.0)),
        (counts(0, 0, 0, 0, 0), None),
        (counts(10, 0, 0, 0, 0), Some(100.0)),
    ] {
        assert_eq!(score(&c), want, "{c:?}");
    }
}

#[test]
fn enforcement_table() {
    let block = Settings {
        mode: Mode::Block,
        ..Settings::default()
    };
    let block_high = Settings {
        block_on_high: true,
        ..block.clone()
    };
    let no_crit = Settings {
        block_on_critical: false,
        ..block.clone()
    };
    let warn = Settings {
        mode: Mode::Warn,
        ..Settings::default()
    };
    let audit = Settings::default();
    let mut exempt = block.clone();
    exempt.exempt_projects.insert("lab".into());
    // name, settings, counts, project, blocked, alert, reasons
    type Case<'a> = (
        &'a str,
        &'a Settings,
        Counts,
        Option<&'a str>,
        bool,
        bool,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "clean pass",
            &block,
            counts(9, 1, 0, 0, 0),
            None,
            false,
            false,
            vec![],
        ),
        (
            "critical blocks",
            &block,
            counts(97, 3, 0, 3, 0),
            None,
            true,
            false,
            vec!["3 critical CIS check(s) failed"],
        ),
        (
            "critical off",
            &no_crit,
            counts(97, 3, 0, 3, 0),
            None,
            false,
            false,
            vec![],
        ),
        (
            "high off by default",
            &block,
            counts(97, 3, 0, 0, 2),
            None,
            false,
            false,
            vec![],
        ),
        (
            "high on",
            &block_high,
            counts(97, 3, 0, 0, 2),
            None,
            true,
            false,
            vec!["2 high CIS check(s) failed"],
        ),
        (
            "low score",
            &block,
            counts(642, 358, 0, 0, 0),
            None,
            true,
            false,
            vec!["score 64.2% is below the minimum of 70%"],
        ),
        (
            "all reasons",
            &block_high,
            counts(5, 5, 0, 1, 1),
            None,
            true,
            false,
            vec![
                "1 critical CIS check(s) failed",
                "1 high CIS check(s) failed",
                "score 50.0% is below the minimum of 70%",
            ],
        ),
        (
            "exactly the minimum passes",
            &block,
            counts(7, 3, 0, 0, 0),
            None,
            false,
            false,
            vec![],
        ),
        (
            "errors count against the score",
            &block,
            counts(6, 0, 4, 0, 0),
            None,
            true,
            false,
            vec!["score 60.0% is below the minimum of 70%"],
        ),
        (
            "warn alerts, never blocks",
            &warn,
            counts(1, 1, 0, 1, 0),
            None,
            false,
            true,
            vec![
                "1 critical CIS check(s) failed",
                "score 50.0% is below the minimum of 70%",
            ],
        ),
        (
            "audit records only",
            &audit,
            counts(1, 1, 0, 1, 0),
            None,
            false,
            false,
            vec![
                "1 critical CIS check(s) failed",
                "score 50.0% is below the minimum of 70%",
            ],
        ),
        (
            "exempt project",
            &exempt,
            counts(1, 1, 0, 1, 0),
            Some("lab"),
            false,
            false,
            vec![],
        ),
        (
            "other project",
            &exempt,
            counts(1, 1, 0, 1, 0),
            Some("prod"),
            true,
            false,
            vec![
                "1 critical CIS check(s) failed",
                "score 50.0% is below the minimum of 70%",
            ],
        ),
    ];
    for (name, s, c, project, blocked, alert, reasons) in cases {
        let v = enforce(s, &c, project);
        assert_eq!((v.blocked, v.alert), (blocked, alert), "{name}");
        assert_eq!(v.reasons, reasons, "{name}");
    }
}

#[test]
fn settings_validation() {
    assert_eq!(Settings::default().validate(), Ok(()));
    assert!(matches!(
        Settings {
            min_score: 101.0,
            ..Settings::default()
        }
        .validate(),
        Err(SettingsError::MinScore(_))
    ));
    // A profile is typed: an unknown name is refused where settings are read.
    let mut r = crate::app::SettingsRecord::from(&Settings::default());
    r.profile = "level3".into();
    let err = Settings::try_from(&r).unwrap_err();
    assert_eq!(err, SettingsError::Profile("level3".into()).to_string());
    assert!(matches!(
        Settings {
            schedule_cron: "0 0 3 * * *".into(),
            ..Settings::default()
        }
        .validate(),
        Err(SettingsError::Cron(..))
    ));
}
