//! The `document` table (and enqueueing its job in the same transaction, through the
//! queue, which owns `ingest_job`).

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, Tx};
use crate::error::{Error, Result};
use ingest::on_db;

/// A document row joined with its latest job.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct DocumentRow {
    /// Id (UUID).
    pub document_id: String,
    /// Its KB.
    pub kb_id: String,
    /// File name as uploaded.
    pub name: String,
    /// Detected kind.
    pub kind: Option<String>,
    /// Size.
    pub bytes: i64,
    /// sha256 of the bytes.
    pub sha256: String,
    /// Stored file, relative to the data dir.
    pub file_path: String,
    /// queued | processing | indexed | failed.
    pub status: String,
    /// Failure code.
    pub error_code: Option<String>,
    /// Failure reason.
    pub error_message: Option<String>,
    /// Whether retrieval may return it.
    pub is_enabled: bool,
    /// Chunks stored.
    pub chunk_count: i64,
    /// Pages (paged kinds).
    pub page_count: Option<i64>,
    /// Per-upload split settings.
    pub split_json: Option<String>,
    /// Per-upload clean settings.
    pub clean_json: Option<String>,
    /// The address a web page was fetched from (`None`: an upload).
    pub source_url: Option<String>,
    /// `ETag` of the last fetch.
    pub source_etag: Option<String>,
    /// `Last-Modified` of the last fetch.
    pub source_last_modified: Option<String>,
    /// sha256 of the body last fetched.
    pub source_sha256: Option<String>,
    /// When the page was last fetched with a new body (`None`: not yet).
    pub source_fetched_at: Option<String>,
    /// When a sync last asked the site.
    pub source_checked_at: Option<String>,
    /// What the last check found wrong (`page_gone`, `fetch_failed`…); `None` when it
    /// reached the page.
    pub source_error_code: Option<String>,
    /// Why, in words.
    pub source_error_message: Option<String>,
    /// On the first page of a sitemap's pages: the sitemap, read again when it is synced.
    pub crawl_sitemap_url: Option<String>,
    /// The crawl this page belongs to: its start page's document id.
    pub crawl_id: Option<String>,
    /// Links from the start page to this one.
    pub crawl_depth: Option<i64>,
    /// How many links deep the crawl goes.
    pub crawl_max_depth: Option<i64>,
    /// How many pages the crawl takes at most.
    pub crawl_max_pages: Option<i64>,
    /// Upload time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Latest job id.
    pub job_id: Option<i64>,
    /// Latest job's status.
    pub job_status: Option<String>,
    /// Latest job's stage.
    pub job_stage: Option<String>,
    /// Latest job's progress.
    pub job_progress: Option<f64>,
    /// Latest job's estimate of the embedding time left, in seconds.
    pub job_eta_seconds: Option<f64>,
    /// Latest job's units done in its stage: pages read while `ocr`, passages embedded
    /// while `embed`.
    pub job_units_done: Option<i64>,
    /// Latest job's units of its stage in all.
    pub job_units_total: Option<i64>,
}

/// A time as the `document` and `kb` tables store it (`2026-12-06T03:04:05.678Z`, what
/// SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ')` writes), so stored times compare as text.
pub(crate) fn timestamp(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

const SELECT: &str = "SELECT d.*, j.job_id AS job_id, j.status AS job_status, j.stage AS job_stage,
        j.progress AS job_progress, j.eta_seconds AS job_eta_seconds,
        j.passages_done AS job_units_done, j.passages_total AS job_units_total
   FROM document d
   LEFT JOIN ingest_job j ON j.job_id = (SELECT MAX(job_id) FROM ingest_job WHERE document_id = d.document_id)";

/// A new document.
#[derive(Debug, Clone)]
pub struct NewDocument<'a> {
    /// Id chosen by the caller (the file is stored under it first).
    pub document_id: &'a str,
    /// KB.
    pub kb_id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Size.
    pub bytes: i64,
    /// sha256.
    pub sha256: &'a str,
    /// Stored file path.
    pub file_path: &'a str,
    /// Per-upload split settings JSON.
    pub split_json: Option<&'a str>,
    /// Per-upload clean settings JSON.
    pub clean_json: Option<&'a str>,
    /// A web page's address (its job fetches it first).
    pub source_url: Option<&'a str>,
    /// Its place in a crawl.
    pub crawl: Option<CrawlPlace<'a>>,
    /// The sitemap this page stands for (the first page a sitemap listed).
    pub crawl_sitemap_url: Option<&'a str>,
}

/// Where a page stands in a crawl.
#[derive(Debug, Clone, Copy)]
pub struct CrawlPlace<'a> {
    /// The start page's document id.
    pub crawl_id: &'a str,
    /// Links from the start page.
    pub depth: i64,
    /// How deep the crawl goes.
    pub max_depth: i64,
    /// Most pages of the crawl.
    pub max_pages: i64,
}

