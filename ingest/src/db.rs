//! The two databases zhiku runs on, SQLite (the default) and PostgreSQL, behind one pool
//! type, one transaction type and one macro, [`on_db!`](crate::on_db).
//!
//! Why a small backend enum and not `sqlx::Any`: `Any` decodes only the values it has
//! kinds for, strictly — a SQLite `INTEGER` flag cannot be read as `bool`, our
//! `#[derive(sqlx::Type)]` enums (job and message statuses) have no `Any` impls, and
//! SQLite's connection settings (WAL, busy timeout, foreign keys) would have to be set by
//! hand after connecting. With the enum each statement runs on the native driver, so a
//! row type decodes exactly as it does on SQLite today, and what differs between the two
//! dialects stays in a few named places:
//!
//! - placeholders: statements are written once, in SQLite's `?` / `?N` style, and
//!   [`postgres_sql`] rewrites them to `$N` for PostgreSQL (here, nowhere else);
//! - timestamps: the PostgreSQL schema defines `strftime(format, 'now'[, modifier])` for
//!   the one format zhiku uses (`migrations/postgres/0001_knowledge.sql`), so the same
//!   `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')` text runs on both;
//! - flags are `BOOLEAN` on PostgreSQL and `INTEGER` 0/1 on SQLite: statements compare them
//!   with `TRUE`/`FALSE`, which both read;
//! - what has no common text (the write lock a transaction takes, `VACUUM INTO`, the
//!   queue's `FOR UPDATE SKIP LOCKED`) asks [`Pool::backend`] and says why beside it.

use std::borrow::Cow;

use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::Result;

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file in the data directory (the default).
    Sqlite,
    /// PostgreSQL, at a `postgres://` url.
    Postgres,
}

impl Backend {
    /// The name people know it by.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// What a `SELECT` in a write transaction adds to lock the rows it reads until the
    /// transaction ends: ` FOR UPDATE` on PostgreSQL, where transactions write at once and
    /// a read-then-write (the next version number of a bot) would race without it;
    /// nothing on SQLite, whose [`Pool::begin_write`] already holds the one write lock and
    /// which has no such clause.
    pub fn row_lock(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// A connection pool on one of the two backends.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

impl Pool {
    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Start a write transaction. SQLite: `BEGIN IMMEDIATE` takes the write lock up front,
    /// because a deferred transaction that reads first and writes later fails with
    /// "database is locked" (SQLITE_BUSY_SNAPSHOT) when another connection committed in
    /// between, which two ingestion workers make likely. PostgreSQL locks rows as they are
    /// written, so a plain `BEGIN` (read committed) is what it needs.
    pub async fn begin_write(&self) -> Result<Tx> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// The database's name and version, e.g. `SQLite 3.46.0` or `PostgreSQL 15.10`.
    pub async fn version(&self) -> Result<String> {
        let (version,): (String,) = match self {
            Pool::Sqlite(p) => {
                sqlx::query_as("SELECT sqlite_version()")
                    .fetch_one(p)
                    .await?
            }
            Pool::Postgres(p) => sqlx::query_as("SHOW server_version").fetch_one(p).await?,
        };
        Ok(format!("{} {version}", self.backend().name()))
    }

    /// Close the pool, waiting for its connections to finish.
    pub async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// A write transaction on one of the two backends ([`Pool::begin_write`]); dropped
/// without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub enum Tx {
    /// SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Commit.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// One of two values, by backend: what [`on_db!`](crate::on_db) matches on.
#[derive(Debug)]
pub enum Either<S, P> {
    /// The SQLite one.
    Sqlite(S),
    /// The PostgreSQL one.
    Postgres(P),
}

/// Something a statement can run on: a pool or an open transaction.
pub trait Executes {
    /// The SQLite executor.
    type S;
    /// The PostgreSQL executor.
    type P;
    /// The executor of the backend in use.
    fn executor(self) -> Either<Self::S, Self::P>;
}

impl<'a> Executes for &'a Pool {
    type S = &'a SqlitePool;
    type P = &'a PgPool;
    fn executor(self) -> Either<Self::S, Self::P> {
        match self {
            Pool::Sqlite(p) => Either::Sqlite(p),
            Pool::Postgres(p) => Either::Postgres(p),
        }
    }
}

impl<'a> Executes for &'a mut Tx {
    type S = &'a mut SqliteConnection;
    type P = &'a mut PgConnection;
    fn executor(self) -> Either<Self::S, Self::P> {
        match self {
            Tx::Sqlite(t) => Either::Sqlite(&mut **t),
            Tx::Postgres(t) => Either::Postgres(&mut **t),
        }
    }
}

/// Run one statement on whichever backend `$on` (a `&Pool` or `&mut Tx`) is:
/// `on_db!(&self.pool, sql, |e, q| sqlx::query(q).bind(x).execute(e).await)`. The body is
/// compiled once per backend, with `e` that backend's executor and `q` the statement's text
/// in its dialect (`sql` as written for SQLite, or rewritten by [`postgres_sql`]). The body
/// must give the same type on both (e.g. `rows_affected()`, not the query result itself).
#[macro_export]
macro_rules! on_db {
    ($on:expr, $sql:expr, |$e:ident, $q:ident| $body:expr) => {
        match $crate::db::Executes::executor($on) {
            $crate::db::Either::Sqlite($e) => {
                let $q: &str = &$sql;
                $body
            }
            $crate::db::Either::Postgres($e) => {
                let written = &$sql;
                let text = $crate::db::postgres_sql(written);
                let $q: &str = &text;
                $body
            }
        }
    };
}

/// A statement written for SQLite, in PostgreSQL's placeholder style: `?` becomes `$N` (N
/// counting the bare `?`s, as SQLite does), `?N` becomes `$N`. Quoted strings and
/// identifiers are left as they are, so a `?` inside `'…'` stays text.
pub fn postgres_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 1usize;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    // SQLite numbers a bare `?` after `?N` as N + 1.
                    next = digits
                        .parse::<usize>()
                        .map_or(next, |n| n.max(next - 1) + 1);
                    out.push_str(&digits);
                }
            }
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::postgres_sql;

    #[test]
    fn placeholders_become_numbered() {
        assert_eq!(
            postgres_sql("UPDATE t SET a = ?, b = ? WHERE c = ?"),
            "UPDATE t SET a = $1, b = $2 WHERE c = $3"
        );
        assert_eq!(
            postgres_sql("SELECT * FROM t WHERE (?1 IS NULL OR s = ?1) LIMIT ?2"),
            "SELECT * FROM t WHERE ($1 IS NULL OR s = $1) LIMIT $2"
        );
        // A question mark inside a string is text.
        assert_eq!(
            postgres_sql("SELECT 'why?' || x FROM t WHERE y = ?"),
            "SELECT 'why?' || x FROM t WHERE y = $1"
        );
        assert_eq!(postgres_sql("SELECT 1"), "SELECT 1");
    }
}
