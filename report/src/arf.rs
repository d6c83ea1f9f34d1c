//! The ARF report: SCAP Asset Reporting Format 1.1 holding
//! - the asset (`ai:computing-device`: host name, addresses, agent and instance IDs),
//! - a report request: our benchmark as an XCCDF 1.2 `Benchmark` (every rule, flat, a
//!   `Profile` per known profile selecting its rules) in a SCAP 1.3 source data stream
//!   whose checks component is an empty OVAL document (the rules are evaluated
//!   natively by the agent, not by OVAL; a data stream needs a checks component),
//! - the report: an XCCDF 1.2 `TestResult` with one `rule-result` per rule (rules
//!   outside the profile `notselected`), evidence as `message`s, and the score,
//! - relationships: the report `isAbout` the asset and was `createdFor` the request.
//!
//! The benchmark is flat with unit weights, so XCCDF's default scoring model gives
//! exactly our score: passed ÷ (passed + failed + error) × 100.
//!
//! XML is written by hand; every string goes through [`escape_xml`] and every ID
//! through [`name`], so agent-supplied text can never break the document.

use std::collections::HashSet;
use std::fmt::Write;
use std::net::IpAddr;

use crate::escape::escape_xml as x;
use crate::{cmp_rule_ids, rfc3339_ms, Doc, Profile, Rule, Severity, Status};

const NS_ARF: &str = "http://scap.nist.gov/schema/asset-reporting-format/1.1";
const NS_CORE: &str = "http://scap.nist.gov/schema/reporting-core/1.1";
const NS_AI: &str = "http://scap.nist.gov/schema/asset-identification/1.1";
const NS_REL: &str = "http://scap.nist.gov/specifications/arf/vocabulary/relationships/1.0#";
const NS_DS: &str = "http://scap.nist.gov/schema/scap/source/1.2";
const NS_XLINK: &str = "http://www.w3.org/1999/xlink";
const NS_XCCDF: &str = "http://checklists.nist.gov/xccdf/1.2";
const NS_OVAL_DEF: &str = "http://oval.mitre.org/XMLSchema/oval-definitions-5";
const NS_OVAL: &str = "http://oval.mitre.org/XMLSchema/oval-common-5";

/// Our reverse-DNS namespace in XCCDF and data-stream IDs.
const ORG: &str = "org.rampart";

/// The part of an ID after `xccdf_org.rampart_<type>_`: `[A-Za-z0-9.-]` stay, every
/// other byte becomes `_XX` (hex), so distinct names give distinct IDs and every ID
/// is an `NCName` matching the XCCDF and data-stream patterns.
pub(crate) fn name(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            out.push(b as char);
        } else {
            let _ = write!(out, "_{b:02X}");
        }
    }
    out
}

fn xccdf_id(kind: &str, n: &str) -> String {
    format!("xccdf_{ORG}_{kind}_{}", name(n))
}

fn scap_id(kind: &str, n: &str) -> String {
    format!("scap_{ORG}_{kind}_{}", name(n))
}

/// XCCDF has no `critical`: it is the top of XCCDF's scale, `high`.
fn xccdf_severity(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Critical | Severity::High) => "high",
        Some(Severity::Medium) => "medium",
        Some(Severity::Low) => "low",
        None => "unknown",
    }
}

/// An address as `ai:ip-v4`/`ai:ip-v6` want it (IPv6 in full, eight groups), or
/// `None` for anything that is not an address (a `/prefix` is dropped).
fn ip(s: &str) -> Option<IpAddr> {
    s.trim().split('/').next()?.parse().ok()
}

fn ip_element(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => format!("<ai:ip-v4>{v4}</ai:ip-v4>"),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
            format!("<ai:ip-v6>{}</ai:ip-v6>", groups.join(":"))
        }
    }
}

