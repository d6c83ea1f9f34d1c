//! The compiled-in content agrees with the CIS catalogue in `../shared/cis/catalogue.csv`:
//! every recommendation present, nothing extra, levels, profiles and automation as listed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rampart_agent::content;

/// Splits one CSV line, honouring double quotes.
fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn catalogue() -> Vec<BTreeMap<String, String>> {
    // CI lays shared/ beside the clone; RAMPART_SHARED names it elsewhere.
    let shared = std::env::var_os("RAMPART_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let path = shared.join("cis/catalogue.csv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let head = fields(lines.next().unwrap());
    lines
        .filter(|l| !l.is_empty())
        .map(|l| head.iter().cloned().zip(fields(l)).collect())
        .collect()
}

fn level_of(s: &str) -> Option<u8> {
    s.strip_prefix('L').and_then(|v| v.parse().ok())
}

#[test]
fn content_matches_the_catalogue() {
    for (bench, distro, total, manual) in [
        ("debian-12", "debian-12", 310, 21),
        ("ubuntu-22.04", "ubuntu-22.04", 300, 19),
        ("ubuntu-24.04", "ubuntu-24.04", 312, 21),
        ("rhel-9", "rhel-9", 298, 20),
        ("al2023", "amazon-linux-2023", 243, 21),
    ] {
        let b = content::benchmark(bench)
            .unwrap()
            .expect("benchmark compiled in");
        let rows: Vec<_> = catalogue()
            .into_iter()
            .filter(|r| r["distro"] == distro)
            .collect();
        assert_eq!(rows.len(), total, "catalogue rows for {distro}");
        let mut problems = Vec::new();
        for row in &rows {
            let id = &row["cis_id"];
            let Some(rule) = b.rules.iter().find(|r| &r.id == id) else {
                problems.push(format!("{id}: missing"));
                continue;
            };
            let mut server = None;
            let mut workstation = None;
            for part in row["profiles"].split(';') {
                match part.split_once('=') {
                    Some(("server", l)) => server = level_of(l),
                    Some(("workstation", l)) => workstation = level_of(l),
                    _ => {}
                }
            }
            if (rule.server, rule.workstation) != (server, workstation) {
                problems.push(format!(
                    "{id}: profiles {:?}/{:?}, catalogue {}",
                    rule.server, rule.workstation, row["profiles"]
                ));
            }
            if rule.automated_in_benchmark() != (row["automated"] == "yes") {
                problems.push(format!(
                    "{id}: automated {} but catalogue says {}",
                    rule.automated_in_benchmark(),
                    row["automated"]
                ));
            }
            if rule.severity.as_str() != row["proposed_severity"] && rule.severity_reason.is_none()
            {
                problems.push(format!(
                    "{id}: severity {} differs from {} without a reason",
                    rule.severity.as_str(),
                    row["proposed_severity"]
                ));
            }
        }
        for r in &b.rules {
            if r.pending.is_some() {
                problems.push(format!("{}: pending (not evaluated yet)", r.id));
            }
            if !rows.iter().any(|row| row["cis_id"] == r.id) {
                problems.push(format!("{}: not in the catalogue", r.id));
            }
        }
        assert!(
            problems.is_empty(),
            "{bench}: {} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
        assert_eq!(
            b.rules
                .iter()
                .filter(|r| !r.automated_in_benchmark())
                .count(),
            manual,
            "manual rules of {bench}"
        );
    }
}
