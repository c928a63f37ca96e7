//! The admin token guard for `/api`: a middleware on the whole router, so no route can be
//! added without it. Tokens are compared in constant time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::error::Error;

/// Reject requests without `Authorization: Bearer <admin token>`.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let expected = state.admin_token.as_bytes();
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected)) {
        return Err(Error::Unauthorized);
    }
    Ok(next.run(request).await)
}
