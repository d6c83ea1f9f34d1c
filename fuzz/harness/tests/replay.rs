//! Replays every committed fuzz input through its target on the stable toolchain:
//! the seed corpus (`fuzz/corpus/<target>/`) and the inputs that once crashed a
//! reader (`fuzz/regressions/<target>/`). A reader that panics on one fails here.

use std::fs;
use std::path::{Path, PathBuf};

use rampart_fuzz_harness::TARGETS;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_and_regression_input_runs_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = 0;
    for target in TARGETS {
        let corpus = inputs(&fuzz.join("corpus").join(target.name));
        assert!(
            !corpus.is_empty(),
            "no seed corpus for fuzz target {}",
            target.name
        );
        for path in corpus
            .iter()
            .chain(&inputs(&fuzz.join("regressions").join(target.name)))
        {
            let data = fs::read(path).expect("read a fuzz input");
            let outcome = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(
                outcome.is_ok(),
                "{} panics on {}",
                target.name,
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen > 0);
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz_targets");
    for target in TARGETS {
        let file = dir.join(format!("{}.rs", target.name));
        let src = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            src.contains(&format!("run(\"{}\"", target.name)),
            "{}",
            file.display()
        );
    }
}
