//! The admin token guard for `/api`: a middleware on the whole router, so no route can be
//! added without it. Tokens are compared in constant time.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::error::Error;

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether `token` is the admin token (compared in constant time).
pub fn is_admin(state: &AppState, token: &str) -> bool {
    !token.is_empty() && bool::from(token.as_bytes().ct_eq(state.admin_token.as_bytes()))
}

/// Reject requests without `Authorization: Bearer <admin token>`.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    if !is_admin(&state, bearer(request.headers()).unwrap_or_default()) {
        return Err(Error::Unauthorized);
    }
    Ok(next.run(request).await)
}
