//! The ingestion queue as the API and the CLI see it: listing jobs, one job, and putting
//! back at start-up the jobs a dead process left behind, with their documents' status.
//! The queue itself (`ingest::jobs`) owns the `ingest_job` table; this service keeps the
//! documents in step with it.

use ingest::jobs::{Job, JobQueue, JobStatus};
use tracing::info;

use crate::error::Result;
use crate::store::Store;

/// The job service.
#[derive(Clone)]
pub struct JobService {
    /// Database (the documents the jobs are for).
    pub store: Store,
    /// The queue.
    pub queue: JobQueue,
}

/// A job with the name of its document (`None`: the document was deleted).
#[derive(Debug, Clone)]
pub struct NamedJob {
    /// The job.
    pub job: Job,
    /// Its document's name.
    pub document_name: Option<String>,
}

impl JobService {
    /// Jobs newest first, only those in `status` when given.
    pub async fn list(&self, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>> {
        Ok(self.queue.list(status, limit).await?)
    }

    /// Jobs newest first, each with its document's name (`zhiku jobs`).
    pub async fn list_named(&self, limit: i64) -> Result<Vec<NamedJob>> {
        let mut named = Vec::new();
        for job in self.list(None, limit).await? {
            let document_name = self
                .store
                .document(None, &job.document_id)
                .await
                .ok()
                .map(|d| d.name);
            named.push(NamedJob { job, document_name });
        }
        Ok(named)
    }

    /// One job by id.
    pub async fn get(&self, job_id: i64) -> Result<Option<Job>> {
        Ok(self.queue.get(job_id).await?)
    }

    /// At start-up, before the workers: jobs left processing by a dead process go back to
    /// the queue (their documents queued again), or fail for good after too many tries
    /// (their documents failed with the reason).
    pub async fn recover(&self) -> Result<()> {
        let (requeued, failed) = self.queue.recover().await?;
        for job in &failed {
            self.store
                .set_document_status(
                    &job.document_id,
                    "failed",
                    Some((
                        "worker_crashed",
                        job.error_message.as_deref().unwrap_or_default(),
                    )),
                )
                .await?;
        }
        if !requeued.is_empty() || !failed.is_empty() {
            info!(
                requeued = requeued.len(),
                failed = failed.len(),
                "recovered interrupted jobs"
            );
        }
        for job in &requeued {
            self.store
                .set_document_status(&job.document_id, "queued", None)
                .await?;
        }
        Ok(())
    }
}
