//! `rampart-collector`: placeholder binary until the collector issue lands.
fn main() {
    eprintln!("rampart-collector: not built yet; see the open collector issue");
    std::process::exit(2);
}
