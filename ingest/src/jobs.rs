//! The durable ingestion queue in the database (`ingest_job`), on SQLite or PostgreSQL.
//!
//! Statuses use the five words everywhere: enqueued, processing, succeeded, failed,
//! canceled.
//!
//! A processing job is held by one node under a lease (issue 22: several nodes on one
//! PostgreSQL): the claim records the node's id (`lease_owner`) and a deadline
//! (`lease_until`), which the node's heartbeat ([`JobQueue::renew`]) keeps moving. A job
//! whose lease ran out belongs to a node that stopped (killed, cut off, frozen): every
//! node's [`JobQueue::requeue_expired`] puts it back to enqueued, and at start-up
//! [`JobQueue::recover`] also takes back what this node itself held before it stopped. A
//! job that has taken its worker down too often fails instead, so no job is ever stuck.
//! Deadlines are the database's clock (`strftime(…, 'now', …)`), so nodes whose clocks
//! disagree still agree on which leases ran out.
//!
//! Every write a worker makes to its job is fenced by the lease: it changes the row only
//! while this node still holds it, so a node that lost a job (its lease ran out while it
//! was frozen, and another node took the job) cannot overwrite the new holder's work.
//! Storing a job's chunks checks the same in its own transaction ([`JobQueue::confirm_held`]).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use crate::db::{Backend, Pool, Tx};
use crate::{Error, Result, on_db};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase", type_name = "TEXT")]
pub enum JobStatus {
    /// Waiting for a worker.
    Enqueued,
    /// A node's worker is on it, under that node's lease.
    Processing,
    /// Chunks are stored and indexed.
    Succeeded,
    /// Ended with an error; `error_code`/`error_message` say why.
    Failed,
    /// The document was deleted before the job ran.
    Canceled,
}

impl JobStatus {
    /// Every status, in a job's life order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Enqueued,
        JobStatus::Processing,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Canceled,
    ];

    /// The word the API, the UI and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Enqueued => "enqueued",
            JobStatus::Processing => "processing",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
        }
    }
}

/// One row of `ingest_job` (the API shows it through its own type, built from this).
#[derive(Debug, Clone, sqlx::FromRow)]
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
    /// Size of the document's file; small jobs are claimed together (absent on jobs queued
    /// before sizes were recorded, which run alone).
    pub bytes: Option<i64>,
    /// Passages embedded so far, while embedding.
    pub passages_done: Option<i64>,
    /// Passages to embed in all, while embedding.
    pub passages_total: Option<i64>,
    /// Seconds of embedding left, estimated from the rate so far (absent before the first
    /// passages are done).
    pub eta_seconds: Option<f64>,
    /// The node that holds the job while it is processing, or held it last (absent on
    /// jobs never claimed, or claimed before leases existed).
    pub lease_owner: Option<String>,
    /// Until when that node's lease holds unless renewed (the database's clock, UTC).
    pub lease_until: Option<String>,
}

/// How many small jobs one worker takes at once (see [`JobQueue::claim_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most jobs in one batch; 1 turns batching off.
    pub max_jobs: usize,
    /// Most bytes of documents in one batch; a larger job runs alone.
    pub max_bytes: u64,
}

/// How this node holds the jobs it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// This node's id, recorded on each job it claims (`lease_owner`). It must differ
    /// between any two processes running at once, and should stay the same across a
    /// node's restarts so that it recognises its own interrupted jobs (the server keeps it
    /// in the data directory, whose lock already makes one process its only user).
    pub node: Arc<str>,
    /// How long a claim holds without a renewal. The heartbeat renews it several times
    /// within this, so only a node that stopped lets it run out.
    pub duration: Duration,
}

impl Lease {
    /// A lease for `node`, of `duration`.
    pub fn new(node: impl Into<Arc<str>>, duration: Duration) -> Self {
        Self {
            node: node.into(),
            duration,
        }
    }

    /// The `strftime` modifier that moves 'now' to the deadline of a claim made now.
    fn modifier(&self) -> String {
        format!("+{:.3} seconds", self.duration.as_secs_f64())
    }
}

