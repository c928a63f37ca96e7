//! Index replicas: with several nodes on one PostgreSQL database, each node's indexes
//! follow the chunk log that every node writes (`database.several_nodes`).
//!
//! A node catches up after its own writes already ([`IndexRegistry`]); this task catches it
//! up after the others'. Two triggers, one action (catch up a KB from its mark):
//!
//! - a notification: the database notifies every change to a chunk or a KB, with the KB's
//!   id, when its transaction commits ([`crate::store::index_log`]), so a new chunk is
//!   searchable everywhere within one catch-up of its commit (milliseconds; the aim is
//!   2 s);
//! - a poll every `database.replica_poll_ms`: each KB's log end is compared with the
//!   open indexes' mark, so a notification lost (the listening connection dropped, the
//!   database restarted) costs at most one poll. The poll also opens KBs created
//!   elsewhere and removes the indexes of KBs deleted elsewhere.
//!
//! Nothing is skipped because seqs commit in order ([`crate::store::Store::reserve_seqs`]).
//! The lag left after each poll feeds `/health` ([`ReplicaLag`]).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use super::indexing::IndexRegistry;
use crate::error::{Error, Result};
use crate::store::Store;

/// How long a replica may stay behind before `/health` says so: long enough for a catch-up
/// of a large upload, short enough for a load balancer to notice a node that stopped
/// following.
pub const REPLICA_BEHIND_GRACE: Duration = Duration::from_secs(10);

/// How far this node's indexes were behind the database after the last poll.
#[derive(Debug, Default)]
pub struct ReplicaLag {
    state: Mutex<LagState>,
}

#[derive(Debug, Default)]
struct LagState {
    chunks: i64,
    behind_since: Option<Instant>,
}

impl ReplicaLag {
    /// Record the chunks not applied after a poll's catch-up (0: in step).
    pub fn record(&self, chunks: i64) {
        if let Ok(mut state) = self.state.lock() {
            state.chunks = chunks;
            state.behind_since = match chunks {
                0 => None,
                _ => state.behind_since.or_else(|| Some(Instant::now())),
            };
        }
    }

    /// Chunks behind and for how long, when behind for more than `grace`.
    pub fn behind_for_longer_than(&self, grace: Duration) -> Option<(i64, Duration)> {
        let state = self.state.lock().ok()?;
        let since = state.behind_since?.elapsed();
        (since > grace).then_some((state.chunks, since))
    }
}

/// The running follower; stop it with [`Replicas::stop`].
pub struct Replicas {
    stop_tx: watch::Sender<bool>,
    handle: JoinHandle<()>,
    listener: JoinHandle<()>,
}

/// What the listener hands the follower.
enum Wake {
    /// This KB changed.
    Kb(String),
    /// Notifications may have been lost: look at every KB.
    All,
}

/// Start following: a listener on the database's notifications and a poll every `poll`.
pub fn start(
    indexes: Arc<IndexRegistry>,
    store: Store,
    poll: Duration,
    lag: Arc<ReplicaLag>,
) -> Replicas {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let (wake_tx, mut wake_rx) = mpsc::unbounded_channel();
    let listener = tokio::spawn(listen(store.clone(), wake_tx, poll));
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wakes = tokio::select! {
                _ = stop_rx.changed() => return,
                _ = tick.tick() => vec![Wake::All],
                Some(first) = wake_rx.recv() => {
                    // Many commits at once: each KB is caught up once for all of them.
                    let mut wakes = vec![first];
                    while let Ok(more) = wake_rx.try_recv() {
                        wakes.push(more);
                    }
                    wakes
                }
            };
            let outcome = if wakes.iter().any(|w| matches!(w, Wake::All)) {
                poll_all(&indexes, &store, &lag)
                    .instrument(info_span!("replica_poll"))
                    .await
            } else {
                let kbs: BTreeSet<String> = wakes
                    .into_iter()
                    .filter_map(|w| match w {
                        Wake::Kb(kb_id) => Some(kb_id),
                        Wake::All => None,
                    })
                    .collect();
                follow_kbs(&indexes, kbs).await
            };
            if let Err(e) = outcome {
                warn!(error = %e, "index replica catch-up failed; trying again at the next poll");
            }
        }
    });
    Replicas {
        stop_tx,
        handle,
        listener,
    }
}

impl Replicas {
    /// Stop following, giving a catch-up in progress `grace` to finish (it loses nothing
    /// when cut short: marks move only with what is applied).
    pub async fn stop(self, grace: Duration) {
        self.listener.abort();
        let _ = self.stop_tx.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            handle.abort();
        }
    }
}

/// Forward the database's notifications as wakes. The listening connection reconnects by
/// itself; after a reconnection everything is looked at, since notifications sent
/// meanwhile are lost. While the database cannot be reached, try again every `retry`.
async fn listen(store: Store, wake: mpsc::UnboundedSender<Wake>, retry: Duration) {
    let mut listener = loop {
        match store.index_listener().await {
            Ok(Some(listener)) => break listener,
            // SQLite: one node, nothing to listen to.
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "cannot listen for index changes; the poll covers them meanwhile");
                tokio::time::sleep(retry).await;
            }
        }
    };
    loop {
        let sent = match listener.next_kb().await {
            Ok(Some(kb_id)) => wake.send(Wake::Kb(kb_id)),
            Ok(None) => {
                info!("listening for index changes again after a lost connection");
                wake.send(Wake::All)
            }
            Err(e) => {
                warn!(error = %e, "lost the database's index notifications; the poll covers them meanwhile");
                tokio::time::sleep(retry).await;
                Ok(())
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Catch up these KBs; a KB deleted meanwhile has its indexes removed.
async fn follow_kbs(indexes: &IndexRegistry, kbs: BTreeSet<String>) -> Result<()> {
    for kb_id in kbs {
        follow_kb(indexes, &kb_id)
            .instrument(info_span!("replica_catch_up", kb_id = %kb_id))
            .await?;
    }
    Ok(())
}

async fn follow_kb(indexes: &IndexRegistry, kb_id: &str) -> Result<()> {
    match indexes.catch_up(kb_id).await {
        Err(Error::NotFound { .. }) => indexes.drop_kb(kb_id).await,
        other => other,
    }
}

/// Compare every KB's log with this node's indexes: catch up what is behind (opening KBs
/// created elsewhere), remove what was deleted, and record the lag left.
async fn poll_all(indexes: &IndexRegistry, store: &Store, lag: &ReplicaLag) -> Result<()> {
    let states = store.kb_log_states().await?;
    let existing: HashSet<String> = states.iter().map(|s| s.kb_id.clone()).collect();
    let mut behind = 0;
    for state in &states {
        // A mark above the seq counter is not ahead but wrong (a restored database):
        // catch-up sends those indexes afresh.
        let caught_up =
            |mark: Option<i64>| mark.is_some_and(|m| m >= state.max_seq && m <= state.seq_counter);
        if caught_up(indexes.mark(&state.kb_id).await?) {
            continue;
        }
        if let Err(e) = follow_kb(indexes, &state.kb_id).await {
            warn!(kb_id = %state.kb_id, error = %e, "cannot catch up this knowledge base's indexes");
        }
        // Indexes that could not be opened are behind by everything.
        let mark = indexes.mark(&state.kb_id).await?.unwrap_or(0);
        if mark < state.max_seq {
            behind += store.count_changes_after(&state.kb_id, mark).await?;
        }
    }
    indexes.drop_deleted_kbs(&existing).await?;
    lag.record(behind);
    Ok(())
}
