//! `/api/bots`: create, list, show, edit (merge patch of the draft) and delete bots;
//! publish a draft and list the versions; make, list and revoke a bot's API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppJson, ErrorBody};
use super::openapi::TAG_BOTS;
use crate::app::AppState;
use crate::error::Result;
use crate::services::bots::{CreateKey, KeyCreated};
use crate::store::bots::BotSettings;
use crate::store::bots::{BotRow, BotVersion};
use crate::store::keys::KeyRow;

/// Routes under `/api/bots`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(publish))
        .routes(routes!(versions))
        .routes(routes!(keys, create_key))
        .routes(routes!(revoke_key))
}

/// The answer to a publish.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Published {
    bot_id: String,
    version: i64,
    published_at: String,
}

/// Create a bot; fields left out take their defaults (`name` is required).
#[utoipa::path(post, path = "/bots", tag = TAG_BOTS, operation_id = "create_bot",
    request_body = BotSettings,
    responses(
        (status = 201, description = "Created", body = BotRow),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
async fn create(
    State(s): State<AppState>,
    AppJson(body): AppJson<Value>,
) -> Result<(StatusCode, Json<BotRow>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.bots.create_from_json(&body).await?),
    ))
}

/// List the bots.
#[utoipa::path(get, path = "/bots", tag = TAG_BOTS, operation_id = "list_bots",
    responses((status = 200, description = "All bots", body = Vec<BotRow>)))]
async fn list(State(s): State<AppState>) -> Result<Json<Vec<BotRow>>> {
    Ok(Json(s.bots.list().await?))
}

/// Show a bot with its draft.
#[utoipa::path(get, path = "/bots/{bot}", tag = TAG_BOTS, operation_id = "show_bot",
    params(("bot" = String, Path, description = "Bot id or name")),
    responses((status = 200, description = "The bot", body = BotRow)))]
async fn show(State(s): State<AppState>, Path(bot): Path<String>) -> Result<Json<BotRow>> {
    Ok(Json(s.bots.bot(&bot).await?))
}

/// Edit the draft with a JSON merge patch (RFC 7396) of its settings.
#[utoipa::path(patch, path = "/bots/{bot}", tag = TAG_BOTS, operation_id = "update_bot",
    params(("bot" = String, Path, description = "Bot id or name")),
    request_body(content = BotSettings, description = "The settings to change; null removes a value"),
    responses(
        (status = 200, description = "The bot with its new draft", body = BotRow),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
async fn update(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(patch): AppJson<Value>,
) -> Result<Json<BotRow>> {
    Ok(Json(s.bots.patch(&bot, &patch).await?))
}

/// Delete a bot with its versions, keys and conversations.
#[utoipa::path(delete, path = "/bots/{bot}", tag = TAG_BOTS, operation_id = "delete_bot",
    params(("bot" = String, Path, description = "Bot id or name")),
    responses((status = 204, description = "Deleted")))]
async fn remove(State(s): State<AppState>, Path(bot): Path<String>) -> Result<StatusCode> {
    s.bots.delete(&bot).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publish the draft as the next version: API keys and `/v1` answer with it from now on.
#[utoipa::path(post, path = "/bots/{bot}/publish", tag = TAG_BOTS, operation_id = "publish_bot",
    params(("bot" = String, Path, description = "Bot id or name")),
    responses((status = 200, description = "The new version", body = Published)))]
async fn publish(State(s): State<AppState>, Path(bot): Path<String>) -> Result<Json<Published>> {
    let v = s.bots.publish(&bot).await?;
    Ok(Json(Published {
        bot_id: v.bot_id,
        version: v.version,
        published_at: v.published_at,
    }))
}

/// The published versions.
#[utoipa::path(get, path = "/bots/{bot}/versions", tag = TAG_BOTS, operation_id = "list_bot_versions",
    params(("bot" = String, Path, description = "Bot id or name")),
    responses((status = 200, description = "Versions", body = Vec<BotVersion>)))]
async fn versions(
    State(s): State<AppState>,
    Path(bot): Path<String>,
) -> Result<Json<Vec<BotVersion>>> {
    Ok(Json(s.bots.versions(&bot).await?))
}

/// Make an API key for the bot; the answer is the only time the key is shown.
#[utoipa::path(post, path = "/bots/{bot}/keys", tag = TAG_BOTS, operation_id = "create_bot_key",
    params(("bot" = String, Path, description = "Bot id or name")),
    request_body = CreateKey,
    responses((status = 201, description = "The key", body = KeyCreated)))]
async fn create_key(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(req): AppJson<CreateKey>,
) -> Result<(StatusCode, Json<KeyCreated>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.bots.create_key(&bot, req).await?),
    ))
}

/// The bot's keys (prefixes only, never the keys).
#[utoipa::path(get, path = "/bots/{bot}/keys", tag = TAG_BOTS, operation_id = "list_bot_keys",
    params(("bot" = String, Path, description = "Bot id or name")),
    responses((status = 200, description = "Keys, revoked ones included", body = Vec<KeyRow>)))]
async fn keys(State(s): State<AppState>, Path(bot): Path<String>) -> Result<Json<Vec<KeyRow>>> {
    Ok(Json(s.bots.keys(&bot).await?))
}

/// Revoke a key: it never authenticates again.
#[utoipa::path(delete, path = "/bots/{bot}/keys/{key_id}", tag = TAG_BOTS, operation_id = "revoke_bot_key",
    params(("bot" = String, Path, description = "Bot id or name"), ("key_id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked")))]
async fn revoke_key(
    State(s): State<AppState>,
    Path((bot, key_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    s.bots.revoke_key(&bot, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
