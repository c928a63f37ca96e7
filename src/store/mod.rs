//! SQLite, the source of truth: knowledge bases, documents, chunks with their vectors,
//! (through the ingest crate) the job queue, and bots with their keys and conversations.
//! Split by table: [`kbs`], [`documents`], [`chunks`], [`reembed`] (staged vectors),
//! [`bots`] (with their versions), [`keys`], [`conversations`] (with their messages); this
//! module owns the `counter`. Each table is written only by its module: an operation that
//! spans tables (deleting a KB, storing a document's chunks, a re-embedding's swap) calls
//! each owner inside one transaction. Reads may join other tables.

pub mod bots;
pub mod chunks;
pub mod conversations;
pub mod documents;
pub mod kbs;
pub mod keys;
pub mod reembed;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::Result;

/// The SQLite pool, migrated.
#[derive(Debug, Clone)]
pub struct Store {
    /// The pool; services use the typed functions of the submodules.
    pub pool: SqlitePool,
}

/// Embedded migrations (`migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Open (creating if needed) and migrate the database at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            // WAL lets the CLI read while the server writes; NORMAL is durable across
            // process crashes (what kill -9 tests), which is what we promise.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Start a write transaction. `BEGIN IMMEDIATE` takes the write lock up front: a
    /// deferred transaction that reads first and writes later fails with "database is
    /// locked" (SQLITE_BUSY_SNAPSHOT) when another connection committed in between, which
    /// two ingestion workers make likely.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Write a consistent copy of the whole database to `path` (SQLite's `VACUUM INTO`),
    /// safe while other connections write: the backup's snapshot.
    pub async fn snapshot_into(&self, path: &Path) -> Result<()> {
        let target = path.to_str().ok_or_else(|| {
            crate::error::Error::InvalidInput(format!("{} is not valid UTF-8", path.display()))
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Close the pool, waiting for its connections to finish (a snapshot opened to be read
    /// and then copied).
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Reserve `n` consecutive chunk seqs inside a transaction; returns the first.
    pub async fn reserve_seqs(conn: &mut sqlx::SqliteConnection, n: i64) -> Result<i64> {
        let (last,): (i64,) = sqlx::query_as(
            "UPDATE counter SET value = value + ? WHERE name = 'chunk_seq' RETURNING value",
        )
        .bind(n)
        .fetch_one(&mut *conn)
        .await?;
        Ok(last - n + 1)
    }
}

/// f32 vector → little-endian bytes.
pub fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes → f32 vector.
pub fn blob_to_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip() {
        let v = vec![0.5, -1.25, 3.0];
        assert_eq!(blob_to_vector(&vector_to_blob(&v)), v);
    }
}
