//! The `zhiku` binary: parse the command line, set up logging, run, map errors to an exit
//! code. Everything else lives in the library (see `lib.rs` for the tour).

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use zhiku::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve) {
        "info,tantivy=warn,hnsw_rs=warn,llama-cpp-2=warn"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_env("ZHIKU_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(zhiku::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
