//! Network checks on fixture trees.

use super::*;
use crate::facts::sockets::parse_proc_net;

#[test]
fn proc_net_tables() {
    // Little-endian words, as on x86 and arm64 where these tests run.
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
   2: 0F02000A:0016 0100000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n\
   garbage line\n";
    let l = parse_proc_net(tcp, Proto::Tcp, false, "/proc/net/tcp");
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].describe(), "tcp 127.0.0.1:25 (/proc/net/tcp)");
    assert!(l[0].is_loopback());
    assert!(!l[1].is_loopback());
    let tcp6 = "header\n 0: 00000000000000000000000001000000:0019 00000000000000000000000000000000:0000 0A x\n \
 1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A x\n \
 2: 0000000000000000FFFF00000100007F:024B 00000000000000000000000000000000:0000 0A x\n";
    let l = parse_proc_net(tcp6, Proto::Tcp, true, "/proc/net/tcp6");
    assert_eq!(l.len(), 3);
    assert_eq!(l[0].describe(), "tcp [::1]:25 (/proc/net/tcp6)");
    assert!(l[0].is_loopback());
    assert!(l[1].is_v6_wildcard() && !l[1].is_loopback());
    assert!(l[2].is_loopback(), "v4-mapped loopback");
    let udp = "h\n 1: 00000000:0044 00000000:0000 07 x\n 2: 00000000:0045 0100000A:0035 07 x\n 3: 00000000:0046 00000000:0000 01 x\n";
    let l = parse_proc_net(udp, Proto::Udp, false, "/proc/net/udp");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].port, 68);
}

#[test]
fn loopback_names() {
    for s in [
        "localhost",
        "loopback-only",
        "127.0.0.1",
        "127.1.2.3",
        "[::1]",
        "::1",
    ] {
        assert!(is_loopback_name(s), "{s}");
    }
    for s in [
        "all",
        "0.0.0.0",
        "$myhostname",
        "mail.example.com",
        "10.0.0.1",
        "localhost.example.com",
        "::",
        "",
    ] {
        assert!(!is_loopback_name(s), "{s}");
    }
}

#[test]
fn exim_lists() {
    assert_eq!(exim_list("127.0.0.1 : ::::1"), vec!["127.0.0.1", "::1"]);
    assert_eq!(exim_list("<; 127.0.0.1 ; ::1"), vec!["127.0.0.1", "::1"]);
    assert!(exim_item_is_loopback("127.0.0.1.587"));
    assert!(exim_item_is_loopback("[::1]:25"));
    assert!(!exim_item_is_loopback("0.0.0.0.25"));
}

#[test]
fn postfix_lines_and_expansion() {
    let l = postfix_logical_lines(
        "# c\ninet_interfaces = localhost,\n   $extra\nx = y # not a comment\n",
    );
    assert_eq!(l[0], (2, "inet_interfaces = localhost, $extra".to_string()));
    assert_eq!(l[1].1, "x = y # not a comment");
    let mut p = std::collections::HashMap::new();
    p.insert("extra".to_string(), "${more}".to_string());
    p.insert("more".to_string(), "[::1]".to_string());
    assert_eq!(
        postfix_expand("localhost, $extra", &p, 0),
        "localhost, [::1]"
    );
    assert_eq!(postfix_expand("$myhostname", &p, 0), "$myhostname");
    p.insert("loop".to_string(), "$loop".to_string());
    let _ = postfix_expand("$loop", &p, 0); // terminates
}
