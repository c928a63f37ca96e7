//! Copying an SQLite deployment's database into an empty PostgreSQL one (`zhiku migrate`,
//! [`crate::services::migrate`]): the one place that reads one backend and writes the
//! other, so it speaks both dialects by hand instead of through `on_db!`.
//!
//! The copy is generic per table: the target's columns and their types come from
//! PostgreSQL's `information_schema` (its migrations are applied first), each SQLite value
//! is read as the type its PostgreSQL column has (a 0/1 flag becomes a `BOOLEAN`, a `BLOB`
//! a `BYTEA`) and the rows are inserted in batches, ids, `seq`s and timestamps as they
//! are. Keeping chunk ids and seqs means an index a node already built over the SQLite
//! database (same data dir) stays right, and one a fresh node builds is the same.
//!
//! Everything is written in one PostgreSQL transaction ([`CopyInto`]): a copy that fails
//! leaves the target as empty as it was (its migrations applied), so a retry into it
//! works. Each copied row is also hashed into a [`TableDigest`], which the target's rows
//! are compared with after the commit: the verification reads every row back.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{
    ConnectOptions, Connection, PgConnection, Postgres, QueryBuilder, Row, SqliteConnection,
    SqlitePool, Transaction,
};

use super::{Pool, Store};
use crate::error::{Error, Result};

/// The tables copied, each after the tables its rows refer to.
pub const COPIED_TABLES: &[&str] = &[
    "kb",
    "document",
    "chunk",
    "document_table",
    "chunk_vector_staging",
    "ingest_job",
    "bot",
    "bot_version",
    "bot_key",
    "conversation",
    "message",
    "stored_file",
    "counter",
];

/// The tables not copied, and why.
pub const SKIPPED_TABLES: &[(&str, &str)] = &[
    (
        "key_rate",
        "each key's requests in the current minute: transient, every window is over before the new deployment serves",
    ),
    (
        "_sqlx_migrations",
        "the target records its own PostgreSQL migrations as they are applied",
    ),
];

/// The table whose row the target's migrations already hold (the chunk seq counter): its
/// rows replace those instead of being added.
const COUNTER: &str = "counter";

/// Rows per `INSERT`: PostgreSQL takes at most 65 535 parameters per statement, and a
/// batch of chunks (text and vector) stays around a megabyte.
const BATCH_ROWS: usize = 500;

/// A column's type, as PostgreSQL has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Float,
    Text,
    Bytes,
}

/// A column of a copied table.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
}

/// One value, typed as its PostgreSQL column.
#[derive(Debug, Clone)]
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Float(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// What a table's rows add up to: their number and the sum of their hashes (SHA-256 of
/// each row's values, in column order, first 16 bytes). A sum, so the rows' order does
/// not matter: SQLite and PostgreSQL need not return them alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableDigest {
    /// Rows.
    pub rows: i64,
    /// The sum of their hashes, wrapping.
    pub sum: u128,
}

impl TableDigest {
    fn add(&mut self, values: &[Value]) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(row_hash(values));
    }
}

/// A row's hash: each value tagged by its type and whether it is NULL, texts and bytes
/// length-prefixed, so that no two different rows encode alike.
fn row_hash(values: &[Value]) -> u128 {
    fn part(h: &mut Sha256, tag: u8, bytes: Option<&[u8]>) {
        h.update([tag]);
        match bytes {
            Some(b) => {
                h.update([1]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            None => h.update([0]),
        }
    }
    let mut h = Sha256::new();
    for v in values {
        match v {
            Value::Int(x) => part(&mut h, 1, x.map(i64::to_le_bytes).as_ref().map(|b| &b[..])),
            Value::Bool(x) => part(&mut h, 2, x.map(|b| [u8::from(b)]).as_ref().map(|b| &b[..])),
            Value::Float(x) => part(
                &mut h,
                3,
                x.map(|f| f.to_bits().to_le_bytes())
                    .as_ref()
                    .map(|b| &b[..]),
            ),
            Value::Text(x) => part(&mut h, 4, x.as_deref().map(str::as_bytes)),
            Value::Bytes(x) => part(&mut h, 5, x.as_deref()),
        }
    }
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// Quote an identifier for either dialect (the names are our own, but `position`,
/// `count` and `value` are words both know).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| quoted(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The target's columns of `table`, in their order, typed.
async fn pg_columns(conn: &mut PgConnection, table: &str) -> Result<Vec<Column>> {
    let found: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(conn)
    .await?;
    if found.is_empty() {
        return Err(Error::Internal(format!(
            "the PostgreSQL database has no table {table} after its migrations"
        )));
    }
    found
        .into_iter()
        .map(|(name, data_type)| {
            let kind = match data_type.as_str() {
                "bigint" | "integer" | "smallint" => Kind::Int,
                "boolean" => Kind::Bool,
                "double precision" | "real" => Kind::Float,
                "text" | "character varying" => Kind::Text,
                "bytea" => Kind::Bytes,
                other => {
                    return Err(Error::Internal(format!(
                        "column {table}.{name} has type {other}, which zhiku migrate does not copy"
                    )));
                }
            };
            Ok(Column { name, kind })
        })
        .collect()
}

/// The source's column names of `table`.
async fn sqlite_columns(pool: &SqlitePool, table: &str) -> Result<BTreeSet<String>> {
    let found: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info(?1)")
        .bind(table)
        .fetch_all(pool)
        .await?;
    Ok(found.into_iter().map(|(n,)| n).collect())
}

fn read_sqlite(row: &SqliteRow, columns: &[Column]) -> Result<Vec<Value>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.kind {
                Kind::Int => Value::Int(row.try_get(i)?),
                // SQLite keeps flags as INTEGER 0/1.
                Kind::Bool => Value::Bool(row.try_get::<Option<i64>, _>(i)?.map(|v| v != 0)),
                Kind::Float => Value::Float(row.try_get(i)?),
                Kind::Text => Value::Text(row.try_get(i)?),
                Kind::Bytes => Value::Bytes(row.try_get(i)?),
            })
        })
        .collect()
}

