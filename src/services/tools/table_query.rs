//! The built-in `table_query` tool: the spreadsheets of a bot's knowledge bases as SQL
//! tables, which the model queries with one read-only SELECT to count, filter, sum and
//! average exactly — where passages would give it ten rows of thousands.
//!
//! The tables live in the database as JSON (`store::tables`); a node loads those of a
//! bot's knowledge bases into an in-memory SQLite database when it first needs them, and
//! keeps the last few such databases while their tables' ids are current (a document
//! re-read or deleted gives new ids, and so a new copy). In-memory SQLite is also what
//! makes the query safe to run: a connection of its own, `query_only`, no ATTACH, one
//! statement that must be a read-only SELECT, a time limit through SQLite's progress
//! handler, and at most `tools.table_max_rows` rows read back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingest::tables::{ColumnNote, ColumnType, identifiers};
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::tables::TableInfo;

/// How many loaded databases a node keeps (one per set of tables queried lately).
const KEPT_DATABASES: usize = 4;
/// Distinct values of a text column listed for the model, when there are at most this
/// many (the values it must match exactly: 华东, not 华东区).
const LISTED_VALUES: usize = 12;
/// Most characters of the tables' description in the tool's description: every one is
/// prompt read before each answer.
const MAX_DESCRIPTION_CHARS: usize = 2_400;

/// A table as loaded: its stored description and its name in this database (unique
/// across the loaded tables).
#[derive(Debug, Clone)]
pub struct LoadedTable {
    /// What the store holds of it.
    pub info: TableInfo,
    /// Its name in SQL here.
    pub sql_name: String,
}

/// The tables of a set of knowledge bases in one in-memory SQLite database.
struct Loaded {
    key: String,
    tables: Vec<LoadedTable>,
    description: String,
    connection: Mutex<rusqlite::Connection>,
}

/// What a query gave: the text for the model and the tables it read.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The rows as a small table (or what went wrong).
    pub text: String,
    /// The tables the query names.
    pub tables: Vec<LoadedTable>,
}

/// Loads tables and runs queries on them, under `[tools]`' table limits.
pub struct TableQueries {
    store: Store,
    max_rows: usize,
    timeout: Duration,
    loaded: tokio::sync::Mutex<VecDeque<Arc<Loaded>>>,
}

impl std::fmt::Debug for TableQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableQueries")
            .field("max_rows", &self.max_rows)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TableQueries {
    /// Queries over `store`'s tables, returning at most `max_rows` rows within `timeout_ms`.
    pub fn new(store: Store, max_rows: usize, timeout_ms: u64) -> Self {
        Self {
            store,
            max_rows,
            timeout: Duration::from_millis(timeout_ms),
            loaded: tokio::sync::Mutex::new(VecDeque::new()),
        }
    }

    /// What the model is told of the tables of `kb_ids` (names, rows, columns with types
    /// and, for a text column with few values, the values), and the documents they come
    /// from; `None` when they have none.
    pub async fn describe(&self, kb_ids: &[String]) -> Result<Option<(String, Vec<String>)>> {
        Ok(self.database(kb_ids).await?.map(|loaded| {
            let mut documents: Vec<String> = loaded
                .tables
                .iter()
                .map(|t| t.info.document_id.clone())
                .collect();
            documents.dedup();
            (loaded.description.clone(), documents)
        }))
    }

    /// Run the model's `{"sql": …}` on the tables of `kb_ids`.
    pub async fn run(&self, kb_ids: &[String], arguments: &Value) -> Result<QueryResult> {
        let sql = arguments
            .get("sql")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::InvalidInput(
                    "give one SELECT statement as {\"sql\": \"SELECT COUNT(*) FROM …\"}".into(),
                )
            })?
            .to_string();
        let Some(loaded) = self.database(kb_ids).await? else {
            return Err(Error::InvalidInput(
                "the knowledge bases of this bot hold no tables (spreadsheets or CSV files)".into(),
            ));
        };
        let (max_rows, timeout) = (self.max_rows, self.timeout);
        let worker = loaded.clone();
        let tables = named_tables(&loaded.tables, &sql);
        let text = tokio::task::spawn_blocking(move || {
            let connection = worker
                .connection
                .lock()
                .map_err(|_| Error::Internal("a table query panicked earlier".into()))?;
            query(&connection, &sql, max_rows, timeout)
        })
        .await
        .map_err(|e| Error::Internal(format!("table query: {e}")))??;
        Ok(QueryResult { text, tables })
    }

    /// The loaded database of these KBs' tables, loading it where the tables changed.
    async fn database(&self, kb_ids: &[String]) -> Result<Option<Arc<Loaded>>> {
        let infos = self.store.tables_of_kbs(kb_ids).await?;
        if infos.is_empty() {
            return Ok(None);
        }
        let key = infos
            .iter()
            .map(|t| t.table_id.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut kept = self.loaded.lock().await;
        if let Some(i) = kept.iter().position(|l| l.key == key) {
            let loaded = kept
                .remove(i)
                .ok_or_else(|| Error::Internal("cache".into()))?;
            kept.push_front(loaded.clone());
            return Ok(Some(loaded));
        }
        let mut rows = Vec::with_capacity(infos.len());
        for info in &infos {
            rows.push(self.store.table_rows(&info.table_id).await?);
        }
        let started = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || load(key, infos, rows))
            .await
            .map_err(|e| Error::Internal(format!("loading tables: {e}")))??;
        tracing::info!(
            tables = loaded.tables.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tables loaded for queries"
        );
        let loaded = Arc::new(loaded);
        kept.push_front(loaded.clone());
        kept.truncate(KEPT_DATABASES);
        Ok(Some(loaded))
    }
}

