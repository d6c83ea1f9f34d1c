//! The rpm half: sqlite rpm databases written by the host's rpm 4.18 (Debian's, the
//! sqlite backend RHEL 9 and Amazon Linux 2023 use), from a pool of empty packages
//! rpmbuild makes once every few configurations: generated names, epochs (or none),
//! versions and releases with `~`, `^`, `_`, `+`, letters, leading zeros and dots, the
//! same name at several versions and architectures (x86_64, i686, noarch: multilib,
//! installonly). Each configuration installs a subset with `rpm -i --justdb`, into an
//! empty database or a copy of a cached RPM root's (`RAMPART_RHEL9_ROOT`,
//! `RAMPART_AL2023_ROOT`, when set),
//! and sometimes erases a package again. The oracle is `rpm -qa` and rpm's own
//! `rpm.vercmp` (its Lua, through `rpm --eval`): a name is installed when rpm lists
//! it; `pkg.min_version` passes when the newest instance is at least the version,
//! that is when any instance is.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::{agent_facts, Rng, Settings, Tally};
use super::{agent_args, compare, digits, version_part, Expected, Pair, State};

const NAMES: &[&str] = &[
    "telnet",
    "ypbind",
    "rsh",
    "talk",
    "openldap-clients",
    "pam",
    "authselect",
    "kernel",
    "libpwquality",
    "rampart-x",
];

/// Architectures of the pool's packages (x86_64 twice as often).
const ARCHES: &[&str] = &["x86_64", "x86_64", "i686", "noarch"];

/// Configurations between two builds of the pool.
const POOL_EVERY: usize = 8;

/// A version or release: digits, letters and rpm's separators and marks.
fn part(rng: &mut Rng) -> String {
    version_part(rng, &[".9", ".9", "~a", "^a9", "_9", "+a", "a", "9", ".a"])
}

/// A package of the pool.
#[derive(Debug, Clone)]
struct Pkg {
    name: String,
    epoch: Option<u32>,
    version: String,
    release: String,
    arch: &'static str,
}

