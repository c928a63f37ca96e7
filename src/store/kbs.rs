//! The `kb` table.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, Tx};
use crate::error::{Error, Result};
use ingest::on_db;

/// A knowledge base row, with document and chunk counts.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct KbRow {
    /// Id (UUID).
    pub kb_id: String,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Default split settings (JSON).
    pub split_json: String,
    /// Default clean settings (JSON).
    pub clean_json: String,
    /// Tesseract languages for OCR (`chi_tra+eng`); `None` for the default.
    pub ocr_languages: Option<String>,
    /// Embedding model id.
    pub embedding_model: String,
    /// Embedding dimensions.
    pub embedding_dims: i64,
    /// How often its web pages are re-synced by the server, in minutes (`None`: never).
    pub web_sync_interval_minutes: Option<i64>,
    /// The highest seq whose tombstones a rebuild removed ([`Store::purge_tombstones`]).
    pub reindexed_through_seq: i64,
    /// Documents in it (only from [`Store::kb_with_counts`] and [`Store::list_kbs`]).
    pub document_count: Option<i64>,
    /// Chunks in it, not deleted (same).
    pub chunk_count: Option<i64>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Counting is O(chunks); the hot paths (search, uploads) resolve a KB without it.
const SELECT_PLAIN: &str = "SELECT k.*, NULL AS document_count, NULL AS chunk_count FROM kb k";
const SELECT_WITH_COUNTS: &str = "SELECT k.*,
    (SELECT COUNT(*) FROM document d WHERE d.kb_id = k.kb_id) AS document_count,
    (SELECT COUNT(*) FROM chunk c WHERE c.kb_id = k.kb_id AND c.is_deleted = FALSE) AS chunk_count
  FROM kb k";

/// Fields of a new KB.
#[derive(Debug, Clone)]
pub struct NewKb<'a> {
    /// Name.
    pub name: &'a str,
    /// Description.
    pub description: &'a str,
    /// Split settings JSON.
    pub split_json: &'a str,
    /// Clean settings JSON.
    pub clean_json: &'a str,
    /// OCR languages (`None`: the default).
    pub ocr_languages: Option<&'a str>,
    /// Embedding model id.
    pub embedding_model: &'a str,
    /// Dimensions.
    pub embedding_dims: i64,
}

fn name_taken(e: sqlx::Error, name: &str) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::Conflict(format!("a knowledge base named '{name}' already exists"))
        }
        _ => e.into(),
    }
}

