//! Web pages that stay fresh by themselves: a knowledge base may ask the server to re-sync
//! its web pages every so many minutes (`web_sync_interval_minutes`, off by default).
//!
//! One task in the server looks once a minute for pages whose last check is older than
//! their KB's interval, and syncs each exactly as a person's `POST …/sync` does
//! ([`KnowledgeService::sync_page`]): same fetch, same validators, and only a page that
//! changed is queued to be indexed again. Pages waiting for their job are left to it. A
//! page the site no longer has (404/410) or cannot be reached is marked on its document
//! and checked again at its next turn; nothing is deleted.
//!
//! How long a minute lasts is `ingest.web_sync_minute_ms` (60000): the tests shorten it so
//! a schedule of a few "minutes" runs in a second.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::knowledge::KnowledgeService;
use crate::error::{Error, Result};
use crate::store::documents::timestamp;

/// Shortest re-sync interval a KB may set, in minutes.
pub const MIN_SYNC_INTERVAL_MINUTES: u32 = 5;
/// Longest re-sync interval a KB may set, in minutes (30 days).
pub const MAX_SYNC_INTERVAL_MINUTES: u32 = 43_200;
/// Most pages of one KB checked in one look, so that one large KB cannot hold the others
/// up for long; the rest are still due at the next look.
const PAGES_PER_LOOK: i64 = 200;

/// Refuse an interval outside the bounds (`None`, the schedule off, is always fine).
pub(crate) fn check_sync_interval(minutes: Option<u32>) -> Result<()> {
    match minutes {
        Some(m) if !(MIN_SYNC_INTERVAL_MINUTES..=MAX_SYNC_INTERVAL_MINUTES).contains(&m) => {
            Err(Error::InvalidInput(format!(
                "web_sync_interval_minutes must be between {MIN_SYNC_INTERVAL_MINUTES} and {MAX_SYNC_INTERVAL_MINUTES} (minutes), or null to turn the schedule off; got {m}"
            )))
        }
        _ => Ok(()),
    }
}

impl KnowledgeService {
    /// Sync every web page that is due under its KB's schedule, a `minute` being that
    /// long; returns how many pages were checked. A page that cannot be fetched is marked
    /// on its document (by the sync) and does not stop the others.
    pub async fn sync_due(&self, minute: Duration, stop: &watch::Receiver<bool>) -> Result<usize> {
        let mut checked = 0;
        for (kb_id, minutes) in self.store.kbs_with_web_sync().await? {
            let kb = self.store.kb(&kb_id).await?;
            if let Err(e) = self.check_model(&kb) {
                warn!(kb = %kb.name, error = %e, "scheduled web sync skipped");
                continue;
            }
            let interval = minute.saturating_mul(u32::try_from(minutes).unwrap_or(u32::MAX));
            let cutoff = chrono::Duration::from_std(interval)
                .ok()
                .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            let due = self
                .store
                .web_documents_due(&kb.kb_id, &timestamp(cutoff), PAGES_PER_LOOK)
                .await?;
            for document_id in due {
                if *stop.borrow() {
                    return Ok(checked);
                }
                checked += 1;
                match self.sync_page(&kb, &document_id).await {
                    Ok(outcome) if outcome.changed => {
                        info!(kb = %kb.name, document_id, "scheduled sync: page changed");
                    }
                    Ok(_) => {}
                    // Already on the document (gone, unreachable); said once here.
                    Err(e) => {
                        info!(kb = %kb.name, document_id, error = %e, "scheduled sync: page not reached");
                    }
                }
            }
        }
        Ok(checked)
    }
}

/// The running schedule; stop it with [`WebSchedule::stop`].
pub struct WebSchedule {
    stop_tx: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Start the schedule: a look for due pages every `minute`.
pub fn start(knowledge: Arc<KnowledgeService>, minute: Duration) -> WebSchedule {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let handle = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(minute) => {}
                _ = stop_rx.changed() => return,
            }
            if let Err(e) = knowledge.sync_due(minute, &stop_rx).await {
                warn!(error = %e, "scheduled web sync failed; trying again in a minute");
            }
        }
    });
    WebSchedule { stop_tx, handle }
}

impl WebSchedule {
    /// Stop looking; a page being fetched is given `grace` to finish (its sync is one
    /// fetch and one transaction), then dropped, which loses nothing: it is still due.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop_tx.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_outside_the_bounds_are_refused() {
        assert!(check_sync_interval(None).is_ok());
        assert!(check_sync_interval(Some(5)).is_ok());
        assert!(check_sync_interval(Some(43_200)).is_ok());
        for bad in [0, 4, 43_201] {
            let e = check_sync_interval(Some(bad)).unwrap_err();
            assert_eq!(e.code(), "invalid_input");
            assert!(e.to_string().contains("between 5 and 43200"), "{e}");
        }
    }
}
