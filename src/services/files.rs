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
//! file without a document but never a document without its file. Such files, and `.part`
//! files a crash left mid-write, are removed when a server starts
//! ([`FileStore::remove_orphans`]) once they are older than [`ORPHAN_MIN_AGE`].

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::warn;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;

/// How old a stored file no document points at must be before it is removed: a file is
/// written a moment before its document row, and a younger file may be an upload (on this
/// node or another) whose row is on its way.
pub const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);

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

impl FileStore {
    /// Remove the stored files no document of `store` points at, older than `min_age`:
    /// what a crash between a file and its row, or mid-write, left behind. Both places
    /// are swept (the data directory also holds files stored before they moved to the
    /// database). Returns how many were removed.
    pub async fn remove_orphans(&self, store: &Store, min_age: Duration) -> Result<u64> {
        let mut removed = 0;
        if let Some(database) = &self.database {
            removed += database
                .delete_orphan_stored_files(min_age.as_secs())
                .await?;
        }
        let dir = self.data_dir.join(FILES_DIR);
        if dir.is_dir() {
            // Read before the directory: a document deleted meanwhile keeps its file
            // until the next sweep, never the other way round.
            let kept: HashSet<String> = store.document_file_paths().await?.into_iter().collect();
            removed += tokio::task::block_in_place(|| remove_old_orphans(&dir, &kept, min_age))?;
        }
        Ok(removed)
    }
}

/// The folder under the data dir that holds stored files (`files/<name>`).
const FILES_DIR: &str = "files";

/// Remove the files of `dir` (the data dir's `files/`) whose `files/<name>` is not in
/// `kept` and that were last written more than `min_age` ago.
fn remove_old_orphans(dir: &Path, kept: &HashSet<String>, min_age: Duration) -> Result<u64> {
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let relative = format!("{FILES_DIR}/{}", entry.file_name().to_string_lossy());
        let old_enough = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= min_age);
        if !meta.is_file() || !old_enough || kept.contains(&relative) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => warn!(path = relative, error = %e, "orphan file not removed"),
        }
    }
    Ok(removed)
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
    use crate::store::backends::{doc, kb, test_store};
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

    /// Files no document points at — a crash between a file and its row, a `.part` left
    /// mid-write — are removed once old enough, in either backing, on either database; a
    /// document's file stays, and so does a young orphan (an upload on its way).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn orphan_files_are_removed_once_old_enough() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let (dir, store) = test_store(backend).await;
            let data = dir.path().join("data");
            let k = store.insert_kb(&kb("k")).await.unwrap();
            // Its file_path is files/a.
            store
                .insert_document(&doc("d", &k.kb_id, "s"))
                .await
                .unwrap();
            let backings = [
                FileStore::in_directory(data.clone()),
                FileStore::in_database(store.clone(), data.clone()),
            ];
            for (files, orphans) in backings.iter().zip([2, 1]) {
                files.put("files/a", b"the document's").await.unwrap();
                files.put("files/orphan", b"no row").await.unwrap();
                if !files.is_in_database() {
                    std::fs::write(data.join("files/b.part"), b"half").unwrap();
                }
                assert_eq!(
                    files.remove_orphans(&store, ORPHAN_MIN_AGE).await.unwrap(),
                    0
                );
                assert_eq!(files.get("files/orphan").await.unwrap(), b"no row");
                tokio::time::sleep(Duration::from_millis(20)).await;
                let removed = files.remove_orphans(&store, Duration::ZERO).await.unwrap();
                assert_eq!(
                    removed,
                    orphans,
                    "{backend:?}, in database: {}",
                    files.is_in_database()
                );
                assert!(files.get("files/orphan").await.is_err());
                assert!(!data.join("files/b.part").exists());
                assert_eq!(files.get("files/a").await.unwrap(), b"the document's");
            }
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
