//! The `conversation` and `message` tables: what was said to a bot, on which channel.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::Store;
use crate::error::{Error, Result};
use ingest::on_db;

/// Where a conversation happens.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase", type_name = "TEXT")]
pub enum Channel {
    /// The admin trying the draft.
    Debug,
    /// The bot's public page, answering with the published version.
    Published,
    /// A caller with one of the bot's API keys.
    Api,
}

/// Who said a message.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase", type_name = "TEXT")]
pub enum Role {
    /// The person asking.
    User,
    /// The bot.
    Assistant,
}

/// How a message ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase", type_name = "TEXT")]
pub enum MessageStatus {
    /// Fully written.
    #[default]
    Complete,
    /// Cut short (the client left, or the server stopped) with part of the answer.
    Interrupted,
    /// Generation failed.
    Failed,
}

/// `as_str`, `Display` and `FromStr` with the names the database and the API use.
macro_rules! text_enum {
    ($t:ty, $what:literal, $($variant:ident = $s:literal),+) => {
        impl $t {
            /// The stored and serialized name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $s),+
                }
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok(Self::$variant),)+
                    _ => Err(Error::InvalidInput(format!(
                        concat!($what, " must be one of {}, not '{}'"),
                        [$($s),+].join(", "),
                        s
                    ))),
                }
            }
        }
    };
}

text_enum!(
    Channel,
    "channel",
    Debug = "debug",
    Published = "published",
    Api = "api"
);
text_enum!(Role, "role", User = "user", Assistant = "assistant");
text_enum!(
    MessageStatus,
    "status",
    Complete = "complete",
    Interrupted = "interrupted",
    Failed = "failed"
);

/// A conversation.
#[derive(Debug, Clone, FromRow)]
pub struct ConversationRow {
    /// Id (UUID).
    pub conversation_id: String,
    /// Its bot.
    pub bot_id: String,
    /// Where it happens.
    pub channel: Channel,
    /// The API key it came with (channel `api`).
    pub key_id: Option<String>,
    /// Display title (often the first question).
    pub title: String,
    /// Started.
    pub created_at: String,
    /// Last message.
    pub updated_at: String,
}

/// A message row. `context_json` is whatever the chat service stored with the turn.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct MessageRow {
    /// Id; also the order of the turns.
    pub message_id: i64,
    /// Its conversation.
    pub conversation_id: String,
    /// Who said it.
    pub role: Role,
    /// Text.
    pub content: String,
    /// How it ended.
    pub status: MessageStatus,
    /// Opaque JSON (user turn: passages and rewritten query; assistant turn: citations,
    /// usage, timings).
    pub context_json: Option<String>,
    /// Written.
    pub created_at: String,
}

const SELECT_CONVERSATION: &str = "SELECT conversation_id, bot_id, channel, key_id, title,
        created_at, updated_at FROM conversation";
const SELECT_MESSAGE: &str = "SELECT message_id, conversation_id, role, content, status,
        context_json, created_at FROM message";

