//! `/api/kbs/{kb}/documents` (upload, add web pages by URL, list, show, enable, delete,
//! sync a web page), their chunks, and `split-preview`.

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppJson, AppPath, AppQuery, ErrorBody};
use super::openapi::TAG_DOCUMENTS;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::knowledge::{
    DocumentView, PreviewChunk, UploadOutcome, UploadSettings, accepted_types,
};
use crate::services::web_pages::CrawlSettings;
use crate::services::web_sync::SyncOutcome;
use crate::store::chunks::ChunkRow;

/// Routes for documents and chunks; `max_body_bytes` bounds one upload request.
pub fn router(max_body_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, upload))
        .routes(routes!(show, set_enabled, remove))
        .routes(routes!(sync))
        .routes(routes!(chunks))
        .routes(routes!(edit_chunk, remove_chunk))
        .routes(routes!(preview))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Pasted text (the JSON form of an upload or a preview).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PastedText {
    /// File name; `.txt` is added unless it ends with an accepted extension.
    #[schema(default = "pasted.txt")]
    name: Option<String>,
    /// The text.
    text: String,
    #[serde(flatten)]
    settings: PastedSettings,
}

/// Web pages to fetch (the JSON form of an upload by URL).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WebPages {
    /// http(s) addresses, 1 to 100; a `.xml` sitemap adds the pages it lists on its host.
    #[schema(min_items = 1, max_items = 100, example = json!(["https://example.com/handbook.html"]))]
    urls: Vec<String>,
    /// Crawl from each URL: follow its links on the same host to this depth, up to this
    /// many pages (for a sitemap, only the page cap counts).
    crawl: Option<CrawlSettings>,
    #[serde(flatten)]
    settings: PastedSettings,
}

/// The JSON body of an upload: pasted text, or web pages by URL. It only describes the
/// body (serde's `untagged` is what makes it a plain `oneOf`): `read_incoming` tells the
/// two apart by the `urls` field.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(
    dead_code,
    reason = "a description for the OpenAPI document, never built"
)]
enum JsonUpload {
    /// Web pages by URL.
    Urls(WebPages),
    /// Pasted text.
    Text(PastedText),
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
struct PastedSettings {
    /// Split settings for this text (the KB's when absent).
    split: Option<ingest::split::SplitSettings>,
    /// Clean settings for this text (the KB's when absent).
    clean: Option<ingest::clean::CleanSettings>,
}

/// The multipart form of an upload or a preview. It only describes the form:
/// `read_incoming` reads the fields one by one as they stream in.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "a description for the OpenAPI document, never built"
)]
struct UploadForm {
    /// One or more files (the field may also be named `files` or `file[]`).
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    /// Split settings as JSON (the KB's when absent).
    #[schema(value_type = Option<String>, example = r#"{"mode": "auto"}"#)]
    split: Option<String>,
    /// Clean settings as JSON (the KB's when absent).
    #[schema(value_type = Option<String>, example = r#"{"collapse_whitespace": true}"#)]
    clean: Option<String>,
}