/// Whether `s` fits `ai:hostname`'s pattern `[\w\-]+(\.[\w\-]+)*`.
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// The rules of the document, each once (the first of duplicates), in ID order.
fn unique_rules(doc: &Doc) -> Vec<&Rule> {
    let mut seen = HashSet::new();
    let mut rules: Vec<&Rule> = doc
        .rules
        .iter()
        .filter(|r| seen.insert(name(&r.id)))
        .collect();
    rules.sort_by(|a, b| cmp_rule_ids(&a.id, &b.id));
    rules
}

/// The profiles of the document, the scanned one included, each once.
fn profiles(doc: &Doc) -> Vec<Profile> {
    let mut seen = HashSet::new();
    doc.profiles
        .iter()
        .copied()
        .chain(std::iter::once(doc.profile))
        .filter(|p| seen.insert(*p))
        .collect()
}

fn benchmark_key(doc: &Doc) -> &str {
    match doc.benchmark.id.trim() {
        "" => "unknown",
        id => id,
    }
}

/// The ARF document of `doc`.
pub fn arf(doc: &Doc) -> String {
    let mut o = String::with_capacity(256 * 1024);
    let _ = writeln!(
        o,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <arf:asset-report-collection xmlns:arf=\"{NS_ARF}\" xmlns:core=\"{NS_CORE}\" xmlns:ai=\"{NS_AI}\">"
    );
    let _ = writeln!(
        o,
        "  <core:relationships xmlns:arfvocab=\"{NS_REL}\">\n    \
         <core:relationship type=\"arfvocab:createdFor\" subject=\"xccdf1\">\
         <core:ref>collection1</core:ref></core:relationship>\n    \
         <core:relationship type=\"arfvocab:isAbout\" subject=\"xccdf1\">\
         <core:ref>asset0</core:ref></core:relationship>\n  </core:relationships>"
    );
    o.push_str("  <arf:report-requests>\n    <arf:report-request id=\"collection1\">\n      <arf:content>\n");
    data_stream(&mut o, doc);
    o.push_str("      </arf:content>\n    </arf:report-request>\n  </arf:report-requests>\n");
    o.push_str("  <arf:assets>\n    <arf:asset id=\"asset0\">\n");
    asset(&mut o, doc);
    o.push_str("    </arf:asset>\n  </arf:assets>\n");
    o.push_str("  <arf:reports>\n    <arf:report id=\"xccdf1\">\n      <arf:content>\n");
    test_result(&mut o, doc);
    o.push_str("      </arf:content>\n    </arf:report>\n  </arf:reports>\n");
    o.push_str("</arf:asset-report-collection>\n");
    o
}

fn asset(o: &mut String, doc: &Doc) {
    let h = &doc.host;
    o.push_str("      <ai:computing-device>\n");
    for (resource, id) in [
        ("urn:rampart:agent-id", &h.agent_id),
        ("urn:rampart:instance-id", &h.instance_id),
    ] {
        if !id.trim().is_empty() {
            let _ = writeln!(
                o,
                "        <ai:synthetic-id resource=\"{resource}\" id=\"{}\"/>",
                x(id.trim())
            );
        }
    }
    let addrs: Vec<IpAddr> = h.ip_addresses.iter().filter_map(|a| ip(a)).collect();
    if !addrs.is_empty() {
        o.push_str("        <ai:connections>\n");
        for a in &addrs {
            let _ = writeln!(
                o,
                "          <ai:connection><ai:ip-address>{}</ai:ip-address></ai:connection>",
                ip_element(*a)
            );
        }
        o.push_str("        </ai:connections>\n");
    }
    let host = h.name.trim();
    if is_hostname(host) {
        if host.contains('.') {
            let _ = writeln!(o, "        <ai:fqdn>{}</ai:fqdn>", x(host));
        }
        let _ = writeln!(o, "        <ai:hostname>{}</ai:hostname>", x(host));
    }
    o.push_str("      </ai:computing-device>\n");
}