impl Store {
    /// Start a conversation.
    pub async fn create_conversation(
        &self,
        bot_id: &str,
        channel: Channel,
        key_id: Option<&str>,
        title: &str,
    ) -> Result<ConversationRow> {
        let id = uuid::Uuid::new_v4().to_string();
        on_db!(
            &self.pool,
            "INSERT INTO conversation (conversation_id, bot_id, channel, key_id, title)
             VALUES (?, ?, ?, ?, ?)",
            |e, q| sqlx::query(q)
                .bind(&id)
                .bind(bot_id)
                .bind(channel)
                .bind(key_id)
                .bind(title)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        self.conversation(&id).await
    }

    /// A conversation by id.
    pub async fn conversation(&self, conversation_id: &str) -> Result<ConversationRow> {
        on_db!(
            &self.pool,
            format!("{SELECT_CONVERSATION} WHERE conversation_id = ?"),
            |e, q| sqlx::query_as(q)
                .bind(conversation_id)
                .fetch_optional(e)
                .await
        )?
        .ok_or_else(|| Error::not_found(format!("conversation '{conversation_id}'")))
    }

    /// A bot's conversations, most recently active first; `None` filters match all.
    pub async fn list_conversations(
        &self,
        bot_id: &str,
        channel: Option<Channel>,
        key_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ConversationRow>> {
        Ok(on_db!(
            &self.pool,
            format!(
                "{SELECT_CONVERSATION}
              WHERE bot_id = ?1 AND (?2 IS NULL OR channel = ?2) AND (?3 IS NULL OR key_id = ?3)
              ORDER BY updated_at DESC, conversation_id LIMIT ?4"
            ),
            |e, q| sqlx::query_as(q)
                .bind(bot_id)
                .bind(channel)
                .bind(key_id)
                .bind(limit)
                .fetch_all(e)
                .await
        )?)
    }

    /// Delete a conversation with its messages.
    pub async fn delete_conversation(&self, conversation_id: &str) -> Result<()> {
        let done = on_db!(
            &self.pool,
            "DELETE FROM conversation WHERE conversation_id = ?",
            |e, q| sqlx::query(q)
                .bind(conversation_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        if done == 0 {
            return Err(Error::not_found(format!(
                "conversation '{conversation_id}'"
            )));
        }
        Ok(())
    }

    /// Add a message to a conversation (and mark the conversation active); returns its id.
    pub async fn append_message(
        &self,
        conversation_id: &str,
        role: Role,
        content: &str,
        status: MessageStatus,
        context_json: Option<&str>,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let touched = on_db!(
            &mut tx,
            "UPDATE conversation SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE conversation_id = ?",
            |e, q| sqlx::query(q)
                .bind(conversation_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        if touched == 0 {
            return Err(Error::not_found(format!(
                "conversation '{conversation_id}'"
            )));
        }
        let (id,): (i64,) = on_db!(
            &mut tx,
            "INSERT INTO message (conversation_id, role, content, status, context_json)
             VALUES (?, ?, ?, ?, ?) RETURNING message_id",
            |e, q| sqlx::query_as(q)
                .bind(conversation_id)
                .bind(role)
                .bind(content)
                .bind(status)
                .bind(context_json)
                .fetch_one(e)
                .await
        )?;
        tx.commit().await?;
        Ok(id)
    }

    /// Rewrite a message (an answer as it streams, then as it ended).
    pub async fn update_message(
        &self,
        message_id: i64,
        content: &str,
        status: MessageStatus,
        context_json: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let done = on_db!(
            &mut tx,
            "UPDATE message SET content = ?, status = ?, context_json = ? WHERE message_id = ?",
            |e, q| sqlx::query(q)
                .bind(content)
                .bind(status)
                .bind(context_json)
                .bind(message_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        if done == 0 {
            return Err(Error::not_found(format!("message {message_id}")));
        }
        on_db!(
            &mut tx,
            "UPDATE conversation SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE conversation_id = (SELECT conversation_id FROM message WHERE message_id = ?)",
            |e, q| sqlx::query(q)
                .bind(message_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )?;
        tx.commit().await?;
        Ok(())
    }

    /// All messages of a conversation, in order.
    pub async fn list_messages(&self, conversation_id: &str) -> Result<Vec<MessageRow>> {
        Ok(on_db!(
            &self.pool,
            format!("{SELECT_MESSAGE} WHERE conversation_id = ? ORDER BY message_id"),
            |e, q| sqlx::query_as(q).bind(conversation_id).fetch_all(e).await
        )?)
    }

    /// The last `limit` messages of a conversation, oldest first (the history given to the
    /// model). Every status is returned; the caller decides what to skip.
    pub async fn recent_messages(
        &self,
        conversation_id: &str,
        limit: i64,
    ) -> Result<Vec<MessageRow>> {
        Ok(on_db!(
            &self.pool,
            format!(
                "SELECT * FROM ({SELECT_MESSAGE} WHERE conversation_id = ?
                ORDER BY message_id DESC LIMIT ?) AS recent
              ORDER BY message_id"
            ),
            |e, q| sqlx::query_as(q)
                .bind(conversation_id)
                .bind(limit)
                .fetch_all(e)
                .await
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_their_names() {
        assert_eq!("api".parse::<Channel>().unwrap(), Channel::Api);
        assert_eq!(Channel::Published.to_string(), "published");
        let e = "web".parse::<Channel>().unwrap_err();
        assert!(e.to_string().contains("debug, published, api"), "{e}");
        assert_eq!(
            serde_json::to_string(&MessageStatus::Interrupted).unwrap(),
            "\"interrupted\""
        );
    }
}
