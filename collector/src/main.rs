//! `rampart-collector` entry point: parse flags, set up logging, run, map errors to
//! exit codes (`cli::exit`).

use clap::Parser;
use rampart_collector::cli::{self, exit, Cli, LogFormat};

/// jemalloc, in every build (tests and benchmarks run the allocator that ships). The
/// shipped collector is static (musl), whose allocator takes one lock for every
/// thread: jemalloc keeps ingest and REST work from queueing on it, and returns the
/// memory of closed connections to the system.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// jemalloc's options are compiled in: see `.cargo/config.toml`.

/// Threads for store work outside the ingest pool (`spawn_blocking`: enrollment,
/// stream bookkeeping, webhooks). Each waits for a group commit while it holds one;
/// more than this only queue, and thousands of parked threads cost context switches.
const BLOCKING_THREADS: usize = 128;

fn main() {
    // Before anything is written: files and directories are the collector's alone.
    rampart_collector::datadir::restrict_umask();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(cli::run(cli)),
        Err(e) => {
            eprintln!("rampart-collector: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILED);
        }
    };
    if let Err(e) = result {
        eprintln!("rampart-collector: {}", cli::explain(&e));
        std::process::exit(e.exit_code());
    }
}