fn data_stream(o: &mut String, doc: &Doc) {
    let key = benchmark_key(doc);
    let ts = rfc3339_ms(doc.finished_ms.unwrap_or(doc.generated_ms));
    let xccdf_comp = scap_id("comp", &format!("{key}-xccdf"));
    let oval_comp = scap_id("comp", &format!("{key}-oval"));
    let _ = writeln!(
        o,
        "<ds:data-stream-collection xmlns:ds=\"{NS_DS}\" xmlns:xlink=\"{NS_XLINK}\" \
         id=\"{}\" schematron-version=\"1.3\">\n  \
         <ds:data-stream id=\"{}\" scap-version=\"1.3\" use-case=\"CONFIGURATION\" timestamp=\"{ts}\">\n    \
         <ds:checklists><ds:component-ref id=\"{}\" xlink:href=\"#{xccdf_comp}\"/></ds:checklists>\n    \
         <ds:checks><ds:component-ref id=\"{}\" xlink:href=\"#{oval_comp}\"/></ds:checks>\n  \
         </ds:data-stream>",
        scap_id("collection", key),
        scap_id("datastream", key),
        scap_id("cref", &format!("{key}-xccdf")),
        scap_id("cref", &format!("{key}-oval")),
    );
    let _ = writeln!(o, "  <ds:component id=\"{xccdf_comp}\" timestamp=\"{ts}\">");
    benchmark(o, doc);
    o.push_str("  </ds:component>\n");
    let _ = writeln!(
        o,
        "  <ds:component id=\"{oval_comp}\" timestamp=\"{ts}\">\n    \
         <oval_definitions xmlns=\"{NS_OVAL_DEF}\" xmlns:oval=\"{NS_OVAL}\">\
         <generator><oval:product_name>Rampart</oval:product_name>\
         <oval:schema_version>5.11.2</oval:schema_version>\
         <oval:timestamp>{ts}</oval:timestamp></generator></oval_definitions>\n  \
         </ds:component>\n</ds:data-stream-collection>"
    );
}

fn benchmark(o: &mut String, doc: &Doc) {
    let b = &doc.benchmark;
    let title = match b.title.trim() {
        "" => "Unknown benchmark (no rule catalogue received)",
        t => t,
    };
    let version = match b.version.trim() {
        "" => "unknown",
        v => v,
    };
    let _ = writeln!(
        o,
        "<Benchmark xmlns=\"{NS_XCCDF}\" id=\"{}\" resolved=\"true\" xml:lang=\"en\">\n  \
         <status>accepted</status>\n  <title>{}</title>\n  \
         <description>Rules evaluated natively by the Rampart agent.</description>\n  \
         <version>{}</version>\n  \
         <metadata><dc:publisher xmlns:dc=\"http://purl.org/dc/elements/1.1/\">Rampart</dc:publisher></metadata>",
        xccdf_id("benchmark", benchmark_key(doc)),
        x(title),
        x(version)
    );
    let rules = unique_rules(doc);
    for p in profiles(doc) {
        let _ = writeln!(
            o,
            "  <Profile id=\"{}\">\n    <title>{}</title>",
            xccdf_id("profile", p.name()),
            x(p.name())
        );
        for r in rules.iter().filter(|r| r.profiles.contains(&p)) {
            let _ = writeln!(
                o,
                "    <select idref=\"{}\" selected=\"true\"/>",
                xccdf_id("rule", &r.id)
            );
        }
        o.push_str("  </Profile>\n");
    }
    for r in rules {
        let title = match r.title.trim() {
            "" => r.id.clone(),
            t => format!("{} {t}", r.id),
        };
        let _ = writeln!(
            o,
            "  <Rule id=\"{}\" selected=\"false\" severity=\"{}\">\n    <title>{}</title>",
            xccdf_id("rule", &r.id),
            xccdf_severity(r.severity),
            x(&title)
        );
        if !r.description.trim().is_empty() {
            let _ = writeln!(
                o,
                "    <description>{}</description>",
                x(r.description.trim())
            );
        }
        if !r.section.trim().is_empty() {
            let _ = writeln!(
                o,
                "    <reference>{}</reference>",
                x(&format!("CIS section: {}", r.section.trim()))
            );
        }
        if !r.remediation.trim().is_empty() {
            let _ = writeln!(o, "    <fixtext>{}</fixtext>", x(r.remediation.trim()));
        }
        o.push_str("  </Rule>\n");
    }
    o.push_str("</Benchmark>\n");
}

