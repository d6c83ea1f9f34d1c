//! `rampart-collector`: the server is not built yet (see the collector issue).
fn main() {
    eprintln!("rampart-collector: the server is not built yet; only its policy core exists");
    std::process::exit(2);
}