impl Pkg {
    fn evr(&self) -> String {
        match self.epoch {
            Some(e) => format!("{e}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }
}

/// An rpm version string near `evr` (`[E:]V-R`): equal, a little older or newer,
/// without the release or the epoch, or another.
fn near(rng: &mut Rng, evr: &str) -> String {
    let (ev, rel) = evr.rsplit_once('-').unwrap_or((evr, ""));
    match rng.below(12) {
        0 => evr.to_string(),
        1 => ev.to_string(),
        2 => format!("{ev}~rc1-{rel}"),
        3 => format!("{ev}^post1-{rel}"),
        4 => format!("{ev}.1-{rel}"),
        5 => format!("{evr}.1"),
        6 => format!("{evr}~1"),
        7 if !evr.contains(':') => format!("1:{evr}"),
        7 => evr.split_once(':').map_or(evr, |(_, r)| r).to_string(),
        8 => format!("0:{}", evr.split_once(':').map_or(evr, |(_, r)| r)),
        9 => format!("{ev}-{}", part(rng)),
        10 => format!("{ev}a-{rel}"),
        _ => format!("{}-{}", part(rng), part(rng)),
    }
}

/// Builds the pool's packages: one rpmbuild per (layer, target), a layer holding a
/// name at most once. Returns each package with its .rpm file.
fn build_pool(rng: &mut Rng, work: &Path) -> Vec<(Pkg, PathBuf)> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).expect("make the pool directory");
    let mut layers: Vec<Vec<Pkg>> = Vec::new();
    for name in NAMES {
        for k in 0..1 + rng.below(3) {
            let p = Pkg {
                name: name.to_string(),
                epoch: if rng.chance(30) {
                    Some(*rng.pick(&[0, 1, 2, 10]))
                } else {
                    None
                },
                version: part(rng),
                release: if rng.chance(70) {
                    format!("{}.el9", digits(rng))
                } else {
                    part(rng)
                },
                arch: ARCHES[rng.below(ARCHES.len())],
            };
            if layers.len() <= k {
                layers.push(Vec::new());
            }
            layers[k].push(p);
        }
    }
    let mut out = Vec::new();
    for (k, layer) in layers.iter().enumerate() {
        for target in ["x86_64", "i686"] {
            let mine: Vec<&Pkg> = layer
                .iter()
                .filter(|p| p.arch == target || (p.arch == "noarch" && target == "x86_64"))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut spec = format!(
                "Name: rampart-pool-{k}\nVersion: 1\nRelease: 1\nSummary: pool\nLicense: MIT\n%description\npool\n"
            );
            for p in &mine {
                spec += &format!(
                    "\n%package -n {}\nSummary: s\nVersion: {}\nRelease: {}\n",
                    p.name, p.version, p.release
                );
                if let Some(e) = p.epoch {
                    spec += &format!("Epoch: {e}\n");
                }
                if p.arch == "noarch" {
                    spec += "BuildArch: noarch\n";
                }
                spec += &format!("%description -n {}\nd\n%files -n {}\n", p.name, p.name);
            }
            let file = work.join(format!("pool-{k}-{target}.spec"));
            fs::write(&file, spec).expect("write a spec");
            let built = Command::new("rpmbuild")
                .arg("--quiet")
                .arg("--define")
                .arg(format!("_topdir {}", work.join("top").display()))
                .args([
                    "--define",
                    "_buildhost rampart-differential",
                    "--target",
                    target,
                    "-bb",
                ])
                .arg(&file)
                .output()
                .expect("the rpm half needs rpmbuild (apt-get install rpm)");
            assert!(
                built.status.success(),
                "rpmbuild failed: {}",
                String::from_utf8_lossy(&built.stderr)
            );
            for p in mine {
                let arch = if p.arch == "noarch" { "noarch" } else { target };
                let rpm = work
                    .join("top/RPMS")
                    .join(arch)
                    .join(format!("{}-{}-{}.{arch}.rpm", p.name, p.version, p.release));
                assert!(rpm.exists(), "rpmbuild made no {}", rpm.display());
                out.push(((*p).clone(), rpm));
            }
        }
    }
    out
}

/// Runs rpm on the database under `root`.
fn rpm(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite"])
        .args(args)
        .output()
        .expect("the rpm half needs rpm (apt-get install rpm)")
}

/// rpm.vercmp(a, b) >= 0 for each pair, from one `rpm --eval`.
fn at_least(questions: &[(String, String)]) -> Result<Vec<bool>, String> {
    if questions.is_empty() {
        return Ok(Vec::new());
    }
    let mut lua = String::from("%{lua:");
    for (a, b) in questions {
        lua += &format!("print(rpm.vercmp(\"{a}\", \"{b}\") .. \" \") ");
    }
    lua.push('}');
    let out = Command::new("rpm")
        .args(["--eval", &lua])
        .output()
        .map_err(|e| format!("run rpm --eval: {e}"))?;
    let answers: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse::<i32>().ok())
        .map(|n| n >= 0)
        .collect();
    if answers.len() != questions.len() {
        return Err(format!("rpm.vercmp answered {answers:?}: {out:?}"));
    }
    Ok(answers)
}

