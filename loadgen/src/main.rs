//! `rampart-loadgen`: parse flags, run the chosen mode, print its JSON line.

use std::process::ExitCode;

use clap::Parser;
use rampart_loadgen::cli::{self, Cli, Plan};
use rampart_loadgen::{agents, rest, scan, seed, Error};

/// jemalloc, as the collector: the simulated agents build every scan's results
/// afresh, and the load generator shares the machine it measures, so what its
/// allocator costs is taken from the collector.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn read(path: &std::path::Path) -> rampart_loadgen::Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Io {
        what: format!("read {}", path.display()),
        source: e,
    })
}

fn main() -> ExitCode {
    let env_root = std::env::var_os("RAMPART_DEBIAN_ROOT").map(Into::into);
    let result = cli::plan(Cli::parse(), &read, env_root).and_then(|plan| {
        let rt = tokio::runtime::Runtime::new().map_err(|e| Error::Io {
            what: "start the runtime".into(),
            source: e,
        })?;
        match plan {
            Plan::Seed(c) => seed::run(&c),
            Plan::Rest(c) => rt.block_on(rest::run(c)),
            Plan::Ingest(c, root) => {
                let recorded = match &root {
                    Some(root) => {
                        let agent = c.agent_binary.clone().unwrap_or_else(|| {
                            std::env::current_exe()
                                .ok()
                                .and_then(|p| p.parent().map(|d| d.join("rampart-agent")))
                                .unwrap_or_else(|| "rampart-agent".into())
                        });
                        let r = scan::Recorded::scan_root(&agent, root)?;
                        eprintln!(
                            "recorded a real scan of {}: {} results",
                            root.display(),
                            r.0.len()
                        );
                        Some(r)
                    }
                    None => None,
                };
                rt.block_on(agents::run(c, recorded))
            }
        }
    });
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rampart-loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
