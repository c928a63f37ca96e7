//! `/api/kbs`: create, list, show, edit, delete knowledge bases; and hit testing.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppJson, ErrorBody};
use super::openapi::TAG_KBS;
use crate::app::AppState;
use crate::error::Result;
use crate::services::indexing::Consistency;
use crate::services::knowledge::{CreateKb, KbView, UpdateKb};
use crate::services::search::{SearchRequest, SearchResponse};

/// Routes under `/api/kbs`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(search))
        .routes(routes!(index_check))
}

/// Create a knowledge base.
#[utoipa::path(post, path = "/kbs", tag = TAG_KBS, operation_id = "create_kb",
    request_body = CreateKb,
    responses(
        (status = 201, description = "Created", body = KbView),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
async fn create(
    State(s): State<AppState>,
    AppJson(req): AppJson<CreateKb>,
) -> Result<(StatusCode, Json<KbView>)> {
    Ok((StatusCode::CREATED, Json(s.knowledge.create_kb(req).await?)))
}

/// List the knowledge bases.
#[utoipa::path(get, path = "/kbs", tag = TAG_KBS, operation_id = "list_kbs",
    responses((status = 200, description = "All knowledge bases", body = Vec<KbView>)))]
async fn list(State(s): State<AppState>) -> Result<Json<Vec<KbView>>> {
    Ok(Json(s.knowledge.list_kbs().await?))
}

/// Show a knowledge base with its counts.
#[utoipa::path(get, path = "/kbs/{kb}", tag = TAG_KBS, operation_id = "show_kb",
    params(("kb" = String, Path, description = "Knowledge base id or name")),
    responses((status = 200, description = "The knowledge base", body = KbView)))]
async fn show(State(s): State<AppState>, Path(kb): Path<String>) -> Result<Json<KbView>> {
    Ok(Json(s.knowledge.kb(&kb).await?))
}

/// Rename, describe or change the default settings of a knowledge base.
#[utoipa::path(patch, path = "/kbs/{kb}", tag = TAG_KBS, operation_id = "update_kb",
    params(("kb" = String, Path, description = "Knowledge base id or name")),
    request_body = UpdateKb,
    responses(
        (status = 200, description = "The updated knowledge base", body = KbView),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
async fn update(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    AppJson(req): AppJson<UpdateKb>,
) -> Result<Json<KbView>> {
    Ok(Json(s.knowledge.update_kb(&kb, req).await?))
}

/// Delete a knowledge base with its documents, chunks and index entries.
#[utoipa::path(delete, path = "/kbs/{kb}", tag = TAG_KBS, operation_id = "delete_kb",
    params(("kb" = String, Path, description = "Knowledge base id or name")),
    responses((status = 204, description = "Deleted")))]
async fn remove(State(s): State<AppState>, Path(kb): Path<String>) -> Result<StatusCode> {
    s.knowledge.delete_kb(&kb).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hit testing: search a knowledge base as a bot would.
#[utoipa::path(post, path = "/kbs/{kb}/search", tag = TAG_KBS, operation_id = "search_kb",
    params(("kb" = String, Path, description = "Knowledge base id or name")),
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Results, best first", body = SearchResponse),
        (status = 409, description = "The KB's vectors come from another embedding model", body = ErrorBody),
    ))]
async fn search(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    AppJson(req): AppJson<SearchRequest>,
) -> Result<Json<SearchResponse>> {
    Ok(Json(s.search.search(&kb, &req).await?))
}

/// Compare the KB's BM25 and vector indexes with SQLite (for operators and tests).
#[utoipa::path(get, path = "/kbs/{kb}/index-check", tag = TAG_KBS, operation_id = "check_kb_index",
    params(("kb" = String, Path, description = "Knowledge base id or name")),
    responses((status = 200, description = "What each index holds", body = Consistency)))]
async fn index_check(
    State(s): State<AppState>,
    Path(kb): Path<String>,
) -> Result<Json<Consistency>> {
    Ok(Json(s.knowledge.index_check(&kb).await?))
}
