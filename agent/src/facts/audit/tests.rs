//! The auditctl runner and the rule parser.

use super::*;

/// A listing far larger than a pipe's 64 KiB buffer is read while the program
/// runs: it arrives whole, well before the timeout.
#[test]
fn a_listing_larger_than_the_pipe_buffer_is_read_whole() {
    let t0 = Instant::now();
    let out = run_listing(
        "/bin/sh",
        &[
            "-c",
            "yes -- '-w /etc/passwd -p wa -k identity' | head -c 200000",
        ],
        Duration::from_secs(5),
        MAX_AUDITCTL_OUTPUT,
    )
    .unwrap();
    assert_eq!(out.len(), 200_000);
    assert!(out.starts_with(b"-w /etc/passwd -p wa -k identity\n"));
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
}

#[test]
fn listing_output_time_and_failure_are_bounded() {
    let err = run_listing(
        "/bin/sh",
        &["-c", "yes | head -c 300000"],
        Duration::from_secs(5),
        100_000,
    )
    .unwrap_err();
    assert!(err.contains("printed more than 100000 bytes"), "{err}");
    let t0 = Instant::now();
    let err = run_listing(
        "/bin/sh",
        &["-c", "exec sleep 30"],
        Duration::from_millis(500),
        MAX_AUDITCTL_OUTPUT,
    )
    .unwrap_err();
    assert!(err.contains("did not answer within"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let err = run_listing(
        "/bin/sh",
        &["-c", "echo no permission >&2; exit 3"],
        Duration::from_secs(5),
        MAX_AUDITCTL_OUTPUT,
    )
    .unwrap_err();
    assert!(err.ends_with("failed: no permission"), "{err}");
}

#[test]
fn auditctl_listing_parses_like_rule_files() {
    let set = parse_loaded(
        "-w /etc/group -p wa -k identity\n-a always,exit -F arch=b64 -S adjtimex,settimeofday -F key=time-change\n-e 2\nbogus line\n",
    );
    assert_eq!(set.rules.len(), 3);
    assert_eq!(set.bad.len(), 1);
    assert!(parse_loaded("No rules\n").rules.is_empty());
}

#[test]
fn parses_watches_rules_and_controls() {
    let (k, _) = parse_line("-w /etc/sudoers.d/ -p wa -k scope").unwrap();
    assert_eq!(
        k,
        Kind::Watch {
            path: "/etc/sudoers.d".into(),
            perms: "aw".into()
        }
    );
    let (k, pre) = parse_line(
        "-A exit,always -F arch=x86_64 -S chmod,fchmod -Fauid>=1000 -F auid!=-1 -F key=x",
    )
    .unwrap();
    assert!(pre);
    match k {
        Kind::Rule {
            list,
            action,
            syscalls,
            filters,
            ..
        } => {
            assert_eq!((list.as_str(), action.as_str()), ("exit", "always"));
            assert_eq!(syscalls, vec!["chmod", "fchmod"]);
            assert_eq!(
                filters.iter().map(Filter::text).collect::<Vec<_>>(),
                vec!["arch=b64", "auid>=1000", "auid!=unset"]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(parse_line("-e 2").unwrap().0, Kind::Enable("2".into()));
    assert_eq!(
        parse_line("--backlog_wait_time 60000").unwrap().0,
        Kind::Control
    );
    assert!(parse_line("-a always,bogus -S open").is_err());
    assert!(parse_line("-w /x -p z").is_err());
    assert_eq!(parse_filter("exit=-EACCES").unwrap().value, "-13");
    assert_eq!(parse_filter("exit=-13").unwrap().value, "-13");
}

#[test]
fn version_sort_is_natural() {
    let mut v = vec!["10-b.rules", "9-a.rules", "50-x.rules", "099-z.rules"];
    v.sort_by(|a, b| version_cmp(a, b));
    assert_eq!(
        v,
        vec!["9-a.rules", "10-b.rules", "50-x.rules", "099-z.rules"]
    );
}