/// What a fetch of a web page brought, recorded on its document.
#[derive(Debug, Clone)]
pub struct FetchRecord<'a> {
    /// Where the body is stored now, relative to the data dir.
    pub file_path: &'a str,
    /// Size of the body.
    pub bytes: i64,
    /// sha256 of the body.
    pub source_sha256: &'a str,
    /// `ETag` sent with it.
    pub etag: Option<&'a str>,
    /// `Last-Modified` sent with it.
    pub last_modified: Option<&'a str>,
}

impl Store {
    /// Insert a document and its ingestion job in one transaction; returns the job id.
    /// The same bytes already in the KB is a [`Error::Conflict`] naming the existing document.
    pub async fn insert_document(&self, doc: &NewDocument<'_>) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let job_id = Self::insert_document_in(&mut tx, doc).await?;
        tx.commit().await?;
        Ok(job_id)
    }

    async fn insert_document_in(conn: &mut Tx, doc: &NewDocument<'_>) -> Result<i64> {
        let crawl = doc.crawl.as_ref();
        let inserted = on_db!(
            &mut *conn,
            "INSERT INTO document (document_id, kb_id, name, bytes, sha256, file_path, split_json, clean_json,
                                   source_url, crawl_id, crawl_depth, crawl_max_depth, crawl_max_pages,
                                   crawl_sitemap_url)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            |e, q| sqlx::query(q)
                .bind(doc.document_id)
                .bind(doc.kb_id)
                .bind(doc.name)
                .bind(doc.bytes)
                .bind(doc.sha256)
                .bind(doc.file_path)
                .bind(doc.split_json)
                .bind(doc.clean_json)
                .bind(doc.source_url)
                .bind(crawl.map(|c| c.crawl_id))
                .bind(crawl.map(|c| c.depth))
                .bind(crawl.map(|c| c.max_depth))
                .bind(crawl.map(|c| c.max_pages))
                .bind(doc.crawl_sitemap_url)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        );
        if let Err(sqlx::Error::Database(db)) = &inserted
            && db.is_unique_violation()
        {
            return Err(Error::Conflict("duplicate".into()));
        }
        inserted?;
        Ok(ingest::jobs::JobQueue::enqueue(conn, doc.document_id, doc.kb_id, doc.bytes).await?)
    }

    /// Add the pages a crawl found, in order, while the crawl has fewer than its
    /// `max_pages` pages; a page already in the KB (same URL) is passed over. One
    /// transaction, so two workers crawling at once cannot pass the cap together. Returns
    /// how many were added.
    pub async fn insert_crawl_pages(
        &self,
        crawl_id: &str,
        max_pages: i64,
        pages: &[NewDocument<'_>],
    ) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        let (mut count,): (i64,) = on_db!(
            &mut tx,
            "SELECT COUNT(*) FROM document WHERE crawl_id = ?",
            |e, q| sqlx::query_as(q).bind(crawl_id).fetch_one(e).await
        )?;
        let mut added = 0;
        for page in pages {
            if count >= max_pages {
                break;
            }
            match Self::insert_document_in(&mut tx, page).await {
                Ok(_) => {
                    count += 1;
                    added += 1;
                }
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Record the first fetch of a web page (by its job, before the page is extracted).
    pub async fn record_first_fetch(
        &self,
        document_id: &str,
        fetch: &FetchRecord<'_>,
    ) -> Result<()> {
        on_db!(
            &self.pool,
            "UPDATE document SET file_path = ?, bytes = ?, source_sha256 = ?, source_etag = ?,
                source_last_modified = ?,
                source_fetched_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                source_checked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                source_error_code = NULL, source_error_message = NULL,
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE document_id = ?",
            |e, q| sqlx::query(q)
                .bind(fetch.file_path)
                .bind(fetch.bytes)
                .bind(fetch.source_sha256)
                .bind(fetch.etag)
                .bind(fetch.last_modified)
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// A sync found the page unchanged: note when it asked, and the site's newest
    /// validators (`None` keeps the old ones).
    pub async fn record_unchanged(
        &self,
        document_id: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<()> {
        on_db!(
            &self.pool,
            "UPDATE document SET source_etag = COALESCE(?, source_etag),
                source_last_modified = COALESCE(?, source_last_modified),
                source_checked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                source_error_code = NULL, source_error_message = NULL
             WHERE document_id = ?",
            |e, q| sqlx::query(q)
                .bind(etag)
                .bind(last_modified)
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// A sync found a new body (already stored at `fetch.file_path`): record it and queue
    /// the document to be indexed again, in one transaction. Returns the job id.
    pub async fn record_changed(
        &self,
        document_id: &str,
        kb_id: &str,
        fetch: &FetchRecord<'_>,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        on_db!(&mut tx, "UPDATE document SET file_path = ?, bytes = ?, source_sha256 = ?, source_etag = ?,
                source_last_modified = ?, status = 'queued', error_code = NULL, error_message = NULL,
                source_fetched_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                source_checked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                source_error_code = NULL, source_error_message = NULL,
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE document_id = ?", |e, q| sqlx::query(q).bind(fetch.file_path).bind(fetch.bytes).bind(fetch.source_sha256).bind(fetch.etag).bind(fetch.last_modified).bind(document_id).execute(e).await.map(|r| r.rows_affected()))?;
        let job_id =
            ingest::jobs::JobQueue::enqueue(&mut tx, document_id, kb_id, fetch.bytes).await?;
        tx.commit().await?;
        Ok(job_id)
    }

    /// A check could not reach the page (gone, unreachable, refused): note when it asked
    /// and why, leaving the page's status and its indexed text as they were.
    pub async fn record_check_failed(
        &self,
        document_id: &str,
        code: &str,
        message: &str,
    ) -> Result<()> {
        on_db!(
            &self.pool,
            "UPDATE document SET source_checked_at = ?, source_error_code = ?, source_error_message = ?
             WHERE document_id = ?",
            |e, q| sqlx::query(q)
                .bind(timestamp(chrono::Utc::now()))
                .bind(code)
                .bind(message)
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// The web pages of a KB a scheduled sync should check now: fetched or failed (not
    /// waiting for their job), and not checked since `checked_before` (a
    /// [`timestamp`]), least recently checked first, at most `limit`.
    pub async fn web_documents_due(
        &self,
        kb_id: &str,
        checked_before: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        let ids: Vec<(String,)> = on_db!(
            &self.pool,
            "SELECT document_id FROM document
             WHERE kb_id = ? AND source_url IS NOT NULL AND status IN ('indexed', 'failed')
               AND (source_checked_at IS NULL OR source_checked_at < ?)
             ORDER BY source_checked_at IS NOT NULL, source_checked_at, document_id
             LIMIT ?",
            |e, q| sqlx::query_as(q)
                .bind(kb_id)
                .bind(checked_before)
                .bind(limit)
                .fetch_all(e)
                .await
        )?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// The pages of a crawl other than its start page that a sync may check (fetched or
    /// failed, not waiting for their job), shallowest first; none when `crawl_id` is not
    /// a crawl's start page.
    pub async fn crawl_pages(&self, crawl_id: &str) -> Result<Vec<String>> {
        let ids: Vec<(String,)> = on_db!(
            &self.pool,
            "SELECT document_id FROM document WHERE crawl_id = ? AND document_id <> ?
               AND status IN ('indexed', 'failed')
             ORDER BY crawl_depth, created_at, document_id",
            |e, q| sqlx::query_as(q)
                .bind(crawl_id)
                .bind(crawl_id)
                .fetch_all(e)
                .await
        )?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// The document with these bytes in this KB, if any.
    pub async fn document_by_sha256(
        &self,
        kb_id: &str,
        sha256: &str,
    ) -> Result<Option<DocumentRow>> {
        Ok(on_db!(
            &self.pool,
            format!("{SELECT} WHERE d.kb_id = ? AND d.sha256 = ?"),
            |e, q| sqlx::query_as(q)
                .bind(kb_id)
                .bind(sha256)
                .fetch_optional(e)
                .await
        )?)
    }

    /// Documents of a KB, newest first.
    pub async fn list_documents(
        &self,
        kb_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<DocumentRow>> {
        Ok(on_db!(
            &self.pool,
            format!(
                "{SELECT} WHERE d.kb_id = ? ORDER BY d.created_at DESC, d.name LIMIT ? OFFSET ?"
            ),
            |e, q| sqlx::query_as(q)
                .bind(kb_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(e)
                .await
        )?)
    }

    /// One document (of `kb_id` when given).
    pub async fn document(&self, kb_id: Option<&str>, document_id: &str) -> Result<DocumentRow> {
        on_db!(
            &self.pool,
            format!("{SELECT} WHERE d.document_id = ? AND (? IS NULL OR d.kb_id = ?)"),
            |e, q| sqlx::query_as(q)
                .bind(document_id)
                .bind(kb_id)
                .bind(kb_id)
                .fetch_optional(e)
                .await
        )?
        .ok_or_else(|| Error::not_found(format!("document '{document_id}'")))
    }

    /// Set a document's status (and error) as its job moves.
    pub async fn set_document_status(
        &self,
        document_id: &str,
        status: &str,
        error: Option<(&str, &str)>,
    ) -> Result<()> {
        on_db!(
            &self.pool,
            "UPDATE document SET status = ?, error_code = ?, error_message = ?,
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE document_id = ?",
            |e, q| sqlx::query(q)
                .bind(status)
                .bind(error.map(|e| e.0))
                .bind(error.map(|e| e.1))
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// Enable or disable a document; its chunks get new seqs so the indexes follow.
    pub async fn set_document_enabled(&self, document_id: &str, enabled: bool) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // The counter before the document's row: the lock order (`Store::reserve_seqs`).
        Self::bump_document_chunks(&mut tx, document_id, false).await?;
        on_db!(
            &mut tx,
            "UPDATE document SET is_enabled = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE document_id = ?",
            |e, q| sqlx::query(q)
                .bind(enabled)
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored file of every document, relative to the data dir (what a backup copies);
    /// a web page not fetched yet has none.
    pub async fn document_file_paths(&self) -> Result<Vec<String>> {
        let paths: Vec<(String,)> = on_db!(&self.pool, FILE_PATHS_SQL, |e, q| sqlx::query_as(q)
            .fetch_all(e)
            .await)?;
        Ok(paths.into_iter().map(|(p,)| p).collect())
    }

    /// Delete a document: cancel its job, tombstone its chunks, drop the row. Returns the
    /// stored file path to remove.
    pub async fn delete_document(&self, document_id: &str) -> Result<String> {
        let mut tx = self.begin_write().await?;
        let (file_path,): (String,) = on_db!(
            &mut tx,
            "SELECT file_path FROM document WHERE document_id = ?",
            |e, q| sqlx::query_as(q).bind(document_id).fetch_optional(e).await
        )?
        .ok_or_else(|| Error::not_found(format!("document '{document_id}'")))?;
        ingest::jobs::JobQueue::cancel_for_document(&mut tx, document_id).await?;
        Self::bump_document_chunks(&mut tx, document_id, true).await?;
        on_db!(
            &mut tx,
            "DELETE FROM document WHERE document_id = ?",
            |e, q| sqlx::query(q)
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        tx.commit().await?;
        Ok(file_path)
    }

    /// The KB of a document, inside the caller's transaction (`None`: deleted).
    pub(crate) async fn document_kb(conn: &mut Tx, document_id: &str) -> Result<Option<String>> {
        let kb: Option<(String,)> = on_db!(
            &mut *conn,
            "SELECT kb_id FROM document WHERE document_id = ?",
            |e, q| sqlx::query_as(q).bind(document_id).fetch_optional(e).await
        )?;
        Ok(kb.map(|(kb_id,)| kb_id))
    }

    /// Record what ingestion found in a document (its kind, pages and chunk count), inside
    /// the transaction that stores its chunks.
    pub(crate) async fn set_document_chunks(
        conn: &mut Tx,
        document_id: &str,
        kind: &str,
        page_count: Option<i64>,
        chunk_count: i64,
    ) -> Result<()> {
        on_db!(
            &mut *conn,
            "UPDATE document SET kind = ?, page_count = ?, chunk_count = ?,
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE document_id = ?",
            |e, q| sqlx::query(q)
                .bind(kind)
                .bind(page_count)
                .bind(chunk_count)
                .bind(document_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        Ok(())
    }

    /// Count a document's live chunks again after one was deleted, inside that
    /// transaction.
    pub(crate) async fn recount_document_chunks(conn: &mut Tx, document_id: &str) -> Result<()> {
        on_db!(&mut *conn, "UPDATE document SET chunk_count = (SELECT COUNT(*) FROM chunk WHERE document_id = document.document_id
                AND is_deleted = FALSE)
             WHERE document_id = ?", |e, q| sqlx::query(q).bind(document_id).execute(e).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The stored files of a KB's documents, inside the caller's transaction (the KB is
    /// being deleted).
    pub(crate) async fn kb_file_paths(conn: &mut Tx, kb_id: &str) -> Result<Vec<String>> {
        let files: Vec<(String,)> = on_db!(
            &mut *conn,
            "SELECT file_path FROM document WHERE kb_id = ?",
            |e, q| sqlx::query_as(q).bind(kb_id).fetch_all(e).await
        )?;
        Ok(files.into_iter().map(|(f,)| f).collect())
    }
}

/// Every document's stored file: a web page not fetched yet has none.
const FILE_PATHS_SQL: &str =
    "SELECT file_path FROM document WHERE source_url IS NULL OR source_fetched_at IS NOT NULL";

/// [`Store::document_file_paths`] inside a transaction (a backup's exported snapshot).
pub(super) async fn file_paths(tx: &mut Tx) -> Result<Vec<String>> {
    let paths: Vec<(String,)> = on_db!(tx, FILE_PATHS_SQL, |e, q| sqlx::query_as(q)
        .fetch_all(e)
        .await)?;
    Ok(paths.into_iter().map(|(p,)| p).collect())
}
