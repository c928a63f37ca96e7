//! The `bot_key` table: API keys of bots.
//!
//! A key is `zk-` and 40 random letters and digits (~238 bits). Only its sha256 is stored,
//! with its first [`PREFIX_CHARS`] characters so that lists can show which key is which
//! and authentication can find the candidates without scanning every hash.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use subtle::ConstantTimeEq;

use super::Store;
use crate::error::{Error, Result};
use ingest::on_db;

/// What every key starts with.
pub const KEY_MARKER: &str = "zk-";
/// Random characters after the marker.
const RANDOM_CHARS: usize = 40;
/// Characters of the key kept in clear (the marker and 7 random ones).
pub const PREFIX_CHARS: usize = 10;

/// A key without the key or its hash (all a list or an authentication needs).
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    /// Id (UUID).
    pub key_id: String,
    /// Its bot.
    pub bot_id: String,
    /// What the owner calls it.
    pub name: String,
    /// The key's first characters.
    pub prefix: String,
    /// Creation time.
    pub created_at: String,
    /// Last successful authentication (to the minute; see [`Store::authenticate_key`]).
    pub last_used_at: Option<String>,
    /// When it was revoked; a revoked key never authenticates again.
    pub revoked_at: Option<String>,
}

const SELECT: &str =
    "SELECT key_id, bot_id, name, prefix, created_at, last_used_at, revoked_at FROM bot_key";

fn new_key() -> String {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("{KEY_MARKER}{random}")
}

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// Make a key for a bot; returns its row and the key, which is never available again.
    pub async fn create_bot_key(&self, bot_id: &str, name: &str) -> Result<(KeyRow, String)> {
        let key = new_key();
        let key_id = uuid::Uuid::new_v4().to_string();
        let prefix: String = key.chars().take(PREFIX_CHARS).collect();
        on_db!(
            &self.pool,
            "INSERT INTO bot_key (key_id, bot_id, name, prefix, key_hash) VALUES (?, ?, ?, ?, ?)",
            |e, q| sqlx::query(q)
                .bind(&key_id)
                .bind(bot_id)
                .bind(name)
                .bind(&prefix)
                .bind(hash_key(&key))
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        let row = self.bot_key(bot_id, &key_id).await?;
        Ok((row, key))
    }

    /// One key of a bot.
    pub async fn bot_key(&self, bot_id: &str, key_id: &str) -> Result<KeyRow> {
        on_db!(
            &self.pool,
            format!("{SELECT} WHERE bot_id = ? AND key_id = ?"),
            |e, q| sqlx::query_as(q)
                .bind(bot_id)
                .bind(key_id)
                .fetch_optional(e)
                .await
        )?
        .ok_or_else(|| Error::not_found(format!("key '{key_id}'")))
    }

    /// A bot's keys, revoked ones included, newest first.
    pub async fn list_bot_keys(&self, bot_id: &str) -> Result<Vec<KeyRow>> {
        Ok(on_db!(
            &self.pool,
            format!("{SELECT} WHERE bot_id = ? ORDER BY created_at DESC, key_id"),
            |e, q| sqlx::query_as(q).bind(bot_id).fetch_all(e).await
        )?)
    }

    /// Revoke a key of a bot (revoking twice keeps the first time).
    pub async fn revoke_bot_key(&self, bot_id: &str, key_id: &str) -> Result<KeyRow> {
        let done = on_db!(&self.pool, "UPDATE bot_key SET revoked_at = COALESCE(revoked_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             WHERE bot_id = ? AND key_id = ?", |e, q| sqlx::query(q).bind(bot_id).bind(key_id).execute(e).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(Error::not_found(format!("key '{key_id}'")));
        }
        self.bot_key(bot_id, key_id).await
    }

    /// The live key a caller presented, or `None` for an unknown or revoked one.
    ///
    /// Hashes are compared in constant time, so response timing tells nothing about how
    /// much of a guess was right. `last_used_at` is written at most once a minute per key:
    /// a write per request would queue every API call behind ingestion's writes.
    pub async fn authenticate_key(&self, key: &str) -> Result<Option<KeyRow>> {
        if !key.starts_with(KEY_MARKER) || key.chars().count() < PREFIX_CHARS {
            return Ok(None);
        }
        let prefix: String = key.chars().take(PREFIX_CHARS).collect();
        let candidates: Vec<(String, String, String, bool, bool)> = on_db!(
            &self.pool,
            "SELECT key_id, bot_id, key_hash, revoked_at IS NOT NULL,
                    last_used_at IS NULL
                      OR last_used_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 seconds')
               FROM bot_key WHERE prefix = ?",
            |e, q| sqlx::query_as(q).bind(&prefix).fetch_all(e).await
        )?;
        let presented = hash_key(key);
        let mut found = None;
        // Compare with every candidate, not stopping at a match: the work done does not
        // depend on which one matched.
        for (key_id, bot_id, hash, revoked, stale) in candidates {
            if bool::from(presented.as_bytes().ct_eq(hash.as_bytes())) {
                found = Some((key_id, bot_id, revoked, stale));
            }
        }
        let Some((key_id, bot_id, revoked, stale)) = found else {
            return Ok(None);
        };
        if revoked {
            return Ok(None);
        }
        if stale {
            on_db!(
                &self.pool,
                "UPDATE bot_key SET last_used_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                 WHERE key_id = ?",
                |e, q| sqlx::query(q)
                    .bind(&key_id)
                    .execute(e)
                    .await
                    .map(|r| r.rows_affected())
            )?;
        }
        Ok(Some(self.bot_key(&bot_id, &key_id).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_right_and_differ() {
        let a = new_key();
        let b = new_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_MARKER.len() + RANDOM_CHARS);
        assert!(a.starts_with(KEY_MARKER));
        assert!(
            a[KEY_MARKER.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_eq!(hash_key(&a).len(), 64);
    }
}
