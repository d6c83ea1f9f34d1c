//! Table-driven rule tests: every fixture case in `tests/fixtures/*.toml` names a rule
//! by its slug, builds a small root tree, evaluates the rule on it for every benchmark
//! that uses it (with that benchmark's os-release) and compares the status (and, when
//! given, a piece of the evidence). A second test demands that every automated
//! recommendation of every benchmark has at least one passing and one failing case.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use rampart_agent::content;
use rampart_agent::engine::evaluate;
use rampart_agent::facts::Facts;
use rampart_agent::model::Status;
use serde::Deserialize;

mod fixture_rpmdb;

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Tree {
    #[serde(default)]
    live: Option<bool>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    symlinks: BTreeMap<String, String>,
    #[serde(default)]
    meta: BTreeMap<String, Meta>,
    /// Paths made FIFOs: a stand-in for `/dev/null` and other devices, which are not
    /// regular files either (making a device needs more than these tests have).
    #[serde(default)]
    fifos: Vec<String>,
    /// Paths of the base tree this case leaves out (or, for `rpm`, package names).
    #[serde(default)]
    remove: Vec<String>,
    /// Installed rpm packages, name → `[epoch:]version-release`: written as
    /// `/var/lib/rpm/rpmdb.sqlite` (see `fixture_rpmdb`).
    #[serde(default)]
    rpm: BTreeMap<String, String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Meta {
    mode: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// The slug of the rule the case judges.
    rule: Option<String>,
    /// Or a manual recommendation's CIS ID (with `benchmarks`).
    control: Option<String>,
    /// Only these benchmarks. Without it the case runs for every benchmark that uses
    /// the rule with the rule's own check (not a variant's).
    benchmarks: Option<Vec<String>>,
    expect: String,
    /// A substring that must appear in one evidence line.
    evidence: Option<String>,
    /// What the case shows, for failure messages.
    #[serde(default)]
    note: String,
    #[serde(flatten)]
    tree: Tree,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    #[serde(default)]
    base: Tree,
    #[serde(default)]
    case: Vec<Case>,
}

/// Files every fixture root starts with, so that checks which name users and groups
/// have databases to read. A case or a file's `base` may override or remove them.
fn default_tree(benchmark: &str) -> Tree {
    let b = content::benchmark(benchmark)
        .unwrap()
        .unwrap_or_else(|| panic!("unknown benchmark {benchmark}"));
    let mut t = Tree::default();
    t.files.insert(
        "/etc/passwd".into(),
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n".into(),
    );
    t.files.insert(
        "/etc/group".into(),
        "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nadm:x:4:\n".into(),
    );
    t.files.insert(
        "/etc/shadow".into(),
        "root:$y$j9T$abc$def:19500:0:99999:7:::\ndaemon:*:19500:0:99999:7:::\n".into(),
    );
    let version = b.os_versions.first().cloned().unwrap_or_default();
    let pretty = match b.os_id.as_str() {
        "debian" => format!("Debian GNU/Linux {version} (bookworm)"),
        "ubuntu" => format!("Ubuntu {version} LTS"),
        other => format!("{other} {version}"),
    };
    t.files.insert(
        "/etc/os-release".into(),
        format!(
            "ID={}\nVERSION_ID=\"{version}\"\nPRETTY_NAME=\"{pretty}\"\n",
            b.os_id
        ),
    );
    t
}

fn merge(mut a: Tree, b: &Tree) -> Tree {
    for r in &b.remove {
        a.files.remove(r);
        a.symlinks.remove(r);
        a.meta.remove(r);
        a.dirs.retain(|d| d != r);
        a.rpm.remove(r);
    }
    a.live = b.live.or(a.live);
    a.files.extend(b.files.clone());
    a.dirs.extend(b.dirs.clone());
    a.symlinks.extend(b.symlinks.clone());
    a.meta.extend(b.meta.clone());
    a.fifos.extend(b.fifos.clone());
    a.rpm.extend(b.rpm.clone());
    a
}

/// The host path of `p` inside `root`, with every symlink on the way resolved inside
/// the root: nothing the harness writes may land outside its temporary root, even
/// when a fixture's symlinks point at absolute paths.
fn inside(root: &Path, p: &str) -> PathBuf {
    Facts::new(root, false)
        .resolve(p, true)
        .unwrap_or_else(|e| panic!("fixture path {p}: {e}"))
}

/// Like [`inside`] for the parent, keeping the last component itself unresolved.
fn inside_parent(root: &Path, p: &str) -> PathBuf {
    let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
    let parent = inside(root, if dir.is_empty() { "/" } else { dir });
    fs::create_dir_all(&parent).unwrap();
    parent.join(name)
}

fn build(root: &Path, t: &Tree) {
    if !t.rpm.is_empty() {
        fs::write(
            inside_parent(root, rampart_agent::facts::rpmdb::RPMDB),
            fixture_rpmdb::rpmdb_sqlite(&t.rpm),
        )
        .unwrap();
    }
    for d in &t.dirs {
        fs::create_dir_all(inside(root, d)).unwrap();
    }
    for (p, text) in &t.files {
        fs::write(inside(root, p), text)
            .unwrap_or_else(|_| fs::write(inside_parent(root, p), text).unwrap());
    }
    for (p, target) in &t.symlinks {
        symlink(target, inside_parent(root, p)).unwrap();
    }
    for p in &t.fifos {
        let status = std::process::Command::new("mkfifo")
            .arg(inside_parent(root, p))
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo {p} failed");
    }
    for (p, m) in &t.meta {
        let h = inside(root, p);
        if fs::symlink_metadata(&h).is_err() {
            fs::create_dir_all(h.parent().unwrap()).unwrap();
            fs::write(&h, "").unwrap();
        }
        assert!(
            h.starts_with(root),
            "fixture path {p} resolves outside the root"
        );
        if m.uid.is_some() || m.gid.is_some() {
            chown(&h, m.uid, m.gid)
                .unwrap_or_else(|e| panic!("chown {p}: {e} (these tests run as root)"));
        }
        if let Some(mode) = &m.mode {
            let mode =
                u32::from_str_radix(mode, 8).unwrap_or_else(|_| panic!("bad mode {mode} for {p}"));
            fs::set_permissions(&h, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

struct Loaded {
    file: String,
    base: Tree,
    cases: Vec<Case>,
}

fn fixtures() -> Vec<Loaded> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|f| f.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = fs::read_to_string(&f).unwrap();
            let parsed: FixtureFile =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            Loaded {
                file: f.display().to_string(),
                base: parsed.base,
                cases: parsed.case,
            }
        })
        .collect()
}

/// One case to run: the benchmark and recommendation it judges, where it came from.
struct Run<'a> {
    benchmark: String,
    rule: String,
    file: String,
    base: &'a Tree,
    case: &'a Case,
}

/// Every case, once for every benchmark recommendation it serves. A case that serves
/// none is a mistake (a slug that no benchmark uses, a misspelt benchmark).
fn runs(files: &[Loaded]) -> Vec<Run<'_>> {
    let mut out = Vec::new();
    for f in files {
        for c in &f.cases {
            let before = out.len();
            for b in content::benchmarks().unwrap() {
                let listed = c.benchmarks.as_ref().map(|l| l.contains(&b.id));
                if listed == Some(false) {
                    continue;
                }
                for r in &b.rules {
                    let by_slug = c.rule.is_some() && c.rule == r.slug;
                    let by_id = c.control.as_ref() == Some(&r.id);
                    if !(by_slug || by_id) || (listed.is_none() && r.check_variant.is_some()) {
                        continue;
                    }
                    out.push(Run {
                        benchmark: b.id.clone(),
                        rule: r.id.clone(),
                        file: format!("{} ({} {})", f.file, b.id, r.id),
                        base: &f.base,
                        case: c,
                    });
                }
            }
            assert!(
                out.len() > before,
                "{}: the case for {:?} ({}) serves no benchmark",
                f.file,
                c.rule.as_ref().or(c.control.as_ref()),
                c.note
            );
        }
    }
    out
}

