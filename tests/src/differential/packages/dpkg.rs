//! The dpkg half: generated `/var/lib/dpkg/status` databases (and pending updates in
//! `/var/lib/dpkg/updates/`) in a private copy of the Debian root, read by the root's
//! own `dpkg-query -W` (chrooted), versions compared by its `dpkg --compare-versions`.
//!
//! A configuration starts from the root's real status file, changes the state or
//! version of a few of its packages, and adds generated ones: every state dpkg knows
//! (`installed`, `triggers-awaited`, `triggers-pending`, `half-configured`,
//! `unpacked`, `half-installed`, `config-files`, `not-installed`), every want
//! (`unknown`, `install`, `hold`, `deinstall`, `purge`), the `reinstreq` flag,
//! Multi-Arch: same pairs (amd64 and i386, versions and states apart), continuation
//! lines (in Description, and Status split over two lines), field names and status
//! words in any case, fields in any order, package names in capitals, stanzas
//! without Version where dpkg allows it, versions with epochs, `~`, `+`, letters and
//! leading zeros. dpkg's states, as the rules judge them (see the family's doc):
//! `installed`, `triggers-awaited`, `triggers-pending` with the `ok` flag are
//! installed; `half-installed`, `unpacked`, `half-configured`, and `installed` or
//! a triggers state with `reinstreq` are present; `config-files` and
//! `not-installed` are absent.
//!
//! Some configurations are databases dpkg-query refuses (it exits 2): a stanza
//! without the Version its state needs, triggers with no Status, two architectures
//! of a name not both Multi-Arch: same, an update that adds one beside several, and
//! the fields of [`super::dpkg_fields`] (relationships, Conffiles, Essential,
//! Protected, Priority, archive fields, trigger names, Status on its next line) that
//! dpkg cannot parse; the same fields well-formed, the obsolete `Revision` fields and
//! versions with non-ASCII characters are read. The
//! agent must refuse them too: one it reads and in which it calls a package absent
//! or recent enough is a difference (a false pass). `RAMPART_DIFF_SHOW_REFUSED=1`
//! prints dpkg-query's error for each. Pending updates may name another
//! architecture (dpkg cross-grades the name's one instance unless both are
//! Multi-Arch: same) and fields may have spaces before the colon.
//!
//! `pkg.min_version` weighs, beside the installed instances, a present instance of
//! another architecture (its files are on disk): every one must be at least the
//! version, and one without a version fails.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::{agent_facts, Rng, RootCopy, Settings, Tally};
use super::{agent_args, compare, digits, dpkg_fields, version_part, Expected, Pair, State};

const WANTS: &[&str] = &[
    "unknown",
    "install",
    "install",
    "hold",
    "deinstall",
    "purge",
];
const STATES: &[&str] = &[
    "installed",
    "installed",
    "installed",
    "triggers-awaited",
    "triggers-pending",
    "half-configured",
    "unpacked",
    "half-installed",
    "config-files",
    "not-installed",
];

/// Names of generated packages (some look like the packages the rules name).
const NAMES: &[&str] = &[
    "telnet",
    "inetutils-telnet",
    "nis",
    "rsh-client",
    "talk",
    "ldap-utils",
    "libpam-runtime-extra",
    "rampart-a",
    "rampart-b",
    "rampart-c",
    "aide",
    "apparmor-utils",
];

/// A dpkg version: `[epoch:]upstream[-revision]`, valid for dpkg.
fn version(rng: &mut Rng) -> String {
    let mut v = String::new();
    if rng.chance(25) {
        v += *rng.pick(&["0", "1", "2", "10", "00", "3"]);
        v.push(':');
    }
    v += &version_part(rng, &[".9", ".9", "~a", "+a", "a", "9"]);
    if rng.chance(60) {
        v.push('-');
        v += &digits(rng);
        if rng.chance(40) {
            v += *rng.pick(&["+deb12u1", "~bpo1", "ubuntu1", ".1", "+b2", "~"]);
        }
    }
    dpkg_fields::odd(rng, v)
}

