//! Backup and restore of a deployment.
//!
//! A backup is a folder with `zhiku-backup.json` describing it. Of a SQLite deployment:
//! `zhiku.db` (a consistent snapshot taken with SQLite's `VACUUM INTO`, safe while the
//! server writes), `files/` (the uploaded originals the snapshot's documents point to; they
//! never change once written), the admin token and the secret key. Of a PostgreSQL one:
//! `zhiku.pgdump` ([`super::backup_postgres`]). The BM25 and vector indexes are never copied:
//! the database holds every chunk and its vector, and a data dir without indexes rebuilds
//! them from it when the server starts, so a restored copy can never disagree with its
//! database.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The data dir's keys a backup carries: the admin token, and the key the stored secrets
/// (tool API keys) are encrypted with, without which a restored copy could not open them.
/// A backup is therefore to be kept as safe as the data dir itself.
const KEY_FILES: [&str; 2] = ["admin_token", "secret_key"];

use crate::error::{Error, Result};
use crate::store::Store;

/// The manifest file's name.
pub const MANIFEST: &str = "zhiku-backup.json";

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The database it is a copy of: `sqlite` (also what backups written before this
    /// field existed are) or `postgresql`.
    #[serde(default = "sqlite")]
    pub database: String,
    /// zhiku version that wrote it.
    pub zhiku_version: String,
    /// When (UTC, RFC 3339).
    pub created_at: String,
    /// Bytes of the database snapshot (`zhiku.db` or `zhiku.pgdump`).
    pub database_bytes: u64,
    /// Documents in the snapshot.
    pub documents: usize,
    /// Uploaded files copied into `files/` (on PostgreSQL, those not kept in the
    /// database itself).
    pub files: usize,
    /// Files the snapshot names that were gone (their documents were deleted meanwhile).
    pub missing_files: Vec<String>,
}

/// Write a backup of the data dir `data_dir`, whose database is the file `database`, into
/// `out`, which must not exist or be empty.
pub async fn backup(database: &Path, data_dir: &Path, out: &Path) -> Result<Manifest> {
    if !database.is_file() {
        return Err(Error::not_found(format!("database {}", database.display())));
    }
    let store = Store::open(database).await?;
    prepare_out(out)?;
    let snapshot = out.join("zhiku.db");
    store.snapshot_into(&snapshot).await?;

    // Read the file list from the snapshot itself, so files and rows agree.
    let snap = Store::open(&snapshot).await?;
    let paths = snap.document_file_paths().await?;
    snap.close().await;
    let (files, missing_files) = copy_files(&paths, data_dir, out)?;
    copy_key_files(data_dir, out)?;
    let manifest = Manifest {
        database: sqlite(),
        zhiku_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now().to_rfc3339(),
        database_bytes: std::fs::metadata(&snapshot)?.len(),
        documents: paths.len(),
        files,
        missing_files,
    };
    write_json(&out.join(MANIFEST), &manifest)?;
    Ok(manifest)
}

/// Restore the backup in `from` into `data_dir`. The data dir must hold no database unless
/// `replace` is set, in which case its database, files and indexes are replaced. The
/// caller holds the data dir lock (the server is stopped).
pub fn restore(from: &Path, data_dir: &Path, replace: bool) -> Result<Manifest> {
    let manifest = read_manifest(from)?;
    let database = data_dir.join("zhiku.db");
    if database.exists() && !replace {
        return Err(Error::Conflict(format!(
            "{} already has a database; restore into an empty data dir, or pass --replace to overwrite it",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir)?;
    // Copy next to the target first, then swap in: an interrupted restore leaves the old
    // data dir or a complete new one, not a mix.
    let staging = data_dir.join(".restore-staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    std::fs::copy(from.join("zhiku.db"), staging.join("zhiku.db"))?;
    copy_tree(&from.join("files"), &staging.join("files"))?;
    for name in ["zhiku.db-wal", "zhiku.db-shm"] {
        let stale = data_dir.join(name);
        if stale.exists() {
            std::fs::remove_file(stale)?;
        }
    }
    for dir in ["files", "kbs"] {
        let old = data_dir.join(dir);
        if old.exists() {
            std::fs::remove_dir_all(old)?;
        }
    }
    std::fs::rename(staging.join("files"), data_dir.join("files"))?;
    std::fs::rename(staging.join("zhiku.db"), &database)?;
    std::fs::remove_dir_all(&staging)?;
    restore_key_files(from, data_dir)?;
    Ok(manifest)
}

/// The manifest of the backup in `from`.
pub fn read_manifest(from: &Path) -> Result<Manifest> {
    std::fs::read(from.join(MANIFEST))
        .map_err(|e| {
            Error::InvalidInput(format!(
                "{} is not a zhiku backup ({MANIFEST}: {e})",
                from.display()
            ))
        })
        .and_then(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::InvalidInput(format!("{MANIFEST} is damaged: {e}")))
        })
}

/// The manifest's name for a SQLite backup.
pub(super) fn sqlite() -> String {
    "sqlite".into()
}

/// Make `out` the new, empty backup folder (with its `files/`): a backup never mixes with
/// whatever a folder already holds.
pub(super) fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        return Err(Error::InvalidInput(format!(
            "{} is not empty; back up into a new folder",
            out.display()
        )));
    }
    std::fs::create_dir_all(out.join("files"))?;
    Ok(())
}

/// Copy each of the stored files `paths` (relative to the data dir) that is in `data_dir`
/// into `out`; returns how many were copied and which were not there.
pub(super) fn copy_files(
    paths: &[String],
    data_dir: &Path,
    out: &Path,
) -> Result<(usize, Vec<String>)> {
    let mut files = 0;
    let mut missing_files = Vec::new();
    for relative in paths {
        let source = safe_join(data_dir, relative)?;
        let dest = safe_join(out, relative)?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::copy(&source, &dest) {
            Ok(_) => files += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing_files.push(relative.clone())
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((files, missing_files))
}

/// Copy the data dir's key files that exist into the backup.
pub(super) fn copy_key_files(data_dir: &Path, out: &Path) -> Result<()> {
    for name in KEY_FILES {
        let key = data_dir.join(name);
        if key.is_file() {
            std::fs::copy(&key, out.join(name))?;
        }
    }
    Ok(())
}

/// Copy the backup's key files into the data dir, never over one it already has.
pub(super) fn restore_key_files(from: &Path, data_dir: &Path) -> Result<()> {
    for name in KEY_FILES {
        let key = from.join(name);
        if key.is_file() && !data_dir.join(name).exists() {
            std::fs::copy(key, data_dir.join(name))?;
        }
    }
    Ok(())
}

pub(super) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    if !from.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// `base/relative`, refusing paths that leave `base` (a damaged row must not make a backup
/// or a migration read or write outside its folders).
pub(super) fn safe_join(base: &Path, relative: &str) -> Result<PathBuf> {
    let path = Path::new(relative);
    if path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        Ok(base.join(path))
    } else {
        Err(Error::InvalidInput(format!(
            "document file path {relative:?} leaves the data dir"
        )))
    }
}

pub(super) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_cannot_leave_the_data_dir() {
        let base = Path::new("/data");
        assert!(safe_join(base, "files/abc").is_ok());
        assert!(safe_join(base, "../etc/passwd").is_err());
        assert!(safe_join(base, "/etc/passwd").is_err());
    }
}
