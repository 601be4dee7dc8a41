//! `steward`: the command line. `serve` runs the API; the other commands are the operator's
//! tools for the same data directory and database.

mod cli;
mod commands;
mod logging;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: with many threads allocating per request, glibc spent a
/// quarter of the server's CPU in malloc/free and grew per-thread arenas (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _log_writer = logging::init(cli.log_format);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
