//! The durable ingestion queue in SQLite (`ingest_job`).
//!
//! Statuses use the five words everywhere: enqueued, processing, succeeded, failed,
//! canceled. "processing" is only true while this process holds the job: at start-up
//! [`JobQueue::recover`] puts interrupted jobs back to enqueued, or fails them once they
//! have taken the worker down too often, so no job is ever stuck.

use std::sync::Arc;

use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::Notify;

use crate::{Error, Result};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase", type_name = "TEXT")]
pub enum JobStatus {
    /// Waiting for a worker.
    Enqueued,
    /// A worker of this process is on it.
    Processing,
    /// Chunks are stored and indexed.
    Succeeded,
    /// Ended with an error; `error_code`/`error_message` say why.
    Failed,
    /// The document was deleted before the job ran.
    Canceled,
}

/// One row of `ingest_job`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Job {
    /// Id.
    pub job_id: i64,
    /// The document it ingests.
    pub document_id: String,
    /// The document's knowledge base.
    pub kb_id: String,
    /// State.
    pub status: JobStatus,
    /// How many times a worker has claimed it.
    pub attempts: i64,
    /// Current stage while processing.
    pub stage: Option<String>,
    /// 0..1 within the job.
    pub progress: f64,
    /// Stable error code when failed.
    pub error_code: Option<String>,
    /// Human-readable reason when failed.
    pub error_message: Option<String>,
    /// When it was queued.
    pub enqueued_at: String,
    /// When the current or last attempt started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
}

/// Claim-and-ack queue over the shared SQLite pool.
#[derive(Debug, Clone)]
pub struct JobQueue {
    pool: SqlitePool,
    wake: Arc<Notify>,
    max_attempts: i64,
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

impl JobQueue {
    /// A queue on `pool`; a job that was interrupted `max_attempts` times fails for good.
    pub fn new(pool: SqlitePool, max_attempts: i64) -> Self {
        Self {
            pool,
            wake: Arc::new(Notify::new()),
            max_attempts: max_attempts.max(1),
        }
    }

    /// Insert a job inside the caller's transaction (with its document row).
    pub async fn enqueue(
        conn: &mut SqliteConnection,
        document_id: &str,
        kb_id: &str,
    ) -> Result<i64> {
        let (job_id,): (i64,) = sqlx::query_as(
            "INSERT INTO ingest_job (document_id, kb_id) VALUES (?, ?) RETURNING job_id",
        )
        .bind(document_id)
        .bind(kb_id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(job_id)
    }

    /// Tell idle workers there is work (after the enqueueing transaction committed).
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }

    /// Wait until [`JobQueue::notify`] is called or `timeout` passes.
    pub async fn wait(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    /// Take the oldest enqueued job, if any, and mark it processing.
    pub async fn claim(&self) -> Result<Option<Job>> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'processing', attempts = attempts + 1, started_at = {NOW},
                    stage = NULL, progress = 0
             WHERE job_id = (SELECT job_id FROM ingest_job WHERE status = 'enqueued' ORDER BY job_id LIMIT 1)
             RETURNING *"
        );
        Ok(sqlx::query_as::<_, Job>(&sql)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Record the stage and progress of a running job.
    pub async fn progress(&self, job_id: i64, stage: &str, progress: f64) -> Result<()> {
        sqlx::query("UPDATE ingest_job SET stage = ?, progress = ? WHERE job_id = ? AND status = 'processing'")
            .bind(stage)
            .bind(progress.clamp(0.0, 1.0))
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Mark a job succeeded.
    pub async fn succeed(&self, job_id: i64) -> Result<()> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'succeeded', progress = 1, stage = NULL, finished_at = {NOW},
                    error_code = NULL, error_message = NULL
             WHERE job_id = ?"
        );
        sqlx::query(&sql).bind(job_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Mark a job failed with the error's code and message.
    pub async fn fail(&self, job_id: i64, error: &Error) -> Result<()> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'failed', finished_at = {NOW}, error_code = ?, error_message = ?
             WHERE job_id = ?"
        );
        sqlx::query(&sql)
            .bind(error.code())
            .bind(error.to_string())
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Put a job that hit a transient failure back in the queue (its attempts still count).
    pub async fn retry_later(&self, job_id: i64, error: &Error) -> Result<()> {
        sqlx::query(
            "UPDATE ingest_job SET status = 'enqueued', stage = NULL, progress = 0, error_code = ?, error_message = ?
             WHERE job_id = ? AND status = 'processing'",
        )
        .bind(error.code())
        .bind(error.to_string())
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many times a job may be claimed before a failure is final.
    pub fn max_attempts(&self) -> i64 {
        self.max_attempts
    }

    /// Cancel the unfinished jobs of a document (it was deleted), inside the caller's transaction.
    pub async fn cancel_for_document(
        conn: &mut SqliteConnection,
        document_id: &str,
    ) -> Result<u64> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'canceled', finished_at = {NOW}
             WHERE document_id = ? AND status IN ('enqueued', 'processing')"
        );
        Ok(sqlx::query(&sql)
            .bind(document_id)
            .execute(&mut *conn)
            .await?
            .rows_affected())
    }

    /// Whether the job is still wanted (not canceled meanwhile).
    pub async fn is_canceled(&self, job_id: i64) -> Result<bool> {
        let status: Option<(JobStatus,)> =
            sqlx::query_as("SELECT status FROM ingest_job WHERE job_id = ?")
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(!matches!(status, Some((JobStatus::Processing,))))
    }

    /// At start-up: jobs left processing by a dead process go back to enqueued, unless they
    /// have been tried `max_attempts` times (then they fail, so one poisonous file cannot
    /// crash-loop the server). Returns (requeued, failed).
    pub async fn recover(&self) -> Result<(Vec<Job>, Vec<Job>)> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'failed', finished_at = {NOW}, error_code = 'worker_crashed',
                    error_message = 'the server stopped while processing this document ' || attempts || ' times; it was given up'
             WHERE status = 'processing' AND attempts >= ? RETURNING *"
        );
        let failed = sqlx::query_as::<_, Job>(&sql)
            .bind(self.max_attempts)
            .fetch_all(&self.pool)
            .await?;
        let requeued = sqlx::query_as::<_, Job>(
            "UPDATE ingest_job SET status = 'enqueued', stage = NULL, progress = 0
             WHERE status = 'processing' RETURNING *",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok((requeued, failed))
    }

    /// One job by id.
    pub async fn get(&self, job_id: i64) -> Result<Option<Job>> {
        Ok(
            sqlx::query_as::<_, Job>("SELECT * FROM ingest_job WHERE job_id = ?")
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Newest jobs first, optionally only those with `status`.
    pub async fn list(&self, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>> {
        Ok(sqlx::query_as::<_, Job>(
            "SELECT * FROM ingest_job WHERE (?1 IS NULL OR status = ?1) ORDER BY job_id DESC LIMIT ?2",
        )
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
