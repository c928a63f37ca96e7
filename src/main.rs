//! The `zhiku` binary: parse the command line, set up logging, run, map errors to an exit
//! code. Everything else lives in the library (see `lib.rs` for the tour).

use std::ffi::c_char;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use zhiku::cli::{Cli, Command};

/// Rust's allocations (above all the HNSW graph's millions of small link records) go to
/// jemalloc: glibc's malloc adds a header to each 32-byte record and fragments under the
/// graph's parallel insertion. Measured on a 50k-point graph: 0.45 KB less per point and
/// 19 % faster building. C and C++ libraries (ONNX Runtime, llama.cpp, SQLite) keep
/// glibc's malloc; the passage model's release trims that one.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation. A background thread hands freed
/// pages back to the system within about a second (`dirty_decay_ms`), so memory given up
/// by an idle server (the passage model's tokenizers) leaves its RSS without waiting for
/// the next allocation to trigger a purge.
// SAFETY: jemalloc reads this symbol once, as a NUL-terminated string that lives as long
// as the process; nothing else defines it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: Option<&'static c_char> =
    // SAFETY: a C string literal's pointer is valid for 'static.
    Some(unsafe { &*c"background_thread:true,dirty_decay_ms:1000".as_ptr() });

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
    let code = match runtime.block_on(zhiku::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    };
    // Dropping a runtime waits for every blocking task, and a worker left inside a
    // tokenizer or an ONNX Runtime run kept a stopped server alive for minutes: whatever
    // still runs now is abandoned (its job is queued again at the next start).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