/// Build the in-memory database of `infos` with their `rows`.
fn load(key: String, infos: Vec<TableInfo>, rows: Vec<Vec<Vec<Value>>>) -> Result<Loaded> {
    let mut connection = rusqlite::Connection::open_in_memory().map_err(sql_error)?;
    let names = identifiers(infos.iter().map(|t| t.name.as_str()), "表");
    let tables: Vec<LoadedTable> = infos
        .into_iter()
        .zip(names)
        .map(|(info, sql_name)| LoadedTable { info, sql_name })
        .collect();
    let transaction = connection.transaction().map_err(sql_error)?;
    for (table, rows) in tables.iter().zip(&rows) {
        let columns: Vec<String> = table
            .info
            .columns
            .iter()
            .map(|c| format!("{} {}", quoted(&c.name), c.kind.sql()))
            .collect();
        transaction
            .execute_batch(&format!(
                "CREATE TABLE {} ({})",
                quoted(&table.sql_name),
                columns.join(", ")
            ))
            .map_err(sql_error)?;
        let marks = vec!["?"; table.info.columns.len()].join(", ");
        let mut insert = transaction
            .prepare(&format!(
                "INSERT INTO {} VALUES ({marks})",
                quoted(&table.sql_name)
            ))
            .map_err(sql_error)?;
        for row in rows {
            let values = (0..table.info.columns.len()).map(|i| sql_value(row.get(i)));
            insert
                .execute(rusqlite::params_from_iter(values))
                .map_err(sql_error)?;
        }
    }
    transaction.commit().map_err(sql_error)?;
    let description = describe(&connection, &tables)?;
    // Only now: from here on the connection is for the model's queries.
    connection
        .pragma_update(None, "query_only", true)
        .map_err(sql_error)?;
    connection.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0);
    Ok(Loaded {
        key,
        tables,
        description,
        connection: Mutex::new(connection),
    })
}

/// A stored value as SQL.
fn sql_value(value: Option<&Value>) -> SqlValue {
    match value {
        None | Some(Value::Null) => SqlValue::Null,
        Some(Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => n.as_f64().map_or(SqlValue::Null, SqlValue::Real),
        },
        Some(Value::String(s)) => SqlValue::Text(s.clone()),
        Some(other) => SqlValue::Text(other.to_string()),
    }
}

/// An identifier in double quotes.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tables as the model reads them: a `CREATE TABLE` per table, as text-to-SQL
/// prompts give a schema (coder models know the form; given the tables in prose, the
/// 1.5B once wrote the prose as the table's name), with a comment saying where it comes
/// from and, per column, what its values are.
fn describe(connection: &rusqlite::Connection, tables: &[LoadedTable]) -> Result<String> {
    let mut out = String::new();
    for (shown, table) in tables.iter().enumerate() {
        let mut origin = format!(
            "{} 行，来自 {}",
            table.info.row_count, table.info.document_name
        );
        if !table.info.document_name.starts_with(&table.info.source) {
            origin.push_str(&format!(" 的工作表「{}」", table.info.source));
        }
        if let Some(title) = &table.info.title {
            origin.push_str(&format!("，标题「{title}」"));
        }
        let mut columns = Vec::new();
        for column in &table.info.columns {
            let mut line = format!("{} {}", column.name, column.kind.sql());
            match column.note {
                Some(ColumnNote::Date) => line.push_str(" /* 日期 YYYY-MM-DD */"),
                Some(ColumnNote::Percent) => line.push_str(" /* 百分数：12.5 即 12.5% */"),
                None => {}
            }
            if column.kind == ColumnType::Text && column.note.is_none() {
                let values = distinct_values(connection, &table.sql_name, &column.name)?;
                if !values.is_empty() {
                    line.push_str(&format!(" /* 取值：{} */", values.join("、")));
                }
            }
            columns.push(line);
        }
        let text = format!(
            "CREATE TABLE {} ({}); -- {origin}\n",
            table.sql_name,
            columns.join(", ")
        );
        if out.chars().count() + text.chars().count() > MAX_DESCRIPTION_CHARS && shown > 0 {
            out.push_str(&format!("-- 另有 {} 张表未列出\n", tables.len() - shown));
            break;
        }
        out.push_str(&text);
    }
    Ok(out)
}

