//! Moving an SQLite deployment to PostgreSQL (`zhiku migrate --to postgres://…`): every
//! table that holds user data copied into an empty PostgreSQL database in one transaction
//! ([`crate::store::migrate`] says how), the uploaded files put into its `stored_file`
//! table (or left in `<data_dir>/files` when asked), then every copied table read back
//! and compared with what was read from SQLite. The SQLite database and the files are only
//! read: the old deployment still works if the new one is not wanted.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::backup::safe_join;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::migrate::{COPIED_TABLES, SKIPPED_TABLES};
use crate::store::{Store, redact_url};

/// Where the migrated deployment keeps uploaded files and fetched pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesTo {
    /// In the PostgreSQL database (`[database] files = "database"`, the default there):
    /// copied now, so the new deployment needs no files directory.
    Database,
    /// In a directory (`[database] files = "directory"`): not copied; whoever migrates
    /// copies `<data_dir>/files` to the new nodes' data directory (or the shared one).
    Directory,
}

/// One copied table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCopied {
    /// The table.
    pub table: String,
    /// Rows copied (for `stored_file`, with the files put there).
    pub rows: i64,
}

/// One table left behind.
#[derive(Debug, Clone, Serialize)]
pub struct TableSkipped {
    /// The table.
    pub table: String,
    /// Rows it holds in SQLite.
    pub rows: i64,
    /// Why it is not copied.
    pub why: String,
}

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// The target, its password hidden.
    pub to: String,
    /// Copied tables, in the order they were copied.
    pub tables: Vec<TableCopied>,
    /// Tables left behind, and why.
    pub skipped: Vec<TableSkipped>,
    /// Whether the files went into the database (`false`: they stay in a directory).
    pub files_in_database: bool,
    /// Files the documents point at that were put into the database.
    pub files_copied: u64,
    /// Their bytes.
    pub file_bytes: u64,
    /// Files the documents point at that are not in `<data_dir>` (their documents stay
    /// searchable; re-processing them fails).
    pub missing_files: Vec<String>,
    /// The files directory to copy by hand, when files stay in a directory.
    pub files_dir: Option<String>,
    /// Every copied table was read back from PostgreSQL and matched what was copied.
    pub verified: bool,
    /// Seconds the copy took, to its commit.
    pub copy_seconds: f64,
    /// Seconds the read-back took.
    pub verify_seconds: f64,
}

/// Whether `url` names a PostgreSQL database.
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Copy the SQLite deployment `config` describes into the empty PostgreSQL database at
/// `to`, and verify the copy. The caller holds the data directory's lock, so nothing
/// writes the source meanwhile. `progress` is told of each step as a line.
pub async fn migrate(
    config: &Config,
    to: &str,
    files: FilesTo,
    progress: &dyn Fn(&str),
) -> Result<MigrateReport> {
    if !is_postgres(to) {
        return Err(Error::InvalidInput(format!(
            "--to {} is not a PostgreSQL url: zhiku migrate copies this SQLite deployment into PostgreSQL, --to postgres://user:password@host:5432/database",
            redact_url(to)
        )));
    }
    if config.uses_postgres() {
        return Err(Error::InvalidInput(format!(
            "this deployment's database is already PostgreSQL ({}): zhiku migrate copies from SQLite; run it with the SQLite deployment's settings (no database.url / ZHIKU_DATABASE__URL)",
            redact_url(&config.database_url())
        )));
    }
    let path = config.database_path();
    if !path.is_file() {
        return Err(Error::InvalidInput(format!(
            "there is no SQLite database at {}: check data_dir (ZHIKU_DATA_DIR) names the deployment to migrate",
            path.display()
        )));
    }
    let source = Store::open(&path).await?;
    progress(&format!(
        "connecting to {} and applying its migrations",
        redact_url(to)
    ));
    let target = Store::connect(to).await?;
    let held: Vec<String> = target
        .row_counts(&COPIED_TABLES[..COPIED_TABLES.len() - 1])
        .await?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t}: {n} rows"))
        .collect();
    if !held.is_empty() {
        return Err(Error::Conflict(format!(
            "the PostgreSQL database at {} already holds data ({}); zhiku migrate copies into an empty database only: create a new one (createdb) and pass its url",
            redact_url(to),
            held.join(", ")
        )));
    }

    let started = Instant::now();
    let mut copy = source.begin_copy_into(&target).await?;
    let mut tables = Vec::new();
    for table in COPIED_TABLES {
        let rows = copy.copy_table(table).await?;
        progress(&format!("copied {table:<22} {rows:>9} rows"));
        tables.push(TableCopied {
            table: (*table).to_string(),
            rows,
        });
    }
    let (mut files_copied, mut file_bytes, mut missing_files) = (0u64, 0u64, Vec::new());
    let document_files = copy.document_files().await?;
    if files == FilesTo::Database {
        for (relative, created_at) in &document_files {
            let bytes = match tokio::fs::read(safe_join(&config.data_dir, relative)?).await {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing_files.push(relative.clone());
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if copy.put_file(relative, &bytes, created_at).await? {
                files_copied += 1;
                file_bytes += bytes.len() as u64;
            }
        }
        progress(&format!(
            "copied {files_copied} files ({file_bytes} bytes) into stored_file"
        ));
    } else {
        for (relative, _) in &document_files {
            if !safe_join(&config.data_dir, relative)?.is_file() {
                missing_files.push(relative.clone());
            }
        }
    }
    let digests = copy.finish().await?;
    let copy_seconds = started.elapsed().as_secs_f64();
    progress(&format!("committed in {copy_seconds:.1} s; verifying"));

    // Read back every copied table and compare: the rows (and so what the indexes are
    // rebuilt from) are exactly those read from SQLite.
    let started = Instant::now();
    let mut differ = Vec::new();
    for entry in tables.iter_mut() {
        let expected = digests.get(&entry.table).copied().unwrap_or_default();
        let there = target.table_digest(&entry.table).await?;
        entry.rows = expected.rows;
        if there != expected {
            differ.push(format!(
                "{} ({} rows copied, {} there)",
                entry.table, expected.rows, there.rows
            ));
        }
    }
    let verify_seconds = started.elapsed().as_secs_f64();
    if !differ.is_empty() {
        return Err(Error::Internal(format!(
            "the copy in {} differs from the SQLite database: {}; the SQLite deployment is untouched: drop the PostgreSQL database, create it again and rerun zhiku migrate",
            redact_url(to),
            differ.join(", ")
        )));
    }
    let skipped_names: Vec<&str> = SKIPPED_TABLES.iter().map(|(t, _)| *t).collect();
    let skipped_counts = source.row_counts(&skipped_names).await?;
    let skipped = SKIPPED_TABLES
        .iter()
        .zip(skipped_counts)
        .map(|((table, why), (_, rows))| TableSkipped {
            table: (*table).to_string(),
            rows,
            why: (*why).to_string(),
        })
        .collect();
    source.close().await;
    target.close().await;
    Ok(MigrateReport {
        to: redact_url(to),
        tables,
        skipped,
        files_in_database: files == FilesTo::Database,
        files_copied,
        file_bytes,
        missing_files,
        files_dir: (files == FilesTo::Directory)
            .then(|| files_dir(&config.data_dir).display().to_string()),
        verified: true,
        copy_seconds,
        verify_seconds,
    })
}

fn files_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("files")
}