/// Claim-and-ack queue over the shared pool.
#[derive(Debug, Clone)]
pub struct JobQueue {
    pool: Pool,
    wake: Arc<Notify>,
    max_attempts: i64,
    lease: Lease,
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
/// The deadline of a lease taken or renewed now, its modifier ([`Lease::modifier`]) bound
/// to `param` (`?`, or `?4` in a statement that numbers its parameters).
fn lease_until(param: &str) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', {param})")
}
/// A job this node holds: processing, under this node's lease (one parameter, the node).
/// Every write a worker makes to its job is conditioned on it, so a node that lost the
/// job changes nothing (see the module's doc).
const HELD: &str = "status = 'processing' AND lease_owner = ?";
/// Clears the embedding progress of a job that starts, ends or goes back in the queue.
const NO_PASSAGES: &str = "passages_done = NULL, passages_total = NULL, eta_seconds = NULL";

impl JobQueue {
    /// A queue on `pool` whose claims this node holds under `lease`; a job that was
    /// interrupted `max_attempts` times fails for good.
    pub fn new(pool: Pool, max_attempts: i64, lease: Lease) -> Self {
        Self {
            pool,
            wake: Arc::new(Notify::new()),
            max_attempts: max_attempts.max(1),
            lease,
        }
    }

    /// How this node holds its jobs.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Insert a job for a document of `bytes` inside the caller's transaction (with its
    /// document row).
    pub async fn enqueue(tx: &mut Tx, document_id: &str, kb_id: &str, bytes: i64) -> Result<i64> {
        let sql =
            "INSERT INTO ingest_job (document_id, kb_id, bytes) VALUES (?, ?, ?) RETURNING job_id";
        let (job_id,): (i64,) = on_db!(tx, sql, |e, q| sqlx::query_as(q)
            .bind(document_id)
            .bind(kb_id)
            .bind(bytes)
            .fetch_one(e)
            .await)?;
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

    /// Take the oldest enqueued job and mark it processing, together with the small jobs
    /// queued right after it while they fit in `limits`: ten thousand notes then cost a
    /// few hundred embedding runs and index commits, not ten thousand. A job that has been
    /// claimed before (a crash or a transient failure interrupted it) always runs alone,
    /// so a document that takes the process down cannot take a batch of others with it.
    /// Oldest first; empty when nothing is queued.
    pub async fn claim_batch(&self, limits: BatchLimits) -> Result<Vec<Job>> {
        // Unknown sizes count as over the limit; the running total stops the batch at the
        // first job that does not fit, so the queue order is kept.
        let lock = self.skip_locked();
        let lease_until = lease_until("?4");
        let sql = format!(
            "UPDATE ingest_job SET status = 'processing', attempts = attempts + 1, started_at = {NOW},
                    stage = NULL, progress = 0, {NO_PASSAGES},
                    lease_owner = ?3, lease_until = {lease_until}
             WHERE status = 'enqueued' AND job_id IN (
                 WITH head AS (
                     SELECT job_id, attempts,
                            SUM(CASE WHEN bytes IS NULL OR attempts > 0 THEN ?2 + 1 ELSE bytes END)
                                OVER (ORDER BY job_id) AS running_bytes,
                            ROW_NUMBER() OVER (ORDER BY job_id) AS position
                     FROM (SELECT job_id, bytes, attempts FROM ingest_job
                           WHERE status = 'enqueued' ORDER BY job_id LIMIT ?1{lock}) AS queued
                 )
                 SELECT job_id FROM head WHERE position = 1 OR running_bytes <= ?2
             )
             RETURNING *"
        );
        self.claim_with(&sql, limits).await
    }

    /// Record the same stage and progress for several running jobs (a batch) at once.
    pub async fn progress_many(&self, job_ids: &[i64], stage: &str, progress: f64) -> Result<()> {
        if job_ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE ingest_job SET stage = ?, progress = ?
             WHERE job_id IN ({}) AND {HELD}",
            marks(job_ids.len())
        );
        on_db!(&self.pool, sql, |e, q| {
            let mut query = sqlx::query(q).bind(stage).bind(progress.clamp(0.0, 1.0));
            for id in job_ids {
                query = query.bind(id);
            }
            query.bind(&*self.lease.node).execute(e).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Run a claiming UPDATE … RETURNING whose `?1` is the most jobs and `?2` the most
    /// bytes of `limits`, `?3` this node and `?4` its lease's modifier; the claimed jobs,
    /// oldest first.
    async fn claim_with(&self, sql: &str, limits: BatchLimits) -> Result<Vec<Job>> {
        let max_bytes = i64::try_from(limits.max_bytes).unwrap_or(i64::MAX - 1);
        let mut jobs: Vec<Job> = on_db!(&self.pool, sql, |e, q| sqlx::query_as(q)
            .bind(limits.max_jobs.max(1) as i64)
            .bind(max_bytes)
            .bind(&*self.lease.node)
            .bind(self.lease.modifier())
            .fetch_all(e)
            .await)?;
        jobs.sort_by_key(|j| j.job_id);
        Ok(jobs)
    }

    /// Take the oldest small jobs queued, passing over big ones, and mark them processing:
    /// what a worker runs between two slices of a big document, so a note uploaded behind
    /// big documents does not wait for them. Small means what a batch may hold
    /// (`limits.max_bytes` at most, size known, never claimed before: a job that was
    /// interrupted runs alone, as in [`JobQueue::claim_batch`]). Empty when none is queued.
    pub async fn claim_small(&self, limits: BatchLimits) -> Result<Vec<Job>> {
        let lock = self.skip_locked();
        let lease_until = lease_until("?4");
        let sql = format!(
            "UPDATE ingest_job SET status = 'processing', attempts = attempts + 1, started_at = {NOW},
                    stage = NULL, progress = 0, {NO_PASSAGES},
                    lease_owner = ?3, lease_until = {lease_until}
             WHERE status = 'enqueued' AND job_id IN (
                 WITH small AS (
                     SELECT job_id, SUM(bytes) OVER (ORDER BY job_id) AS running_bytes
                     FROM (SELECT job_id, bytes FROM ingest_job
                           WHERE status = 'enqueued' AND attempts = 0 AND bytes IS NOT NULL
                                 AND bytes <= ?2
                           ORDER BY job_id LIMIT ?1{lock}) AS queued
                 )
                 SELECT job_id FROM small WHERE running_bytes <= ?2
             )
             RETURNING *"
        );
        self.claim_with(&sql, limits).await
    }

    /// Record embedding progress for the running jobs of a batch: `done` of `total`
    /// passages, `eta_seconds` left if known.
    pub async fn embed_progress(
        &self,
        job_ids: &[i64],
        done: usize,
        total: usize,
        eta_seconds: Option<f64>,
    ) -> Result<()> {
        if job_ids.is_empty() {
            return Ok(());
        }
        let progress = 0.1 + 0.8 * done as f64 / total.max(1) as f64;
        let sql = format!(
            "UPDATE ingest_job SET stage = 'embed', progress = ?, passages_done = ?,
                    passages_total = ?, eta_seconds = ?
             WHERE job_id IN ({}) AND {HELD}",
            marks(job_ids.len())
        );
        on_db!(&self.pool, sql, |e, q| {
            let mut query = sqlx::query(q)
                .bind(progress.clamp(0.0, 1.0))
                .bind(done as i64)
                .bind(total as i64)
                .bind(eta_seconds);
            for id in job_ids {
                query = query.bind(id);
            }
            query.bind(&*self.lease.node).execute(e).await.map(|_| ())
        })?;
        Ok(())
    }

    /// OCR progress of a running job: `read` of `total` pages, and the time left. The
    /// pages go where the embedding's passages go (`passages_done`, `passages_total`,
    /// `eta_seconds`): one progress mechanism, whose unit the stage names (`ocr`: pages,
    /// `embed`: passages). OCR is part of extraction, the first 5 % of the job.
    pub async fn ocr_progress(
        &self,
        job_id: i64,
        read: usize,
        total: usize,
        eta_seconds: Option<f64>,
    ) -> Result<()> {
        let progress = 0.05 * read as f64 / total.max(1) as f64;
        // Once the last page is read no estimate is left to show (splitting follows).
        let eta_seconds = eta_seconds.filter(|_| read < total);
        let sql = format!(
            "UPDATE ingest_job SET stage = 'ocr', progress = ?, passages_done = ?,
                    passages_total = ?, eta_seconds = ?
             WHERE job_id = ? AND {HELD}"
        );
        on_db!(&self.pool, sql, |e, q| sqlx::query(q)
            .bind(progress.clamp(0.0, 1.0))
            .bind(read as i64)
            .bind(total as i64)
            .bind(eta_seconds)
            .bind(job_id)
            .bind(&*self.lease.node)
            .execute(e)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Put a running job back in the queue as if it had not been claimed (the server is
    /// stopping: that is no fault of the document, so the attempt does not count).
    pub async fn release(&self, job_id: i64) -> Result<()> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'enqueued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                    stage = NULL, progress = 0, {NO_PASSAGES}
             WHERE job_id = ? AND {HELD}"
        );
        on_db!(&self.pool, sql, |e, q| sqlx::query(q)
            .bind(job_id)
            .bind(&*self.lease.node)
            .execute(e)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Mark a job this node holds succeeded.
    pub async fn succeed(&self, job_id: i64) -> Result<()> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'succeeded', progress = 1, stage = NULL, {NO_PASSAGES}, finished_at = {NOW},
                    error_code = NULL, error_message = NULL
             WHERE job_id = ? AND {HELD}"
        );
        on_db!(&self.pool, sql, |e, q| sqlx::query(q)
            .bind(job_id)
            .bind(&*self.lease.node)
            .execute(e)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Mark a job this node holds failed with the error's code and message.
    pub async fn fail(&self, job_id: i64, error: &Error) -> Result<()> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'failed', finished_at = {NOW}, {NO_PASSAGES}, error_code = ?, error_message = ?
             WHERE job_id = ? AND {HELD}"
        );
        on_db!(&self.pool, sql, |e, q| sqlx::query(q)
            .bind(error.code())
            .bind(error.to_string())
            .bind(job_id)
            .bind(&*self.lease.node)
            .execute(e)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Put a job that hit a transient failure back in the queue (its attempts still count).
    pub async fn retry_later(&self, job_id: i64, error: &Error) -> Result<()> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'enqueued', stage = NULL, progress = 0, {NO_PASSAGES},
                    error_code = ?, error_message = ?
             WHERE job_id = ? AND {HELD}"
        );
        on_db!(&self.pool, sql, |e, q| sqlx::query(q)
            .bind(error.code())
            .bind(error.to_string())
            .bind(job_id)
            .bind(&*self.lease.node)
            .execute(e)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The pool the queue runs on.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// What the claiming subquery adds on PostgreSQL: several nodes' workers claim at
    /// once there, and `FOR UPDATE SKIP LOCKED` lets each take jobs no other claim holds,
    /// without waiting or claiming one twice. SQLite's `BEGIN IMMEDIATE`-style writer lock
    /// already serialises claims (one writer at a time), and it has no such clause.
    fn skip_locked(&self) -> &'static str {
        match self.pool.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// How many times a job may be claimed before a failure is final.
    pub fn max_attempts(&self) -> i64 {
        self.max_attempts
    }

    /// Cancel the unfinished jobs of a document (it was deleted), inside the caller's transaction.
    pub async fn cancel_for_document(tx: &mut Tx, document_id: &str) -> Result<u64> {
        Self::cancel_unfinished(tx, "document_id", document_id).await
    }

    /// Cancel the unfinished jobs of a knowledge base (it is being deleted), inside the
    /// caller's transaction.
    pub async fn cancel_for_kb(tx: &mut Tx, kb_id: &str) -> Result<u64> {
        Self::cancel_unfinished(tx, "kb_id", kb_id).await
    }

    /// Cancel the enqueued and processing jobs whose `column` (a fixed column name, never
    /// input) is `value`.
    async fn cancel_unfinished(tx: &mut Tx, column: &'static str, value: &str) -> Result<u64> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'canceled', finished_at = {NOW}
             WHERE {column} = ? AND status IN ('enqueued', 'processing')"
        );
        Ok(on_db!(tx, sql, |e, q| sqlx::query(q)
            .bind(value)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Whether this node no longer holds the job: it was canceled (its document deleted),
    /// or its lease ran out and it went back to the queue, maybe to another node. Its
    /// worker then drops it without writing anything more.
    pub async fn is_lost(&self, job_id: i64) -> Result<bool> {
        let sql = "SELECT status, lease_owner FROM ingest_job WHERE job_id = ?";
        let found: Option<(JobStatus, Option<String>)> =
            on_db!(&self.pool, sql, |e, q| sqlx::query_as(q)
                .bind(job_id)
                .fetch_optional(e)
                .await)?;
        Ok(
            !matches!(found, Some((JobStatus::Processing, Some(owner))) if *owner == *self.lease.node),
        )
    }

    /// Inside the caller's write transaction, before it stores a job's results: make sure
    /// this node still holds the job, and keep it so until the transaction ends (on
    /// PostgreSQL the row stays locked, so the job cannot be taken back meanwhile; SQLite's
    /// write lock already serialises it). [`Error::NotHeld`] otherwise, and the caller
    /// rolls back: a node that lost its job never overwrites the new holder's chunks.
    /// Call it first in the transaction, so that it locks the job before the chunks and
    /// the document, in the order deleting a document does.
    pub async fn confirm_held(&self, tx: &mut Tx, job_id: i64) -> Result<()> {
        let sql = format!(
            "SELECT job_id FROM ingest_job WHERE job_id = ? AND {HELD}{}",
            self.pool.backend().row_lock()
        );
        let held: Option<(i64,)> = on_db!(tx, sql, |e, q| sqlx::query_as(q)
            .bind(job_id)
            .bind(&*self.lease.node)
            .fetch_optional(e)
            .await)?;
        match held {
            Some(_) => Ok(()),
            None => Err(Error::NotHeld { job_id }),
        }
    }

    /// Renew the lease of every job this node holds (its heartbeat); how many it holds.
    pub async fn renew(&self) -> Result<u64> {
        let sql = format!(
            "UPDATE ingest_job SET lease_until = {} WHERE {HELD}",
            lease_until("?")
        );
        Ok(on_db!(&self.pool, sql, |e, q| sqlx::query(q)
            .bind(self.lease.modifier())
            .bind(&*self.lease.node)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Claim one enqueued job by id, for a caller that does the job's work itself (the
    /// benchmark's synthetic documents); `None` if it is not enqueued.
    pub async fn claim_job(&self, job_id: i64) -> Result<Option<Job>> {
        let sql = format!(
            "UPDATE ingest_job SET status = 'processing', attempts = attempts + 1, started_at = {NOW},
                    lease_owner = ?, lease_until = {}
             WHERE job_id = ? AND status = 'enqueued' RETURNING *",
            lease_until("?")
        );
        Ok(on_db!(&self.pool, sql, |e, q| sqlx::query_as(q)
            .bind(&*self.lease.node)
            .bind(self.lease.modifier())
            .bind(job_id)
            .fetch_optional(e)
            .await)?)
    }

    /// At start-up, before this node's workers run: the jobs this node held before it
    /// stopped (its id is the same across restarts, and nothing else runs as it), and the
    /// jobs of any node whose lease ran out, go back to enqueued; see
    /// [`JobQueue::requeue_expired`]. On SQLite, one node per database, that is every job
    /// left processing. Returns (requeued, failed).
    pub async fn recover(&self) -> Result<(Vec<Job>, Vec<Job>)> {
        self.requeue_abandoned(Some(&self.lease.node)).await
    }

    /// The jobs of nodes whose lease ran out (they stopped renewing it: killed, frozen or
    /// cut off from the database) go back to enqueued, unless they have been tried
    /// `max_attempts` times (then they fail, so one poisonous file cannot crash-loop the
    /// nodes). Whoever claims such a job next runs it from the start, and storing its
    /// chunks turns the earlier attempt's chunks into tombstones, as after a restart.
    /// Every node runs this on its heartbeat. Each job is taken back once however many
    /// nodes run it at once: the second update finds the job enqueued already. Jobs
    /// claimed before leases existed have no deadline and count as run out. Returns
    /// (requeued, failed).
    pub async fn requeue_expired(&self) -> Result<(Vec<Job>, Vec<Job>)> {
        self.requeue_abandoned(None).await
    }

    /// [`JobQueue::requeue_expired`], and the jobs held by `own` (this node, at its start).
    async fn requeue_abandoned(&self, own: Option<&str>) -> Result<(Vec<Job>, Vec<Job>)> {
        // `lease_owner = NULL` is never true, so `own: None` takes the run-out leases only.
        let abandoned = format!(
            "status = 'processing' AND (lease_until IS NULL OR lease_until < {NOW} OR lease_owner = ?1)"
        );
        let sql = format!(
            "UPDATE ingest_job SET status = 'failed', finished_at = {NOW}, error_code = 'worker_crashed',
                    error_message = 'the server stopped while processing this document ' || attempts || ' times; it was given up'
             WHERE {abandoned} AND attempts >= ?2 RETURNING *"
        );
        let failed: Vec<Job> = on_db!(&self.pool, sql, |e, q| sqlx::query_as(q)
            .bind(own)
            .bind(self.max_attempts)
            .fetch_all(e)
            .await)?;
        let sql = format!(
            "UPDATE ingest_job SET status = 'enqueued', stage = NULL, progress = 0, {NO_PASSAGES}
             WHERE {abandoned} RETURNING *"
        );
        let requeued: Vec<Job> = on_db!(&self.pool, sql, |e, q| sqlx::query_as(q)
            .bind(own)
            .fetch_all(e)
            .await)?;
        Ok((requeued, failed))
    }

    /// One job by id.
    pub async fn get(&self, job_id: i64) -> Result<Option<Job>> {
        let sql = "SELECT * FROM ingest_job WHERE job_id = ?";
        Ok(on_db!(&self.pool, sql, |e, q| sqlx::query_as(q)
            .bind(job_id)
            .fetch_optional(e)
            .await)?)
    }

    /// How many jobs are in each status, every status listed (zero where none), in the
    /// order of [`JobStatus::ALL`]. One pass over the `(status, job_id)` index: the
    /// finished jobs it counts grow with the deployment's history, a few ms per 100k.
    pub async fn count_by_status(&self) -> Result<Vec<(JobStatus, i64)>> {
        let sql = "SELECT status, COUNT(*) FROM ingest_job GROUP BY status";
        let found: Vec<(JobStatus, i64)> =
            on_db!(&self.pool, sql, |e, q| sqlx::query_as(q).fetch_all(e).await)?;
        Ok(JobStatus::ALL
            .iter()
            .map(|status| {
                let count = found
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                (*status, count)
            })
            .collect())
    }

    /// Newest jobs first, optionally only those with `status`.
    pub async fn list(&self, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>> {
        let sql = "SELECT * FROM ingest_job WHERE (?1 IS NULL OR status = ?1) ORDER BY job_id DESC LIMIT ?2";
        Ok(on_db!(&self.pool, sql, |e, q| sqlx::query_as(q)
            .bind(status)
            .bind(limit)
            .fetch_all(e)
            .await)?)
    }
}

/// `n` placeholders for an `IN (…)` list.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::db::Backend;

    /// A queue over a fresh database (SQLite in memory, or a database of its own in the
    /// test cluster) holding one enqueued job per size (documents `doc-0`, `doc-1`, …), at
    /// most 3 attempts each.
    pub(crate) async fn queue_with(backend: Backend, sizes: &[Option<i64>]) -> JobQueue {
        let pool = match backend {
            Backend::Sqlite => {
                // One connection: each in-memory connection would be a database of its own.
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect("sqlite::memory:")
                    .await
                    .unwrap();
                sqlx::migrate!("../migrations").run(&pool).await.unwrap();
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&crate::testing::postgres_url().await)
                    .await
                    .unwrap();
                sqlx::migrate!("../migrations/postgres")
                    .run(&pool)
                    .await
                    .unwrap();
                Pool::Postgres(pool)
            }
        };
        for (i, size) in sizes.iter().enumerate() {
            let sql = "INSERT INTO ingest_job (document_id, kb_id, bytes) VALUES (?, 'kb', ?)";
            on_db!(&pool, sql, |e, q| sqlx::query(q)
                .bind(format!("doc-{i}"))
                .bind(size)
                .execute(e)
                .await
                .map(|_| ()))
            .unwrap();
        }
        JobQueue::new(pool, 3, Lease::new("node-a", Duration::from_secs(30)))
    }

    /// Another node's queue on the same database, with leases of `lease`.
    pub(crate) fn other_node(queue: &JobQueue, node: &str, lease: Duration) -> JobQueue {
        JobQueue::new(queue.pool.clone(), 3, Lease::new(node, lease))
    }

    fn ids(jobs: &[Job]) -> Vec<i64> {
        jobs.iter().map(|j| j.job_id).collect()
    }

    const LIMITS: BatchLimits = BatchLimits {
        max_jobs: 3,
        max_bytes: 1_000,
    };

    async fn small_jobs_are_claimed_together_in_queue_order(backend: Backend) {
        let queue = queue_with(backend, &[Some(100); 7]).await;
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [1, 2, 3]);
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [4, 5, 6]);
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [7]);
        assert!(queue.claim_batch(LIMITS).await.unwrap().is_empty());
    }

    async fn a_large_or_unknown_job_runs_alone_and_the_batch_stops_before_it(backend: Backend) {
        let queue = queue_with(
            backend,
            &[Some(400), Some(400), Some(400), Some(5_000), None, Some(1)],
        )
        .await;
        // 400 + 400 fit; the third would make 1,200.
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [1, 2]);
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [3]);
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [4]);
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [5]);
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [6]);
    }

    async fn a_job_claimed_before_runs_alone(backend: Backend) {
        let queue = queue_with(backend, &[Some(10); 4]).await;
        let first = queue.claim_batch(LIMITS).await.unwrap();
        assert_eq!(ids(&first), [1, 2, 3]);
        // The process died: every job of the batch goes back, and each then runs alone.
        let (requeued, failed) = queue.recover().await.unwrap();
        assert_eq!((requeued.len(), failed.len()), (3, 0));
        for expected in [1, 2, 3] {
            let alone = queue.claim_batch(LIMITS).await.unwrap();
            assert_eq!(ids(&alone), [expected]);
            assert_eq!(alone[0].attempts, 2);
        }
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [4]);
    }

    async fn small_jobs_are_claimed_past_big_ones(backend: Backend) {
        let queue = queue_with(
            backend,
            &[Some(5_000), Some(5_000), Some(10), None, Some(20), Some(30)],
        )
        .await;
        // A worker is on the first big one; the second waits; the small ones come forward.
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [1]);
        assert_eq!(ids(&queue.claim_small(LIMITS).await.unwrap()), [3, 5, 6]);
        assert!(queue.claim_small(LIMITS).await.unwrap().is_empty());
        // A small job that was interrupted once is not taken between slices.
        assert_eq!(ids(&queue.claim_batch(LIMITS).await.unwrap()), [2]);
        queue.release(2).await.unwrap();
        let again = queue.get(2).await.unwrap().unwrap();
        assert_eq!((again.status, again.attempts), (JobStatus::Enqueued, 0));
    }

