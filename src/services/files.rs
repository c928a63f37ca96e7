//! Where uploaded files and fetched web pages are kept: the one home of their bytes.
//!
//! Every stored file is named by its path relative to the data directory
//! (`files/<document id>`, or `files/<document id>-<hash>.<ext>` for a web page's body),
//! the path `document.file_path` holds, and lives in one of two places
//! (`[database] files`):
//!
//! - **the data directory** (SQLite, always; PostgreSQL when chosen): `<data_dir>/<path>`,
//!   written to a `.part` file, fsynced and renamed, so a crash leaves the old file or the
//!   new one, never half of one. Several nodes must then share `<data_dir>/files`.
//! - **the database** (the default on PostgreSQL): a row of `stored_file`, so that any
//!   node can read the file of a job it takes over, and a node's disk holds nothing but
//!   index replicas. A file not found there is looked for in the data directory, where a
//!   deployment kept it before it moved its files to the database.
//!
//! Callers write a file before the rows that point at it, and remove it when those rows
//! could not be written (or once a row no longer points at it), so a crash may leave a
//! file without a document but never a document without its file.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;

/// Stored files, in the data directory or the database.
#[derive(Debug, Clone)]
pub struct FileStore {
    /// The data directory the paths are relative to.
    data_dir: PathBuf,
    /// The database, when files live there.
    database: Option<Store>,
}

impl FileStore {
    /// The file store `config` asks for (`database.files`), on `store`.
    pub fn new(config: &Config, store: &Store) -> Self {
        if config.files_in_database() {
            Self::in_database(store.clone(), config.data_dir.clone())
        } else {
            Self::in_directory(config.data_dir.clone())
        }
    }

    /// Files under `data_dir`.
    pub fn in_directory(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            database: None,
        }
    }

    /// Files in `store`'s `stored_file` table (those stored earlier under `data_dir` are
    /// still read from there).
    pub fn in_database(store: Store, data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            database: Some(store),
        }
    }

    /// Whether files live in the database.
    pub fn is_in_database(&self) -> bool {
        self.database.is_some()
    }

    /// Store `bytes` under `relative`, durably, replacing what was there.
    pub async fn put(&self, relative: &str, bytes: &[u8]) -> Result<()> {
        match &self.database {
            Some(store) => store.put_stored_file(relative, bytes).await,
            None => write_file(&self.data_dir, relative, bytes),
        }
    }

    /// The bytes stored under `relative`; a file that is in neither place is an error
    /// naming it.
    pub async fn get(&self, relative: &str) -> Result<Vec<u8>> {
        if let Some(store) = &self.database
            && let Some(bytes) = store.stored_file(relative).await?
        {
            return Ok(bytes);
        }
        let path = self.data_dir.join(relative);
        tokio::fs::read(&path).await.map_err(|e| {
            let place = match self.database {
                Some(_) => "in the database or ",
                None => "",
            };
            Error::Internal(format!(
                "stored file {relative} is missing ({place}{}: {e})",
                path.display()
            ))
        })
    }

    /// Remove the file stored under `relative`, if any. Best effort: a file that cannot
    /// be removed is logged and left behind (it wastes space; nothing points at it).
    pub async fn remove(&self, relative: &str) {
        if let Some(store) = &self.database
            && let Err(e) = store.delete_stored_file(relative).await
        {
            warn!(path = relative, error = %e, "stored file not removed from the database");
        }
        // Also where it lived before files moved to the database.
        match tokio::fs::remove_file(self.data_dir.join(relative)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = relative, error = %e, "stored file not removed"),
        }
    }
}

/// Store `bytes` at `relative` under the data dir: written to a `.part` file, fsynced and
/// renamed, so a crash leaves the old file or the new one, never half of one.
fn write_file(data_dir: &Path, relative: &str, bytes: &[u8]) -> Result<()> {
    let path = data_dir.join(relative);
    let part = path.with_extension("part");
    // std::fs on purpose: tokio's File reports an error of its last buffered write only
    // on a later write or flush, so a write cut short by a full disk looked like success
    // and left a truncated file behind.
    let written = tokio::task::block_in_place(|| -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&part)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&part, &path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    Ok(written?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backends::test_store;
    use ingest::db::Backend;

    /// Put, get, replace and remove, the same through either backing.
    async fn round_trip(files: &FileStore, data_dir: &Path) {
        files.put("files/d1", b"first").await.unwrap();
        assert_eq!(files.get("files/d1").await.unwrap(), b"first");
        files.put("files/d1", b"second").await.unwrap();
        assert_eq!(files.get("files/d1").await.unwrap(), b"second");
        assert_eq!(
            data_dir.join("files/d1").exists(),
            !files.is_in_database(),
            "a file in the database is not on disk"
        );
        files.remove("files/d1").await;
        let missing = files.get("files/d1").await.unwrap_err().to_string();
        assert!(missing.contains("files/d1 is missing"), "{missing}");
        files.remove("files/d1").await;
    }

    // Multi-threaded: writing to the directory blocks in place, as the server does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_round_trip_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileStore::in_directory(dir.path().to_path_buf());
        round_trip(&files, dir.path()).await;
        assert!(!dir.path().join("files/d1.part").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_round_trip_in_the_database_on_both_backends() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let (dir, store) = test_store(backend).await;
            let files = FileStore::in_database(store, dir.path().join("data"));
            round_trip(&files, &dir.path().join("data")).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_stored_in_the_directory_before_is_still_read_and_removed() {
        let (dir, store) = test_store(Backend::Sqlite).await;
        let data = dir.path().join("data");
        FileStore::in_directory(data.clone())
            .put("files/old", b"kept on disk")
            .await
            .unwrap();
        let files = FileStore::in_database(store, data.clone());
        assert_eq!(files.get("files/old").await.unwrap(), b"kept on disk");
        files.remove("files/old").await;
        assert!(!data.join("files/old").exists());
    }
}
