//! docs/COVERAGE.md is what `rampart-agent coverage` prints for the compiled-in
//! content. Regenerate with `cargo run -p rampart-agent -- coverage > docs/COVERAGE.md`.

#[test]
fn coverage_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/COVERAGE.md");
    let want =
        rampart_agent::report::coverage_markdown(rampart_agent::content::benchmarks().unwrap());
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale; regenerate it with `cargo run -p rampart-agent -- coverage > docs/COVERAGE.md`",
        path.display()
    );
}
