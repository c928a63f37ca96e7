//! `zhiku backup DIR` (works beside a running server) and `zhiku restore DIR` (needs the
//! server stopped): see `services::backup` for what a backup holds.

use std::path::PathBuf;

use clap::Args;

use super::print_json;
use crate::config::Config;
use crate::error::Result;
use crate::lock::DataDirLock;
use crate::services::backup;

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
/// Backups copy the SQLite file; on PostgreSQL they would copy an unrelated, empty one.
fn refuse_postgres(config: &Config, command: &str) -> Result<()> {
    if config.uses_postgres() {
        return Err(crate::error::Error::InvalidInput(format!(
            "zhiku {command} works on SQLite only for now; with a PostgreSQL database use pg_dump / pg_restore for the database and copy the data dir's files and kbs folders"
        )));
    }
    Ok(())
}

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
    refuse_postgres(&config, "backup")?;
    let manifest = backup::backup(&config.database_path(), &config.data_dir, &args.out).await?;
    if args.json {
        return print_json(&manifest);
    }
    println!(
        "backed up {} documents ({} files, database {} bytes) into {}",
        manifest.documents,
        manifest.files,
        manifest.database_bytes,
        args.out.display()
    );
    if !manifest.missing_files.is_empty() {
        println!(
            "{} files were deleted while the backup ran; their documents are in the snapshot without them",
            manifest.missing_files.len()
        );
    }
    Ok(())
}

pub(super) async fn restore(config: Config, args: RestoreArgs) -> Result<()> {
    refuse_postgres(&config, "restore")?;
    let _lock = DataDirLock::acquire(&config.data_dir)?;
    let manifest = backup::restore(&args.from, &config.data_dir, args.replace)?;
    if args.json {
        return print_json(&manifest);
    }
    println!(
        "restored {} documents from the backup of {} into {}; the indexes are rebuilt from the database when the server starts",
        manifest.documents,
        manifest.created_at,
        config.data_dir.display()
    );
    Ok(())
}
