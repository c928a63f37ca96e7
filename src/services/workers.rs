//! Ingestion workers running in this process: started by [`super::knowledge`] over its
//! queue and pipeline, writing through [`IndexingSink`], and stopped with a grace period.

use std::sync::Arc;

use ingest::jobs::JobQueue;
use ingest::pipeline::Pipeline;

use super::indexing::IndexingSink;

/// Start `count` (at least one) workers claiming from `queue`.
pub fn start(count: usize, queue: &JobQueue, pipeline: &Pipeline, sink: IndexingSink) -> Workers {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sink = Arc::new(sink);
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
    Workers { stop_tx, handles }
}

/// Running ingestion workers.
pub struct Workers {
    stop_tx: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Ask the workers to stop and wait up to `grace` in all (`Duration::MAX`: as long as
    /// it takes). A worker that is embedding stops at the end of its slice and puts its
    /// job back in the queue; one still busy when `grace` runs out (inside extraction or
    /// splitting, which cannot be interrupted) is left behind, and its job, still
    /// 'processing' in the database, is queued again at the next start. Returns how many
    /// were left behind.
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
        busy
    }
}
