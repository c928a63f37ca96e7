//! `/api/jobs`: the ingestion queue, for progress and troubleshooting.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use ingest::jobs::{Job, JobStatus};
use serde::Deserialize;

use crate::app::AppState;
use crate::error::{Error, Result};

/// Routes under `/api/jobs`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}", get(show))
}

#[derive(Debug, Deserialize)]
struct Filter {
    status: Option<String>,
    limit: Option<i64>,
}

fn parse_status(s: &str) -> Result<JobStatus> {
    Ok(match s {
        "enqueued" => JobStatus::Enqueued,
        "processing" => JobStatus::Processing,
        "succeeded" => JobStatus::Succeeded,
        "failed" => JobStatus::Failed,
        "canceled" => JobStatus::Canceled,
        other => {
            return Err(Error::InvalidInput(format!(
                "unknown status '{other}'; use enqueued, processing, succeeded, failed or canceled"
            )));
        }
    })
}

async fn list(State(s): State<AppState>, Query(f): Query<Filter>) -> Result<Json<Vec<Job>>> {
    let status = f.status.as_deref().map(parse_status).transpose()?;
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(s.queue.list(status, limit).await?))
}

async fn show(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Json<Job>> {
    s.queue
        .get(id)
        .await?
        .map(Json)
        .ok_or_else(|| Error::not_found(format!("job {id}")))
}