    async fn batching_off_claims_one_at_a_time(backend: Backend) {
        let queue = queue_with(backend, &[Some(1); 2]).await;
        let one = BatchLimits {
            max_jobs: 1,
            max_bytes: u64::MAX,
        };
        assert_eq!(ids(&queue.claim_batch(one).await.unwrap()), [1]);
        assert_eq!(ids(&queue.claim_batch(one).await.unwrap()), [2]);
    }

    /// Four workers claim at once (on PostgreSQL truly at once, through `SKIP LOCKED`):
    /// every job is claimed exactly once, and batches still form.
    async fn concurrent_claims_take_each_job_once(backend: Backend) {
        let queue = queue_with(backend, &[Some(10); 40]).await;
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let batch = queue.claim_batch(LIMITS).await.unwrap();
                        if batch.is_empty() {
                            return mine;
                        }
                        assert!(batch.len() <= LIMITS.max_jobs);
                        mine.push(ids(&batch));
                    }
                })
            })
            .collect();
        let mut claimed = Vec::new();
        let mut batches = 0;
        for worker in workers {
            for batch in worker.await.unwrap() {
                batches += 1;
                claimed.extend(batch);
            }
        }
        claimed.sort_unstable();
        assert_eq!(claimed, (1..=40).collect::<Vec<i64>>());
        assert!(
            batches < 40,
            "small jobs were batched: {batches} claims for 40 jobs"
        );
    }

    /// What `/metrics` shows as the queue: every status, with the jobs in it.
    async fn jobs_are_counted_by_status(backend: Backend) {
        let queue = queue_with(backend, &[Some(10), Some(10), Some(10), Some(5_000)]).await;
        let counts = |c: Vec<(JobStatus, i64)>| c.into_iter().map(|(_, n)| n).collect::<Vec<_>>();
        assert_eq!(
            counts(queue.count_by_status().await.unwrap()),
            [4, 0, 0, 0, 0]
        );
        let claimed = queue.claim_batch(LIMITS).await.unwrap();
        assert_eq!(ids(&claimed), [1, 2, 3]);
        queue.succeed(1).await.unwrap();
        queue.fail(2, &Error::Empty).await.unwrap();
        let by_status = queue.count_by_status().await.unwrap();
        assert_eq!(
            by_status
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>(),
            ["enqueued", "processing", "succeeded", "failed", "canceled"]
        );
        assert_eq!(counts(by_status), [1, 1, 1, 1, 0]);
    }

    /// Node A holds a job under a live lease: node B neither claims it nor takes it back,
    /// at its start or on its heartbeat. A's lease runs out (A stopped renewing): B takes
    /// the job back once however often it looks, claims it alone as a retry, and from then
    /// on A's writes to it change nothing.
    async fn a_live_lease_is_left_alone_and_a_run_out_one_taken_back_once(backend: Backend) {
        let a = queue_with(backend, &[Some(10), Some(10)]).await;
        let b = other_node(&a, "node-b", Duration::from_secs(30));
        let one = BatchLimits {
            max_jobs: 1,
            max_bytes: 1_000,
        };
        let held = a.claim_batch(one).await.unwrap();
        assert_eq!(ids(&held), [1]);
        assert_eq!(held[0].lease_owner.as_deref(), Some("node-a"));
        assert!(held[0].lease_until.is_some());
        assert_eq!(a.renew().await.unwrap(), 1);

        let (requeued, failed) = b.recover().await.unwrap();
        assert!(
            requeued.is_empty() && failed.is_empty(),
            "A's live job stays A's"
        );
        assert!(b.requeue_expired().await.unwrap().0.is_empty());
        assert_eq!(ids(&b.claim_batch(one).await.unwrap()), [2], "job 1 is A's");
        assert!(!a.is_lost(1).await.unwrap());
        assert!(b.is_lost(1).await.unwrap());

        // A stops renewing; its last renewal gave it a lease of 1 ms.
        let a_dying = other_node(&a, "node-a", Duration::from_millis(1));
        a_dying.renew().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (requeued, failed) = b.requeue_expired().await.unwrap();
        assert_eq!((ids(&requeued), failed.len()), (vec![1], 0));
        assert!(
            b.requeue_expired().await.unwrap().0.is_empty(),
            "taken back once"
        );
        let retry = b.claim_batch(LIMITS).await.unwrap();
        assert_eq!(ids(&retry), [1]);
        assert_eq!(retry[0].attempts, 2);
        assert_eq!(retry[0].lease_owner.as_deref(), Some("node-b"));

        // A wakes up: it has lost the job, and its writes are fenced off.
        assert!(a.is_lost(1).await.unwrap());
        a.succeed(1).await.unwrap();
        a.fail(1, &Error::Empty).await.unwrap();
        a.progress_many(&[1], "embed", 0.5).await.unwrap();
        let mut tx = a.pool().begin_write().await.unwrap();
        assert!(matches!(
            a.confirm_held(&mut tx, 1).await,
            Err(Error::NotHeld { job_id: 1 })
        ));
        drop(tx);
        let now = b.get(1).await.unwrap().unwrap();
        assert_eq!(
            (now.status, now.stage, now.lease_owner.as_deref()),
            (JobStatus::Processing, None, Some("node-b"))
        );
        let mut tx = b.pool().begin_write().await.unwrap();
        b.confirm_held(&mut tx, 1).await.unwrap();
        tx.commit().await.unwrap();
        b.succeed(1).await.unwrap();
        assert_eq!(
            b.get(1).await.unwrap().unwrap().status,
            JobStatus::Succeeded
        );
    }

    /// At its start a node takes back at once the jobs it held itself before it stopped,
    /// though their leases still run; another node's are left alone.
    async fn a_restarted_node_takes_back_its_own_jobs_at_once(backend: Backend) {
        let a = queue_with(backend, &[Some(10), Some(10)]).await;
        let b = other_node(&a, "node-b", Duration::from_secs(30));
        let one = BatchLimits {
            max_jobs: 1,
            max_bytes: 1_000,
        };
        assert_eq!(ids(&a.claim_batch(one).await.unwrap()), [1]);
        assert_eq!(ids(&b.claim_batch(one).await.unwrap()), [2]);
        // A restarts: the same node id, a new process.
        let a_again = other_node(&a, "node-a", Duration::from_secs(30));
        let (requeued, failed) = a_again.recover().await.unwrap();
        assert_eq!((ids(&requeued), failed.len()), (vec![1], 0));
        assert!(!b.is_lost(2).await.unwrap(), "B's job is left to B");
    }

    crate::on_both_backends!(
        a_live_lease_is_left_alone_and_a_run_out_one_taken_back_once,
        a_restarted_node_takes_back_its_own_jobs_at_once,
        jobs_are_counted_by_status,
        concurrent_claims_take_each_job_once,
        small_jobs_are_claimed_together_in_queue_order,
        a_large_or_unknown_job_runs_alone_and_the_batch_stops_before_it,
        a_job_claimed_before_runs_alone,
        small_jobs_are_claimed_past_big_ones,
        batching_off_claims_one_at_a_time,
    );
}