/// The files of a request, with settings, from multipart or JSON; or web pages to fetch.
struct Incoming {
    files: Vec<(String, Vec<u8>)>,
    settings: UploadSettings,
    /// URLs and crawl bounds, when the request names web pages instead of files.
    web: Option<(Vec<String>, Option<CrawlSettings>)>,
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
        let AppJson(body) = AppJson::<serde_json::Value>::from_request(request, state).await?;
        // Told apart by their fields, so that a mistake in either gets that form's own
        // error rather than serde's "did not match any variant".
        if body.get("urls").is_some() {
            let pages: WebPages = serde_json::from_value(body)
                .map_err(|e| Error::InvalidInput(format!("invalid body: {e}")))?;
            return Ok(Incoming {
                files: Vec::new(),
                settings: UploadSettings {
                    split: pages.settings.split,
                    clean: pages.settings.clean,
                },
                web: Some((pages.urls, pages.crawl)),
            });
        }
        let body: PastedText = serde_json::from_value(body).map_err(|e| {
            Error::InvalidInput(format!(
                "invalid body: {e}; send {{name, text}} to paste text or {{urls}} to add web pages"
            ))
        })?;
        let mut name = body.name.unwrap_or_else(|| "pasted.txt".into());
        let lower = name.to_lowercase();
        if !ingest::extract::accepted_extensions().any(|ext| lower.ends_with(&format!(".{ext}"))) {
            name.push_str(".txt");
        }
        return Ok(Incoming {
            files: vec![(name, body.text.into_bytes())],
            settings: UploadSettings {
                split: body.settings.split,
                clean: body.settings.clean,
            },
            web: None,
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
    Ok(Incoming {
        files,
        settings,
        web: None,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
struct UploadResponse {
    /// One entry per file, in the request's order.
    documents: Vec<UploadOutcome>,
}

/// Upload files (multipart), pasted text or web pages by URL (JSON) to a knowledge base.
///
/// `202 Accepted` with one entry per file or page; the work happens in the background. A
/// file that can never be read (wrong type, too large), or a URL that can never be fetched
/// (not http(s), or leading to a loopback, link-local or private address), fails the whole
/// request before anything is stored, so a client never has to untangle a half-accepted
/// batch. A page that cannot be fetched later (no answer, an error status, more than 5
/// redirects, over `ingest.max_fetch_bytes`) is a failed document with the reason.
#[utoipa::path(post, path = "/kbs/{kb}/documents", tag = TAG_DOCUMENTS, operation_id = "upload_documents",
    params(("kb" = String, Path, description = "Knowledge base id or name")),
    request_body(content(
        (UploadForm = "multipart/form-data"),
        (JsonUpload = "application/json"),
    )),
    responses(
        (status = 202, description = "Stored and queued; ingestion runs in the background", body = UploadResponse),
        (status = 400, description = "Invalid input, or a URL that is refused", body = ErrorBody),
        (status = 409, description = "The KB's vectors come from another embedding model", body = ErrorBody),
        (status = 415, description = "A file of a type that cannot be read", body = ErrorBody),
    ))]
async fn upload(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<UploadResponse>)> {
    let incoming = read_incoming(&s, request).await?;
    if let Some((urls, crawl)) = &incoming.web {
        let documents = s
            .knowledge
            .add_urls(&kb, urls, *crawl, &incoming.settings)
            .await?;
        return Ok((StatusCode::ACCEPTED, Json(UploadResponse { documents })));
    }
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// How many to skip.
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    offset: i64,
    /// How many to return (1 to 1000).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: i64,
    /// Only chunks containing this text (chunk lists only).
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

/// The KB's documents with their ingestion state, newest first.
#[utoipa::path(get, path = "/kbs/{kb}/documents", tag = TAG_DOCUMENTS, operation_id = "list_documents",
    params(("kb" = String, Path, description = "Knowledge base id or name"), Page),
    responses((status = 200, description = "Documents", body = Vec<DocumentView>)))]
async fn list(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    AppQuery(page): AppQuery<Page>,
) -> Result<Json<Vec<DocumentView>>> {
    let (offset, limit) = page.checked()?;
    Ok(Json(s.knowledge.list_documents(&kb, offset, limit).await?))
}

/// One document with its ingestion state.
#[utoipa::path(get, path = "/kbs/{kb}/documents/{doc}", tag = TAG_DOCUMENTS, operation_id = "show_document",
    params(("kb" = String, Path, description = "Knowledge base id or name"), ("doc" = String, Path, description = "Document id")),
    responses((status = 200, description = "The document", body = DocumentView)))]
