//! `/api/jobs`: the ingestion queue, for progress and troubleshooting.

use axum::Json;
use axum::extract::State;
use ingest::jobs::{Job, JobStatus};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppPath, AppQuery};
use super::openapi::TAG_JOBS;
use super::views;

use crate::app::AppState;
use crate::error::{Error, Result};

/// Routes under `/api/jobs`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
}

/// A job as the API (and `zhiku jobs --json`) shows it: its state, stage and progress.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Job)]
pub(crate) struct JobView {
    /// Id.
    job_id: i64,
    /// The document it ingests.
    document_id: String,
    /// The document's knowledge base.
    kb_id: String,
    /// State.
    status: JobStatus,
    /// How many times a worker has claimed it.
    attempts: i64,
    /// Current stage while processing: extract, ocr (pages of a scan), split, embed, index.
    stage: Option<String>,
    /// 0..1 within the job.
    progress: f64,
    /// Stable error code when failed.
    error_code: Option<String>,
    /// Human-readable reason when failed.
    error_message: Option<String>,
    /// When it was queued.
    enqueued_at: String,
    /// When the current or last attempt started.
    started_at: Option<String>,
    /// When it ended.
    finished_at: Option<String>,
    /// Size of the document's file; small jobs are claimed together (absent on jobs queued
    /// before sizes were recorded, which run alone).
    bytes: Option<i64>,
    /// Passages embedded so far, while embedding; pages read so far while the stage is
    /// `ocr` (one progress record, its unit named by the stage).
    passages_done: Option<i64>,
    /// Passages to embed in all, while embedding; pages to read while `ocr`.
    passages_total: Option<i64>,
    /// Seconds of embedding (or OCR) left, estimated from the rate so far (absent before
    /// the first passages or pages are done).
    eta_seconds: Option<f64>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            job_id: j.job_id,
            document_id: j.document_id,
            kb_id: j.kb_id,
            status: j.status,
            attempts: j.attempts,
            stage: j.stage,
            progress: j.progress,
            error_code: j.error_code,
            error_message: j.error_message,
            enqueued_at: j.enqueued_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            bytes: j.bytes,
            passages_done: j.passages_done,
            passages_total: j.passages_total,
            eta_seconds: j.eta_seconds,
        }
    }
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
    responses((status = 200, description = "Jobs", body = Vec<JobView>)))]
async fn list(
    State(s): State<AppState>,
    AppQuery(f): AppQuery<Filter>,
) -> Result<Json<Vec<JobView>>> {
    let status = f.status.as_deref().map(parse_status).transpose()?;
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(views(s.jobs.list(status, limit).await?)))
}

/// One job: its state, stage and progress.
#[utoipa::path(get, path = "/jobs/{id}", tag = TAG_JOBS, operation_id = "show_job",
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobView)))]
async fn show(State(s): State<AppState>, AppPath(id): AppPath<i64>) -> Result<Json<JobView>> {
    s.jobs
        .get(id)
        .await?
        .map(|job| Json(job.into()))
        .ok_or_else(|| Error::not_found(format!("job {id}")))
}
