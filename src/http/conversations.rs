//! Recorded conversations, for the admin: a bot's list (`/api/bots/{bot}/conversations`),
//! and one conversation with its messages (`/api/conversations/{id}`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::bots::service;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::bots::ConversationDetail;
use crate::store::conversations::{Channel, ConversationRow};

/// Conversation routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bots/{bot}/conversations", get(list))
        .route("/conversations/{id}", get(show).delete(remove))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// debug | published | api; all when absent. A string here so a bad value gets our
    /// error shape and the list of good ones, not axum's plain-text rejection.
    channel: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    50
}

async fn list(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    Query(q): Query<ListQuery>,
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
    Ok(Json(
        service(&s).conversations(&bot, channel, q.limit).await?,
    ))
}

async fn show(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>> {
    Ok(Json(service(&s).conversation(&id).await?))
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    service(&s).delete_conversation(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
