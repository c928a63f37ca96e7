//! Per-bot API keys for the published chat and the OpenAI-compatible API: the
//! [`BotKey`] extractor authenticates `Authorization: Bearer <key>` (hashed lookup,
//! constant-time compare, revoked keys refused, `http.key_requests_per_minute` enforced
//! per key, across nodes when there are several: [`crate::services::key_rate`]) and
//! [`BotKey::opens`] keeps a key to its own bot.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::auth::bearer;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::store::bots::BotRow;
use crate::store::keys::KeyRow;

/// An authenticated bot key.
#[derive(Debug, Clone)]
pub struct BotKey(pub KeyRow);

impl FromRequestParts<AppState> for BotKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let Some(token) = bearer(&parts.headers) else {
            return Err(Error::Unauthorized);
        };
        let Some(key) = state.bots.authenticate_key(token).await? else {
            return Err(Error::Unauthorized);
        };
        state.key_limits.check(&key.key_id).await?;
        Ok(Self(key))
    }
}

impl BotKey {
    /// Refuse a key of another bot (403: the key is valid, just not for this bot).
    pub fn opens(&self, bot: &BotRow) -> Result<()> {
        if self.0.bot_id == bot.bot_id {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this API key belongs to another bot, not to '{}'",
                bot.name
            )))
        }
    }
}
