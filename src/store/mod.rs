//! The database, the source of truth (SQLite by default, or PostgreSQL): knowledge bases, documents, chunks with their vectors,
//! (through the ingest crate) the job queue, and bots with their keys and conversations.
//! Split by table: [`kbs`], [`documents`], [`chunks`], [`reembed`] (staged vectors),
//! [`bots`] (with their versions), [`keys`], [`key_rate`] (requests per key and minute),
//! [`conversations`] (with their messages), [`files`] (stored files, when they live in the
//! database); this module owns the `counter`. [`migrate`] copies every table from SQLite
//! into PostgreSQL (`zhiku migrate`), the one place that reads one backend and writes the other. Each table is written only by its module: an operation that
//! spans tables (deleting a KB, storing a document's chunks, a re-embedding's swap) calls
//! each owner inside one transaction. Reads may join other tables.

#[cfg(test)]
pub(crate) mod backends;
pub mod bot_tools;
pub mod bots;
pub mod chunks;
pub mod conversations;
pub mod documents;
pub mod dump;
pub mod files;
pub mod index_log;
pub mod kbs;
pub mod key_rate;
pub mod keys;
pub mod migrate;
pub mod reembed;
pub mod tables;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use ingest::db::{Backend, Pool, Tx};
use ingest::on_db;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{Error, Result};

/// The pool, migrated, on SQLite or PostgreSQL (how one statement runs on both:
/// [`ingest::db`]).
#[derive(Debug, Clone)]
pub struct Store {
    /// The pool; services use the typed functions of the submodules.
    pub pool: Pool,
    /// On PostgreSQL, the connection that holds this node's writer lock
    /// ([`Store::lock_single_writer`]); kept open for as long as the store lives.
    writer_lock: Option<Arc<Mutex<sqlx::PgConnection>>>,
}

/// The key of the PostgreSQL advisory lock a writing zhiku node holds ("zhiku" in ASCII).
const WRITER_LOCK_KEY: i64 = 0x007a_6869_6b75;

