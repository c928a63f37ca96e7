//! `GET /health`: whether this node can work, for load balancers (no token) and operators.
//! 200 when ready, 503 when degraded: load balancers go by the status alone and take a
//! node that answers anything but 2xx out of rotation, which is what a node that cannot
//! reach its database or its chat model should be. The body says why.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::auth;
use super::openapi::TAG_SERVER;
use crate::app::AppState;
use crate::services::health::{Check, Health, HealthStatus};

/// What `/health` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Health)]
pub(crate) struct HealthView {
    /// `ready` (every check passed; HTTP 200) or `degraded` (HTTP 503).
    status: HealthStatusView,
    /// A short phrase per failed check: "database unreachable", "chat model unavailable";
    /// empty when ready.
    reasons: Vec<String>,
    /// Each check's outcome.
    checks: ChecksView,
}

/// `ready` or `degraded`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = HealthStatus)]
pub(crate) enum HealthStatusView {
    /// Every check passed.
    Ready,
    /// A check failed.
    Degraded,
}

/// The checks, by name.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = HealthChecks)]
pub(crate) struct ChecksView {
    /// The database answers `SELECT 1` within 2 s.
    database: CheckView,
    /// The chat model is loaded (local) or its server answers (remote).
    llm: CheckView,
    /// The embedding model is loaded.
    embedder: CheckView,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = HealthCheck)]
pub(crate) struct CheckView {
    /// Whether it passed.
    ok: bool,
    /// What was checked: the database's kind, the model's name.
    about: String,
    /// How long it took, in milliseconds.
    elapsed_ms: u64,
    /// Why it failed, in detail (a file path, an address, the driver's error). Only
    /// with the admin token: `/health` needs no token, and these can name internals.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl CheckView {
    fn new(check: Check, with_details: bool) -> Self {
        Self {
            ok: check.ok,
            about: check.about,
            elapsed_ms: check.elapsed_ms,
            error: check.error.filter(|_| with_details),
        }
    }
}

impl HealthView {
    fn new(health: Health, with_details: bool) -> Self {
        Self {
            status: match health.status {
                HealthStatus::Ready => HealthStatusView::Ready,
                HealthStatus::Degraded => HealthStatusView::Degraded,
            },
            reasons: health.reasons,
            checks: ChecksView {
                database: CheckView::new(health.checks.database, with_details),
                llm: CheckView::new(health.checks.llm, with_details),
                embedder: CheckView::new(health.checks.embedder, with_details),
            },
        }
    }
}

/// Whether this node can work: the database answers, the chat model is available, the
/// embedding model is loaded (no token; with the admin token the failures' details too).
#[utoipa::path(
    get,
    path = "/health",
    tag = TAG_SERVER,
    operation_id = "health",
    responses(
        (status = 200, description = "Ready: every check passed", body = HealthView,
            example = json!({"status": "ready", "reasons": [], "checks": {
                "database": {"ok": true, "about": "SQLite", "elapsed_ms": 0},
                "llm": {"ok": true, "about": "local qwen2.5-coder-1.5b-instruct-q4_k_m", "elapsed_ms": 0},
                "embedder": {"ok": true, "about": "multilingual-e5-small (384 dimensions)", "elapsed_ms": 0}}})),
        (status = 503, description = "Degraded: a check failed; `reasons` says which", body = HealthView,
            example = json!({"status": "degraded", "reasons": ["chat model unavailable"], "checks": {
                "database": {"ok": true, "about": "SQLite", "elapsed_ms": 0},
                "llm": {"ok": false, "about": "unavailable", "elapsed_ms": 0},
                "embedder": {"ok": true, "about": "multilingual-e5-small (384 dimensions)", "elapsed_ms": 0}}})),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> (StatusCode, Json<HealthView>) {
    let health = state.health.check().await;
    let with_details = auth::bearer(&headers).is_some_and(|t| auth::is_admin(&state, t));
    let status = match health.status {
        HealthStatus::Ready => StatusCode::OK,
        HealthStatus::Degraded => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(HealthView::new(health, with_details)))
}