/// A version near `v`: equal under dpkg's order, just above or just below, or another.
fn near(rng: &mut Rng, v: &str) -> String {
    let has_rev = v.contains('-');
    match rng.below(11) {
        0 => v.to_string(),
        1 => format!("{v}~rc1"),
        2 => format!("{v}+b1"),
        3 => format!("{v}.0"),
        4 if !has_rev => format!("{v}-0"),
        4 => format!("{v}~"),
        5 if !v.contains(':') => format!("0:{v}"),
        5 | 6 if !v.contains(':') => format!("1:{v}"),
        6 => v.split_once(':').map_or(v, |(_, r)| r).to_string(),
        7 => {
            // The last digit run one lower or higher, or with a leading zero.
            let bytes = v.as_bytes();
            let end = bytes
                .iter()
                .rposition(u8::is_ascii_digit)
                .map_or(0, |i| i + 1);
            let start = bytes[..end]
                .iter()
                .rposition(|b| !b.is_ascii_digit())
                .map_or(0, |i| i + 1);
            let n: u64 = v[start..end].parse().unwrap_or(0);
            let m = match rng.below(3) {
                0 => format!("{}", n + 1),
                1 => format!("{}", n.saturating_sub(1)),
                _ => format!("0{n}"),
            };
            format!("{}{m}{}", &v[..start], &v[end..])
        }
        8 => format!("{v}a"),
        _ => version(rng),
    }
}

/// One stanza: fields in order, written by `write_stanza`.
struct Stanza {
    fields: Vec<(String, String)>,
}

/// Field names as written: dpkg reads them in any case.
fn field_name(rng: &mut Rng, name: &str) -> String {
    match rng.below(12) {
        0 => name.to_lowercase(),
        1 => name.to_uppercase(),
        _ => name.to_string(),
    }
}

/// A generated stanza for `name` (`arch`), in state `want flag status`.
fn stanza(
    rng: &mut Rng,
    name: &str,
    arch: &str,
    status: [&str; 3],
    version: Option<&str>,
    multi: bool,
) -> Stanza {
    let shown = if rng.chance(8) {
        name.to_uppercase()
    } else {
        name.to_string()
    };
    let mut words: Vec<String> = status.iter().map(|w| w.to_string()).collect();
    if rng.chance(8) {
        words = words
            .iter()
            .map(|w| match rng.below(2) {
                0 => w.to_uppercase(),
                _ => format!("{}{}", w[..1].to_uppercase(), &w[1..]),
            })
            .collect();
    }
    let status_text = match rng.below(10) {
        0 => format!("{} {}\n {}", words[0], words[1], words[2]),
        1 => format!("{}  {}\t{} ", words[0], words[1], words[2]),
        _ => words.join(" "),
    };
    let mut fields = vec![("Package".to_string(), shown)];
    // A stanza without Status is a package dpkg knows nothing installed of.
    if !rng.chance(4) {
        fields.push(("Status".to_string(), status_text));
    }
    fields.extend([
        ("Priority".to_string(), "optional".to_string()),
        ("Section".to_string(), "net".to_string()),
        ("Installed-Size".to_string(), "100".to_string()),
        (
            "Maintainer".to_string(),
            "Rampart Tests <tests@example.org>".to_string(),
        ),
        ("Architecture".to_string(), arch.to_string()),
    ]);
    if multi {
        fields.push(("Multi-Arch".to_string(), "same".to_string()));
    }
    if let Some(v) = version {
        fields.push(("Version".to_string(), v.to_string()));
    }
    match status[2] {
        "triggers-awaited" => fields.push(("Triggers-Awaited".to_string(), "man-db".to_string())),
        "triggers-pending" => fields.push((
            "Triggers-Pending".to_string(),
            "/usr/share/rampart".to_string(),
        )),
        _ => {}
    }
    let mut desc = "a generated package".to_string();
    for _ in 0..rng.below(3) {
        desc += *rng.pick(&[
            "\n more text",
            "\n .",
            "\n Package: telnet",
            "\n Status: install ok installed",
            "\n\tVersion: 99",
        ]);
    }
    fields.push(("Description".to_string(), desc));
    dpkg_fields::extra(rng, &mut fields, &self::version);
    // Any order (Package first most of the time, as dpkg writes it).
    if rng.chance(30) {
        for i in (1..fields.len()).rev() {
            let j = rng.below(i + 1);
            fields.swap(i, j);
        }
    }
    Stanza { fields }
}

fn write_stanza(rng: &mut Rng, s: &Stanza) -> String {
    let mut t = String::new();
    for (k, v) in &s.fields {
        // dpkg allows spaces before the colon too.
        let sep = match rng.below(20) {
            0 | 1 => ":",
            2 => " :",
            3 => "\t: ",
            _ => ": ",
        };
        t += &format!("{}{sep}{v}\n", field_name(rng, k));
    }
    t
}

