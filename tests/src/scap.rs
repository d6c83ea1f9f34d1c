//! Checks an ARF document with standard SCAP tooling: the published schemas (Debian's
//! openscap-common) through `xmllint`, and OpenSCAP's `oscap` (openscap-scanner).
//! `scripts/test.sh` installs both.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's openscap-common puts the published schemas.
pub const SCHEMAS: &str = "/usr/share/openscap/schemas";

/// Runs `cmd args`; `Err` holds what it said when it fails.
fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {cmd} ({e}): install openscap-scanner, openscap-common and libxml2-utils (scripts/test.sh does)")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{cmd} {args:?} exited {:?}: {text}",
            out.status.code()
        ))
    }
}

/// Validates `file` against a schema under [`SCHEMAS`].
pub fn xmllint(file: &Path, schema: &str) -> Result<(), String> {
    let xsd = Path::new(SCHEMAS).join(schema);
    assert!(
        xsd.is_file(),
        "schema {} missing: install openscap-common",
        xsd.display()
    );
    let f = file.to_str().unwrap();
    run(
        "xmllint",
        &["--noout", "--nonet", "--schema", xsd.to_str().unwrap(), f],
    )
    .map(|_| ())
}

/// Writes the element of `xml` from `<open` to `</close>` (the first of each) as a
/// document of its own; its namespaces are declared on the element itself.
fn extract(xml: &str, tag: &str, dir: &Path, file: &str) -> Result<PathBuf, String> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let a = xml.find(&open).ok_or(format!("no {open} in the ARF"))?;
    let b = xml[a..]
        .find(&close)
        .ok_or(format!("no {close} in the ARF"))?
        + a
        + close.len();
    let p = dir.join(file);
    std::fs::write(
        &p,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
            &xml[a..b]
        ),
    )
    .unwrap();
    Ok(p)
}

/// Every check of an ARF file: the whole against ARF 1.1; its source data stream
/// against SDS 1.3; its benchmark and TestResult against XCCDF 1.2; then
/// `oscap ds rds-validate`, `oscap info` and `oscap xccdf generate report`. Returns
/// the HTML report oscap generated; `Err` names the first check that failed.
pub fn check_arf(arf: &Path, dir: &Path) -> Result<String, String> {
    let step = |what: &str, r: Result<(), String>| r.map_err(|e| format!("{what}: {e}"));
    let xml = std::fs::read_to_string(arf).map_err(|e| e.to_string())?;
    step(
        "ARF 1.1",
        xmllint(arf, "arf/1.1/asset-reporting-format_1.1.0.xsd"),
    )?;
    let sds = extract(&xml, "ds:data-stream-collection", dir, "part-sds.xml")?;
    step(
        "source data stream 1.3",
        xmllint(&sds, "sds/1.3/scap-source-data-stream_1.3.xsd"),
    )?;
    let bench = extract(&xml, "Benchmark", dir, "part-benchmark.xml")?;
    step(
        "XCCDF 1.2 Benchmark",
        xmllint(&bench, "xccdf/1.2/xccdf_1.2.xsd"),
    )?;
    let tr = extract(&xml, "TestResult", dir, "part-testresult.xml")?;
    step(
        "XCCDF 1.2 TestResult",
        xmllint(&tr, "xccdf/1.2/xccdf_1.2.xsd"),
    )?;
    let f = arf.to_str().unwrap();
    step(
        "oscap ds rds-validate",
        run("oscap", &["ds", "rds-validate", f]).map(|_| ()),
    )?;
    let info = run("oscap", &["info", f]).map_err(|e| format!("oscap info: {e}"))?;
    if !info.contains("Result Data Stream") {
        return Err(format!(
            "oscap info does not see a result data stream: {info}"
        ));
    }
    let out = dir.join("oscap-report.html");
    run(
        "oscap",
        &[
            "xccdf",
            "generate",
            "report",
            "--output",
            out.to_str().unwrap(),
            f,
        ],
    )
    .map_err(|e| format!("oscap xccdf generate report: {e}"))?;
    std::fs::read_to_string(&out).map_err(|e| e.to_string())
}

/// The XCCDF result of rule `id` in an ARF document, if it has exactly one.
pub fn rule_result(xml: &str, id: &str) -> Option<String> {
    let tag = format!("<rule-result idref=\"xccdf_org.rampart_rule_{id}\"");
    if xml.matches(&tag).count() != 1 {
        return None;
    }
    let rest = &xml[xml.find(&tag)?..];
    let rest = &rest[..rest.find("</rule-result>")?];
    let a = rest.find("<result>")? + "<result>".len();
    Some(rest[a..a + rest[a..].find('<')?].to_string())
}

/// Our status as XCCDF names it.
pub fn xccdf_status(status: &str) -> &'static str {
    match status {
        "pass" => "pass",
        "fail" => "fail",
        "error" => "error",
        "not_applicable" => "notapplicable",
        "not_checked" => "notchecked",
        "exempted" => "notselected",
        _ => "unknown",
    }
}
