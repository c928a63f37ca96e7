//! `GET /metrics` (Prometheus text) and the middleware that counts every request into it.
//!
//! The route takes a bearer token: `http.metrics_token` when one is configured (a token
//! that opens nothing else, for the Prometheus server), or the admin token. The figures
//! are not secrets, but they tell who uses which bots how much, and Prometheus sends a
//! bearer token as easily as none (`authorization` in its scrape config).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::auth;
use super::openapi::TAG_SERVER;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::metrics::{self, HttpMetrics};

/// Whether `token` is the configured metrics token (never when none is configured).
fn is_metrics_token(state: &AppState, token: &str) -> bool {
    let expected = state.config.http.metrics_token.as_bytes();
    !expected.is_empty() && bool::from(token.as_bytes().ct_eq(expected))
}

/// What this node has done and is doing, in the Prometheus text format: requests and
/// latency by route, the ingestion queue, the indexes' lag, the chat model's slots and
/// tokens, embeddings. Takes `http.metrics_token` or the admin token.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = TAG_SERVER,
    operation_id = "metrics",
    security(("metrics_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "Every metric, one sample a line (docs/operations.md lists them)",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = String,
            example = "# HELP zhiku_ingest_queue_depth Ingestion jobs waiting for a worker.\n# TYPE zhiku_ingest_queue_depth gauge\nzhiku_ingest_queue_depth 0\n"),
    )
)]
pub(crate) async fn show(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let token = auth::bearer(&headers).unwrap_or_default();
    if !(auth::is_admin(&state, token) || is_metrics_token(&state, token)) {
        return Err(Error::Unauthorized);
    }
    let text = state.metrics.render().await?;
    Ok(([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

/// Count a request under the route template it matched, with its status class and how
/// long it took to answer. Put on the router with `Router::layer`, which runs it after the
/// route is matched, so the template is known.
pub async fn track(State(http): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    http.record(
        route.as_deref(),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