/// The seed's stanzas as (name, architecture, text).
fn seed_stanzas(text: &str) -> Vec<(String, String, String)> {
    text.split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let field = |f: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(f))
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            (
                field("Package:"),
                field("Architecture:"),
                format!("{}\n", s.trim_end()),
            )
        })
        .collect()
}

/// dpkg's state of one instance, as the rules judge it.
fn judge(want_flag_status: &str) -> State {
    let w: Vec<&str> = want_flag_status.split_whitespace().collect();
    let (flag, status) = (
        w.get(1).copied().unwrap_or(""),
        w.get(2).copied().unwrap_or(""),
    );
    match status {
        "installed" | "triggers-awaited" | "triggers-pending" if flag == "ok" => State::Installed,
        "installed" | "triggers-awaited" | "triggers-pending" | "half-configured" | "unpacked"
        | "half-installed" => State::Present,
        _ => State::Absent,
    }
}

/// The instances of `name` that `pkg.min_version` weighs, as (want flag status,
/// version): none unless one is installed; then every installed and present one.
fn counted<'a>(
    listed: &'a BTreeMap<String, Vec<(String, String)>>,
    name: &str,
) -> Vec<&'a (String, String)> {
    let inst = listed.get(name).map(Vec::as_slice).unwrap_or_default();
    if !inst.iter().any(|(s, _)| judge(s) == State::Installed) {
        return Vec::new();
    }
    inst.iter()
        .filter(|(s, _)| judge(s) != State::Absent)
        .collect()
}

/// One generated configuration: the status text, update files, names to ask about.
struct Config {
    status: String,
    updates: Vec<(String, String)>,
    names: Vec<String>,
    /// (package, version) pairs for `pkg.min_version`.
    pairs: Vec<(String, String)>,
    desc: String,
}

fn random_status(rng: &mut Rng) -> [&'static str; 3] {
    let status = *rng.pick(STATES);
    let flag = if rng.chance(12) { "reinstreq" } else { "ok" };
    [*rng.pick(WANTS), flag, status]
}

fn generate(rng: &mut Rng, seed: &[(String, String, String)]) -> Config {
    let mut desc = String::new();
    let mut names: Vec<String> = Vec::new();
    let mut pairs = Vec::new();
    let mut stanzas: Vec<String> = Vec::new();
    // The seed, a few of its packages changed.
    let mut changed: BTreeMap<usize, String> = BTreeMap::new();
    for _ in 0..rng.below(4) {
        let i = rng.below(seed.len());
        let (name, arch, _) = &seed[i];
        let st = random_status(rng);
        let v = version(rng);
        let s = stanza(rng, name, arch, st, Some(&v), false);
        let t = write_stanza(rng, &s);
        desc += &format!("seed package {name} now:\n{t}");
        changed.insert(i, t);
        names.push(name.clone());
        pairs.push((name.clone(), near(rng, &v)));
    }
    for (i, (name, _, text)) in seed.iter().enumerate() {
        stanzas.push(changed.get(&i).cloned().unwrap_or_else(|| text.clone()));
        if rng.chance(2) {
            names.push(name.clone());
        }
    }
    // Packages the rules know, unchanged, with the rules' versions.
    names.push("libpam-runtime".into());
    pairs.push(("libpam-runtime".into(), "1.5.2-6".into()));
    pairs.push(("libpam-modules".into(), "1.5.2-6".into()));
    // Generated packages.
    let mut generated: Vec<(String, String, Option<String>)> = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for _ in 0..1 + rng.below(6) {
        let name = rng.pick(NAMES).to_string();
        if !used.insert(name.clone()) {
            continue;
        }
        names.push(name.clone());
        let multi = rng.chance(20);
        let arches: &[&str] = if multi {
            &["amd64", "i386"]
        } else {
            &["amd64"]
        };
        for arch in arches {
            let st = random_status(rng);
            // dpkg allows no Version when not-installed or half-installed (and
            // refuses the database otherwise).
            let optional = matches!(st[2], "not-installed" | "half-installed");
            let v = if rng.chance(if optional { 50 } else { 2 }) {
                None
            } else {
                Some(version(rng))
            };
            // Now and then only one of the pair is Multi-Arch: same (dpkg refuses
            // that unless the other is not-installed).
            let same = multi && !rng.chance(6);
            let s = stanza(rng, &name, arch, st, v.as_deref(), same);
            let t = write_stanza(rng, &s);
            desc += &t;
            desc += "\n";
            stanzas.push(t);
            generated.push((name.clone(), arch.to_string(), v.clone()));
            let base = v.unwrap_or_else(|| version(rng));
            pairs.push((name.clone(), near(rng, &base)));
        }
    }
    names.push("not-a-package".into());
    pairs.push(("not-a-package".into(), "1.0".into()));
    // Pending updates: dpkg reads files named by digits only.
    let mut updates = Vec::new();
    if !generated.is_empty() && rng.chance(25) {
        for _ in 0..1 + rng.below(2) {
            let file = rng
                .pick(&["0000", "0001", "0002", "tmp.i", "00x1"])
                .to_string();
            let (name, mut arch, _) = rng.pick(&generated).clone();
            // Another architecture: dpkg cross-grades the one instance of the name
            // unless both are Multi-Arch: same.
            if rng.chance(30) {
                arch = rng.pick(&["amd64", "i386", "arm64"]).to_string();
            }
            let pair = generated.iter().filter(|g| g.0 == name).count() > 1;
            let same = rng.chance(if pair { 85 } else { 30 });
            let st = random_status(rng);
            let v = version(rng);
            let s = stanza(rng, &name, &arch, st, Some(&v), same);
            let t = write_stanza(rng, &s);
            desc += &format!("/var/lib/dpkg/updates/{file}:\n{t}\n");
            pairs.push((name.clone(), near(rng, &v)));
            // One file holds one stanza as dpkg writes it, but dpkg reads several.
            match updates.iter_mut().find(|(f, _)| *f == file) {
                Some((_, old)) => *old = format!("{old}\n{t}"),
                None => updates.push((file, t)),
            }
        }
    }
    // Generated stanzas among the seed's, not all at the end.
    let tail: Vec<String> = stanzas.split_off(seed.len());
    for t in tail {
        let at = rng.below(stanzas.len() + 1);
        stanzas.insert(at, t);
    }
    let sep = if rng.chance(10) { "\n\n\n" } else { "\n" };
    let mut status = String::new();
    if rng.chance(5) {
        status.push('\n');
    }
    status += &stanzas.join(sep);
    names.sort();
    names.dedup();
    Config {
        status,
        updates,
        names,
        pairs,
        desc,
    }
}