impl Store {
    /// Insert a KB; a taken name is a conflict.
    pub async fn insert_kb(&self, kb: &NewKb<'_>) -> Result<KbRow> {
        let id = uuid::Uuid::new_v4().to_string();
        on_db!(
            &self.pool,
            "INSERT INTO kb (kb_id, name, description, split_json, clean_json, ocr_languages,
                             embedding_model, embedding_dims)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            |e, q| sqlx::query(q)
                .bind(&id)
                .bind(kb.name)
                .bind(kb.description)
                .bind(kb.split_json)
                .bind(kb.clean_json)
                .bind(kb.ocr_languages)
                .bind(kb.embedding_model)
                .bind(kb.embedding_dims)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )
        .map_err(|e| name_taken(e, kb.name))?;
        self.kb_with_counts(&id).await
    }

    /// All KBs, by name.
    pub async fn list_kbs(&self) -> Result<Vec<KbRow>> {
        Ok(on_db!(
            &self.pool,
            format!("{SELECT_WITH_COUNTS} ORDER BY k.name"),
            |e, q| sqlx::query_as(q).fetch_all(e).await
        )?)
    }

    /// A KB by id or by name, without counts.
    pub async fn kb(&self, id_or_name: &str) -> Result<KbRow> {
        self.kb_query(SELECT_PLAIN, id_or_name).await
    }

    /// A KB by id or by name, with its document and chunk counts.
    pub async fn kb_with_counts(&self, id_or_name: &str) -> Result<KbRow> {
        self.kb_query(SELECT_WITH_COUNTS, id_or_name).await
    }

    async fn kb_query(&self, select: &str, id_or_name: &str) -> Result<KbRow> {
        on_db!(
            &self.pool,
            format!("{select} WHERE k.kb_id = ?1 OR k.name = ?1 LIMIT 1"),
            |e, q| sqlx::query_as(q).bind(id_or_name).fetch_optional(e).await
        )?
        .ok_or_else(|| Error::not_found(format!("knowledge base '{id_or_name}'")))
    }

    /// Update the editable fields of a KB (None = unchanged).
    pub async fn update_kb(
        &self,
        kb_id: &str,
        name: Option<&str>,
        description: Option<&str>,
        split_json: Option<&str>,
        clean_json: Option<&str>,
        ocr_languages: Option<&str>,
    ) -> Result<KbRow> {
        on_db!(
            &self.pool,
            "UPDATE kb SET name = COALESCE(?, name), description = COALESCE(?, description),
                split_json = COALESCE(?, split_json), clean_json = COALESCE(?, clean_json),
                ocr_languages = COALESCE(?, ocr_languages),
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE kb_id = ?",
            |e, q| sqlx::query(q)
                .bind(name)
                .bind(description)
                .bind(split_json)
                .bind(clean_json)
                .bind(ocr_languages)
                .bind(kb_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )
        .map_err(|e| name_taken(e, name.unwrap_or_default()))?;
        self.kb_with_counts(kb_id).await
    }

    /// Delete a KB with its documents, chunks and jobs; returns the stored file paths.
    /// Each table's owner removes its rows, all in one transaction.
    pub async fn delete_kb(&self, kb_id: &str) -> Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let files = Store::kb_file_paths(&mut tx, kb_id).await?;
        ingest::jobs::JobQueue::cancel_for_kb(&mut tx, kb_id).await?;
        Store::delete_kb_chunks(&mut tx, kb_id).await?;
        Store::clear_staging(&mut tx, kb_id).await?;
        on_db!(&mut tx, "DELETE FROM kb WHERE kb_id = ?", |e, q| {
            sqlx::query(q)
                .bind(kb_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(files)
    }

    /// Set (or with `None` turn off) how often the server re-syncs a KB's web pages.
    pub async fn set_kb_web_sync(&self, kb_id: &str, interval_minutes: Option<i64>) -> Result<()> {
        on_db!(
            &self.pool,
            "UPDATE kb SET web_sync_interval_minutes = ?, updated_at = ? WHERE kb_id = ?",
            |e, q| sqlx::query(q)
                .bind(interval_minutes)
                .bind(super::documents::timestamp(chrono::Utc::now()))
                .bind(kb_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// The KBs whose web pages are re-synced on a schedule, with their intervals in minutes.
    pub async fn kbs_with_web_sync(&self) -> Result<Vec<(String, i64)>> {
        Ok(on_db!(
            &self.pool,
            "SELECT kb_id, web_sync_interval_minutes FROM kb
             WHERE web_sync_interval_minutes IS NOT NULL ORDER BY name",
            |e, q| sqlx::query_as(q).fetch_all(e).await
        )?)
    }

    /// Record that a rebuild removed this KB's tombstones up to `through_seq`, inside the
    /// transaction that removes them (never lowered).
    pub(crate) async fn record_reindex(conn: &mut Tx, kb_id: &str, through_seq: i64) -> Result<()> {
        on_db!(
            &mut *conn,
            "UPDATE kb SET reindexed_through_seq = ? WHERE kb_id = ? AND reindexed_through_seq < ?",
            |e, q| sqlx::query(q)
                .bind(through_seq)
                .bind(kb_id)
                .bind(through_seq)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// Record the model a KB's vectors now come from, inside the re-embedding's swap.
    pub(crate) async fn set_kb_model(
        conn: &mut Tx,
        kb_id: &str,
        model: &str,
        dims: i64,
    ) -> Result<()> {
        on_db!(
            &mut *conn,
            "UPDATE kb SET embedding_model = ?, embedding_dims = ? WHERE kb_id = ?",
            |e, q| sqlx::query(q)
                .bind(model)
                .bind(dims)
                .bind(kb_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }
}
