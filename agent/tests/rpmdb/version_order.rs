//! Version order, against rpm's own `rpm.vercmp` on generated pairs.

use std::collections::BTreeMap;
use std::fs;

use rampart_agent::facts::packages::compare_rpm_versions;

use crate::build::run;

/// A small deterministic generator (xorshift), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// A version string: real ones, pieces of them, or bytes from an alphabet that has
/// every kind of character the order treats differently.
fn version(rng: &mut Rng) -> String {
    const REAL: &[&str] = &[
        "8.7p1-38.el9",
        "1:3.0.7-27.el9",
        "2:4.9-8.el9",
        "5.14.0-427.13.1.el9_4",
        "20240202-1.git283706d.el9",
        "1.9.5p2-10.el9_3",
        "2023.5.20240730-0.amzn2023",
        "1.0~rc1-1",
        "1.0^git20240101.abc-2",
        "0.16-100.el9",
        "10.0001",
        "4.999.9",
    ];
    const PIECES: &[&str] = &[
        "0", "1", "2", "9", "10", "007", "p", "a", "b", "rc", "Z", ".", "_", "+", "-", ":", "~",
        "^", "el", "git", "..",
    ];
    match rng.below(3) {
        0 => rng.pick(REAL).to_string(),
        1 => (0..1 + rng.below(8)).map(|_| rng.pick(PIECES)).collect(),
        _ => (0..1 + rng.below(10))
            .map(|_| b"019az.~^-:_"[rng.below(11)] as char)
            .collect(),
    }
}

/// `v` changed a little: a byte changed, added or removed, or a suffix.
fn mutate(rng: &mut Rng, v: &str) -> String {
    let mut b: Vec<char> = v.chars().collect();
    let at = rng.below(b.len() + 1);
    let c = b"0189abz.~^-:"[rng.below(12)] as char;
    match rng.below(5) {
        0 if at < b.len() => b[at] = c,
        1 => b.insert(at, c),
        2 if at < b.len() => {
            b.remove(at);
        }
        3 => b.extend(["~rc1", "^git1", ".1", "a", "-1", ".0", "~", "^"][rng.below(8)].chars()),
        _ => {}
    }
    b.into_iter().collect()
}

/// `compare_rpm_versions` agrees with rpm 4.18's `rpm.vercmp` on generated pairs:
/// unrelated versions, and versions a small change apart (the same but for one
/// byte, or a suffix), every pair in both orders.
#[test]
fn version_order_agrees_with_rpm() {
    const PAIRS: usize = 50_000;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut pairs = Vec::with_capacity(2 * PAIRS);
    while pairs.len() < 2 * PAIRS {
        let a = version(&mut rng);
        let b = if rng.below(2) == 0 {
            mutate(&mut rng, &a)
        } else {
            version(&mut rng)
        };
        pairs.push((b.clone(), a.clone()));
        pairs.push((a, b));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs");
    let text: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
    fs::write(&input, text).unwrap();
    let script = dir.path().join("vercmp.lua");
    fs::write(
        &script,
        format!(
            "for line in io.lines('{}') do\n\
             local a, b = line:match('^([^\\t]*)\\t(.*)$')\n\
             local ok, r = pcall(rpm.vercmp, a, b)\n\
             io.write(ok and tostring(r) or 'invalid', '\\n')\n\
             end\n",
            input.display()
        ),
    )
    .unwrap();
    let out = run(
        "rpm",
        &[
            "--eval",
            &format!("%{{lua: dofile('{}')}}", script.display()),
        ],
    );
    let answers: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        answers.len(),
        pairs.len(),
        "rpm answered {} pairs",
        answers.len()
    );
    let mut compared = 0;
    let mut seen = BTreeMap::new();
    let mut wrong = Vec::new();
    for ((a, b), answer) in pairs.iter().zip(answers) {
        let want = match answer {
            "-1" => std::cmp::Ordering::Less,
            "0" => std::cmp::Ordering::Equal,
            "1" => std::cmp::Ordering::Greater,
            // rpm refuses an empty version; the agent never meets one.
            _ => continue,
        };
        compared += 1;
        *seen.entry(answer).or_insert(0) += 1;
        if compare_rpm_versions(a, b) != want {
            wrong.push(format!("{a:?} vs {b:?}: rpm says {want:?}"));
        }
    }
    assert!(
        compared > 2 * PAIRS * 9 / 10,
        "only {compared} pairs compared"
    );
    assert!(
        seen.len() == 3 && seen.values().all(|n| *n > PAIRS / 10),
        "too few pairs of some order: {seen:?}"
    );
    assert!(
        wrong.is_empty(),
        "{} of {compared} pairs ordered unlike rpm:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{compared} version pairs ordered as rpm orders them: {seen:?}");
}
