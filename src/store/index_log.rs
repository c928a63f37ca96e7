//! The chunk log as index replicas read it: where each KB's log stands, and (PostgreSQL)
//! the notifications that say a KB's chunks changed.
//!
//! The log is the `chunk` table itself, ordered by `seq`: every change to a chunk gives
//! it a new seq, and seqs commit in order ([`Store::reserve_seqs`] says why), so a reader
//! that has applied everything up to a mark needs only the rows above it. On PostgreSQL
//! a trigger (`migrations/postgres/0011_index_replicas.sql`) notifies [`INDEX_CHANNEL`]
//! with the KB's id whenever a chunk or a KB row changes, delivered at commit.

use sqlx::FromRow;
use sqlx::postgres::PgListener;

use super::{Pool, Store};
use crate::error::Result;
use ingest::on_db;

/// The PostgreSQL channel the trigger notifies, with a KB's id as the payload.
pub const INDEX_CHANNEL: &str = "zhiku_index";

/// Where one KB's log stands, as index replicas compare it with their marks.
#[derive(Debug, Clone, FromRow)]
pub struct KbLogState {
    /// KB.
    pub kb_id: String,
    /// Dimensions of its vectors now (a re-embedding may change them).
    pub embedding_dims: i64,
    /// The highest seq whose tombstones a rebuild removed.
    pub reindexed_through_seq: i64,
    /// The highest seq of its chunks (0 when it has none).
    pub max_seq: i64,
    /// The highest seq handed out to any KB (the counter, which only a restore from a
    /// backup moves back): indexes whose mark is above it are ahead of the database.
    pub seq_counter: i64,
}

/// Notifications of changed KBs, on a connection of its own that reconnects by itself.
pub struct IndexListener {
    listener: PgListener,
}

impl IndexListener {
    /// The next KB whose chunks changed; `None` when the connection was lost and made
    /// anew, so notifications may have been missed meanwhile (the caller catches up every
    /// KB). An error means the database cannot be reached now; calling again retries.
    pub async fn next_kb(&mut self) -> Result<Option<String>> {
        Ok(self
            .listener
            .try_recv()
            .await?
            .map(|n| n.payload().to_string()))
    }
}

impl Store {
    /// Every KB's log state, in one query (a range of the `(kb_id, seq)` index per KB).
    pub async fn kb_log_states(&self) -> Result<Vec<KbLogState>> {
        Ok(on_db!(
            &self.pool,
            "SELECT k.kb_id, k.embedding_dims, k.reindexed_through_seq,
                    COALESCE((SELECT MAX(c.seq) FROM chunk c WHERE c.kb_id = k.kb_id), 0) AS max_seq,
                    (SELECT value FROM counter WHERE name = 'chunk_seq') AS seq_counter
               FROM kb k ORDER BY k.kb_id",
            |e, q| sqlx::query_as(q).fetch_all(e).await
        )?)
    }

    /// One KB's log state (`None`: the KB does not exist, or no longer).
    pub async fn kb_log_state(&self, kb_id: &str) -> Result<Option<KbLogState>> {
        Ok(on_db!(
            &self.pool,
            "SELECT k.kb_id, k.embedding_dims, k.reindexed_through_seq,
                    COALESCE((SELECT MAX(c.seq) FROM chunk c WHERE c.kb_id = k.kb_id), 0) AS max_seq,
                    (SELECT value FROM counter WHERE name = 'chunk_seq') AS seq_counter
               FROM kb k WHERE k.kb_id = ?",
            |e, q| sqlx::query_as(q).bind(kb_id).fetch_optional(e).await
        )?)
    }

    /// Listen for changed KBs: on PostgreSQL only (`None` on SQLite, where one node writes
    /// and catches up after each of its own writes).
    pub async fn index_listener(&self) -> Result<Option<IndexListener>> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(INDEX_CHANNEL).await?;
        Ok(Some(IndexListener { listener }))
    }
}
