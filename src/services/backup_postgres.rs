//! Backup and restore of a PostgreSQL deployment: `pg_dump` in its custom format
//! (`zhiku.pgdump`), taken from a snapshot this process holds open so that the files it
//! copies beside the dump are those the dump's rows name; restored with `pg_restore` into
//! an empty database in one transaction.
//!
//! The dump holds everything the database holds, the uploaded files too when they live in
//! it (`[database] files`, the default on PostgreSQL); files kept in `<data_dir>/files` are
//! copied into the backup's `files/` as on SQLite. The admin token and the secret key come
//! from the config on PostgreSQL, not from the data dir, so the backup cannot carry them:
//! they are kept with the config.

use std::path::Path;

use super::backup::{
    MANIFEST, Manifest, copy_files, copy_key_files, copy_tree, prepare_out, restore_key_files,
    write_json,
};
use super::pg_tools;
use crate::error::{Error, Result};
use crate::store::Store;

/// The dump's file name in a backup folder.
pub const DUMP: &str = "zhiku.pgdump";

/// The manifest's name for a PostgreSQL backup.
pub const POSTGRESQL: &str = "postgresql";

/// Write a backup of the database at `url` (open as `store`) and of the files this node
/// keeps in `data_dir` into `out`, which must not exist or be empty. Safe while nodes
/// serve and write.
pub async fn backup(
    store: &Store,
    url: &str,
    files_in_database: bool,
    data_dir: &Path,
    out: &Path,
) -> Result<Manifest> {
    prepare_out(out)?;
    let mut snapshot = store.export_snapshot().await?;
    let paths = snapshot.document_file_paths().await?;
    let dump = out.join(DUMP);
    let dump_arg = format!("--file={}", dump.display());
    let snapshot_arg = format!("--snapshot={}", snapshot.id());
    pg_tools::run(
        "pg_dump",
        url,
        &[
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            &snapshot_arg,
            &dump_arg,
        ],
    )
    .await?;
    drop(snapshot);
    // Files in the database are in the dump; those in the data dir (all of them with
    // `files = "directory"`, older ones otherwise) are copied beside it.
    let (files, missing_files) = copy_files(&paths, data_dir, out)?;
    copy_key_files(data_dir, out)?;
    let manifest = Manifest {
        database: POSTGRESQL.into(),
        zhiku_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now().to_rfc3339(),
        database_bytes: std::fs::metadata(&dump)?.len(),
        documents: paths.len(),
        files,
        missing_files: if files_in_database {
            Vec::new()
        } else {
            missing_files
        },
    };
    write_json(&out.join(MANIFEST), &manifest)?;
    Ok(manifest)
}

/// Restore the PostgreSQL backup in `from` into the database at `url`, which must hold no
/// zhiku tables unless `replace` is set (then the dump's tables are dropped and recreated
/// first). One transaction: a restore that fails leaves the database as it was. This
/// node's indexes are removed (they are rebuilt from the restored database at start) and
/// the backup's directory files are copied into `data_dir`. The caller holds the data
/// dir's lock; every other node must be stopped.
pub async fn restore(from: &Path, url: &str, data_dir: &Path, replace: bool) -> Result<()> {
    let dump = from.join(DUMP);
    if !dump.is_file() {
        return Err(Error::InvalidInput(format!(
            "{} has no {DUMP}: the backup is incomplete",
            from.display()
        )));
    }
    if !replace && Store::postgres_has_tables(url).await? {
        return Err(Error::Conflict(
            "the database already holds zhiku's tables; restore into an empty database (createdb), or pass --replace to drop and recreate them from the backup".into(),
        ));
    }
    let dump_arg = dump.display().to_string();
    let mut args = vec![
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
    ];
    if replace {
        args.extend(["--clean", "--if-exists"]);
    }
    args.push(&dump_arg);
    pg_tools::run("pg_restore", url, &args).await?;
    std::fs::create_dir_all(data_dir)?;
    let indexes = data_dir.join("kbs");
    if indexes.exists() {
        std::fs::remove_dir_all(indexes)?;
    }
    copy_tree(&from.join("files"), &data_dir.join("files"))?;
    restore_key_files(from, data_dir)?;
    Ok(())
}