fn test_result(o: &mut String, doc: &Doc) {
    let key = benchmark_key(doc);
    let end = doc.finished_ms.unwrap_or(doc.generated_ms);
    let start = doc.started_ms.unwrap_or(end).min(end);
    let run = match doc.scan_id.trim() {
        "" => "check",
        id => id,
    };
    let host = doc.host_label();
    let _ = writeln!(
        o,
        "<TestResult xmlns=\"{NS_XCCDF}\" id=\"{}\" start-time=\"{}\" end-time=\"{}\" \
         version=\"{}\" test-system=\"cpe:/a:rampart:rampart:{}\">\n  \
         <benchmark href=\"#{}\" id=\"{}\"/>\n  <title>{}</title>\n  <profile idref=\"{}\"/>\n  \
         <target>{}</target>",
        xccdf_id("testresult", run),
        rfc3339_ms(start),
        rfc3339_ms(end),
        x(doc.benchmark.version.trim()),
        env!("CARGO_PKG_VERSION"),
        scap_id("comp", &format!("{key}-xccdf")),
        xccdf_id("benchmark", key),
        x(&format!("Rampart CIS scan of {host}")),
        xccdf_id("profile", doc.profile.name()),
        x(&host)
    );
    let h = &doc.host;
    for a in h.ip_addresses.iter().filter_map(|a| ip(a)) {
        let _ = writeln!(o, "  <target-address>{a}</target-address>");
    }
    o.push_str("  <target-facts>\n");
    let mut fact = |n: &str, v: &str| {
        if !v.trim().is_empty() {
            let _ = writeln!(
                o,
                "    <fact name=\"{n}\" type=\"string\">{}</fact>",
                x(v.trim())
            );
        }
    };
    fact("urn:xccdf:fact:asset:identifier:host_name", &h.name);
    for a in h.ip_addresses.iter().filter_map(|a| ip(a)) {
        let kind = if a.is_ipv4() { "ipv4" } else { "ipv6" };
        fact(
            &format!("urn:xccdf:fact:asset:identifier:{kind}"),
            &a.to_string(),
        );
    }
    fact("urn:rampart:fact:provider", &h.provider);
    fact("urn:rampart:fact:instance-id", &h.instance_id);
    fact("urn:rampart:fact:os", &h.os);
    fact("urn:rampart:fact:agent-id", &h.agent_id);
    fact("urn:rampart:fact:scan-id", &doc.scan_id);
    fact("urn:rampart:fact:scan-status", &doc.status);
    o.push_str("  </target-facts>\n");
    let _ = writeln!(
        o,
        "  <target-id-ref system=\"{NS_AI}\" href=\"\" name=\"asset0\"/>"
    );
    let time = rfc3339_ms(end);
    for r in unique_rules(doc) {
        let result = r.status.map(Status::xccdf).unwrap_or("notselected");
        let _ = writeln!(
            o,
            "  <rule-result idref=\"{}\" role=\"full\" time=\"{time}\" severity=\"{}\" weight=\"1.0\">\n    \
             <result>{result}</result>",
            xccdf_id("rule", &r.id),
            xccdf_severity(r.severity),
        );
        match r.status {
            Some(Status::Exempted) if r.evidence.is_empty() => {
                o.push_str("    <message severity=\"info\">exempted by the operator</message>\n");
            }
            Some(_) => {
                let sev = match r.status {
                    Some(Status::Error) => "error",
                    Some(Status::Fail) => "warning",
                    _ => "info",
                };
                for line in &r.evidence {
                    let _ = writeln!(o, "    <message severity=\"{sev}\">{}</message>", x(line));
                }
            }
            None => {}
        }
        o.push_str("  </rule-result>\n");
    }
    let score = doc.score.unwrap_or(0.0);
    let score = if score.is_finite() {
        score.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let _ = writeln!(
        o,
        "  <score system=\"urn:xccdf:scoring:default\" maximum=\"100.000000\">{score:.6}</score>\n\
         </TestResult>"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdoc::doc;

    #[test]
    fn ids_follow_the_xccdf_pattern_and_never_collide() {
        assert_eq!(
            xccdf_id("rule", "1.1.1.1"),
            "xccdf_org.rampart_rule_1.1.1.1"
        );
        assert_eq!(
            xccdf_id("benchmark", "debian-12"),
            "xccdf_org.rampart_benchmark_debian-12"
        );
        assert_eq!(
            xccdf_id("profile", "level1-server"),
            "xccdf_org.rampart_profile_level1-server"
        );
        assert_eq!(name("a b"), "a_20b");
        assert_eq!(name("a_20b"), "a_5F20b");
        assert_eq!(name(""), "_");
        assert_eq!(name("é:<"), "_C3_A9_3A_3C");
    }

    #[test]
    fn every_rule_has_one_result_with_its_mapped_status() {
        let a = arf(&doc(Some(50.0)));
        let result_of = |id: &str| -> String {
            let start = format!("<rule-result idref=\"xccdf_org.rampart_rule_{id}\"");
            assert_eq!(a.matches(&start).count(), 1, "rule {id}");
            let at = a.find(&start).unwrap();
            let rest = &a[at..];
            let r = rest.find("<result>").unwrap() + "<result>".len();
            rest[r..r + rest[r..].find('<').unwrap()].to_string()
        };
        for (id, want) in [
            ("1.1.1", "pass"),
            ("1.1.2", "pass"),
            ("1.1.10", "fail"),
            ("5.4.1", "fail"),
            ("9.9", "notselected"),
        ] {
            assert_eq!(result_of(id), want, "rule {id}");
        }
        assert_eq!(a.matches("<Rule id=").count(), 5);
        // Only profile rules are selected.
        assert_eq!(a.matches("<select idref=").count(), 4);
        assert!(a.contains(">50.000000</score>"));
    }

    #[test]
    fn untrusted_text_cannot_break_the_document() {
        let mut d = doc(Some(50.0));
        d.rules[0].evidence = vec!["x]]><!-- \u{0}\u{1b} </message>".into()];
        d.rules[0].id = "1.1.1\"/><evil".into();
        d.host.name = "bad host<>".into();
        d.host.ip_addresses = vec!["not an ip".into(), "10.0.0.5/24".into(), "::1".into()];
        let a = arf(&d);
        assert!(a.contains("x]]&gt;&lt;!-- \u{FFFD}\u{FFFD} &lt;/message&gt;"));
        assert!(!a.contains('\0') && !a.contains("]]>") && !a.contains("<evil"));
        assert!(a.contains("xccdf_org.rampart_rule_1.1.1_22_2F_3E_3Cevil"));
        // Not a host name: left out of the asset, still the target.
        assert!(!a.contains("<ai:hostname>"));
        assert!(a.contains("<target>bad host&lt;&gt;</target>"));
        assert!(a.contains("<ai:ip-v4>10.0.0.5</ai:ip-v4>"));
        assert!(a.contains("<ai:ip-v6>0:0:0:0:0:0:0:1</ai:ip-v6>"));
        assert!(!a.contains("not an ip"));
    }

    #[test]
    fn duplicate_rules_are_reported_once() {
        let mut d = doc(Some(50.0));
        let first = d.rules[0].clone();
        d.rules.push(first);
        let a = arf(&d);
        assert_eq!(
            a.matches("<Rule id=\"xccdf_org.rampart_rule_1.1.1\"")
                .count(),
            1
        );
        assert_eq!(
            a.matches("<rule-result idref=\"xccdf_org.rampart_rule_1.1.1\"")
                .count(),
            1
        );
    }

    #[test]
    fn critical_is_xccdf_high() {
        let a = arf(&doc(Some(50.0)));
        assert!(a.contains(
            "<Rule id=\"xccdf_org.rampart_rule_5.4.1\" selected=\"false\" severity=\"high\">"
        ));
    }
}
