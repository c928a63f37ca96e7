//! The browser UI: `web/` is compiled into the binary (rust-embed), so it works offline
//! and ships as one file. `/` is the workspace, `/chat/{bot}` a published bot's chat page,
//! `/assets/…` the scripts, styles and vendored libraries. A strict Content-Security-Policy
//! keeps everything same-origin: answers are rendered from model output, so no inline
//! script may ever run.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::app::AppState;
use crate::error::Error;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Routes of the UI.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|State(s): State<AppState>| async move { page(&s, "index.html") }),
        )
        .route(
            "/favicon.ico",
            get(|State(s): State<AppState>| async move { asset(&s, "assets/favicon.svg") }),
        )
        .route(
            "/chat/{bot}",
            get(
                |State(s): State<AppState>, Path(_bot): Path<String>| async move {
                    page(&s, "chat.html")
                },
            ),
        )
        .route(
            "/assets/{*path}",
            get(
                |State(s): State<AppState>, Path(path): Path<String>| async move {
                    asset(&s, &format!("assets/{path}"))
                },
            ),
        )
}

fn page(state: &AppState, name: &str) -> Response {
    let mut response = asset(state, name);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A file of the UI: from `web_dir` when the config names one (working on the UI without
/// rebuilding), else the copy compiled in.
fn asset(state: &AppState, path: &str) -> Response {
    let Some((data, mime)) = read(state, path) else {
        return Error::not_found(format!("file /{path}")).into_response();
    };
    let content_type = if mime.starts_with("text/") || mime.contains("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        data,
    )
        .into_response()
}

fn read(state: &AppState, path: &str) -> Option<(Vec<u8>, String)> {
    let dir = &state.config.web_dir;
    if dir.as_os_str().is_empty() {
        let file = Assets::get(path)?;
        return Some((file.data.into_owned(), file.metadata.mimetype().to_string()));
    }
    let relative = std::path::Path::new(path);
    if relative
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let data = std::fs::read(dir.join(relative)).ok()?;
    let mime = mime_guess::from_path(relative).first_or_octet_stream();
    Some((data, mime.essence_str().to_string()))
}
