//! `/api/jobs`: the ingestion queue, for progress and troubleshooting.

use axum::Json;
use axum::extract::State;
use ingest::jobs::{Job, JobStatus};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppPath, AppQuery};
use super::openapi::TAG_JOBS;

use crate::app::AppState;
use crate::error::{Error, Result};

/// Routes under `/api/jobs`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Filter {
    /// Only jobs in this state.
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// How many, newest first (clamped to 1..1000).
    #[param(default = 100)]
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

/// The ingestion queue, newest first.
#[utoipa::path(get, path = "/jobs", tag = TAG_JOBS, operation_id = "list_jobs",
    params(Filter),
    responses((status = 200, description = "Jobs", body = Vec<Job>)))]
async fn list(State(s): State<AppState>, AppQuery(f): AppQuery<Filter>) -> Result<Json<Vec<Job>>> {
    let status = f.status.as_deref().map(parse_status).transpose()?;
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(s.jobs.list(status, limit).await?))
}

/// One job: its state, stage and progress.
#[utoipa::path(get, path = "/jobs/{id}", tag = TAG_JOBS, operation_id = "show_job",
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = Job)))]
async fn show(State(s): State<AppState>, AppPath(id): AppPath<i64>) -> Result<Json<Job>> {
    s.jobs
        .get(id)
        .await?
        .map(Json)
        .ok_or_else(|| Error::not_found(format!("job {id}")))
}
