//! `/api/kbs/{kb}/documents` (upload, list, show, enable, delete), their chunks, and
//! `split-preview`.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::AppJson;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::knowledge::{
    DocumentView, PreviewChunk, UploadOutcome, UploadSettings, accepted_types,
};
use crate::store::chunks::ChunkRow;

/// Routes for documents and chunks; `max_body_bytes` bounds one upload request.
pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/kbs/{kb}/documents", get(list).post(upload))
        .route(
            "/kbs/{kb}/documents/{doc}",
            get(show).patch(set_enabled).delete(remove),
        )
        .route("/kbs/{kb}/documents/{doc}/chunks", get(chunks))
        .route(
            "/kbs/{kb}/documents/{doc}/chunks/{chunk}",
            patch(edit_chunk).delete(remove_chunk),
        )
        .route("/kbs/{kb}/split-preview", post(preview))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Pasted text (the JSON form of an upload or a preview).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PastedText {
    name: Option<String>,
    text: String,
    #[serde(flatten)]
    settings: PastedSettings,
}

#[derive(Debug, Default, Deserialize)]
struct PastedSettings {
    split: Option<ingest::split::SplitSettings>,
    clean: Option<ingest::clean::CleanSettings>,
}

/// The files of a request, with settings, from multipart or JSON.
struct Incoming {
    files: Vec<(String, Vec<u8>)>,
    settings: UploadSettings,
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit_bytes: u64) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The request passed the body limit: one file over the cap, or many files at once.
        Error::PayloadTooLarge { limit_bytes }
    } else {
        Error::InvalidInput(format!("invalid multipart body: {}", e.body_text()))
    }
}

async fn read_incoming(state: &AppState, request: Request) -> Result<Incoming> {
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let AppJson(body) = AppJson::<PastedText>::from_request(request, state).await?;
        let mut name = body.name.unwrap_or_else(|| "pasted.txt".into());
        let lower = name.to_lowercase();
        if !ingest::extract::ACCEPTED_EXTENSIONS
            .iter()
            .any(|ext| lower.ends_with(&format!(".{ext}")))
        {
            name.push_str(".txt");
        }
        return Ok(Incoming {
            files: vec![(name, body.text.into_bytes())],
            settings: UploadSettings {
                split: body.settings.split,
                clean: body.settings.clean,
            },
        });
    }
    let mut multipart = Multipart::from_request(request, state).await.map_err(|e| {
        Error::InvalidInput(format!(
            "expected multipart/form-data with file fields or a JSON {{name, text}} body: {}",
            e.body_text()
        ))
    })?;
    let limit = state.config.ingest.max_upload_bytes;
    let mut too_large = false;
    let mut files = Vec::new();
    let mut settings = UploadSettings::default();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "file" | "files" | "file[]" => {
                let name = field.file_name().unwrap_or("untitled.txt").to_string();
                let mut bytes = Vec::new();
                // Over the cap, keep reading but stop storing: answering 413 before the
                // client has sent its body makes most clients report a broken connection
                // instead of the 413. The router's body limit bounds the draining.
                while let Some(chunk) =
                    field.chunk().await.map_err(|e| multipart_error(e, limit))?
                {
                    if !too_large && (bytes.len() + chunk.len()) as u64 <= limit {
                        bytes.extend_from_slice(&chunk);
                    } else {
                        too_large = true;
                        bytes = Vec::new();
                    }
                }
                files.push((name, bytes));
            }
            "split" => {
                let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                settings.split = Some(
                    serde_json::from_str(&text)
                        .map_err(|e| Error::InvalidInput(format!("split: {e}")))?,
                );
            }
            "clean" => {
                let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                settings.clean = Some(
                    serde_json::from_str(&text)
                        .map_err(|e| Error::InvalidInput(format!("clean: {e}")))?,
                );
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "unexpected form field '{other}'; send files as 'file' (plus optional 'split' and 'clean' JSON)"
                )));
            }
        }
    }
    if too_large {
        return Err(Error::PayloadTooLarge { limit_bytes: limit });
    }
    if files.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no file in the request; send one or more 'file' fields (accepted: {})",
            accepted_types()
        )));
    }
    Ok(Incoming { files, settings })
}

#[derive(Serialize)]
struct UploadResponse {
    documents: Vec<UploadOutcome>,
}