fn read_pg(row: &PgRow, columns: &[Column]) -> Result<Vec<Value>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.kind {
                Kind::Int => Value::Int(row.try_get(i)?),
                Kind::Bool => Value::Bool(row.try_get(i)?),
                Kind::Float => Value::Float(row.try_get(i)?),
                Kind::Text => Value::Text(row.try_get(i)?),
                Kind::Bytes => Value::Bytes(row.try_get(i)?),
            })
        })
        .collect()
}

/// Insert `rows` into the target's `table`, then `tail` (a conflict clause, or nothing).
async fn insert_rows(
    conn: &mut PgConnection,
    table: &str,
    columns: &[Column],
    rows: &[Vec<Value>],
    tail: &str,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "INSERT INTO {} ({}) ",
        quoted(table),
        column_list(columns)
    ));
    query.push_values(rows, |mut b, row| {
        for value in row {
            match value.clone() {
                Value::Int(x) => b.push_bind(x),
                Value::Bool(x) => b.push_bind(x),
                Value::Float(x) => b.push_bind(x),
                Value::Text(x) => b.push_bind(x),
                Value::Bytes(x) => b.push_bind(x),
            };
        }
    });
    query.push(tail);
    query.build().execute(conn).await?;
    Ok(())
}

/// A copy in progress: the source's pool and the target's one open transaction. Dropped
/// without [`CopyInto::finish`], the target is left as it was.
#[derive(Debug)]
pub struct CopyInto {
    source: SqlitePool,
    /// The connection the tables are streamed from, without sqlx's slow-statement warning:
    /// one `SELECT` is read while its rows are written, for as long as the copy takes.
    reader: SqliteConnection,
    tx: Transaction<'static, Postgres>,
    /// Each table's digest as written, by table.
    digests: BTreeMap<String, TableDigest>,
}

impl Store {
    /// How many rows each of `tables` holds, on either backend.
    pub async fn row_counts(&self, tables: &[&str]) -> Result<Vec<(String, i64)>> {
        let mut counts = Vec::with_capacity(tables.len());
        for table in tables {
            let sql = format!("SELECT COUNT(*) FROM {}", quoted(table));
            let (n,): (i64,) = match &self.pool {
                Pool::Sqlite(p) => sqlx::query_as(&sql).fetch_one(p).await?,
                Pool::Postgres(p) => sqlx::query_as(&sql).fetch_one(p).await?,
            };
            counts.push(((*table).to_string(), n));
        }
        Ok(counts)
    }

    /// Start copying this (SQLite) database into `target` (PostgreSQL, migrated, empty:
    /// the caller checks [`Store::row_counts`]).
    pub async fn begin_copy_into(&self, target: &Store) -> Result<CopyInto> {
        let (Pool::Sqlite(source), Pool::Postgres(pg)) = (&self.pool, &target.pool) else {
            return Err(Error::InvalidInput(
                "zhiku migrate copies from SQLite into PostgreSQL only".into(),
            ));
        };
        let reader = (*source.connect_options())
            .clone()
            .disable_statement_logging()
            .connect()
            .await?;
        Ok(CopyInto {
            source: source.clone(),
            reader,
            tx: pg.begin().await?,
            digests: BTreeMap::new(),
        })
    }

