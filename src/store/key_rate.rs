//! The `key_rate` table: how many requests each bot API key made in each minute, counted
//! in the database so that `http.key_requests_per_minute` holds across nodes
//! (`[database] several_nodes`). Windows are minutes of the database's clock
//! (`unixepoch()`: SQLite's own, a function of that name on PostgreSQL), so the nodes'
//! clocks need not agree. The limit itself is [`crate::services::key_rate`]'s.

use super::Store;
use crate::error::Result;
use ingest::on_db;

/// How many seconds a window lasts.
pub const WINDOW_S: i64 = 60;

/// One request counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Requests of the key in the current window, this one included.
    pub count: i64,
    /// Seconds until the window ends (1 to 60).
    pub seconds_left: i64,
}

impl Store {
    /// Count one request of `key_id` in the current minute and say how many there were.
    /// One statement: concurrent requests on any node each get their own count (the row
    /// is inserted or incremented atomically), so no two read the same number.
    pub async fn count_key_request(&self, key_id: &str) -> Result<Counted> {
        let (count, seconds_left): (i64, i64) = on_db!(
            &self.pool,
            format!(
                "INSERT INTO key_rate (key_id, window_start, count)
                 VALUES (?, unixepoch() / {WINDOW_S} * {WINDOW_S}, 1)
                 ON CONFLICT (key_id, window_start) DO UPDATE SET count = key_rate.count + 1
                 RETURNING count, window_start + {WINDOW_S} - unixepoch()"
            ),
            |e, q| sqlx::query_as(q).bind(key_id).fetch_one(e).await
        )?;
        Ok(Counted {
            count,
            seconds_left: seconds_left.clamp(1, WINDOW_S),
        })
    }

    /// Delete the windows that ended more than a minute ago (nothing reads them again);
    /// returns how many rows went.
    pub async fn forget_old_key_rates(&self) -> Result<u64> {
        Ok(on_db!(
            &self.pool,
            format!(
                "DELETE FROM key_rate WHERE window_start < unixepoch() - {}",
                2 * WINDOW_S
            ),
            |e, q| sqlx::query(q).execute(e).await.map(|r| r.rows_affected())
        )?)
    }
}