async fn show(
    State(s): State<AppState>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<Json<DocumentView>> {
    Ok(Json(s.knowledge.document(&kb, &doc).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EnabledPatch {
    /// Whether retrieval may return the document's chunks.
    enabled: bool,
}

/// Enable or disable a document for retrieval.
#[utoipa::path(patch, path = "/kbs/{kb}/documents/{doc}", tag = TAG_DOCUMENTS, operation_id = "update_document",
    params(("kb" = String, Path, description = "Knowledge base id or name"), ("doc" = String, Path, description = "Document id")),
    request_body = EnabledPatch,
    responses((status = 200, description = "The document", body = DocumentView)))]
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

/// Delete a document with its chunks and index entries (a queued job is canceled).
#[utoipa::path(delete, path = "/kbs/{kb}/documents/{doc}", tag = TAG_DOCUMENTS, operation_id = "delete_document",
    params(("kb" = String, Path, description = "Knowledge base id or name"), ("doc" = String, Path, description = "Document id")),
    responses((status = 204, description = "Deleted")))]
async fn remove(
    State(s): State<AppState>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<StatusCode> {
    s.knowledge.delete_document(&kb, &doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Fetch a web page again; if it changed, index it again in place (its old chunks are
/// replaced, as by a re-upload). An unchanged page (304, or the same bytes) is not indexed
/// again.
#[utoipa::path(post, path = "/kbs/{kb}/documents/{doc}/sync", tag = TAG_DOCUMENTS, operation_id = "sync_document",
    params(("kb" = String, Path, description = "Knowledge base id or name"), ("doc" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "Fetched; `changed` says whether it is being indexed again", body = SyncOutcome),
        (status = 400, description = "An uploaded document (nothing to sync), or a refused URL", body = ErrorBody),
        (status = 409, description = "The document is queued or processing already", body = ErrorBody),
        (status = 413, description = "The page is over ingest.max_fetch_bytes", body = ErrorBody),
        (status = 502, description = "The site could not be fetched; the document is left as it was", body = ErrorBody),
    ))]
async fn sync(
    State(s): State<AppState>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<Json<SyncOutcome>> {
    Ok(Json(s.knowledge.sync_document(&kb, &doc).await?))
}

/// A page of a document's chunks.
#[derive(Serialize, utoipa::ToSchema)]
struct ChunkPage {
    /// The chunks, in document order.
    chunks: Vec<ChunkView>,
    /// Chunks matching, over all pages.
    total: i64,
    /// As asked.
    offset: i64,
    /// As asked.
    limit: i64,
}

/// A chunk as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct ChunkView {
    /// Id.
    id: i64,
    /// Its document.
    document_id: String,
    /// Position in the document, from 0.
    ordinal: i64,
    /// Page, for paged formats.
    page: Option<i64>,
    /// Where it lies when a page cannot say it: a table's sheet and rows
    /// (`销售明细 第3–8行`, `第2–41行` for a CSV).
    label: Option<String>,
    /// Whether its text was read by OCR from a scan or photo (it may hold recognition
    /// errors).
    ocr: bool,
    /// Where it starts in the extracted text.
    start_byte: i64,
    /// Where it ends in the extracted text.
    end_byte: i64,
    /// Text.
    text: String,
    /// Embedding tokens.
    token_count: i64,
    /// Whether retrieval may return it.
    enabled: bool,
}

impl From<&ChunkRow> for ChunkView {
    fn from(c: &ChunkRow) -> Self {
        Self {
            id: c.chunk_id,
            document_id: c.document_id.clone(),
            ordinal: c.ordinal,
            page: c.page,
            label: c.label.clone(),
            ocr: c.is_ocr,
            start_byte: c.start_byte,
            end_byte: c.end_byte,
            text: c.text.clone(),
            token_count: c.token_count,
            enabled: c.is_enabled,
        }
    }
}

/// A page of the document's chunks, optionally only those containing `q`.
#[utoipa::path(get, path = "/kbs/{kb}/documents/{doc}/chunks", tag = TAG_DOCUMENTS, operation_id = "list_chunks",
    params(("kb" = String, Path, description = "Knowledge base id or name"), ("doc" = String, Path, description = "Document id"), Page),
    responses((status = 200, description = "Chunks", body = ChunkPage)))]