    /// The digest of the target's `table` as it is now (PostgreSQL): every row read back.
    pub async fn table_digest(&self, table: &str) -> Result<TableDigest> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(Error::InvalidInput(
                "table digests are read from PostgreSQL".into(),
            ));
        };
        // A connection of its own, without sqlx's slow-statement warning: reading a big
        // table back is meant to take a while.
        let mut conn = (*pool.connect_options())
            .clone()
            .disable_statement_logging()
            .connect()
            .await?;
        let columns = pg_columns(&mut conn, table).await?;
        let sql = format!("SELECT {} FROM {}", column_list(&columns), quoted(table));
        let mut digest = TableDigest::default();
        {
            let mut rows = sqlx::query(&sql).fetch(&mut conn);
            while let Some(row) = rows.try_next().await? {
                digest.add(&read_pg(&row, &columns)?);
            }
        }
        conn.close().await?;
        Ok(digest)
    }
}

impl CopyInto {
    /// Copy every row of `table`; returns how many.
    pub async fn copy_table(&mut self, table: &str) -> Result<i64> {
        let columns = pg_columns(&mut self.tx, table).await?;
        let target: BTreeSet<String> = columns.iter().map(|c| c.name.clone()).collect();
        let source = sqlite_columns(&self.source, table).await?;
        if source != target {
            return Err(Error::Internal(format!(
                "table {table} has columns {source:?} in SQLite but {target:?} in PostgreSQL: the two schemas differ (is the SQLite database from another zhiku version?)"
            )));
        }
        let tail = match table {
            // The target's migrations inserted the counter's row; the source's value wins.
            COUNTER => " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            _ => "",
        };
        let per_batch = BATCH_ROWS.min(60_000 / columns.len().max(1));
        let sql = format!("SELECT {} FROM {}", column_list(&columns), quoted(table));
        let mut digest = TableDigest::default();
        let mut batch = Vec::with_capacity(per_batch);
        let mut rows = sqlx::query(&sql).fetch(&mut self.reader);
        while let Some(row) = rows.try_next().await? {
            let values = read_sqlite(&row, &columns)?;
            digest.add(&values);
            batch.push(values);
            if batch.len() == per_batch {
                insert_rows(&mut self.tx, table, &columns, &batch, tail).await?;
                batch.clear();
            }
        }
        insert_rows(&mut self.tx, table, &columns, &batch, tail).await?;
        self.digests.insert(table.to_string(), digest);
        Ok(digest.rows)
    }

