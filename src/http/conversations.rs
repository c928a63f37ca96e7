//! Recorded conversations, for the admin: a bot's list (`/api/bots/{bot}/conversations`),
//! and one conversation with its messages (`/api/conversations/{id}`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::AppQuery;
use super::openapi::TAG_CONVERSATIONS;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::bots::ConversationDetail;
use crate::store::conversations::{Channel, ConversationRow};

/// Conversation routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, remove))
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
    responses((status = 200, description = "Conversations", body = Vec<ConversationRow>)))]
async fn list(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<Vec<ConversationRow>>> {
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
    Ok(Json(s.bots.conversations(&bot, channel, q.limit).await?))
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
    Ok(Json(s.bots.conversation(&id).await?))
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
