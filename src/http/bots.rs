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
use super::views;
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

/// A bot as the API shows it: `{id, name, draft, published_version, published_at,
/// unpublished_changes, created_at, updated_at}`. `published_version` and `published_at`
/// are null until the first publish; `unpublished_changes` is true when the draft differs
/// from the version in force (always true before the first publish).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct BotView {
    /// Id (UUID).
    id: String,
    /// Unique name.
    name: String,
    /// The settings being edited.
    draft: BotSettings,
    /// The version in force.
    published_version: Option<i64>,
    /// When that version was published.
    published_at: Option<String>,
    /// Whether the draft differs from the published version.
    unpublished_changes: bool,
    /// Creation time.
    created_at: String,
    /// Last change to the draft or the published version.
    updated_at: String,
}

impl From<BotRow> for BotView {
    fn from(b: BotRow) -> Self {
        Self {
            id: b.bot_id,
            name: b.name,
            draft: b.draft.redacted(),
            published_version: b.published_version,
            published_at: b.published_at,
            unpublished_changes: b.unpublished_changes,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// A published version: `{bot_id, version, settings, published_at}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct BotVersionView {
    /// Its bot.
    bot_id: String,
    /// Version number, from 1.
    version: i64,
    /// The settings frozen in it.
    settings: BotSettings,
    /// When.
    published_at: String,
}

impl From<BotVersion> for BotVersionView {
    fn from(v: BotVersion) -> Self {
        Self {
            bot_id: v.bot_id,
            version: v.version,
            settings: v.settings.redacted(),
            published_at: v.published_at,
        }
    }
}

/// An API key as lists show it: never the key, never its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct KeyView {
    /// Id (UUID).
    id: String,
    /// Its bot.
    bot_id: String,
    /// What the owner calls it.
    name: String,
    /// The key's first characters.
    prefix: String,
    /// Creation time.
    created_at: String,
    /// Last successful authentication (to the minute).
    last_used_at: Option<String>,
    /// When it was revoked; a revoked key never authenticates again.
    revoked_at: Option<String>,
}

impl From<KeyRow> for KeyView {
    fn from(k: KeyRow) -> Self {
        Self {
            id: k.key_id,
            bot_id: k.bot_id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
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
        (status = 201, description = "Created", body = BotView),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
async fn create(
    State(s): State<AppState>,
    AppJson(body): AppJson<Value>,
) -> Result<(StatusCode, Json<BotView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.bots.create_from_json(&body).await?.into()),
    ))
}

/// List the bots.
#[utoipa::path(get, path = "/bots", tag = TAG_BOTS, operation_id = "list_bots",
    responses((status = 200, description = "All bots", body = Vec<BotView>)))]
async fn list(State(s): State<AppState>) -> Result<Json<Vec<BotView>>> {
    Ok(Json(views(s.bots.list().await?)))
}

/// Show a bot with its draft.
#[utoipa::path(get, path = "/bots/{bot}", tag = TAG_BOTS, operation_id = "show_bot",
    params(("bot" = String, Path, description = "Bot id or name")),
    responses((status = 200, description = "The bot", body = BotView)))]
async fn show(State(s): State<AppState>, Path(bot): Path<String>) -> Result<Json<BotView>> {
    Ok(Json(s.bots.bot(&bot).await?.into()))
}

/// Edit the draft with a JSON merge patch (RFC 7396) of its settings.
#[utoipa::path(patch, path = "/bots/{bot}", tag = TAG_BOTS, operation_id = "update_bot",
    params(("bot" = String, Path, description = "Bot id or name")),
    request_body(content = BotSettings, description = "The settings to change; null removes a value"),
    responses(
        (status = 200, description = "The bot with its new draft", body = BotView),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
async fn update(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(patch): AppJson<Value>,
) -> Result<Json<BotView>> {
    Ok(Json(s.bots.patch(&bot, &patch).await?.into()))
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
    responses((status = 200, description = "Versions", body = Vec<BotVersionView>)))]
async fn versions(
    State(s): State<AppState>,
    Path(bot): Path<String>,
) -> Result<Json<Vec<BotVersionView>>> {
    Ok(Json(views(s.bots.versions(&bot).await?)))
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
    responses((status = 200, description = "Keys, revoked ones included", body = Vec<KeyView>)))]
async fn keys(State(s): State<AppState>, Path(bot): Path<String>) -> Result<Json<Vec<KeyView>>> {
    Ok(Json(views(s.bots.keys(&bot).await?)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The views keep the shapes the API had when it returned rows: web/ and clients read
    /// these names.
    #[test]
    fn bots_and_keys_are_shown_as_before() {
        let bot = BotView::from(BotRow {
            bot_id: "b".into(),
            name: "hr".into(),
            draft: BotSettings::default(),
            published_version: None,
            published_at: None,
            unpublished_changes: true,
            created_at: "1".into(),
            updated_at: "2".into(),
        });
        let text = serde_json::to_string(&bot).unwrap();
        let draft = serde_json::to_string(&BotSettings::default()).unwrap();
        assert!(text.starts_with(&format!(r#"{{"id":"b","name":"hr","draft":{draft},"#)));
        assert!(text.ends_with(
            r#""published_version":null,"published_at":null,"unpublished_changes":true,"created_at":"1","updated_at":"2"}"#
        ));
        let key = KeyView::from(KeyRow {
            key_id: "k".into(),
            bot_id: "b".into(),
            name: "n".into(),
            prefix: "zk-".into(),
            created_at: "1".into(),
            last_used_at: None,
            revoked_at: None,
        });
        assert_eq!(
            serde_json::to_string(&key).unwrap(),
            r#"{"id":"k","bot_id":"b","name":"n","prefix":"zk-","created_at":"1","last_used_at":null,"revoked_at":null}"#
        );
    }
}
