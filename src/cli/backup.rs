//! `zhiku backup DIR` (works beside a running server) and `zhiku restore DIR` (needs the
//! server stopped, every node of a PostgreSQL deployment): see `services::backup` for what
//! a backup holds, on either database.

use std::path::PathBuf;

use clap::Args;

use super::print_json;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lock::DataDirLock;
use crate::services::{backup, backup_postgres};
use crate::store::Store;

/// Arguments of `zhiku backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new (or empty) folder to write the backup into.
    out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `zhiku restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup folder.
    from: PathBuf,
    /// Overwrite the data dir's existing database, files and indexes.
    #[arg(long)]
    replace: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn backup(config: Config, args: BackupArgs) -> Result<()> {
    let manifest = if config.uses_postgres() {
        let url = config.database_url();
        let store = Store::connect(&url).await?;
        backup_postgres::backup(
            &store,
            &url,
            config.files_in_database(),
            &config.data_dir,
            &args.out,
        )
        .await?
    } else {
        backup::backup(&config.database_path(), &config.data_dir, &args.out).await?
    };
    if args.json {
        return print_json(&manifest);
    }
    // On PostgreSQL the files kept in the database are in the dump; `files` counts those
    // copied beside it from the data dir.
    let files = match (
        config.uses_postgres() && config.files_in_database(),
        manifest.files,
    ) {
        (true, 0) => "files in the dump".to_string(),
        (true, n) => format!("files in the dump, {n} more from the data dir"),
        (false, n) => format!("{n} files"),
    };
    println!(
        "backed up {} documents ({files}, database {} bytes) into {}",
        manifest.documents,
        manifest.database_bytes,
        args.out.display()
    );
    if !manifest.missing_files.is_empty() {
        println!(
            "{} files were deleted while the backup ran; their documents are in the snapshot without them",
            manifest.missing_files.len()
        );
    }
    if config.uses_postgres() {
        println!(
            "the admin token and the secret key come from the config on PostgreSQL: keep them with the backup, or the restored tools' secrets cannot be opened"
        );
    }
    Ok(())
}

pub(super) async fn restore(config: Config, args: RestoreArgs) -> Result<()> {
    let _lock = DataDirLock::acquire(&config.data_dir)?;
    let manifest = backup::read_manifest(&args.from)?;
    let of_postgres = manifest.database == backup_postgres::POSTGRESQL;
    match (of_postgres, config.uses_postgres()) {
        (true, true) => {
            backup_postgres::restore(
                &args.from,
                &config.database_url(),
                &config.data_dir,
                args.replace,
            )
            .await?
        }
        (false, false) => {
            backup::restore(&args.from, &config.data_dir, args.replace)?;
        }
        (true, false) => {
            return Err(Error::InvalidInput(
                "this is a backup of a PostgreSQL deployment: restore it with [database] url (ZHIKU_DATABASE__URL) naming an empty PostgreSQL database".into(),
            ));
        }
        (false, true) => {
            return Err(Error::InvalidInput(
                "this is a backup of a SQLite deployment: restore it into a data dir without [database] url, then copy it to PostgreSQL with zhiku migrate --to".into(),
            ));
        }
    }
    if args.json {
        return print_json(&manifest);
    }
    println!(
        "restored {} documents from the backup of {} into {}; the indexes are rebuilt from the database when the server starts",
        manifest.documents,
        manifest.created_at,
        if of_postgres {
            crate::store::redact_url(&config.database_url())
        } else {
            config.data_dir.display().to_string()
        }
    );
    Ok(())
}