/// Runs the rpm half.
pub fn run(settings: Settings) -> Tally {
    let work = tempfile::Builder::new()
        .prefix("rampart-diff-rpm-")
        .tempdir()
        .expect("make a temporary directory");
    // The cached RPM roots' databases, where they are set.
    let bases: Vec<(&str, PathBuf)> = [
        ("RHEL 9", "RAMPART_RHEL9_ROOT"),
        ("Amazon Linux 2023", "RAMPART_AL2023_ROOT"),
    ]
    .into_iter()
    .filter_map(|(what, var)| {
        let db = PathBuf::from(std::env::var_os(var)?).join("var/lib/rpm/rpmdb.sqlite");
        db.exists().then_some((what, db))
    })
    .collect();
    let mut rng = Rng::new(settings.seed ^ 0x52_504d);
    let mut tally = Tally::new("packages (rpm)", settings);
    let mut false_passes = 0;
    let mut pool = Vec::new();
    let mut n = 0;
    while tally.more() {
        if n % POOL_EVERY == 0 {
            pool = build_pool(&mut rng, &work.path().join("pool"));
        }
        n += 1;
        let root = work.path().join(format!("root-{n}"));
        fs::create_dir_all(root.join("var/lib/rpm")).expect("make the database directory");
        let mut desc = String::new();
        match bases.is_empty() || rng.chance(60) {
            false => {
                let (what, db) = rng.pick(&bases);
                fs::copy(db, root.join("var/lib/rpm/rpmdb.sqlite")).expect("copy a root's rpmdb");
                desc += &format!("the {what} root's database, and\n");
            }
            true => {
                let out = rpm(&root, &["--initdb"]);
                assert!(out.status.success(), "rpm --initdb: {out:?}");
            }
        }
        let chosen: Vec<&(Pkg, PathBuf)> = pool.iter().filter(|_| rng.chance(50)).collect();
        let mut args: Vec<&str> = vec![
            "-i",
            "--justdb",
            "--nodeps",
            "--noscripts",
            "--notriggers",
            "--ignorearch",
            "--nosignature",
            "--nodigest",
            "--oldpackage",
        ];
        for (p, f) in &chosen {
            desc += &format!("installed {} {} {}\n", p.name, p.evr(), p.arch);
            args.push(f.to_str().expect("a UTF-8 path"));
        }
        tally.compared += 1;
        if !chosen.is_empty() {
            let out = rpm(&root, &args);
            if !out.status.success() {
                tally.differ(&desc, &format!("  rpm -i failed: {out:?}\n"));
                continue;
            }
        }
        if !chosen.is_empty() && rng.chance(30) {
            let (p, _) = *rng.pick(&chosen);
            let target = if rng.chance(50) {
                p.name.clone()
            } else {
                format!("{}-{}-{}.{}", p.name, p.version, p.release, p.arch)
            };
            let out = rpm(
                &root,
                &[
                    "-e",
                    "--justdb",
                    "--nodeps",
                    "--noscripts",
                    "--notriggers",
                    "--allmatches",
                    &target,
                ],
            );
            desc += &format!("erased {target} (rpm exit {:?})\n", out.status.code());
        }
        let out = rpm(
            &root,
            &[
                "-qa",
                "--qf",
                "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n",
            ],
        );
        if !out.status.success() {
            tally.differ(&desc, &format!("  rpm -qa failed: {out:?}\n"));
            continue;
        }
        // rpm leaves -shm, -wal and a lock beside the database: the agent reads what
        // it finds, as on a live system.
        let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((name, evr)) = l.split_once('\t') {
                listed.entry(name.into()).or_default().push(evr.into());
            }
        }
        let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        names.push("not-a-package".into());
        let mut want: Vec<(String, String)> = Vec::new();
        for name in &names {
            let base = match listed.get(name) {
                Some(v) => rng.pick(v).clone(),
                None => pool
                    .iter()
                    .find(|(p, _)| &p.name == name)
                    .map_or_else(|| "1.0-1".to_string(), |(p, _)| p.evr()),
            };
            for _ in 0..1 + rng.below(2) {
                want.push((name.clone(), near(&mut rng, &base)));
            }
        }
        let questions: Vec<(String, String)> = want
            .iter()
            .flat_map(|(name, w)| {
                listed
                    .get(name)
                    .into_iter()
                    .flatten()
                    .map(move |v| (v.clone(), w.clone()))
            })
            .collect();
        let answers = match at_least(&questions) {
            Ok(a) => a,
            Err(e) => {
                tally.differ(&desc, &format!("  {e}\n"));
                continue;
            }
        };
        let verdict: BTreeMap<(String, String), bool> =
            questions.into_iter().zip(answers).collect();
        let pairs: Vec<Pair> = want
            .iter()
            .map(|(name, w)| Pair {
                package: name.clone(),
                version: w.clone(),
                pass: listed
                    .get(name)
                    .into_iter()
                    .flatten()
                    .any(|v| verdict[&(v.clone(), w.clone())]),
            })
            .collect();
        let expected: BTreeMap<String, Expected> = names
            .iter()
            .map(|name| {
                let versions = listed.get(name).cloned().unwrap_or_default();
                let state = if versions.is_empty() {
                    State::Absent
                } else {
                    State::Installed
                };
                (name.clone(), Expected { state, versions })
            })
            .collect();
        let a = match agent_facts("packages", &root, &agent_args(&names, &pairs)) {
            Ok(v) => v,
            Err(e) => {
                tally.differ(&desc, &e);
                continue;
            }
        };
        compare(
            &mut tally,
            &mut false_passes,
            &desc,
            &a,
            &expected,
            &pairs,
            &|v| v.to_string(),
        );
        let _ = fs::remove_dir_all(&root);
    }
    println!("differential packages (rpm): {false_passes} false pass(es) among the differences");
    tally
}
