//! The `chunk` table: writes that replace a document's chunks, edits, and the reads the
//! indexes and the search service need.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::FromRow;

use super::{Backend, Store, Tx, blob_to_vector, vector_to_blob};
use crate::error::{Error, Result};
use ingest::jobs::JobQueue;
use ingest::on_db;

/// A chunk as users see it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ChunkRow {
    /// Id.
    pub chunk_id: i64,
    /// KB.
    pub kb_id: String,
    /// Document.
    pub document_id: String,
    /// Position in the document.
    pub ordinal: i64,
    /// Page (paged kinds).
    pub page: Option<i64>,
    /// Start offset in the page/section text.
    pub start_byte: i64,
    /// End offset.
    pub end_byte: i64,
    /// Text.
    pub text: String,
    /// Embedding tokens.
    pub token_count: i64,
    /// Enabled by the user.
    pub is_enabled: bool,
    /// Change sequence.
    pub seq: i64,
    /// A table's sheet and rows (`销售明细 第3–8行`).
    pub label: Option<String>,
    /// Read by OCR.
    pub is_ocr: bool,
}

/// A chunk for search results: with its document's name.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct LiveChunk {
    /// Id.
    pub chunk_id: i64,
    /// Document.
    pub document_id: String,
    /// Document name.
    pub document_name: String,
    /// The document's web address, for a page added by URL.
    pub source_url: Option<String>,
    /// Page.
    pub page: Option<i64>,
    /// Position in the document.
    pub ordinal: i64,
    /// Text.
    pub text: String,
    /// Change sequence.
    pub seq: i64,
    /// A table's sheet and rows.
    pub label: Option<String>,
    /// Read by OCR.
    pub is_ocr: bool,
}

/// A cursor over a KB's live chunks; see [`Store::live_chunk_pages`].
pub struct LiveChunkPages<'a> {
    store: &'a Store,
    kb_id: &'a str,
    after_chunk_id: i64,
    page_rows: i64,
}

impl LiveChunkPages<'_> {
    /// The next page, or `None` once every live chunk has been returned.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ChunkChange>>> {
        let rows = self
            .store
            .live_chunks_page(self.kb_id, self.after_chunk_id, self.page_rows)
            .await?;
        Ok(rows.last().map(|r| r.chunk_id).map(|last| {
            self.after_chunk_id = last;
            rows
        }))
    }
}

/// A row as the index catch-up sees it.
#[derive(Debug, Clone, FromRow)]
pub struct ChunkChange {
    /// Id.
    pub chunk_id: i64,
    /// Sequence.
    pub seq: i64,
    /// Text.
    pub text: String,
    /// Vector bytes.
    pub embedding: Vec<u8>,
    /// Whether it should be retrievable.
    pub is_live: bool,
}

impl ChunkChange {
    /// The vector.
    pub fn vector(&self) -> Vec<f32> {
        blob_to_vector(&self.embedding)
    }
}

/// A chunk to store.
#[derive(Debug, Clone)]
pub struct NewChunk<'a> {
    /// Position.
    pub ordinal: i64,
    /// Page.
    pub page: Option<i64>,
    /// Start offset.
    pub start_byte: i64,
    /// End offset.
    pub end_byte: i64,
    /// Text.
    pub text: &'a str,
    /// Tokens.
    pub token_count: i64,
    /// sha256 of text.
    pub text_sha256: &'a str,
    /// Vector.
    pub vector: &'a [f32],
    /// A table's sheet and rows.
    pub label: Option<&'a str>,
    /// Read by OCR.
    pub is_ocr: bool,
}

/// Liveness: not deleted, enabled, and its document exists and is enabled.
const LIVE: &str = "(c.is_deleted = FALSE AND c.is_enabled = TRUE AND d.is_enabled = TRUE)";