/// A text column's values, when it has at most [`LISTED_VALUES`] (and they are short).
fn distinct_values(
    connection: &rusqlite::Connection,
    table: &str,
    column: &str,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL LIMIT {}",
        LISTED_VALUES + 1,
        c = quoted(column),
        t = quoted(table)
    );
    let mut statement = connection.prepare(&sql).map_err(sql_error)?;
    let values: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(sql_error)?
        .collect::<std::result::Result<_, _>>()
        .map_err(sql_error)?;
    let short = values.iter().all(|v| v.chars().count() <= 16);
    if values.len() > LISTED_VALUES || !short {
        return Ok(Vec::new());
    }
    Ok(values)
}

/// Run one read-only statement, its rows as text (a header line, then `a | b` lines).
fn query(
    connection: &rusqlite::Connection,
    sql: &str,
    max_rows: usize,
    timeout: Duration,
) -> Result<String> {
    let sql = sql.trim().trim_end_matches(';').trim();
    let opening = sql
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or_default()
        .to_ascii_uppercase();
    if opening != "SELECT" && opening != "WITH" {
        return Err(Error::InvalidInput(format!(
            "only one SELECT statement is allowed, not {opening}"
        )));
    }
    // SQLite's own reading of the text: one statement, and nothing after it.
    // The model's SQL refused: an error it can put right (unlike `sql_error`, ours).
    let refused = |e: rusqlite::Error| Error::InvalidInput(format!("SQL error: {e}"));
    let mut batch = rusqlite::Batch::new(connection, sql);
    let mut statement = batch
        .next()
        .map_err(refused)?
        .ok_or_else(|| Error::InvalidInput("the SQL holds no statement".into()))?;
    if batch.next().map_err(refused)?.is_some() {
        return Err(Error::InvalidInput("only one statement is allowed".into()));
    }
    if !statement.readonly() {
        return Err(Error::InvalidInput(
            "only a read-only SELECT is allowed".into(),
        ));
    }
    let deadline = Instant::now() + timeout;
    connection.progress_handler(10_000, Some(move || Instant::now() > deadline));
    let names: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let read = (|| -> rusqlite::Result<(Vec<String>, bool)> {
        let mut rows = statement.query([])?;
        let mut lines = Vec::new();
        while let Some(row) = rows.next()? {
            if lines.len() == max_rows {
                return Ok((lines, true));
            }
            let cells: Vec<String> = (0..names.len())
                .map(|i| row.get_ref(i).map(cell_text))
                .collect::<rusqlite::Result<_>>()?;
            lines.push(cells.join(" | "));
        }
        Ok((lines, false))
    })();
    connection.progress_handler(0, None::<fn() -> bool>);
    let (lines, more) = read.map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            Error::InvalidInput(format!(
                "the query took longer than {} ms (tools.table_query_timeout_ms)",
                timeout.as_millis()
            ))
        }
        other => refused(other),
    })?;
    let mut out = format!("{}\n", names.join(" | "));
    if lines.is_empty() {
        out.push_str("（没有符合条件的行 no rows）");
    } else {
        out.push_str(&lines.join("\n"));
    }
    if more {
        out.push_str(&format!(
            "\n（只列出前 {max_rows} 行；要总数请用 COUNT(*)）"
        ));
    }
    Ok(out)
}

/// A cell of a result as text: numbers as a person writes them, NULL as empty.
fn cell_text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => super::builtin::number(f),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

/// The tables `sql` names (as a word: `订单` is not named by `订单明细`).
fn named_tables(tables: &[LoadedTable], sql: &str) -> Vec<LoadedTable> {
    let lowered = sql.to_lowercase();
    tables
        .iter()
        .filter(|t| {
            let name = t.sql_name.to_lowercase();
            lowered.match_indices(&name).any(|(at, _)| {
                let before = lowered[..at].chars().next_back();
                let after = lowered[at + name.len()..].chars().next();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                !word(before) && !word(after)
            })
        })
        .cloned()
        .collect()
}

fn sql_error(e: rusqlite::Error) -> Error {
    Error::Internal(format!("table database: {e}"))
}
