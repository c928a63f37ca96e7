//! Recorded conversations, for the admin: a bot's list (`/api/bots/{bot}/conversations`),
//! and one conversation with its messages (`/api/conversations/{id}`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::AppQuery;
use super::openapi::TAG_CONVERSATIONS;
use super::views;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::bots::RecordedConversation;
use crate::store::conversations::{Channel, ConversationRow, MessageRow, MessageStatus, Role};

/// Conversation routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, remove))
}

/// A conversation as the API shows it: `{id, bot_id, channel, key_id, title, created_at,
/// updated_at}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ConversationView {
    /// Id (UUID).
    id: String,
    /// Its bot.
    bot_id: String,
    /// Where it happens.
    channel: Channel,
    /// The API key it came with (published and API channels).
    key_id: Option<String>,
    /// Display title (often the first question).
    title: String,
    /// Started.
    created_at: String,
    /// Last message.
    updated_at: String,
}

impl From<ConversationRow> for ConversationView {
    fn from(c: ConversationRow) -> Self {
        Self {
            id: c.conversation_id,
            bot_id: c.bot_id,
            channel: c.channel,
            key_id: c.key_id,
            title: c.title,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A message as the API shows it, its stored context parsed back into JSON.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct MessageView {
    /// Id.
    id: i64,
    /// Who said it.
    role: Role,
    /// Text.
    content: String,
    /// How it ended.
    status: MessageStatus,
    /// What the chat service recorded with it.
    context: Option<Value>,
    /// Written.
    created_at: String,
}

impl From<MessageRow> for MessageView {
    fn from(m: MessageRow) -> Self {
        // The context is opaque here; one that is not JSON is shown as a string rather
        // than making the whole conversation unreadable.
        let context = m
            .context_json
            .map(|raw| serde_json::from_str(&raw).unwrap_or(Value::String(raw)));
        Self {
            id: m.message_id,
            role: m.role,
            content: m.content,
            status: m.status,
            context,
            created_at: m.created_at,
        }
    }
}

/// A conversation with its messages: the conversation's fields and `messages`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ConversationDetail {
    /// The conversation.
    #[serde(flatten)]
    conversation: ConversationView,
    /// Its messages, in order.
    messages: Vec<MessageView>,
}

impl From<RecordedConversation> for ConversationDetail {
    fn from(r: RecordedConversation) -> Self {
        Self {
            conversation: r.conversation.into(),
            messages: views(r.messages),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// debug | published | api; all when absent. A string here so a bad value gets our
    /// error shape and the list of good ones, not axum's plain-text rejection.
    #[param(value_type = Option<Channel>)]
    channel: Option<String>,
    /// How many, newest first (1 to 1000).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: i64,
}

fn default_limit() -> i64 {
    50
}

/// A bot's recorded conversations, newest first.
#[utoipa::path(get, path = "/bots/{bot}/conversations", tag = TAG_CONVERSATIONS,
    operation_id = "list_conversations",
    params(("bot" = String, Path, description = "Bot id or name"), ListQuery),
    responses((status = 200, description = "Conversations", body = Vec<ConversationView>)))]
async fn list(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<Vec<ConversationView>>> {
    let channel = q
        .channel
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(str::parse::<Channel>)
        .transpose()?;
    if !(1..=1000).contains(&q.limit) {
        return Err(Error::InvalidInput(
            "limit must be between 1 and 1000".into(),
        ));
    }
    Ok(Json(views(
        s.bots.conversations(&bot, channel, q.limit).await?,
    )))
}

/// A conversation with its messages.
#[utoipa::path(get, path = "/conversations/{id}", tag = TAG_CONVERSATIONS,
    operation_id = "show_conversation",
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "The conversation", body = ConversationDetail)))]
async fn show(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>> {
    Ok(Json(s.bots.conversation(&id).await?.into()))
}

/// Delete a conversation with its messages.
#[utoipa::path(delete, path = "/conversations/{id}", tag = TAG_CONVERSATIONS,
    operation_id = "delete_conversation",
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204, description = "Deleted")))]
async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    s.bots.delete_conversation(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view keeps the shape the API had when it returned rows: web/ and clients
    /// read these names.
    #[test]
    fn a_conversation_is_shown_with_its_messages_flattened_in() {
        let detail = ConversationDetail::from(RecordedConversation {
            conversation: ConversationRow {
                conversation_id: "c".into(),
                bot_id: "b".into(),
                channel: Channel::Published,
                key_id: Some("k".into()),
                title: "t".into(),
                created_at: "1".into(),
                updated_at: "2".into(),
            },
            messages: vec![MessageRow {
                message_id: 7,
                conversation_id: "c".into(),
                role: Role::Assistant,
                content: "hi".into(),
                status: MessageStatus::Complete,
                context_json: Some("not json".into()),
                created_at: "3".into(),
            }],
        });
        assert_eq!(
            serde_json::to_string(&detail).unwrap(),
            r#"{"id":"c","bot_id":"b","channel":"published","key_id":"k","title":"t","created_at":"1","updated_at":"2","messages":[{"id":7,"role":"assistant","content":"hi","status":"complete","context":"not json","created_at":"3"}]}"#
        );
    }
}