/// `202 Accepted` with one entry per file; the work happens in the background. A file that
/// can never be read (wrong type, too large) fails the whole request before anything is
/// stored, so a client never has to untangle a half-accepted batch.
async fn upload(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<UploadResponse>)> {
    let incoming = read_incoming(&s, request).await?;
    for (name, bytes) in &incoming.files {
        if let Err(e @ ingest::Error::Unsupported { .. }) =
            ingest::extract::detect_kind(name, bytes)
        {
            return Err(Error::UnsupportedType(format!("{name}: {e}")));
        }
    }
    let mut documents = Vec::with_capacity(incoming.files.len());
    for (name, bytes) in incoming.files {
        documents.push(
            s.knowledge
                .upload(&kb, &name, bytes, &incoming.settings)
                .await?,
        );
    }
    Ok((StatusCode::ACCEPTED, Json(UploadResponse { documents })))
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    offset: i64,
    #[serde(default = "default_limit")]
    limit: i64,
    q: Option<String>,
}

fn default_limit() -> i64 {
    100
}

impl Page {
    fn checked(&self) -> Result<(i64, i64)> {
        if self.offset < 0 || !(1..=1000).contains(&self.limit) {
            return Err(Error::InvalidInput(
                "offset must be ≥ 0 and limit between 1 and 1000".into(),
            ));
        }
        Ok((self.offset, self.limit))
    }
}

async fn list(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<DocumentView>>> {
    let (offset, limit) = page.checked()?;
    Ok(Json(s.knowledge.list_documents(&kb, offset, limit).await?))
}

async fn show(
    State(s): State<AppState>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<Json<DocumentView>> {
    Ok(Json(s.knowledge.document(&kb, &doc).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnabledPatch {
    enabled: bool,
}

async fn set_enabled(
    State(s): State<AppState>,
    Path((kb, doc)): Path<(String, String)>,
    AppJson(body): AppJson<EnabledPatch>,
) -> Result<Json<DocumentView>> {
    Ok(Json(
        s.knowledge
            .set_document_enabled(&kb, &doc, body.enabled)
            .await?,
    ))
}

async fn remove(
    State(s): State<AppState>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<StatusCode> {
    s.knowledge.delete_document(&kb, &doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn chunks(
    State(s): State<AppState>,
    Path((kb, doc)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Json<serde_json::Value>> {
    let (offset, limit) = page.checked()?;
    let (chunks, total) = s
        .knowledge
        .chunks(&kb, &doc, page.q.as_deref(), offset, limit)
        .await?;
    let items: Vec<serde_json::Value> = chunks.iter().map(chunk_json).collect();
    Ok(Json(
        json!({"chunks": items, "total": total, "offset": offset, "limit": limit}),
    ))
}

fn chunk_json(c: &ChunkRow) -> serde_json::Value {
    json!({
        "id": c.chunk_id, "document_id": c.document_id, "ordinal": c.ordinal, "page": c.page,
        "start_byte": c.start_byte, "end_byte": c.end_byte, "text": c.text,
        "token_count": c.token_count, "enabled": c.is_enabled,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkPatch {
    text: Option<String>,
    enabled: Option<bool>,
}

async fn edit_chunk(
    State(s): State<AppState>,
    Path((kb, doc, chunk)): Path<(String, String, i64)>,
    AppJson(body): AppJson<ChunkPatch>,
) -> Result<Json<serde_json::Value>> {
    if body.text.is_none() && body.enabled.is_none() {
        return Err(Error::InvalidInput("send text and/or enabled".into()));
    }
    let row = s
        .knowledge
        .update_chunk(&kb, &doc, chunk, body.text, body.enabled)
        .await?;
    Ok(Json(chunk_json(&row)))
}

async fn remove_chunk(
    State(s): State<AppState>,
    Path((kb, doc, chunk)): Path<(String, String, i64)>,
) -> Result<StatusCode> {
    s.knowledge.delete_chunk(&kb, &doc, chunk).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct PreviewResponse {
    chunks: Vec<PreviewChunk>,
    total: usize,
}

async fn preview(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    request: Request,
) -> Result<Json<PreviewResponse>> {
    let mut incoming = read_incoming(&s, request).await?;
    if incoming.files.len() != 1 {
        return Err(Error::InvalidInput(
            "split-preview takes exactly one file or text".into(),
        ));
    }
    let (name, bytes) = incoming.files.remove(0);
    let chunks = s
        .knowledge
        .split_preview(&kb, &name, bytes, incoming.settings)
        .await?;
    Ok(Json(PreviewResponse {
        total: chunks.len(),
        chunks,
    }))
}