async fn chunks(
    State(s): State<AppState>,
    Path((kb, doc)): Path<(String, String)>,
    AppQuery(page): AppQuery<Page>,
) -> Result<Json<ChunkPage>> {
    let (offset, limit) = page.checked()?;
    let (chunks, total) = s
        .knowledge
        .chunks(&kb, &doc, page.q.as_deref(), offset, limit)
        .await?;
    Ok(Json(ChunkPage {
        chunks: chunks.iter().map(ChunkView::from).collect(),
        total,
        offset,
        limit,
    }))
}

/// An edit of a chunk: new text (re-embedded and re-indexed), or enabled.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
struct ChunkPatch {
    /// New text.
    text: Option<String>,
    /// Whether retrieval may return it.
    enabled: Option<bool>,
}

/// Edit a chunk's text or enable it; send `text`, `enabled` or both.
#[utoipa::path(patch, path = "/kbs/{kb}/documents/{doc}/chunks/{chunk}", tag = TAG_DOCUMENTS, operation_id = "update_chunk",
    params(("kb" = String, Path, description = "Knowledge base id or name"), ("doc" = String, Path, description = "Document id"), ("chunk" = i64, Path, description = "Chunk id")),
    request_body = ChunkPatch,
    responses((status = 200, description = "The chunk", body = ChunkView)))]
async fn edit_chunk(
    State(s): State<AppState>,
    AppPath((kb, doc, chunk)): AppPath<(String, String, i64)>,
    AppJson(body): AppJson<ChunkPatch>,
) -> Result<Json<ChunkView>> {
    if body.text.is_none() && body.enabled.is_none() {
        return Err(Error::InvalidInput("send text and/or enabled".into()));
    }
    let row = s
        .knowledge
        .update_chunk(&kb, &doc, chunk, body.text, body.enabled)
        .await?;
    Ok(Json(ChunkView::from(&row)))
}

/// Delete a chunk (from SQLite and both indexes).
#[utoipa::path(delete, path = "/kbs/{kb}/documents/{doc}/chunks/{chunk}", tag = TAG_DOCUMENTS, operation_id = "delete_chunk",
    params(("kb" = String, Path, description = "Knowledge base id or name"), ("doc" = String, Path, description = "Document id"), ("chunk" = i64, Path, description = "Chunk id")),
    responses((status = 204, description = "Deleted")))]
async fn remove_chunk(
    State(s): State<AppState>,
    AppPath((kb, doc, chunk)): AppPath<(String, String, i64)>,
) -> Result<StatusCode> {
    s.knowledge.delete_chunk(&kb, &doc, chunk).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
struct PreviewResponse {
    /// The chunks the settings would make.
    chunks: Vec<PreviewChunk>,
    /// How many.
    total: usize,
}

/// Split one file or text with the given (or the KB's) settings, storing nothing.
#[utoipa::path(post, path = "/kbs/{kb}/split-preview", tag = TAG_DOCUMENTS, operation_id = "split_preview",
    params(("kb" = String, Path, description = "Knowledge base id or name")),
    request_body(content(
        (UploadForm = "multipart/form-data"),
        (PastedText = "application/json"),
    )),
    responses(
        (status = 200, description = "The chunks", body = PreviewResponse),
        (status = 413, description = "The file is over the upload limit", body = ErrorBody),
        (status = 415, description = "A file of a type that cannot be read", body = ErrorBody),
        (status = 422, description = "The file holds no readable text (empty, encrypted, corrupt)", body = ErrorBody),
    ))]
async fn preview(
    State(s): State<AppState>,
    Path(kb): Path<String>,
    request: Request,
) -> Result<Json<PreviewResponse>> {
    let mut incoming = read_incoming(&s, request).await?;
    if incoming.web.is_some() || incoming.files.len() != 1 {
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
