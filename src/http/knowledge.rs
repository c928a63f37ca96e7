//! `/api/kbs`: create, list, show, edit, delete knowledge bases; and hit testing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::error::AppJson;
use crate::app::AppState;
use crate::error::Result;
use crate::services::indexing::Consistency;
use crate::services::knowledge::{CreateKb, KbView, UpdateKb};
use crate::services::search::{SearchRequest, SearchResponse};

/// Routes under `/api/kbs`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/kbs", get(list).post(create))
        .route("/kbs/{kb}", get(show).patch(update).delete(remove))
        .route("/kbs/{kb}/search", post(search))
        .route("/kbs/{kb}/index-check", get(index_check))
}

async fn create(
    State(s): State<AppState>,
    AppJson(req): AppJson<CreateKb>,
) -> Result<(StatusCode, Json<KbView>)> {
    Ok((StatusCode::CREATED, Json(s.knowledge.create_kb(req).await?)))
}

async fn list(State(s): State<AppState>) -> Result<Json<Vec<KbView>>> {
    Ok(Json(s.knowledge.list_kbs().await?))
}

async fn show(State(s): State<AppState>, Path(kb): Path<String>) -> Result<Json<KbView>> {
    Ok(Json(s.knowledge.kb(&kb).await?))
}

async fn update(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    AppJson(req): AppJson<UpdateKb>,
) -> Result<Json<KbView>> {
    Ok(Json(s.knowledge.update_kb(&kb, req).await?))
}

async fn remove(State(s): State<AppState>, Path(kb): Path<String>) -> Result<StatusCode> {
    s.knowledge.delete_kb(&kb).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn search(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    AppJson(req): AppJson<SearchRequest>,
) -> Result<Json<SearchResponse>> {
    Ok(Json(s.search.search(&kb, &req).await?))
}

/// Compare the KB's BM25 and vector indexes with SQLite (for operators and tests).
async fn index_check(
    State(s): State<AppState>,
    Path(kb): Path<String>,
) -> Result<Json<Consistency>> {
    let kb = s.store.kb(&kb).await?;
    Ok(Json(s.indexes.check(&kb.kb_id).await?))
}
