//! `/api/bots`: create, list, show, edit (merge patch of the draft) and delete bots;
//! publish a draft and list the versions; make, list and revoke a bot's API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::error::AppJson;
use crate::app::AppState;
use crate::error::Result;
use crate::services::bots::{BotService, CreateKey, KeyCreated};
use crate::store::bots::{BotRow, BotVersion};
use crate::store::keys::KeyRow;

/// Routes under `/api/bots`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bots", get(list).post(create))
        .route("/bots/{bot}", get(show).patch(update).delete(remove))
        .route("/bots/{bot}/publish", post(publish))
        .route("/bots/{bot}/versions", get(versions))
        .route("/bots/{bot}/keys", get(keys).post(create_key))
        .route("/bots/{bot}/keys/{key_id}", delete(revoke_key))
}

/// The service is a handle on the store, cheap to make per request.
pub(crate) fn service(s: &AppState) -> BotService {
    BotService {
        store: s.store.clone(),
    }
}

/// The answer to a publish.
#[derive(Debug, Serialize)]
struct Published {
    bot_id: String,
    version: i64,
    published_at: String,
}

async fn create(
    State(s): State<AppState>,
    AppJson(body): AppJson<Value>,
) -> Result<(StatusCode, Json<BotRow>)> {
    Ok((
        StatusCode::CREATED,
        Json(service(&s).create_from_json(&body).await?),
    ))
}

async fn list(State(s): State<AppState>) -> Result<Json<Vec<BotRow>>> {
    Ok(Json(service(&s).list().await?))
}

async fn show(State(s): State<AppState>, Path(bot): Path<String>) -> Result<Json<BotRow>> {
    Ok(Json(service(&s).bot(&bot).await?))
}

async fn update(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(patch): AppJson<Value>,
) -> Result<Json<BotRow>> {
    Ok(Json(service(&s).patch(&bot, &patch).await?))
}

async fn remove(State(s): State<AppState>, Path(bot): Path<String>) -> Result<StatusCode> {
    service(&s).delete(&bot).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn publish(State(s): State<AppState>, Path(bot): Path<String>) -> Result<Json<Published>> {
    let v = service(&s).publish(&bot).await?;
    Ok(Json(Published {
        bot_id: v.bot_id,
        version: v.version,
        published_at: v.published_at,
    }))
}

async fn versions(
    State(s): State<AppState>,
    Path(bot): Path<String>,
) -> Result<Json<Vec<BotVersion>>> {
    Ok(Json(service(&s).versions(&bot).await?))
}

async fn create_key(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(req): AppJson<CreateKey>,
) -> Result<(StatusCode, Json<KeyCreated>)> {
    Ok((
        StatusCode::CREATED,
        Json(service(&s).create_key(&bot, req).await?),
    ))
}

async fn keys(State(s): State<AppState>, Path(bot): Path<String>) -> Result<Json<Vec<KeyRow>>> {
    Ok(Json(service(&s).keys(&bot).await?))
}

async fn revoke_key(
    State(s): State<AppState>,
    Path((bot, key_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    service(&s).revoke_key(&bot, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
