//! `zhiku migrate --to postgres://…`: copy this SQLite deployment into an empty PostgreSQL
//! database and verify it (`services::migrate` says what is copied and how).

use clap::{Args, ValueEnum};

use super::print_json;
use crate::config::Config;
use crate::error::Result;
use crate::lock::DataDirLock;
use crate::services::migrate::{self, FilesTo, MigrateReport};

/// Arguments of `zhiku migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The empty PostgreSQL database to copy into: postgres://user:password@host:5432/database.
    #[arg(long)]
    to: String,
    /// Where the new deployment keeps uploaded files: `database` (copied into its
    /// stored_file table, the default on PostgreSQL) or `directory` (left in
    /// <data_dir>/files, which you copy to the new nodes; set database.files = "directory").
    #[arg(long, value_enum, default_value_t = FilesArg::Database)]
    files: FilesArg,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `--files`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum FilesArg {
    Database,
    Directory,
}

pub(super) async fn run(config: Config, args: MigrateArgs) -> Result<()> {
    // The server (or a writing command) must be stopped: what it writes during the copy
    // would be lost, and its indexes would no longer match the copy.
    let _lock = DataDirLock::acquire(&config.data_dir)?;
    let files = match args.files {
        FilesArg::Database => FilesTo::Database,
        FilesArg::Directory => FilesTo::Directory,
    };
    let json = args.json;
    let say = |line: &str| {
        if !json {
            eprintln!("{line}");
        }
    };
    let report = migrate::migrate(&config, &args.to, files, &say).await?;
    if json {
        return print_json(&report);
    }
    summary(&config, &report);
    Ok(())
}

fn summary(config: &Config, report: &MigrateReport) {
    let rows: i64 = report.tables.iter().map(|t| t.rows).sum();
    println!(
        "migrated {rows} rows in {} tables into {} in {:.1} s, verified (every row read back) in {:.1} s",
        report.tables.len(),
        report.to,
        report.copy_seconds,
        report.verify_seconds
    );
    for t in &report.tables {
        println!("  {:<22} {:>9}", t.table, t.rows);
    }
    for s in &report.skipped {
        println!("  not copied: {} ({} rows): {}", s.table, s.rows, s.why);
    }
    if report.files_in_database {
        println!(
            "files: {} ({} bytes) copied into the database; the new deployment needs no files directory",
            report.files_copied, report.file_bytes
        );
    } else if let Some(dir) = &report.files_dir {
        println!(
            "files: left in {dir}; copy that folder to <data_dir>/files of the new nodes (or the directory they share) and set database.files = \"directory\""
        );
    }
    if !report.missing_files.is_empty() {
        println!(
            "{} files the documents point at were missing (their documents stay searchable, re-processing them fails): {}",
            report.missing_files.len(),
            report.missing_files.join(", ")
        );
    }
    println!(
        "next: start zhiku with database.url (ZHIKU_DATABASE__URL) = {} and admin_token set (on PostgreSQL it comes from the config{}); the indexes are rebuilt from the database where the data dir has none. The SQLite database at {} is left as it was.",
        report.to,
        if config.data_dir.join("admin_token").is_file() {
            format!(
                "; this deployment's is in {}",
                config.data_dir.join("admin_token").display()
            )
        } else {
            String::new()
        },
        config.database_path().display()
    );
}
