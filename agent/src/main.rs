//! `rampart-agent` entry point: parse flags, run, map errors to exit codes.

use clap::Parser;
use rampart_agent::cli::{self, Cli};
use rampart_agent::error::exit;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::CANNOT_RUN
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    match cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("rampart-agent: {e}");
            std::process::exit(exit::CANNOT_RUN);
        }
    }
}
