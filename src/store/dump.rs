//! What a `pg_dump` backup needs from a PostgreSQL database: a snapshot held open so
//! that the dump and the backup's own reads see the same moment, and whether a database
//! already holds zhiku's tables (a restore goes into an empty one).

use sqlx::Connection;

use super::{Pool, Store, Tx, redact_url};
use crate::error::{Error, Result};

/// A read-only PostgreSQL transaction whose snapshot is exported: `pg_dump --snapshot`
/// reads exactly what it sees, for as long as it stays open. Dropped, it ends.
#[derive(Debug)]
pub struct ExportedSnapshot {
    tx: Tx,
    id: String,
}

impl ExportedSnapshot {
    /// The snapshot's id, for `pg_dump --snapshot`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Every document's stored file path as of the snapshot (what the dump's rows name).
    pub async fn document_file_paths(&mut self) -> Result<Vec<String>> {
        super::documents::file_paths(&mut self.tx).await
    }
}

impl Store {
    /// Begin a repeatable-read, read-only transaction and export its snapshot. PostgreSQL
    /// only: SQLite backups copy the file with `VACUUM INTO` ([`Store::snapshot_into`]).
    pub async fn export_snapshot(&self) -> Result<ExportedSnapshot> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(Error::InvalidInput(
                "an exported snapshot is a PostgreSQL feature; SQLite backups use VACUUM INTO"
                    .into(),
            ));
        };
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let (id,): (String,) = sqlx::query_as("SELECT pg_export_snapshot()")
            .fetch_one(&mut *tx)
            .await?;
        Ok(ExportedSnapshot {
            tx: Tx::Postgres(tx),
            id,
        })
    }

    /// Whether the PostgreSQL database at `url` already has zhiku's tables (its migrations
    /// table), read without migrating or creating anything.
    pub async fn postgres_has_tables(url: &str) -> Result<bool> {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| {
            Error::Config(format!(
                "could not connect to PostgreSQL at {}: {e}",
                redact_url(url)
            ))
        })?;
        let (found,): (bool,) =
            sqlx::query_as("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&mut conn)
                .await?;
        conn.close().await?;
        Ok(found)
    }
}
