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

    /// At start-up, before the workers: the jobs this node held when it stopped, and those
    /// of other nodes whose leases ran out, go back to the queue (their documents queued
    /// again), or fail for good after too many tries (their documents failed with the
    /// reason). A live node's jobs are left to it.
    pub async fn recover(&self) -> Result<()> {
        let (requeued, failed) = self.queue.recover().await?;
        self.settle_documents(&requeued, &failed).await
    }

    /// The heartbeat of a node running workers: renew the leases of the jobs it holds,
    /// then take back the jobs of nodes whose leases ran out (the same way as
    /// [`JobService::recover`]) and wake the workers for them.
    pub async fn heartbeat(&self) -> Result<()> {
        self.queue.renew().await?;
        let (requeued, failed) = self.queue.requeue_expired().await?;
        self.settle_documents(&requeued, &failed).await?;
        if !requeued.is_empty() {
            self.queue.notify();
        }
        Ok(())
    }

    /// Put the documents of jobs taken back in step with them: queued again, or failed
    /// with the reason.
    async fn settle_documents(&self, requeued: &[Job], failed: &[Job]) -> Result<()> {
        for job in failed {
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
            let nodes: std::collections::BTreeSet<&str> = requeued
                .iter()
                .chain(failed)
                .filter_map(|j| j.lease_owner.as_deref())
                .collect();
            info!(
                requeued = requeued.len(),
                failed = failed.len(),
                ?nodes,
                "took back interrupted jobs"
            );
        }
        for job in requeued {
            self.store
                .set_document_status(&job.document_id, "queued", None)
                .await?;
        }
        Ok(())
    }
}