/// A version as dpkg-query prints it: the epoch as a number, left out when 0.
fn dpkg_spelling(v: &str) -> String {
    match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            match e.trim_start_matches('0') {
                "" => rest.to_string(),
                n => format!("{n}:{rest}"),
            }
        }
        _ => v.to_string(),
    }
}

const QUERY: &str = "dpkg-query -W -f='${Package}\\t${Architecture}\\t${db:Status-Want} ${db:Status-Eflag} ${db:Status-Status}\\t${Version}\\n' 2>/tmp/dpkg-query.err; echo \"@rc $?\"";

/// Runs the dpkg half: generate, ask dpkg-query and dpkg, compare.
pub fn run(original: &Path, settings: Settings) -> Tally {
    let copy = RootCopy::sharing_usr(original);
    let seed_text = std::fs::read_to_string(copy.path("/var/lib/dpkg/status"))
        .expect("read the root's dpkg status");
    let seed = seed_stanzas(&seed_text);
    let mut rng = Rng::new(settings.seed ^ 0x4450_4b47);
    let mut tally = Tally::new("packages (dpkg)", settings);
    let (mut refused, mut agent_refused, mut refused_passes, mut false_passes) = (0, 0, 0, 0);
    while tally.more() {
        let c = generate(&mut rng, &seed);
        copy.write("/var/lib/dpkg/status", &c.status);
        copy.clear_dir("/var/lib/dpkg/updates");
        for (f, t) in &c.updates {
            copy.write(&format!("/var/lib/dpkg/updates/{f}"), t);
        }
        let out = copy.chroot(&["sh", "-c", QUERY]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        tally.compared += 1;
        if !text.contains("@rc ") {
            tally.differ(&c.desc, &format!("  dpkg-query did not run: {out:?}\n"));
            continue;
        }
        if !text.contains("@rc 0") {
            // dpkg refuses the database: nothing can be judged from it. The agent must
            // refuse it too, or at least never say a package is absent, installed or recent enough.
            refused += 1;
            let why = std::fs::read_to_string(copy.path("/tmp/dpkg-query.err")).unwrap_or_default();
            // dpkg-query's error: its line and the reason on the next.
            let why: String = why
                .lines()
                .skip_while(|l| !l.contains("error"))
                .take(2)
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let pairs: Vec<Pair> = c
                .pairs
                .iter()
                .map(|(package, version)| Pair {
                    package: package.clone(),
                    version: version.clone(),
                    pass: false,
                })
                .collect();
            match agent_facts("packages", &copy.root, &agent_args(&c.names, &pairs)) {
                Err(_) => agent_refused += 1,
                Ok(a) => {
                    let mut passes: Vec<String> = Vec::new();
                    for n in &c.names {
                        for (key, what) in
                            [("absent_check", "absent"), ("installed_check", "installed")]
                        {
                            if a["packages"][n.as_str()][key] == "pass" {
                                passes.push(format!("{n} {what}"));
                            }
                        }
                    }
                    passes.extend(
                        pairs
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| a["at_least"][*i]["status"] == "pass")
                            .map(|(_, p)| format!("{} at least {}", p.package, p.version)),
                    );
                    if !passes.is_empty() {
                        refused_passes += 1;
                        tally.differ(
                            &c.desc,
                            &format!("  (a false pass) dpkg-query refuses the database ({why}); the agent reads it and says {passes:?}\n"),
                        );
                    }
                }
            }
            if std::env::var_os("RAMPART_DIFF_SHOW_REFUSED").is_some() {
                println!(
                    "  dpkg-query refuses configuration #{}: {why}",
                    tally.compared
                );
            }
            continue;
        }
        // name → [(want flag status, version)]
        let mut listed: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for l in text.lines().filter(|l| !l.starts_with('@')) {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() == 4 {
                listed
                    .entry(f[0].to_string())
                    .or_default()
                    .push((f[2].to_string(), f[3].to_string()));
            }
        }
        // dpkg compares every installed instance's version with each pair's; a name
        // installed has its present instances (files on disk) compared too.
        let mut questions: Vec<(String, String)> = Vec::new();
        for (name, want) in &c.pairs {
            for (_, v) in counted(&listed, name) {
                if !v.is_empty() {
                    questions.push((v.clone(), want.clone()));
                }
            }
        }
        let script: String = questions
            .iter()
            .map(|(v, w)| {
                format!("dpkg --compare-versions '{v}' ge '{w}' 2>/dev/null; echo \"@ge $?\"\n")
            })
            .collect::<String>()
            + "echo @end\n";
        let out = copy.chroot(&["sh", "-c", &script]);
        let answers: Vec<bool> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("@ge "))
            .map(|r| r == "0")
            .collect();
        if answers.len() != questions.len() {
            tally.differ(
                &c.desc,
                &format!("  dpkg --compare-versions did not answer: {out:?}\n"),
            );
            continue;
        }
        let verdict: BTreeMap<(String, String), bool> =
            questions.into_iter().zip(answers).collect();
        let mut expected = BTreeMap::new();
        for name in &c.names {
            let inst = listed.get(name).cloned().unwrap_or_default();
            let states: Vec<State> = inst.iter().map(|(s, _)| judge(s)).collect();
            let state = if states.contains(&State::Installed) {
                State::Installed
            } else if states.contains(&State::Present) {
                State::Present
            } else {
                State::Absent
            };
            let versions = inst
                .iter()
                .filter(|(s, _)| judge(s) == State::Installed)
                .map(|(_, v)| v.clone())
                .collect();
            expected.insert(name.clone(), Expected { state, versions });
        }
        let pairs: Vec<Pair> = c
            .pairs
            .iter()
            .map(|(name, want)| {
                let instances = counted(&listed, name);
                let pass = !instances.is_empty()
                    && instances
                        .iter()
                        .all(|(_, v)| !v.is_empty() && verdict[&(v.clone(), want.clone())]);
                Pair {
                    package: name.clone(),
                    version: want.clone(),
                    pass,
                }
            })
            .collect();
        let a = match agent_facts("packages", &copy.root, &agent_args(&c.names, &pairs)) {
            Ok(v) => v,
            Err(e) => {
                tally.differ(&c.desc, &e);
                continue;
            }
        };
        compare(
            &mut tally,
            &mut false_passes,
            &c.desc,
            &a,
            &expected,
            &pairs,
            &dpkg_spelling,
        );
    }
    println!(
        "differential packages (dpkg): {refused} databases dpkg-query refuses ({agent_refused} refused by the agent too, {refused_passes} read by it and a package called absent, installed or recent enough); {false_passes} false pass(es) among the other differences"
    );
    tally
}