/// Embedded SQLite migrations (`migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Embedded PostgreSQL migrations (`migrations/postgres/`), one twin per SQLite migration.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A database url with its password (if any) replaced, fit for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// Open (creating if needed) and migrate the SQLite database at `path`.
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
            // A connection whose ROLLBACK failed — SQLite may roll a transaction back by
            // itself when a write hits a full disk, so sqlx's own ROLLBACK then errs — still
            // counts as inside a transaction, and every BEGIN on it fails ("attempted to
            // call begin_with at non-zero transaction depth"). Such a connection is closed
            // instead of handed out: the pool's ping before this check has let any queued
            // rollback run, so an idle connection is otherwise never in one.
            .before_acquire(|conn, _meta| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
            writer_lock: None,
        })
    }

    /// Open and migrate the database at `url`: `sqlite://<path>` (what [`Store::open`]
    /// does) or `postgres://…` (`postgresql://` too).
    pub async fn connect(url: &str) -> Result<Self> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Self::open(Path::new(path)).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "could not connect to PostgreSQL at {}: {e}",
                        redact_url(url)
                    ))
                })?;
            POSTGRES_MIGRATOR.run(&pool).await?;
            return Ok(Self {
                pool: Pool::Postgres(pool),
                writer_lock: None,
            });
        }
        Err(Error::Config(format!(
            "[database] url {} is neither sqlite://<path> nor postgres://…",
            redact_url(url)
        )))
    }

    /// The name and version of the database at `url`, without migrating or creating
    /// anything (what `zhiku doctor` shows). A SQLite file that does not exist yet is said
    /// to be so.
    pub async fn describe(url: &str) -> Result<String> {
        use sqlx::Connection;
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if !Path::new(path).exists() {
                let (version,): (String,) = sqlx::query_as("SELECT sqlite_version()")
                    .fetch_one(&mut sqlx::SqliteConnection::connect("sqlite::memory:").await?)
                    .await?;
                return Ok(format!("SQLite {version}, {path} (not created yet)"));
            }
            let options = SqliteConnectOptions::from_str(url)?.read_only(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
            let (version,): (String,) = sqlx::query_as("SELECT sqlite_version()")
                .fetch_one(&mut conn)
                .await?;
            return Ok(format!("SQLite {version}, {path}"));
        }
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| {
            Error::Config(format!(
                "could not connect to PostgreSQL at {}: {e}",
                redact_url(url)
            ))
        })?;
        let (version,): (String,) = sqlx::query_as("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        Ok(format!("PostgreSQL {version}, {}", redact_url(url)))
    }

    /// On PostgreSQL, make this the one process that writes to the database, or say that
    /// another one already does: the default, `database.several_nodes` off, for a
    /// deployment that means to run one node and would rather be told of a second one
    /// started by mistake. With it on, nodes share the job queue (job leases) and each
    /// node's indexes follow the others' writes ([`index_log`]); then this is not called.
    /// On SQLite the data directory's lock already says this; nothing to do.
    pub async fn lock_single_writer(&mut self) -> Result<()> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(());
        };
        let mut conn = pool.acquire().await?.detach();
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(WRITER_LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            return Err(Error::Busy(
                "another zhiku node is writing to this PostgreSQL database, and database.several_nodes is off: stop that node, use its HTTP API, or set database.several_nodes = true on every node to run several (supported: each node's indexes follow the others', docs/postgres.md)".into(),
            ));
        }
        self.writer_lock = Some(Arc::new(Mutex::new(conn)));
        Ok(())
    }

    /// Ask the database a trivial question (`SELECT 1`), through the pool: whether it
    /// answers at all (`/health`).
    pub async fn ping(&self) -> Result<()> {
        on_db!(&self.pool, "SELECT 1", |e, q| sqlx::query(q)
            .execute(e)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// The database's name and version (`SQLite 3.46.0`, `PostgreSQL 15.10`).
    pub async fn version(&self) -> Result<String> {
        Ok(self.pool.version().await?)
    }

    /// Start a write transaction (on SQLite it takes the write lock up front; why:
    /// [`Pool::begin_write`]).
    pub async fn begin_write(&self) -> Result<Tx> {
        Ok(self.pool.begin_write().await?)
    }

    /// Write a consistent copy of the whole database to `path` (SQLite's `VACUUM INTO`),
    /// safe while other connections write: the backup's snapshot. PostgreSQL has no such
    /// statement; its backups are `pg_dump`s of an exported snapshot ([`Store::export_snapshot`]).
    pub async fn snapshot_into(&self, path: &Path) -> Result<()> {
        if self.backend() == Backend::Postgres {
            return Err(Error::InvalidInput(
                "VACUUM INTO copies a SQLite database; a PostgreSQL backup is a pg_dump".into(),
            ));
        }
        let target = path
            .to_str()
            .ok_or_else(|| Error::InvalidInput(format!("{} is not valid UTF-8", path.display())))?;
        on_db!(&self.pool, "VACUUM INTO ?", |e, q| sqlx::query(q)
            .bind(target)
            .execute(e)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Close the pool, waiting for its connections to finish (a snapshot opened to be read
    /// and then copied).
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Reserve `n` consecutive chunk seqs inside a transaction; returns the first.
    ///
    /// Every seq is given out here, by an `UPDATE` of the one `counter` row inside the
    /// transaction that writes the chunks carrying it, and nowhere else. That makes seqs
    /// commit in order, which the indexes' catch-up (`seq > mark`, on every node) needs:
    ///
    /// - SQLite: a write transaction holds the database's one write lock from `BEGIN
    ///   IMMEDIATE` to its end, so writers run one after the other.
    /// - PostgreSQL: the `UPDATE` takes the counter row's lock, held to the end of the
    ///   transaction. A second writer's `UPDATE` waits for it, and the lock is released
    ///   only after the first transaction is visible to new snapshots (commit) or gone
    ///   (rollback: its seqs are never seen, a harmless gap). So a transaction holding
    ///   seq `s` commits before any transaction can even obtain a seq above `s`: a reader
    ///   that sees seq `s` sees every lower seq that will ever commit. A `SEQUENCE`
    ///   (`nextval`) would not do: it hands out values without waiting, and a late commit
    ///   of a lower value would be skipped by a reader already past it.
    ///
    /// The price is that chunk writes are serialised from their reservation to their
    /// commit, so a transaction reserves as late as it can. Lock order, to keep
    /// PostgreSQL free of deadlocks: a job's row, then this counter, then a document's
    /// row. Tests: `seqs_commit_in_order` (src/store/backends.rs) and
    /// `concurrent_writers_skip_nothing` (src/services/indexing.rs).
    pub async fn reserve_seqs(tx: &mut Tx, n: i64) -> Result<i64> {
        let sql = "UPDATE counter SET value = value + ? WHERE name = 'chunk_seq' RETURNING value";
        let (last,): (i64,) = on_db!(tx, sql, |e, q| sqlx::query_as(q).bind(n).fetch_one(e).await)?;
        Ok(last - n + 1)
    }

    /// Take the counter's lock now, reserving nothing: for a transaction that reads chunk
    /// rows to size its reservation, so that no other writer's chunks appear between the
    /// read and the reservation (on PostgreSQL a row inserted meanwhile would get a seq
    /// outside the reserved range, one another transaction may also hold).
    pub(crate) async fn lock_seqs(tx: &mut Tx) -> Result<()> {
        Self::reserve_seqs(tx, 0).await.map(|_| ())
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
