//! The `document_table` table: spreadsheets kept as typed tables for the `table_query`
//! tool (see `ingest::tables`). Written with a document's chunks, in their transaction.

use sqlx::FromRow;

use super::{Store, Tx};
use crate::error::{Error, Result};
use ingest::on_db;
use ingest::tables::{Column, Table};

/// A table without its rows: what the tool tells the model, and what says whether a copy
/// loaded earlier is still current.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// New on every write of the document's tables.
    pub table_id: String,
    /// Its document.
    pub document_id: String,
    /// The document's name.
    pub document_name: String,
    /// An SQL identifier, unique within its document only.
    pub name: String,
    /// The sheet's name, or the file's.
    pub source: String,
    /// Title lines above the header.
    pub title: Option<String>,
    /// The columns.
    pub columns: Vec<Column>,
    /// How many rows.
    pub row_count: i64,
}

#[derive(FromRow)]
struct InfoRow {
    table_id: String,
    document_id: String,
    document_name: String,
    name: String,
    source: String,
    title: Option<String>,
    columns_json: String,
    row_count: i64,
}

impl Store {
    /// Replace a document's tables by `tables`, in the transaction that stores its chunks.
    pub(super) async fn write_document_tables(
        tx: &mut Tx,
        kb_id: &str,
        document_id: &str,
        tables: &[Table],
    ) -> Result<()> {
        on_db!(
            &mut *tx,
            "DELETE FROM document_table WHERE document_id = ?",
            |e, q| sqlx::query(q)
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        for (position, table) in tables.iter().enumerate() {
            let columns = serde_json::to_string(&table.columns).map_err(json_error)?;
            let rows = serde_json::to_string(&table.rows).map_err(json_error)?;
            let table_id = uuid::Uuid::new_v4().to_string();
            on_db!(
                &mut *tx,
                "INSERT INTO document_table (table_id, document_id, kb_id, position, name, source, columns_json, rows_json, row_count, title)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                |e, q| sqlx::query(q)
                    .bind(&table_id)
                    .bind(document_id)
                    .bind(kb_id)
                    .bind(position as i64)
                    .bind(&table.name)
                    .bind(&table.source)
                    .bind(&columns)
                    .bind(&rows)
                    .bind(table.rows.len() as i64)
                    .bind(&table.title)
                    .execute(e)
                    .await
                    .map(|r| r.rows_affected())
            )?;
        }
        Ok(())
    }

    /// The tables of these KBs' indexed, enabled documents, in upload order (then the
    /// order of their sheets): what a bot over these KBs may query.
    pub async fn tables_of_kbs(&self, kb_ids: &[String]) -> Result<Vec<TableInfo>> {
        if kb_ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; kb_ids.len()].join(",");
        let sql = format!(
            "SELECT t.table_id, t.document_id, d.name AS document_name, t.name, t.source, t.title, t.columns_json, t.row_count
             FROM document_table t JOIN document d ON d.document_id = t.document_id
             WHERE t.kb_id IN ({marks}) AND d.is_enabled = TRUE AND d.status = 'indexed'
             ORDER BY d.created_at, d.document_id, t.position"
        );
        let rows: Vec<InfoRow> = on_db!(&self.pool, sql, |e, q| {
            let mut query = sqlx::query_as(q);
            for kb in kb_ids {
                query = query.bind(kb);
            }
            query.fetch_all(e).await
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(TableInfo {
                    columns: serde_json::from_str(&r.columns_json).map_err(json_error)?,
                    table_id: r.table_id,
                    document_id: r.document_id,
                    document_name: r.document_name,
                    name: r.name,
                    source: r.source,
                    title: r.title,
                    row_count: r.row_count,
                })
            })
            .collect()
    }

    /// A table's rows (one JSON array of values per row), by its id.
    pub async fn table_rows(&self, table_id: &str) -> Result<Vec<Vec<serde_json::Value>>> {
        let row: Option<(String,)> = on_db!(
            &self.pool,
            "SELECT rows_json FROM document_table WHERE table_id = ?",
            |e, q| sqlx::query_as(q).bind(table_id).fetch_optional(e).await
        )?;
        let (rows,) = row.ok_or_else(|| {
            Error::not_found(format!(
                "table '{table_id}' (its document was re-read or deleted)"
            ))
        })?;
        serde_json::from_str(&rows).map_err(json_error)
    }
}

/// A stored table that does not read back (or write) as JSON: not the caller's fault.
fn json_error(e: serde_json::Error) -> Error {
    Error::Internal(format!("a stored table's JSON: {e}"))
}
