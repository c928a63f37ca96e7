//! The `stored_file` table: uploaded files and fetched web pages kept in the database
//! (`[database] files = "database"`, PostgreSQL), by their path relative to the data
//! directory, the same path `document.file_path` holds. Which backing is in use, and the
//! data directory's, is [`crate::services::files::FileStore`]'s business; this module only
//! reads and writes rows.

use super::Store;
use crate::error::Result;
use ingest::on_db;

impl Store {
    /// Store a file's bytes under `path`, replacing what was there (a page fetched again
    /// with the same body gets the same path).
    pub async fn put_stored_file(&self, path: &str, bytes: &[u8]) -> Result<()> {
        on_db!(
            &self.pool,
            "INSERT INTO stored_file (path, bytes) VALUES (?, ?)
             ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes",
            |e, q| sqlx::query(q)
                .bind(path)
                .bind(bytes)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// The bytes stored under `path` (`None`: no such file).
    pub async fn stored_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = on_db!(
            &self.pool,
            "SELECT bytes FROM stored_file WHERE path = ?",
            |e, q| sqlx::query_as(q).bind(path).fetch_optional(e).await
        )?;
        Ok(row.map(|(bytes,)| bytes))
    }

    /// Delete the stored files no document points at that were stored more than
    /// `min_age_s` seconds ago (a younger one may be an upload whose document row is being
    /// written); returns how many. One statement, so a document committed meanwhile keeps
    /// its file.
    pub async fn delete_orphan_stored_files(&self, min_age_s: u64) -> Result<u64> {
        let modifier = format!("-{min_age_s} seconds");
        Ok(on_db!(
            &self.pool,
            "DELETE FROM stored_file
              WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)
                AND path NOT IN (SELECT file_path FROM document)",
            |e, q| sqlx::query(q)
                .bind(&modifier)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?)
    }

    /// Delete the file stored under `path`; returns whether there was one.
    pub async fn delete_stored_file(&self, path: &str) -> Result<bool> {
        let deleted = on_db!(
            &self.pool,
            "DELETE FROM stored_file WHERE path = ?",
            |e, q| sqlx::query(q)
                .bind(path)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(deleted > 0)
    }
}
