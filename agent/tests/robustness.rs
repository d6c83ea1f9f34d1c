//! Every rule survives hostile trees: each absolute path named anywhere in the
//! agent's sources or content is replaced by garbage bytes, a symlink loop, a
//! directory, or a file nobody may read; a "live" tree may lack /proc altogether.
//! No rule may panic, and every result carries evidence.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use rampart_agent::content;
use rampart_agent::engine::evaluate;
use rampart_agent::facts::Facts;
use rampart_agent::model::Status;

/// Absolute paths quoted in the sources and content (globs and templates skipped).
fn named_paths() -> BTreeSet<String> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = BTreeSet::new();
    let mut stack = vec![base.join("src"), base.join("content")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = fs::read_to_string(&p).unwrap_or_default();
            for piece in text.split(['"', '\'', '`', ' ', '(', ')', ',', '[', ']', '=']) {
                let ok = piece.len() > 2
                    && piece.starts_with('/')
                    && [
                        "/etc/", "/proc/", "/sys/", "/var/", "/boot/", "/lib/", "/usr/", "/run/",
                        "/root/",
                    ]
                    .iter()
                    .any(|pre| piece.starts_with(pre))
                    && !piece.contains([
                        '*', '?', '{', '}', '<', '>', '$', '\\', '\n', ':', ';', '#', '|',
                    ])
                    && !piece.ends_with('/');
                if ok {
                    out.insert(piece.trim_end_matches('.').to_string());
                }
            }
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Poison {
    Garbage,
    Loop,
    Directory,
    Huge,
}

/// Whether `h` (under `root`) can be created without going through a symlink or a
/// file: poisoned paths must never lead the test outside its temporary root.
fn safe_to_create(root: &Path, h: &Path) -> bool {
    let Ok(rel) = h.strip_prefix(root) else {
        return false;
    };
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() || (cur != h && !m.is_dir()) => return false,
            Ok(_) if cur == h => return false, // already there
            _ => {}
        }
    }
    true
}

fn build(root: &Path, paths: &BTreeSet<String>, poison: Poison) {
    for p in paths {
        let h = root.join(p.trim_start_matches('/'));
        if !safe_to_create(root, &h) || fs::create_dir_all(h.parent().unwrap()).is_err() {
            continue;
        }
        let _ = match poison {
            Poison::Garbage => fs::write(
                &h,
                (0..3000u32)
                    .map(|i| (i * 131 % 256) as u8)
                    .collect::<Vec<u8>>(),
            ),
            // A relative link to itself: a loop, and harmless if ever followed.
            Poison::Loop => symlink(h.file_name().unwrap(), &h),
            Poison::Directory => fs::create_dir_all(&h),
            Poison::Huge => fs::File::create(&h).and_then(|f| f.set_len(64 * 1024 * 1024)),
        };
    }
}

#[test]
fn no_rule_panics_on_hostile_trees() {
    let paths = named_paths();
    assert!(paths.len() > 20, "found only {} paths", paths.len());
    let mut problems = Vec::new();
    for b in content::benchmarks().unwrap() {
        for (poison, live) in [
            (Poison::Garbage, true),
            (Poison::Garbage, false),
            (Poison::Loop, true),
            (Poison::Directory, false),
            (Poison::Huge, true),
        ] {
            let t = tempfile::tempdir().unwrap();
            build(t.path(), &paths, poison);
            let facts = Facts::new(t.path(), live);
            for rule in &b.rules {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    evaluate(rule, &facts)
                }));
                match r {
                    Err(_) => problems.push(format!(
                        "{} {}: panicked on {poison:?} (live {live})",
                        b.id, rule.id
                    )),
                    Ok(res) if res.evidence.iter().all(|e| e.trim().is_empty()) => {
                        problems.push(format!("{} {}: no evidence on {poison:?}", b.id, rule.id))
                    }
                    Ok(res) if res.status == Status::Pass && !rule.automated => {
                        problems.push(format!("{} {}: manual rule passed", b.id, rule.id))
                    }
                    Ok(_) => {}
                }
            }
        }
        // A live tree without /proc, /sys or /run at all.
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc")).unwrap();
        let facts = Facts::new(t.path(), true);
        for rule in &b.rules {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluate(rule, &facts)))
                .is_err()
            {
                problems.push(format!(
                    "{} {}: panicked on an empty live tree",
                    b.id, rule.id
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every path the agent names is a FIFO (no writer ever comes): reading one would
/// block forever. Every rule of every benchmark must still finish, on a live and an
/// offline tree, and a rule that wanted a FIFO's content says so in its evidence.
#[test]
fn no_rule_blocks_on_a_fifo() {
    let paths = named_paths();
    let t = tempfile::tempdir().unwrap();
    let mut fifos = Vec::new();
    for p in &paths {
        let h = t.path().join(p.trim_start_matches('/'));
        if safe_to_create(t.path(), &h) && fs::create_dir_all(h.parent().unwrap()).is_ok() {
            fifos.push(h);
        }
    }
    // A path that became a directory for a deeper one stays a directory.
    fifos.retain(|h| fs::symlink_metadata(h).is_err());
    fifos.sort();
    fifos.dedup();
    for chunk in fifos.chunks(200) {
        let made = std::process::Command::new("mkfifo")
            .args(chunk)
            .status()
            .expect("run mkfifo");
        assert!(made.success(), "mkfifo failed");
    }
    let root = t.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut evidence = Vec::new();
        for live in [false, true] {
            for b in content::benchmarks().unwrap() {
                let facts = Facts::new(&root, live);
                for rule in &b.rules {
                    let r = evaluate(rule, &facts);
                    evidence.push((r.status, r.evidence.join("\n")));
                }
            }
        }
        let _ = tx.send(evidence);
    });
    let evidence = rx
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("the rules did not finish within 300 s over a tree of FIFOs");
    for wanted in [
        "/etc/login.defs is a FIFO, not a regular file",
        "/etc/passwd is a FIFO, not a regular file",
        "/etc/sudoers is a FIFO, not a regular file",
        "/var/lib/dpkg/status is a FIFO, not a regular file",
    ] {
        assert!(
            evidence
                .iter()
                .any(|(s, e)| *s == Status::Error && e.contains(wanted)),
            "no rule reported `{wanted}`; FIFOs named: {:?}",
            evidence
                .iter()
                .filter_map(|(_, e)| e.lines().find(|l| l.contains("FIFO")))
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
}
