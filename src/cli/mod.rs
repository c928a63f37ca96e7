//! The admin CLI: one subcommand per file, each calling the same services as HTTP.
//!
//! Commands that only read (`kb list`, `search`, `jobs`, `doctor`, `eval --kb`) work beside
//! a running server; commands that write indexes (`ingest`, `reindex`, `kb delete`) take the data dir
//! lock and say clearly when the server holds it.

mod backup;
mod bench;
mod doctor;
mod eval;
mod ingest_files;
mod jobs;
mod kb;
mod limits;
mod migrate;
mod openapi;
mod reindex;
mod search;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{AppState, admin_token};
use crate::config::Config;
use crate::error::Result;
use crate::lock::DataDirLock;

/// zhiku: local knowledge bases with hybrid search (and, soon, bots that answer from them).
#[derive(Debug, Parser)]
#[command(name = "zhiku", version, about)]
pub struct Cli {
    /// A config file layered over the defaults (env ZHIKU_* still wins).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the ingestion workers.
    Serve,
    /// Create, list or delete knowledge bases.
    #[command(subcommand)]
    Kb(kb::KbCommand),
    /// Ingest files or folders into a knowledge base (the same pipeline as uploads).
    Ingest(ingest_files::IngestArgs),
    /// Search a knowledge base (hit testing).
    Search(search::SearchArgs),
    /// Show the ingestion queue.
    Jobs(jobs::JobsArgs),
    /// Rebuild BM25 and vector indexes from SQLite (optionally re-embedding).
    Reindex(reindex::ReindexArgs),
    /// Check models, runtime, data dir and indexes.
    Doctor(doctor::DoctorArgs),
    /// Snapshot the database and uploaded files into a folder (safe while serving; pg_dump on PostgreSQL).
    Backup(backup::BackupArgs),
    /// Restore a backup into the data dir, or an empty PostgreSQL database (stop the server first).
    Restore(backup::RestoreArgs),
    /// Copy this SQLite deployment into an empty PostgreSQL database, and verify it (stop the server first).
    Migrate(migrate::MigrateArgs),
    /// Measure retrieval (recall@k, MRR, nDCG, latency) and answers on a labelled query set.
    Eval(eval::EvalArgs),
    /// Print the OpenAPI description of the HTTP API (as `GET /openapi.json` serves it).
    Openapi(openapi::OpenapiArgs),
    /// Print the limits the server enforces, as JSON (as `GET /api/limits` serves them).
    Limits,
    /// Benchmarks on this machine (search at 10k–1M chunks).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Run a parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    // The description is built from code alone: no config, data dir or models needed.
    if let Command::Openapi(args) = &cli.command {
        return openapi::run(args);
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => crate::server::serve(config).await,
        Command::Kb(cmd) => kb::run(config, cmd).await,
        Command::Ingest(args) => ingest_files::run(config, args).await,
        Command::Search(args) => search::run(config, args).await,
        Command::Jobs(args) => jobs::run(config, args).await,
        Command::Reindex(args) => reindex::run(config, args).await,
        Command::Doctor(args) => doctor::run(config, args).await,
        Command::Backup(args) => backup::backup(config, args).await,
        Command::Restore(args) => backup::restore(config, args).await,
        Command::Migrate(args) => migrate::run(config, args).await,
        Command::Eval(args) => eval::run(config, args).await,
        Command::Openapi(args) => openapi::run(&args),
        Command::Bench(cmd) => bench::run(config, cmd).await,
        Command::Limits => limits::run(&config),
    }
}

/// State for a command that writes: holds the data dir lock for as long as it lives.
pub(crate) async fn writer_state(config: Config) -> Result<(AppState, DataDirLock)> {
    let lock = DataDirLock::acquire(&config.data_dir)?;
    // A command serves no HTTP: on PostgreSQL, where the token comes from config only
    // (`admin_token`), it runs without one.
    let token = match config.uses_postgres() {
        true => config.admin_token.clone(),
        false => admin_token(&config)?.0,
    };
    Ok((AppState::build(config, token, false).await?, lock))
}

/// State for a command that reads: beside a running server it reads its indexes without
/// writing them.
pub(crate) async fn reader_state(config: Config) -> Result<(AppState, Option<DataDirLock>)> {
    let lock = DataDirLock::try_acquire(&config.data_dir)?;
    let read_only = lock.is_none();
    let token = config.admin_token.clone();
    Ok((AppState::build(config, token, read_only).await?, lock))
}

/// Print a value as pretty JSON.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// A progress bar in zhiku's style.
pub(crate) fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {msg:<12} [{bar:30}] {pos}/{len} {elapsed_precise}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