#[test]
fn every_fixture_case_gives_its_expected_status() {
    let files = fixtures();
    let mut failures = Vec::new();
    let all = runs(&files);
    for run in &all {
        let b = content::benchmark(&run.benchmark)
            .unwrap()
            .unwrap_or_else(|| panic!("{}: unknown benchmark", run.file));
        let case = run.case;
        let rule = b
            .rules
            .iter()
            .find(|r| r.id == run.rule)
            .unwrap_or_else(|| panic!("{}: no rule {}", run.file, run.rule));
        let expect = Status::parse(&case.expect)
            .unwrap_or_else(|| panic!("{}: bad status {}", run.file, case.expect));
        let tmp = tempfile::tempdir().unwrap();
        let tree = merge(merge(default_tree(&run.benchmark), run.base), &case.tree);
        build(tmp.path(), &tree);
        let facts = Facts::new(tmp.path(), tree.live.unwrap_or(false));
        let got = evaluate(rule, &facts);
        let ev_ok = case
            .evidence
            .as_ref()
            .is_none_or(|want| got.evidence.iter().any(|e| e.contains(want.as_str())));
        if got.status != expect || !ev_ok || got.evidence.is_empty() {
            failures.push(format!(
                "{} rule {} ({}): expected {expect}{}, got {} with evidence {:?}",
                run.file,
                run.rule,
                case.note,
                case.evidence
                    .as_ref()
                    .map(|e| format!(" with evidence containing {e:?}"))
                    .unwrap_or_default(),
                got.status,
                got.evidence
            ));
        }
    }
    assert!(!all.is_empty(), "no fixture cases found");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn every_automated_rule_has_a_passing_and_a_failing_fixture() {
    let files = fixtures();
    let mut seen: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for run in runs(&files) {
        seen.entry((run.benchmark.clone(), run.rule.clone()))
            .or_default()
            .insert(run.case.expect.clone());
    }
    let mut missing = Vec::new();
    for b in content::benchmarks().unwrap() {
        for r in b.rules.iter().filter(|r| r.automated) {
            let s = seen.get(&(b.id.clone(), r.id.clone()));
            for want in ["pass", "fail"] {
                if !s.is_some_and(|s| s.contains(want)) {
                    missing.push(format!("{} {}: no {want} fixture", b.id, r.id));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} gaps:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
