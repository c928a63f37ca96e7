//! The HTTP API: one router per resource, merged here, with the admin guard over `/api`.

pub mod auth;
pub mod bot_key;
pub mod bots;
pub mod chat;
pub mod conversations;
pub mod documents;
pub mod error;
pub mod health;
pub mod jobs;
pub mod knowledge;
pub mod limits;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod tools;
pub mod web;

use axum::http::{HeaderName, Request};
use axum::routing::get;
use axum::{Json, Router, middleware};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::Error;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// CORS off unless origins are configured: then those origins (and only they) may call the
/// API from their pages, with the Authorization header.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<axum::http::HeaderValue> =
        origins.iter().filter_map(|o| o.parse().ok()).collect();
    if allowed.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods(tower_http::cors::Any)
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// The API's routes and their OpenAPI description, built together. `guard` wraps the
/// admin routes: the server puts the admin-token check there, while the description alone
/// (`zhiku openapi`) needs no state and passes them through.
fn api_routes(
    max_body: usize,
    guard: impl FnOnce(OpenApiRouter<AppState>) -> OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new()
        .merge(knowledge::router())
        .merge(bots::router())
        .merge(tools::router())
        .merge(conversations::router())
        .merge(chat::admin_router())
        .merge(documents::router(max_body))
        .merge(jobs::router())
        .fallback(|| async { Error::not_found("API route") });
    openapi::require_admin(api.get_openapi_mut());
    let mut all = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        // No auth: load balancers ask it (details of a failure need the admin token).
        .routes(routes!(health::show))
        // Its own token or the admin token, checked by the handler.
        .routes(routes!(metrics::show))
        // No auth: the published chat page needs the message length too.
        .routes(routes!(limits::show))
        // Bot API keys, not the admin token, open a published bot's chat and /v1.
        .nest("/api/chat", chat::key_router())
        .nest("/api", guard(api))
        .nest("/v1", openai::router());
    openapi::complete(all.get_openapi_mut());
    all
}

/// Rows as the API shows them (each view is built `From` its row), in order.
fn views<R, V: From<R>>(rows: Vec<R>) -> Vec<V> {
    rows.into_iter().map(V::from).collect()
}

/// The OpenAPI description of the whole API (what `GET /openapi.json` serves).
pub fn openapi_spec() -> utoipa::openapi::OpenApi {
    api_routes(0, |api| api).into_openapi()
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let state_config = state.config.clone();
    // Room for a few files at the cap, and for draining an oversize one so its client gets
    // a clean 413 (see documents.rs); past this the connection is cut.
    let max_body = (state.config.ingest.max_upload_bytes as usize)
        .saturating_mul(4)
        .max(64 << 20);
    let guard_state = state.clone();
    let http_metrics = state.metrics.http.clone();
    let (routes, spec) = api_routes(max_body, move |api| {
        api.layer(middleware::from_fn_with_state(
            guard_state,
            auth::require_admin,
        ))
    })
    .split_for_parts();
    let spec = std::sync::Arc::new(spec);
    Router::new()
        .merge(routes)
        // No auth: the description holds no secrets, and clients need it to get started.
        .route(
            "/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { Json(spec.as_ref().clone()) }
            }),
        )
        .merge(web::router())
        .fallback(|| async { Error::not_found("page") })
        // `Router::layer` wraps each route (and the fallback) after matching, so the
        // counter sees the route's template.
        .layer(middleware::from_fn_with_state(http_metrics, metrics::track))
        .with_state(state)
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("http_request", request_id = %id, method = %request.method(), path = %request.uri().path())
            }),
        )
        .layer(cors(&state_config.http.cors_allowed_origins))
        .layer(axum::extract::DefaultBodyLimit::max(
            state_config.http.max_json_body_bytes,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
