//! Lists the content files under `content/rules` and `content/benchmarks` for
//! `src/content/mod.rs` to compile in: adding a content file needs no Rust.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let mut code = String::new();
    for (name, dir) in [("RULE_FILES", "rules"), ("BENCHMARK_FILES", "benchmarks")] {
        let dir = Path::new(&manifest).join("content").join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("read content directory").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        writeln!(code, "const {name}: &[Source] = &[").unwrap();
        for f in &files {
            println!("cargo:rerun-if-changed={}", f.display());
            let rel = f
                .strip_prefix(Path::new(&manifest).join("content"))
                .unwrap();
            writeln!(
                code,
                "    ({:?}, include_str!({:?})),",
                rel.display().to_string(),
                f.display().to_string()
            )
            .unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    std::fs::write(Path::new(&out).join("content_files.rs"), code).expect("write content_files.rs");
}