/// A `LIKE … ESCAPE '\'` pattern that finds `text` as a substring: `%`, `_` and `\` in it
/// stand for themselves. With `LOWER()` on both sides the filter ignores the case of ASCII
/// letters on SQLite and PostgreSQL alike (SQLite's `LIKE` already does, PostgreSQL's does
/// not), and PostgreSQL's default escape character (`\`, which SQLite does not have) is
/// named on both.
fn like_substring(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `SELECT columns` of the live chunks of a KB (`?` 1) among `count` ids (`?` 2…), chunk
/// ids or seqs.
fn live_among_sql(backend: Backend, columns: &str, by_seq: bool, count: usize) -> String {
    let column = if by_seq { "c.seq" } else { "c.chunk_id" };
    // `+c.kb_id` keeps SQLite from scanning the whole KB through the kb_id index
    // instead of looking the few ids up (measured: 10 ms → well under 1 ms at 8k chunks).
    // PostgreSQL has no unary plus on text, and its planner weighs the two indexes itself.
    let kb = match backend {
        Backend::Sqlite => "+c.kb_id",
        Backend::Postgres => "c.kb_id",
    };
    let marks = vec!["?"; count].join(",");
    format!(
        "SELECT {columns} FROM chunk c JOIN document d ON d.document_id = c.document_id
          WHERE {kb} = ? AND {column} IN ({marks}) AND {LIVE}"
    )
}

impl Store {
    /// Replace a document's chunks in one transaction. Earlier chunks (from an interrupted
    /// attempt — a restart, or a node whose job lease ran out — or a re-ingest) become
    /// tombstones, so re-running a job never duplicates chunks. With `held` (the queue and
    /// the job whose work this is), nothing is written unless that queue's node still
    /// holds the job, checked in the same transaction, so a node that lost its job cannot
    /// replace the chunks of the node that took it over. The caller marks the document
    /// indexed once the indexes have the chunks.
    pub async fn replace_document_chunks(
        &self,
        held: Option<(&JobQueue, i64)>,
        document_id: &str,
        kind: &str,
        page_count: Option<i64>,
        chunks: &[NewChunk<'_>],
    ) -> Result<()> {
        self.replace_document_content(held, document_id, kind, page_count, chunks, &[])
            .await
    }

    /// [`Store::replace_document_chunks`], and the document's tables (its sheets, for
    /// table queries) replaced by `tables` in the same transaction.
    pub async fn replace_document_content(
        &self,
        held: Option<(&JobQueue, i64)>,
        document_id: &str,
        kind: &str,
        page_count: Option<i64>,
        chunks: &[NewChunk<'_>],
        tables: &[ingest::tables::Table],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if let Some((queue, job_id)) = held {
            // First, so the job's row is locked before the chunks and the document, in the
            // order deleting a document takes them.
            queue.confirm_held(&mut tx, job_id).await?;
        }
        let Some(kb_id) = Store::document_kb(&mut tx, document_id).await? else {
            return Err(Error::not_found(format!(
                "document '{document_id}' (deleted while processing)"
            )));
        };
        Store::bump_document_chunks(&mut tx, document_id, true).await?;
        let first = Store::reserve_seqs(&mut tx, chunks.len() as i64).await?;
        for (i, c) in chunks.iter().enumerate() {
            on_db!(&mut tx, "INSERT INTO chunk (kb_id, document_id, ordinal, page, start_byte, end_byte, text, token_count,
                                    text_sha256, embedding, seq, label, is_ocr)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", |e, q| sqlx::query(q).bind(&kb_id).bind(document_id).bind(c.ordinal).bind(c.page).bind(c.start_byte).bind(c.end_byte).bind(c.text).bind(c.token_count).bind(c.text_sha256).bind(vector_to_blob(c.vector)).bind(first + i as i64).bind(c.label).bind(c.is_ocr).execute(e).await.map(|r| r.rows_affected()))?;
        }
        Store::set_document_chunks(&mut tx, document_id, kind, page_count, chunks.len() as i64)
            .await?;
        Store::write_document_tables(&mut tx, &kb_id, document_id, tables).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stored vectors of this KB for these text hashes.
    pub async fn vectors_by_text_sha256(
        &self,
        kb_id: &str,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>> {
        let mut out = HashMap::new();
        for batch in hashes.chunks(500) {
            let marks = vec!["?"; batch.len()].join(",");
            let sql = format!(
                "SELECT text_sha256, embedding FROM chunk WHERE kb_id = ? AND is_deleted = FALSE AND text_sha256 IN ({marks})"
            );
            let rows: Vec<(String, Vec<u8>)> = on_db!(&self.pool, sql, |e, q| {
                let mut query = sqlx::query_as(q).bind(kb_id);
                for h in batch {
                    query = query.bind(h);
                }
                query.fetch_all(e).await
            })?;
            for (h, blob) in rows {
                out.entry(h).or_insert_with(|| blob_to_vector(&blob));
            }
        }
        Ok(out)
    }

    /// A document's chunks in order, paged; `query` filters by substring.
    pub async fn list_chunks(
        &self,
        document_id: &str,
        query: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ChunkRow>, i64)> {
        let pattern = query.filter(|q| !q.is_empty()).map(like_substring);
        let rows = on_db!(&self.pool, "SELECT chunk_id, kb_id, document_id, ordinal, page, start_byte, end_byte, text, token_count,
                    is_enabled, seq, label, is_ocr
               FROM chunk WHERE document_id = ?1 AND is_deleted = FALSE AND (?2 IS NULL OR LOWER(text) LIKE LOWER(?2) ESCAPE '\\')
              ORDER BY ordinal LIMIT ?3 OFFSET ?4", |e, q| sqlx::query_as(q).bind(document_id).bind(&pattern).bind(limit).bind(offset).fetch_all(e).await)?;
        let (total,): (i64,) = on_db!(
            &self.pool,
            "SELECT COUNT(*) FROM chunk WHERE document_id = ?1 AND is_deleted = FALSE AND (?2 IS NULL OR LOWER(text) LIKE LOWER(?2) ESCAPE '\\')",
            |e, q| sqlx::query_as(q)
                .bind(document_id)
                .bind(&pattern)
                .fetch_one(e)
                .await
        )?;
        Ok((rows, total))
    }

    /// One live (not deleted) chunk of a document.
    pub async fn chunk(&self, document_id: &str, chunk_id: i64) -> Result<ChunkRow> {
        on_db!(&self.pool, "SELECT chunk_id, kb_id, document_id, ordinal, page, start_byte, end_byte, text, token_count,
                    is_enabled, seq, label, is_ocr
               FROM chunk WHERE chunk_id = ? AND document_id = ? AND is_deleted = FALSE", |e, q| sqlx::query_as(q).bind(chunk_id).bind(document_id).fetch_optional(e).await)?
        .ok_or_else(|| Error::not_found(format!("chunk {chunk_id}")))
    }

    /// Edit a chunk (new text with its vector, and/or enabled flag); it gets a new seq.
    pub async fn update_chunk(
        &self,
        chunk_id: i64,
        text: Option<(&str, i64, &str, &[f32])>,
        enabled: Option<bool>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let seq = Store::reserve_seqs(&mut tx, 1).await?;
        let (text, tokens, sha, blob) = match text {
            Some((t, n, h, v)) => (Some(t), Some(n), Some(h), Some(vector_to_blob(v))),
            None => (None, None, None, None),
        };
        on_db!(
            &mut tx,
            "UPDATE chunk SET text = COALESCE(?, text), token_count = COALESCE(?, token_count),
                text_sha256 = COALESCE(?, text_sha256), embedding = COALESCE(?, embedding),
                is_enabled = COALESCE(?, is_enabled), seq = ?,
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE chunk_id = ? AND is_deleted = FALSE",
            |e, q| sqlx::query(q)
                .bind(text)
                .bind(tokens)
                .bind(sha)
                .bind(blob)
                .bind(enabled)
                .bind(seq)
                .bind(chunk_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete one chunk (tombstone with a new seq) and update its document's count.
    pub async fn delete_chunk(&self, chunk_id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let seq = Store::reserve_seqs(&mut tx, 1).await?;
        let document: Option<(String,)> = on_db!(
            &mut tx,
            "UPDATE chunk SET is_deleted = TRUE, seq = ? WHERE chunk_id = ? RETURNING document_id",
            |e, q| sqlx::query_as(q)
                .bind(seq)
                .bind(chunk_id)
                .fetch_optional(e)
                .await
        )?;
        if let Some((document_id,)) = document {
            Store::recount_document_chunks(&mut tx, &document_id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Changes of a KB after `seq`, oldest first, at most `limit`.
    pub async fn changes_since(
        &self,
        kb_id: &str,
        seq: i64,
        limit: i64,
    ) -> Result<Vec<ChunkChange>> {
        Ok(on_db!(
            &self.pool,
            format!(
                "SELECT c.chunk_id, c.seq, c.text, c.embedding, COALESCE({LIVE}, FALSE) AS is_live
               FROM chunk c LEFT JOIN document d ON d.document_id = c.document_id
              WHERE c.kb_id = ? AND c.seq > ? ORDER BY c.seq LIMIT ?"
            ),
            |e, q| sqlx::query_as(q)
                .bind(kb_id)
                .bind(seq)
                .bind(limit)
                .fetch_all(e)
                .await
        )?)
    }

    /// Pages through a KB's live chunks in chunk id order, `page_rows` at a time, with
    /// their text and vector: rebuilds, consistency checks and the scale benchmark read a
    /// whole KB this way, so memory stays one page whatever the KB's size.
    pub fn live_chunk_pages<'a>(&'a self, kb_id: &'a str, page_rows: i64) -> LiveChunkPages<'a> {
        LiveChunkPages {
            store: self,
            kb_id,
            after_chunk_id: 0,
            page_rows,
        }
    }

    /// Live chunks of a KB after `after_chunk_id`, at most `limit`.
    async fn live_chunks_page(
        &self,
        kb_id: &str,
        after_chunk_id: i64,
        limit: i64,
    ) -> Result<Vec<ChunkChange>> {
        Ok(on_db!(
            &self.pool,
            format!(
                "SELECT c.chunk_id, c.seq, c.text, c.embedding, TRUE AS is_live
               FROM chunk c JOIN document d ON d.document_id = c.document_id
              WHERE c.kb_id = ? AND c.chunk_id > ? AND {LIVE} ORDER BY c.chunk_id LIMIT ?"
            ),
            |e, q| sqlx::query_as(q)
                .bind(kb_id)
                .bind(after_chunk_id)
                .bind(limit)
                .fetch_all(e)
                .await
        )?)
    }

    /// The highest seq of a KB's chunks (0 when it has none).
    pub async fn max_kb_seq(&self, kb_id: &str) -> Result<i64> {
        let (v,): (Option<i64>,) = on_db!(
            &self.pool,
            "SELECT MAX(seq) FROM chunk WHERE kb_id = ?",
            |e, q| sqlx::query_as(q).bind(kb_id).fetch_one(e).await
        )?;
        Ok(v.unwrap_or(0))
    }

    /// How many chunk changes (new, edited or deleted chunks) of a KB have a seq above
    /// `seq`: what indexes whose mark is `seq` have yet to apply. A range of the
    /// `(kb_id, seq)` index, as long as the answer.
    pub async fn count_changes_after(&self, kb_id: &str, seq: i64) -> Result<i64> {
        let (n,): (i64,) = on_db!(
            &self.pool,
            "SELECT COUNT(*) FROM chunk WHERE kb_id = ? AND seq > ?",
            |e, q| sqlx::query_as(q).bind(kb_id).bind(seq).fetch_one(e).await
        )?;
        Ok(n)
    }

    /// The highest seq in use.
    pub async fn max_seq(&self) -> Result<i64> {
        let (v,): (i64,) = on_db!(
            &self.pool,
            "SELECT value FROM counter WHERE name = 'chunk_seq'",
            |e, q| sqlx::query_as(q).fetch_one(e).await
        )?;
        Ok(v)
    }

    /// Live chunks among `ids` (chunk ids when `by_seq` is false, seqs otherwise).
    pub async fn live_chunks(
        &self,
        kb_id: &str,
        ids: &[i64],
        by_seq: bool,
    ) -> Result<Vec<LiveChunk>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = live_among_sql(
            self.backend(),
            "c.chunk_id, c.document_id, d.name AS document_name, d.source_url, c.page, c.ordinal, c.text, c.seq,
             c.label, c.is_ocr",
            by_seq,
            ids.len(),
        );
        Ok(on_db!(&self.pool, sql, |e, q| {
            let mut query = sqlx::query_as::<_, LiveChunk>(q).bind(kb_id);
            for id in ids {
                query = query.bind(id);
            }
            query.fetch_all(e).await
        })?)
    }

    /// `(chunk_id, seq)` of the live chunks among `ids`, as [`Store::live_chunks`] picks
    /// them but without their text: search checks its candidates with this, and loads the
    /// text of the few it returns only.
    pub async fn live_chunk_keys(
        &self,
        kb_id: &str,
        ids: &[i64],
        by_seq: bool,
    ) -> Result<Vec<(i64, i64)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = live_among_sql(self.backend(), "c.chunk_id, c.seq", by_seq, ids.len());
        Ok(on_db!(&self.pool, sql, |e, q| {
            let mut query = sqlx::query_as::<_, (i64, i64)>(q).bind(kb_id);
            for id in ids {
                query = query.bind(id);
            }
            query.fetch_all(e).await
        })?)
    }

    /// Ids of all live chunks of a KB, sorted (consistency checks).
    pub async fn live_chunk_ids(&self, kb_id: &str) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = on_db!(
            &self.pool,
            format!(
                "SELECT c.chunk_id FROM chunk c JOIN document d ON d.document_id = c.document_id
              WHERE c.kb_id = ? AND {LIVE} ORDER BY c.chunk_id"
            ),
            |e, q| sqlx::query_as(q).bind(kb_id).fetch_all(e).await
        )?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Remove a KB's tombstones up to `through_seq`, the mark of a rebuild that no longer
    /// needs them, and record that in the KB ([`Store::record_reindex`]) in the same
    /// transaction. Later tombstones stay: the rebuilt indexes may still hold their chunks
    /// (deleted while the rebuild read) and remove them on catch-up. Other nodes' indexes
    /// below `through_seq` may lack a removal they can no longer read; the record tells
    /// them to build afresh.
    pub async fn purge_tombstones(&self, kb_id: &str, through_seq: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let purged = on_db!(
            &mut tx,
            "DELETE FROM chunk WHERE kb_id = ? AND seq <= ? AND (is_deleted = TRUE
                OR document_id NOT IN (SELECT document_id FROM document))",
            |e, q| sqlx::query(q)
                .bind(kb_id)
                .bind(through_seq)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Store::record_reindex(&mut tx, kb_id, through_seq).await?;
        tx.commit().await?;
        Ok(purged)
    }

    /// Give every live chunk of a document a new seq (and tombstone them if `delete`).
    pub(crate) async fn bump_document_chunks(
        conn: &mut Tx,
        document_id: &str,
        delete: bool,
    ) -> Result<u64> {
        Store::lock_seqs(conn).await?;
        let (n,): (i64,) = on_db!(
            &mut *conn,
            "SELECT COUNT(*) FROM chunk WHERE document_id = ? AND is_deleted = FALSE",
            |e, q| sqlx::query_as(q).bind(document_id).fetch_one(e).await
        )?;
        if n == 0 {
            return Ok(0);
        }
        let first = Store::reserve_seqs(conn, n).await?;
        let done = on_db!(
            &mut *conn,
            "UPDATE chunk SET seq = ?1 - 1 + r.rn, is_deleted = (is_deleted OR ?2),
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             FROM (SELECT chunk_id AS id, ROW_NUMBER() OVER (ORDER BY chunk_id) AS rn
                     FROM chunk WHERE document_id = ?3 AND is_deleted = FALSE) AS r
             WHERE chunk.chunk_id = r.id",
            |e, q| sqlx::query(q)
                .bind(first)
                .bind(delete)
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(done)
    }

    /// Give a chunk the vector staged for it and a new seq (so the indexes replace it on
    /// catch-up), inside the re-embedding's swap.
    pub(crate) async fn take_staged_vector(conn: &mut Tx, chunk_id: i64, seq: i64) -> Result<()> {
        on_db!(
            &mut *conn,
            "UPDATE chunk SET seq = ?, embedding =
                (SELECT embedding FROM chunk_vector_staging WHERE chunk_id = ?)
              WHERE chunk_id = ?",
            |e, q| sqlx::query(q)
                .bind(seq)
                .bind(chunk_id)
                .bind(chunk_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// Delete every chunk of a KB, inside the caller's transaction (the KB is being
    /// deleted).
    pub(crate) async fn delete_kb_chunks(conn: &mut Tx, kb_id: &str) -> Result<()> {
        on_db!(&mut *conn, "DELETE FROM chunk WHERE kb_id = ?", |e, q| {
            sqlx::query(q)
                .bind(kb_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::like_substring;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_substring("600"), "%600%");
        assert_eq!(like_substring("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