    /// Each distinct stored-file path the source's documents point at (`document.file_path`,
    /// relative to the data dir), with when its first document was created.
    pub async fn document_files(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT file_path, MIN(created_at) FROM document WHERE file_path <> ''
             GROUP BY file_path ORDER BY file_path",
        )
        .fetch_all(&self.source)
        .await?)
    }

    /// Store a file's bytes in the target's `stored_file` table under `path`; `false` when
    /// a row for it was copied already (nothing written).
    pub async fn put_file(&mut self, path: &str, bytes: &[u8], created_at: &str) -> Result<bool> {
        let (there,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM stored_file WHERE path = $1)")
                .bind(path)
                .fetch_one(&mut *self.tx)
                .await?;
        if there {
            return Ok(false);
        }
        let columns = pg_columns(&mut self.tx, "stored_file").await?;
        let values = columns
            .iter()
            .map(|c| match c.name.as_str() {
                "path" => Ok(Value::Text(Some(path.to_string()))),
                "bytes" => Ok(Value::Bytes(Some(bytes.to_vec()))),
                "created_at" => Ok(Value::Text(Some(created_at.to_string()))),
                other => Err(Error::Internal(format!(
                    "stored_file has a column {other} zhiku migrate does not fill"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        self.digests
            .entry("stored_file".to_string())
            .or_default()
            .add(&values);
        insert_rows(&mut self.tx, "stored_file", &columns, &[values], "").await?;
        Ok(true)
    }

    /// Move the target's identity columns (chunk, job and message ids) past the copied
    /// ids, so new rows do not collide with them, and commit. Returns each table's digest
    /// as written, for [`Store::table_digest`] to be compared with.
    pub async fn finish(mut self) -> Result<BTreeMap<String, TableDigest>> {
        let identities: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        for (table, column) in identities {
            // setval(…, false): the next id given out is max + 1 (1 on an empty table).
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT MAX({c}) FROM {t}), 0) + 1, false)",
                c = quoted(&column),
                t = quoted(&table)
            );
            sqlx::query(&sql)
                .bind(quoted(&table))
                .bind(&column)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        self.reader.close().await?;
        Ok(self.digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backends::{chunk, doc, kb, test_store};
    use ingest::db::Backend;

    /// An SQLite store with a knowledge base "k" holding one document "d1": the source
    /// of a copy.
    async fn source_with_a_document() -> (tempfile::TempDir, Store, crate::store::kbs::KbRow) {
        let (dir, source) = test_store(Backend::Sqlite).await;
        let k = source.insert_kb(&kb("k")).await.unwrap();
        source
            .insert_document(&doc("d1", &k.kb_id, "s1"))
            .await
            .unwrap();
        (dir, source, k)
    }

    /// A small SQLite database copied: every table's rows arrive (flags as booleans, vectors
    /// as bytes), the digests agree, and the ids and seqs given out next follow the copied ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_sqlite_database_is_copied_whole_and_new_ids_follow_it() {
        let (_dir, source, k) = source_with_a_document().await;
        let v = [0.5_f32, -1.0];
        source
            .replace_document_chunks(
                None,
                "d1",
                "text",
                Some(1),
                &[chunk(0, "出差", &v), chunk(1, "住宿", &v)],
            )
            .await
            .unwrap();
        let (_tdir, target) = test_store(Backend::Postgres).await;

        let mut copy = source.begin_copy_into(&target).await.unwrap();
        for table in COPIED_TABLES {
            copy.copy_table(table).await.unwrap();
        }
        assert!(copy.put_file("files/a", b"bytes", "t").await.unwrap());
        let digests = copy.finish().await.unwrap();
        for table in COPIED_TABLES {
            let there = target.table_digest(table).await.unwrap();
            assert_eq!(
                digests.get(*table).copied().unwrap_or_default(),
                there,
                "{table}"
            );
        }
        assert_eq!(
            (
                digests["kb"].rows,
                digests["chunk"].rows,
                digests["stored_file"].rows
            ),
            (1, 2, 1)
        );
        assert_eq!(
            target.stored_file("files/a").await.unwrap().unwrap(),
            b"bytes"
        );
        assert_eq!(
            target.row_counts(&["counter"]).await.unwrap()[0].1,
            1,
            "the counter's row replaced, not doubled"
        );

        // New writes on the target: ids and seqs above the copied ones.
        let Pool::Postgres(pg) = &target.pool else {
            unreachable!()
        };
        let before: (i64, i64, i64) = sqlx::query_as(
            "SELECT MAX(chunk_id), MAX(seq), (SELECT MAX(job_id) FROM ingest_job) FROM chunk",
        )
        .fetch_one(pg)
        .await
        .unwrap();
        target
            .insert_document(&doc("d2", &k.kb_id, "s2"))
            .await
            .unwrap();
        target
            .replace_document_chunks(None, "d2", "text", Some(1), &[chunk(0, "年假", &v)])
            .await
            .unwrap();
        let new: (i64, i64, i64) = sqlx::query_as("SELECT chunk_id, seq, (SELECT MAX(job_id) FROM ingest_job) FROM chunk WHERE document_id = 'd2'")
            .fetch_one(pg)
            .await
            .unwrap();
        assert!(
            new.0 > before.0 && new.1 > before.1 && new.2 > before.2,
            "{before:?} {new:?}"
        );
    }

    /// A copy dropped before its commit (what a failure midway does) leaves the target
    /// empty, and a second copy into it succeeds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_that_does_not_finish_leaves_the_target_empty_for_a_retry() {
        let (_dir, source, _k) = source_with_a_document().await;
        let (_tdir, target) = test_store(Backend::Postgres).await;
        let mut copy = source.begin_copy_into(&target).await.unwrap();
        copy.copy_table("kb").await.unwrap();
        copy.copy_table("document").await.unwrap();
        drop(copy);
        let counts = target.row_counts(&["kb", "document"]).await.unwrap();
        assert!(counts.iter().all(|(_, n)| *n == 0), "{counts:?}");

        let mut copy = source.begin_copy_into(&target).await.unwrap();
        for table in COPIED_TABLES {
            copy.copy_table(table).await.unwrap();
        }
        copy.finish().await.unwrap();
        let counts = target.row_counts(&["kb", "document"]).await.unwrap();
        assert!(counts.iter().all(|(_, n)| *n == 1), "{counts:?}");
        // Copying the other way is refused.
        assert!(matches!(
            target.begin_copy_into(&source).await,
            Err(Error::InvalidInput(_))
        ));
    }
}
