//! The nft ruleset parser and evaluator.

use super::*;

const DEBIAN_DEFAULT: &str = "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter;\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter;\n\t}\n}\n";

#[test]
fn debian_default_has_base_chains_without_policy() {
    let rs = parse_text(DEBIAN_DEFAULT, "/etc/nftables.conf");
    assert_eq!(rs.tables.len(), 1);
    let t = &rs.tables[0];
    assert_eq!((t.family.as_str(), t.name.as_str()), ("inet", "filter"));
    assert_eq!(t.chains.len(), 3);
    assert!(t.chains[0].is_filter_hook("input"));
    assert_eq!(t.chains[0].hook.as_ref().unwrap().priority, "filter");
    assert!(t.chains.iter().all(|c| c.policy.is_none()));
}

#[test]
fn one_line_chains_sets_and_variables() {
    let text = "define LO = \"lo\"\ndefine ports = { 22, 443 }\n\
table ip6 f { set s { type ipv6_addr; elements = { ::1 } }\n\
chain in { type filter hook input priority 0; policy drop; iif $LO accept; ip6 saddr ::1 counter packets 0 bytes 0 drop\n\
tcp dport $ports ct state new accept # ssh and https\n tcp dport { 8000-8100 } accept comment \"x { y\"\n } }\n";
    let rs = parse_text(text, "/n");
    let c = &rs.tables[0].chains[0];
    assert_eq!(c.name, "in");
    assert!(c.policy_drops());
    assert_eq!(c.rules.len(), 4, "{:?}", c.rules);
    assert!(c.rules[0].accepts_loopback());
    assert!(c.rules[1].drops_saddr("ip6", &["::1"]));
    assert!(c.rules[2].covers_port("tcp", 443));
    assert!(!c.rules[2].covers_port("udp", 443));
    assert!(c.rules[3].covers_port("tcp", 8050));
}

#[test]
fn command_forms_flush_and_order() {
    let text = "table inet old { chain input { type filter hook input priority 0; policy drop; } }\n\
flush ruleset\nadd table inet f\nadd chain inet f input { type filter hook input priority 0 ; policy accept ; }\n\
add rule inet f input ip saddr 127.0.0.0/8 drop\ninsert rule inet f input iifname \"lo\" accept\n\
chain inet f input { policy drop; }\nadd chain inet f extra\nadd rule inet f input jump extra\n\
add rule inet f extra tcp dport 22 accept\ntable ip dormant { flags dormant; }\n";
    let rs = parse_text(text, "/n");
    assert!(
        rs.tables.iter().all(|t| t.name != "old"),
        "flush ruleset clears earlier tables"
    );
    let t = &rs.tables[0];
    let input = &t.chains[0];
    assert!(input.policy_drops(), "the later policy wins");
    assert!(
        input.rules[0].accepts_loopback(),
        "insert puts the rule first"
    );
    assert!(input.rules[1].drops_saddr("ip", &["127.0.0.0/8"]));
    assert!(t.reachable(input).iter().any(|r| r.covers_port("tcp", 22)));
    assert_eq!(rs.active_tables().count(), 1);
}

#[test]
fn narrowed_rules_do_not_count() {
    let rs = parse_text(
        "table inet f { chain i { iif lo tcp dport 22 accept; iif != lo ip saddr 127.0.0.0/8 drop; ip saddr 127.0.0.0/8 tcp dport 80 drop; iif lo drop } }",
        "/n",
    );
    let r = &rs.tables[0].chains[0].rules;
    assert!(!r[0].accepts_loopback());
    assert!(r[1].drops_saddr("ip", &["127.0.0.0/8"]));
    assert!(!r[2].drops_saddr("ip", &["127.0.0.0/8"]));
    assert!(!r[3].accepts_loopback());
}

#[test]
fn garbage_never_panics() {
    for text in [
        "}}}{{{",
        "table",
        "chain {",
        "add rule",
        "define = ",
        "table inet f { chain c { type filter hook",
        "\"unterminated",
        "insert rule inet f c position",
    ] {
        let _ = parse_text(text, "/n");
    }
}
