//! `http.key_requests_per_minute`: how many requests one bot API key may make a minute,
//! counted where every node sees the count.
//!
//! - **One node** (SQLite, or PostgreSQL without `database.several_nodes`): in memory,
//!   with `governor` (a token bucket: up to the limit at once, then one more every
//!   `60 / limit` seconds). Nothing touches the database.
//! - **Several nodes** (`database.several_nodes` on PostgreSQL): in the database, one row
//!   per key and minute of the database's clock ([`crate::store::key_rate`]), incremented
//!   by one statement on whichever node the request reaches, so the limit holds for the
//!   key across all of them. A key gets the limit per calendar minute: a client may send
//!   it at the end of one minute and again at the start of the next. Retry-After is the
//!   time left in the minute.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::key_rate::WINDOW_S;

/// An in-memory rate limiter keyed by API key id.
type KeyLimiter = governor::DefaultKeyedRateLimiter<String>;

/// The per-key request limit in force on this node.
pub struct KeyRateLimit {
    /// Requests per minute allowed (0: no limit).
    per_minute: u32,
    /// Where requests are counted.
    counter: Counter,
}

enum Counter {
    /// No limit.
    Unlimited,
    /// In this process only.
    Local(KeyLimiter),
    /// In the database, for every node.
    Shared {
        store: Store,
        /// When this node last deleted old windows.
        last_sweep: Mutex<Option<Instant>>,
    },
}

impl KeyRateLimit {
    /// `per_minute` requests per key (0: unlimited), counted in `shared`'s database when
    /// given (several nodes), else in memory.
    pub fn new(per_minute: u32, shared: Option<Store>) -> Self {
        let counter = match (std::num::NonZeroU32::new(per_minute), shared) {
            (None, _) => Counter::Unlimited,
            (Some(n), None) => Counter::Local(KeyLimiter::keyed(governor::Quota::per_minute(n))),
            (Some(_), Some(store)) => Counter::Shared {
                store,
                last_sweep: Mutex::new(None),
            },
        };
        Self {
            per_minute,
            counter,
        }
    }

    /// Count one request of `key_id`; [`Error::RateLimited`] with the seconds to wait once
    /// the key is past its limit.
    pub async fn check(&self, key_id: &str) -> Result<()> {
        let retry_after_s = match &self.counter {
            Counter::Unlimited => return Ok(()),
            Counter::Local(limiter) => match limiter.check_key(&key_id.to_string()) {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    let now =
                        governor::clock::Clock::now(&governor::clock::DefaultClock::default());
                    not_until.wait_time_from(now).as_secs() + 1
                }
            },
            Counter::Shared { store, last_sweep } => {
                let counted = store.count_key_request(key_id).await?;
                if counted.count == 1 {
                    // A key's first request of a minute: now and then, old windows go.
                    sweep(store, last_sweep).await;
                }
                if counted.count <= i64::from(self.per_minute) {
                    return Ok(());
                }
                counted.seconds_left.unsigned_abs()
            }
        };
        Err(Error::RateLimited {
            per_minute: self.per_minute,
            retry_after_s,
        })
    }
}

/// Delete windows nothing reads again, at most once a minute per node.
async fn sweep(store: &Store, last_sweep: &Mutex<Option<Instant>>) {
    let due = {
        let Ok(mut last) = last_sweep.lock() else {
            return;
        };
        let window = Duration::from_secs(WINDOW_S.unsigned_abs());
        let due = last.is_none_or(|at| at.elapsed() >= window);
        if due {
            *last = Some(Instant::now());
        }
        due
    };
    if due && let Err(e) = store.forget_old_key_rates().await {
        warn!(error = %e, "old key rate windows not deleted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backends::test_store;
    use ingest::db::Backend;

    /// The Retry-After of a refusal under a limit of 3.
    fn retry_after(refused: Result<()>) -> u64 {
        match refused {
            Err(Error::RateLimited {
                per_minute: 3,
                retry_after_s,
            }) => retry_after_s,
            other => panic!("not rate limited: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_key_is_refused_past_its_limit_in_memory() {
        let limit = KeyRateLimit::new(3, None);
        for _ in 0..3 {
            limit.check("k1").await.unwrap();
        }
        let wait = retry_after(limit.check("k1").await);
        assert!((1..=60).contains(&wait), "{wait}");
        limit.check("k2").await.unwrap();
        let unlimited = KeyRateLimit::new(0, None);
        for _ in 0..100 {
            unlimited.check("k1").await.unwrap();
        }
    }

    #[tokio::test]
    async fn two_nodes_share_a_keys_count_in_the_database() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let (_dir, store) = test_store(backend).await;
            // Two nodes: two limiters on one database.
            let a = KeyRateLimit::new(3, Some(store.clone()));
            let b = KeyRateLimit::new(3, Some(store.clone()));
            for attempt in 0.. {
                let key = format!("k{attempt}");
                for node in [&a, &b, &a] {
                    node.check(&key).await.unwrap();
                }
                match b.check(&key).await {
                    Err(refused) => {
                        let wait = retry_after(Err(refused));
                        assert!((1..=60).contains(&wait), "{wait}");
                        b.check("another key").await.unwrap();
                        break;
                    }
                    // The minute turned between the requests: the count started again.
                    Ok(()) => assert!(attempt < 2, "the fourth request was let through"),
                }
            }
        }
    }
}
