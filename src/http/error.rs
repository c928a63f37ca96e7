//! Turning [`Error`] into HTTP: one JSON shape, `{"error": {code, message, type}}`
//! (OpenAI-like), with the status chosen by the error's code. Internal errors are logged
//! here, once, and answered without their details.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// The body of every error answer: `{"error": {code, message, type, param}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The fields of an error, named as OpenAI names them so its clients read them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`not_found`, `invalid_input`, `unauthorized`…).
    #[schema(example = "not_found")]
    pub code: String,
    /// Human-readable reason; internal errors say only to see the server log.
    pub message: String,
    /// `invalid_request_error` for 4xx, `server_error` for 5xx.
    #[serde(rename = "type")]
    #[schema(example = "invalid_request_error")]
    pub kind: String,
    /// The parameter at fault; always null for now.
    pub param: Option<String>,
}

/// The HTTP status for an error code.
pub fn status_of(error: &Error) -> StatusCode {
    match error.code() {
        "invalid_input" | "invalid_settings" | "config" | "url_refused" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "forbidden" => StatusCode::FORBIDDEN,
        "overloaded" | "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "llm_failed" | "fetch_failed" | "page_gone" | "embedding_server" => StatusCode::BAD_GATEWAY,
        "not_found" => StatusCode::NOT_FOUND,
        "conflict" | "model_mismatch" => StatusCode::CONFLICT,
        "payload_too_large" | "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unsupported_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "busy" | "model_unavailable" | "tool_missing" => StatusCode::SERVICE_UNAVAILABLE,
        "storage_full" => StatusCode::INSUFFICIENT_STORAGE,
        "empty" | "encrypted" | "no_text" | "corrupt" | "extractor_panicked" | "timed_out"
        | "ocr_failed" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        // 503 and 502 say what is wrong with the model; other 5xx hide their details.
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = self.code(), error = %self, "request failed");
            "internal error; see the server log".to_string()
        } else {
            self.to_string()
        };
        let kind = if status.is_client_error() {
            "invalid_request_error"
        } else {
            "server_error"
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message,
                kind: kind.to_string(),
                param: None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Error::Overloaded { retry_after_s, .. } | Error::RateLimited { retry_after_s, .. } =
            &self
            && let Ok(value) = axum::http::HeaderValue::from_str(&retry_after_s.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// `Json` whose rejections use our error shape.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct AppJson<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        // A body over http.max_json_body_bytes is "too large", not "invalid".
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Error::BodyTooLarge(rejection.body_text());
        }
        Error::InvalidInput(format!("invalid JSON body: {}", rejection.body_text()))
    }
}

/// `Query` whose rejections use our error shape (axum's own answer is plain text).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct AppQuery<T>(pub T);

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::InvalidInput(format!("invalid query string: {}", rejection.body_text()))
    }
}

/// `Path` whose rejections use our error shape: a non-numeric id is a 400 like any other.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct AppPath<T>(pub T);

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        // A route whose parameters do not fit its extractor is our bug, not the client's.
        if rejection.status().is_server_error() {
            return Error::Internal(rejection.body_text());
        }
        Error::InvalidInput(format!("invalid path: {}", rejection.body_text()))
    }
}
