//! Re-embedding a KB with another model, staged so it is all or nothing.
//!
//! New vectors go to `chunk_vector_staging` page by page; [`Store::swap_in_staged_vectors`]
//! moves them into `chunk` and switches the KB's model in one transaction. Until then the
//! KB is whole on its old model, and a re-run embeds only what is not staged yet.

use super::{Store, Tx, vector_to_blob};
use crate::error::{Error, Result};
use ingest::on_db;

/// A chunk that still needs a vector from the new model.
#[derive(Debug, sqlx::FromRow)]
pub struct UnstagedChunk {
    /// Id.
    pub chunk_id: i64,
    /// Text to embed.
    pub text: String,
}

/// Where a re-embedding of one KB stands.
#[derive(Debug, Clone, Copy)]
pub struct StagingProgress {
    /// Chunks that need a vector (every chunk not deleted, enabled or not: a disabled chunk
    /// can be enabled again and must then match the KB's model).
    pub chunks: i64,
    /// Of those, already staged for the model.
    pub staged: i64,
}

impl Store {
    /// Forget vectors staged for this KB by any other model (an abandoned earlier attempt),
    /// and say how far the staging for `model` got.
    pub async fn prepare_staging(&self, kb_id: &str, model: &str) -> Result<StagingProgress> {
        on_db!(
            &self.pool,
            "DELETE FROM chunk_vector_staging WHERE kb_id = ? AND model != ?",
            |e, q| sqlx::query(q)
                .bind(kb_id)
                .bind(model)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        let (chunks, staged): (i64, i64) = on_db!(
            &self.pool,
            "SELECT COUNT(*), COUNT(s.chunk_id)
               FROM chunk c LEFT JOIN chunk_vector_staging s
                 ON s.chunk_id = c.chunk_id AND s.model = ?
              WHERE c.kb_id = ? AND c.is_deleted = FALSE",
            |e, q| sqlx::query_as(q).bind(model).bind(kb_id).fetch_one(e).await
        )?;
        Ok(StagingProgress { chunks, staged })
    }

    /// Chunks of a KB with no vector staged for `model`, by id after `after_chunk_id`.
    pub async fn unstaged_chunks_page(
        &self,
        kb_id: &str,
        model: &str,
        after_chunk_id: i64,
        limit: i64,
    ) -> Result<Vec<UnstagedChunk>> {
        Ok(on_db!(
            &self.pool,
            "SELECT c.chunk_id, c.text FROM chunk c
              WHERE c.kb_id = ? AND c.is_deleted = FALSE AND c.chunk_id > ?
                AND NOT EXISTS (SELECT 1 FROM chunk_vector_staging s
                                 WHERE s.chunk_id = c.chunk_id AND s.model = ?)
              ORDER BY c.chunk_id LIMIT ?",
            |e, q| sqlx::query_as(q)
                .bind(kb_id)
                .bind(after_chunk_id)
                .bind(model)
                .bind(limit)
                .fetch_all(e)
                .await
        )?)
    }

    /// Stage new vectors (one transaction per page).
    pub async fn stage_vectors(
        &self,
        kb_id: &str,
        model: &str,
        vectors: &[(i64, Vec<f32>)],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (chunk_id, v) in vectors {
            on_db!(&mut tx, "INSERT INTO chunk_vector_staging (chunk_id, kb_id, model, embedding)
                 VALUES (?, ?, ?, ?)
                 ON CONFLICT (chunk_id) DO UPDATE
                 SET kb_id = excluded.kb_id, model = excluded.model, embedding = excluded.embedding", |e, q| sqlx::query(q).bind(chunk_id).bind(kb_id).bind(model).bind(vector_to_blob(v)).execute(e).await.map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Move every staged vector into its chunk (each with a new seq, so the indexes replace
    /// them on catch-up) and switch the KB to `model`, in one transaction. Refuses when a
    /// chunk has nothing staged, rather than leave it on the old model. Returns the count.
    pub async fn swap_in_staged_vectors(
        &self,
        kb_id: &str,
        model: &str,
        dims: i64,
    ) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<(i64, Option<i64>)> = on_db!(
            &mut tx,
            "SELECT c.chunk_id, s.chunk_id
               FROM chunk c LEFT JOIN chunk_vector_staging s
                 ON s.chunk_id = c.chunk_id AND s.model = ?
              WHERE c.kb_id = ? AND c.is_deleted = FALSE ORDER BY c.chunk_id",
            |e, q| sqlx::query_as(q).bind(model).bind(kb_id).fetch_all(e).await
        )?;
        let missing = ids.iter().filter(|(_, s)| s.is_none()).count();
        if missing > 0 {
            return Err(Error::Conflict(format!(
                "{missing} chunks have no vector from {model} yet; run the re-embedding again"
            )));
        }
        let first = Store::reserve_seqs(&mut tx, ids.len() as i64).await?;
        for (i, (chunk_id, _)) in ids.iter().enumerate() {
            Store::take_staged_vector(&mut tx, *chunk_id, first + i as i64).await?;
        }
        Store::set_kb_model(&mut tx, kb_id, model, dims).await?;
        Store::clear_staging(&mut tx, kb_id).await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    /// Drop a KB's staged vectors inside the caller's transaction (swapped in, or the KB
    /// is being deleted).
    pub(crate) async fn clear_staging(conn: &mut Tx, kb_id: &str) -> Result<()> {
        on_db!(
            &mut *conn,
            "DELETE FROM chunk_vector_staging WHERE kb_id = ?",
            |e, q| sqlx::query(q)
                .bind(kb_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }
}
