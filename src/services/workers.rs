//! Ingestion workers running in this process: started by [`super::knowledge`] over its
//! queue and pipeline, writing through [`IndexingSink`], and stopped with a grace period;
//! beside them the node's heartbeat, which keeps their job leases alive and takes back the
//! jobs of nodes that stopped.

use std::sync::Arc;
use std::time::Duration;

use ingest::jobs::JobQueue;
use ingest::pipeline::Pipeline;
use tracing::warn;

use super::indexing::IndexingSink;
use super::jobs::JobService;

/// Start `count` (at least one) workers claiming from `queue`, and the heartbeat that
/// renews their leases every `heartbeat` (and takes back jobs whose leases ran out).
pub fn start(
    count: usize,
    queue: &JobQueue,
    pipeline: &Pipeline,
    sink: IndexingSink,
    jobs: JobService,
    heartbeat: Duration,
) -> Workers {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sink = Arc::new(sink);
    let beating = tokio::spawn(beat(jobs, heartbeat, stop_rx.clone()));
    let handles = (0..count.max(1))
        .map(|worker| {
            tokio::spawn(ingest::pipeline::run_worker(
                worker,
                queue.clone(),
                pipeline.clone(),
                sink.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    Workers {
        stop_tx,
        handles,
        heartbeat: beating,
    }
}

/// The heartbeat: every `every` until `stop` turns true. Its own task, so a worker busy
/// with a long extraction or embedding run never delays it. A failure (the database out
/// of reach) is logged and the next beat tries again; the leases hold `job_lease_ms`,
/// several beats.
async fn beat(jobs: JobService, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        if let Err(error) = jobs.heartbeat().await {
            warn!(%error, "job heartbeat failed; this node's leases run out unless a later one succeeds");
        }
    }
}

/// Running ingestion workers.
pub struct Workers {
    stop_tx: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    /// Stops with the workers: the grace a worker gets to finish its slice is well within
    /// a lease.
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// Ask the workers to stop and wait up to `grace` in all (`Duration::MAX`: as long as
    /// it takes). A worker that is embedding stops at the end of its slice and puts its
    /// job back in the queue; one still busy when `grace` runs out (inside extraction or
    /// splitting, which cannot be interrupted) is left behind, and its job, still
    /// 'processing' in the database, is queued again at this node's next start, or by
    /// another node once its lease runs out. Returns how many were left behind.
    pub async fn stop(self, grace: std::time::Duration) -> usize {
        let _ = self.stop_tx.send(true);
        let deadline = tokio::time::Instant::now().checked_add(grace);
        let mut busy = 0;
        for handle in self.handles {
            let finished = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, handle).await.is_ok(),
                None => {
                    let _ = handle.await;
                    true
                }
            };
            busy += usize::from(!finished);
        }
        let _ = self.heartbeat.await;
        busy
    }
}
