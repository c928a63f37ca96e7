//! Knowledge bases, documents and chunks: what users create, upload, list, edit and delete.
//!
//! An upload is stored under a fresh UUID ([`FileStore::put`]: durably, in the data
//! directory or the database) before the document row and its job are inserted in one
//! transaction, and removed if they cannot be, so a crash never leaves a job without its
//! file.

use std::sync::Arc;

use ingest::clean::CleanSettings;
use ingest::embed::Embedder;
use ingest::extract::{OcrSettings, check_languages, detect_kind};
use ingest::jobs::JobQueue;
use ingest::pipeline::{Pipeline, SourceDocument, sha256_hex};
use ingest::split::{ChunkDraft, SplitSettings};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::fetch::Fetcher;
use super::files::FileStore;
use super::indexing::{Consistency, IndexRegistry, IndexingSink};
use super::reembed::{ReEmbedReport, re_embed_kb};
use super::web_schedule::check_sync_interval;
use super::workers::{self, Workers};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::chunks::ChunkRow;
use crate::store::documents::{DocumentRow, NewDocument};
use crate::store::kbs::{KbRow, NewKb};

/// The knowledge service.
pub struct KnowledgeService {
    /// Database.
    pub store: Store,
    /// Indexes.
    pub indexes: Arc<IndexRegistry>,
    /// Queue (to wake workers).
    pub queue: JobQueue,
    /// Pipeline (for previews and chunk edits).
    pub pipeline: Pipeline,
    /// Uploaded files and fetched pages.
    pub files: FileStore,
    /// Upload cap.
    pub max_upload_bytes: u64,
    /// Fetches web pages (URL documents, syncs, sitemaps).
    pub fetcher: Fetcher,
    /// How often the workers' node renews its job leases (`ingest.job_heartbeat_ms`).
    pub job_heartbeat: std::time::Duration,
}

/// A knowledge base as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KbView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Default split settings.
    pub split: SplitSettings,
    /// Default clean settings.
    pub clean: CleanSettings,
    /// Tesseract languages scans and photos are read in, most likely first
    /// (`chi_sim+eng` unless set).
    pub ocr_languages: String,
    /// Embedding model the vectors come from.
    pub embedding_model: String,
    /// Its dimensions.
    pub embedding_dims: i64,
    /// How often the server re-syncs this KB's web pages by itself, in minutes (`null`:
    /// never, the default; a person's sync works either way).
    pub web_sync_interval_minutes: Option<u32>,
    /// Documents.
    pub document_count: i64,
    /// Live chunks.
    pub chunk_count: i64,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: String,
}

impl TryFrom<KbRow> for KbView {
    type Error = Error;
    fn try_from(k: KbRow) -> Result<Self> {
        Ok(Self {
            split: serde_json::from_str(&k.split_json)
                .map_err(|e| Error::Internal(e.to_string()))?,
            clean: serde_json::from_str(&k.clean_json)
                .map_err(|e| Error::Internal(e.to_string()))?,
            ocr_languages: k
                .ocr_languages
                .unwrap_or_else(|| OcrSettings::default().languages),
            id: k.kb_id,
            name: k.name,
            description: k.description,
            embedding_model: k.embedding_model,
            embedding_dims: k.embedding_dims,
            web_sync_interval_minutes: k
                .web_sync_interval_minutes
                .and_then(|m| u32::try_from(m).ok()),
            document_count: k.document_count.unwrap_or(0),
            chunk_count: k.chunk_count.unwrap_or(0),
            created_at: k.created_at,
            updated_at: k.updated_at,
        })
    }
}

/// Body of `POST /api/kbs` and `zhiku kb create`.
#[derive(Debug, Clone, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKb {
    /// Unique name (trimmed; no control characters).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// Description.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    /// Split settings (auto when absent).
    #[serde(default)]
    pub split: Option<SplitSettings>,
    /// Clean settings (defaults when absent).
    #[serde(default)]
    pub clean: Option<CleanSettings>,
    /// Tesseract languages for OCR joined with `+` (`chi_tra+eng`), each installed
    /// (`chi_sim+eng` when absent).
    #[serde(default)]
    pub ocr_languages: Option<String>,
    /// Re-sync the KB's web pages every this many minutes (5 to 43200; absent or `null`:
    /// never).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 43200)]
    pub web_sync_interval_minutes: Option<u32>,
}

/// Body of `PATCH /api/kbs/{kb}`.
#[derive(Debug, Clone, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKb {
    /// New name (trimmed; no control characters).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    /// New description.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// New default split settings.
    pub split: Option<SplitSettings>,
    /// New default clean settings.
    pub clean: Option<CleanSettings>,
    /// New OCR languages (`chi_tra+eng`), each installed; documents uploaded later are
    /// read in them.
    pub ocr_languages: Option<String>,
    /// Re-sync the KB's web pages every this many minutes (5 to 43200); `null` turns the
    /// schedule off, absent leaves it as it is.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 5, maximum = 43200)]
    pub web_sync_interval_minutes: Option<Option<u32>>,
}

/// A field that may be set to `null`: `Some(None)` when the body says `null`, `None` (by
/// `#[serde(default)]`) when it leaves the field out.
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A document as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentView {
    /// Id.
    pub id: String,
    /// KB id.
    pub kb_id: String,
    /// File name.
    pub name: String,
    /// Detected kind.
    pub kind: Option<String>,
    /// Size.
    pub bytes: i64,
    /// queued | processing | indexed | failed.
    pub status: String,
    /// Why it failed.
    pub error: Option<ErrorView>,
    /// Whether retrieval may return it.
    pub enabled: bool,
    /// Chunks.
    pub chunk_count: i64,
    /// Pages.
    pub pages: Option<i64>,
    /// Latest job.
    pub job_id: Option<i64>,
    /// The address a web page was fetched from (absent for an upload); citations of
    /// its passages link to it.
    pub source_url: Option<String>,
    /// When the page was last fetched with a new body (web pages).
    pub fetched_at: Option<String>,
    /// When a sync (a person's or the KB's schedule) last asked the site, changed or not
    /// (web pages).
    pub checked_at: Option<String>,
    /// What that last check found wrong (`page_gone`: 404/410, `fetch_failed`…), while the
    /// document keeps its status and the text last indexed; absent when it reached the page.
    pub check_error: Option<ErrorView>,
    /// Current job stage while processing.
    pub stage: Option<String>,
    /// Job progress 0..1.
    pub progress: Option<f64>,
    /// Seconds of embedding (or OCR) left, estimated from the rate so far.
    pub eta_seconds: Option<f64>,
    /// Pages read by OCR so far, while `stage` is `ocr`.
    pub ocr_pages_done: Option<i64>,
    /// Pages to read by OCR, while `stage` is `ocr`.
    pub ocr_pages_total: Option<i64>,
    /// Uploaded.
    pub created_at: String,
    /// Updated.
    pub updated_at: String,
}

/// An error code and message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorView {
    /// Stable code.
    pub code: String,
    /// Human-readable reason.
    pub message: String,
}

impl From<DocumentRow> for DocumentView {
    fn from(d: DocumentRow) -> Self {
        let processing = d.job_status.as_deref() == Some("processing");
        // The job's units are pages only while it reads pages (they are passages later).
        let reading = processing && d.job_stage.as_deref() == Some("ocr");
        Self {
            ocr_pages_done: d.job_units_done.filter(|_| reading),
            ocr_pages_total: d.job_units_total.filter(|_| reading),
            error: d.error_code.map(|code| ErrorView {
                code,
                message: d.error_message.unwrap_or_default(),
            }),
            check_error: d.source_error_code.map(|code| ErrorView {
                code,
                message: d.source_error_message.unwrap_or_default(),
            }),
            id: d.document_id,
            kb_id: d.kb_id,
            name: d.name,
            kind: d.kind,
            bytes: d.bytes,
            status: d.status,
            enabled: d.is_enabled,
            chunk_count: d.chunk_count,
            pages: d.page_count,
            job_id: d.job_id,
            source_url: d.source_url,
            fetched_at: d.source_fetched_at,
            checked_at: d.source_checked_at,
            stage: d.job_stage.filter(|_| processing),
            progress: d.job_progress,
            eta_seconds: d.job_eta_seconds.filter(|_| processing),
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// What happened to one uploaded file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UploadOutcome {
    /// Document id (the existing one for a duplicate).
    pub id: String,
    /// File name.
    pub name: String,
    /// queued, or the existing document's status for a duplicate.
    pub status: String,
    /// Job id (absent for a duplicate).
    pub job_id: Option<i64>,
    /// True when the same bytes were already in the KB.
    pub duplicate: bool,
}

impl UploadOutcome {
    /// The answer for a document just queued as job `job_id`.
    pub(crate) fn queued(id: String, name: String, job_id: i64) -> Self {
        Self {
            id,
            name,
            status: "queued".into(),
            job_id: Some(job_id),
            duplicate: false,
        }
    }

    /// The answer for a file (or page) the KB already holds, as `existing`.
    pub(crate) fn duplicate(existing: DocumentRow, name: String) -> Self {
        Self {
            id: existing.document_id,
            name,
            status: existing.status,
            job_id: None,
            duplicate: true,
        }
    }
}

/// Per-upload overrides of the KB's settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UploadSettings {
    /// Split settings for these files.
    pub split: Option<SplitSettings>,
    /// Clean settings for these files.
    pub clean: Option<CleanSettings>,
}

/// A chunk of a split preview.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewChunk {
    /// Position.
    pub ordinal: u32,
    /// Page.
    pub page: Option<u32>,
    /// A table's sheet and rows (`销售明细 第3–8行`).
    pub label: Option<String>,
    /// Whether the text was read by OCR.
    pub ocr: bool,
    /// Text.
    pub text: String,
    /// Tokens.
    pub token_count: usize,
}

impl From<ChunkDraft> for PreviewChunk {
    fn from(c: ChunkDraft) -> Self {
        Self {
            ordinal: c.ordinal,
            page: c.page,
            label: c.label,
            ocr: c.ocr,
            text: c.text,
            token_count: c.token_count,
        }
    }
}

/// Longest knowledge base name, in characters (after trimming).
pub const MAX_KB_NAME_CHARS: usize = 100;

/// Longest knowledge base description, in characters.
pub const MAX_KB_DESCRIPTION_CHARS: usize = 2000;

/// Longest document name, in characters: a longer one (a file's or a pasted text's) is
/// cut to this many, not refused, since it is only what the lists show.
pub const MAX_DOCUMENT_NAME_CHARS: usize = 200;

fn validate_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_KB_DESCRIPTION_CHARS {
        return Err(Error::InvalidInput(format!(
            "description must be at most {MAX_KB_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(())
}

/// Characters allowed in a KB name.
fn validate_name(name: &str) -> Result<()> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_KB_NAME_CHARS {
        return Err(Error::InvalidInput(format!(
            "name must be 1 to {MAX_KB_NAME_CHARS} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::InvalidInput(
            "name must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// `languages` trimmed, once tesseract is known to have each of them: a typo would
/// otherwise surface only when a scan of this knowledge base fails.
async fn checked_ocr_languages(languages: Option<&str>) -> Result<Option<String>> {
    let Some(languages) = languages.map(str::trim) else {
        return Ok(None);
    };
    let owned = languages.to_owned();
    let checked = owned.clone();
    tokio::task::spawn_blocking(move || check_languages(&checked)).await??;
    Ok(Some(owned))
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

impl KnowledgeService {
    fn embedder(&self) -> &Arc<Embedder> {
        &self.pipeline.embedder
    }

    /// Check that a KB's vectors come from the configured model.
    pub fn check_model(&self, kb: &KbRow) -> Result<()> {
        let info = self.embedder().info();
        if kb.embedding_model != info.id || kb.embedding_dims as usize != info.dims {
            return Err(Error::ModelMismatch {
                kb: kb.name.clone(),
                built_with: kb.embedding_model.clone(),
                built_dims: kb.embedding_dims as usize,
                configured: info.id.clone(),
                configured_dims: info.dims,
            });
        }
        Ok(())
    }

    /// Start `count` ingestion workers in this process, writing what they ingest through
    /// the indexes; stop them with [`Workers::stop`].
    pub fn start_workers(&self, count: usize) -> Workers {
        let sink = IndexingSink {
            store: self.store.clone(),
            indexes: self.indexes.clone(),
            files: self.files.clone(),
            fetcher: self.fetcher.clone(),
            queue: self.queue.clone(),
        };
        let jobs = super::jobs::JobService {
            store: self.store.clone(),
            queue: self.queue.clone(),
        };
        workers::start(
            count,
            &self.queue,
            &self.pipeline,
            sink,
            jobs,
            self.job_heartbeat,
        )
    }

    /// Compare a KB's BM25 and vector indexes with SQLite (`GET /api/kbs/{kb}/index-check`).
    pub async fn index_check(&self, id_or_name: &str) -> Result<Consistency> {
        let kb = self.store.kb(id_or_name).await?;
        self.indexes.check(&kb.kb_id).await
    }

    /// Recompute every vector of a KB with the configured model and switch the KB to it
    /// (`zhiku reindex --re-embed`; see [`super::reembed`]). `progress(done, total)`.
    pub async fn re_embed(
        &self,
        kb_id: &str,
        progress: impl FnMut(usize, usize),
    ) -> Result<ReEmbedReport> {
        re_embed_kb(&self.store, self.embedder(), kb_id, progress).await
    }

    /// Create a KB.
    #[instrument(skip_all, fields(name = %req.name))]
    pub async fn create_kb(&self, req: CreateKb) -> Result<KbView> {
        validate_name(&req.name)?;
        validate_description(&req.description)?;
        let split = req.split.unwrap_or_default();
        split.validate()?;
        let clean = req.clean.unwrap_or_default();
        let ocr_languages = checked_ocr_languages(req.ocr_languages.as_deref()).await?;
        check_sync_interval(req.web_sync_interval_minutes)?;
        let info = self.embedder().info();
        let row = self
            .store
            .insert_kb(&NewKb {
                name: req.name.trim(),
                description: &req.description,
                split_json: &to_json(&split)?,
                clean_json: &to_json(&clean)?,
                ocr_languages: ocr_languages.as_deref(),
                embedding_model: &info.id,
                embedding_dims: info.dims as i64,
            })
            .await?;
        if let Some(minutes) = req.web_sync_interval_minutes {
            self.store
                .set_kb_web_sync(&row.kb_id, Some(i64::from(minutes)))
                .await?;
            return self.kb(&row.kb_id).await;
        }
        row.try_into()
    }

    /// All KBs.
    pub async fn list_kbs(&self) -> Result<Vec<KbView>> {
        self.store
            .list_kbs()
            .await?
            .into_iter()
            .map(KbView::try_from)
            .collect()
    }

    /// One KB by id or name.
    pub async fn kb(&self, id_or_name: &str) -> Result<KbView> {
        self.store.kb_with_counts(id_or_name).await?.try_into()
    }

    /// Edit a KB.
    pub async fn update_kb(&self, id_or_name: &str, req: UpdateKb) -> Result<KbView> {
        let kb = self.store.kb(id_or_name).await?;
        if let Some(name) = &req.name {
            validate_name(name)?;
        }
        if let Some(description) = &req.description {
            validate_description(description)?;
        }
        if let Some(split) = &req.split {
            split.validate()?;
        }
        let split = req.split.as_ref().map(to_json).transpose()?;
        let clean = req.clean.as_ref().map(to_json).transpose()?;
        let ocr_languages = checked_ocr_languages(req.ocr_languages.as_deref()).await?;
        if let Some(interval) = req.web_sync_interval_minutes {
            check_sync_interval(interval)?;
            self.store
                .set_kb_web_sync(&kb.kb_id, interval.map(i64::from))
                .await?;
        }
        self.store
            .update_kb(
                &kb.kb_id,
                req.name.as_deref().map(str::trim),
                req.description.as_deref(),
                split.as_deref(),
                clean.as_deref(),
                ocr_languages.as_deref(),
            )
            .await?
            .try_into()
    }

    /// Delete a KB with everything in it.
    #[instrument(skip_all, fields(kb = id_or_name))]
    pub async fn delete_kb(&self, id_or_name: &str) -> Result<()> {
        let kb = self.store.kb(id_or_name).await?;
        let files = self.store.delete_kb(&kb.kb_id).await?;
        self.indexes.drop_kb(&kb.kb_id).await?;
        for f in files {
            self.files.remove(&f).await;
        }
        Ok(())
    }

    /// Accept one file into a KB: check it, store it, queue its job.
    #[instrument(skip_all, fields(kb = id_or_name, name = file_name, bytes = bytes.len()))]
    pub async fn upload(
        &self,
        id_or_name: &str,
        file_name: &str,
        bytes: Vec<u8>,
        settings: &UploadSettings,
    ) -> Result<UploadOutcome> {
        let kb = self.store.kb(id_or_name).await?;
        self.check_model(&kb)?;
        let name = display_name(file_name);
        if bytes.len() as u64 > self.max_upload_bytes {
            return Err(Error::PayloadTooLarge {
                limit_bytes: self.max_upload_bytes,
            });
        }
        // Reject what we can never read now, with the accepted list; deeper problems
        // (encrypted, scanned, damaged) are found by the job and reported on the document.
        if let Err(e @ ingest::Error::Unsupported { .. }) = detect_kind(&name, &bytes) {
            return Err(Error::UnsupportedType(e.to_string()));
        }
        if let Some(split) = &settings.split {
            split.validate()?;
        }
        let sha256 = sha256_hex(&bytes);
        if let Some(existing) = self.store.document_by_sha256(&kb.kb_id, &sha256).await? {
            return Ok(UploadOutcome::duplicate(existing, name));
        }
        let document_id = uuid::Uuid::new_v4().to_string();
        let file_path = format!("files/{document_id}");
        self.files.put(&file_path, &bytes).await?;
        let split = settings.split.as_ref().map(to_json).transpose()?;
        let clean = settings.clean.as_ref().map(to_json).transpose()?;
        let inserted = self
            .store
            .insert_document(&NewDocument {
                document_id: &document_id,
                kb_id: &kb.kb_id,
                name: &name,
                bytes: bytes.len() as i64,
                sha256: &sha256,
                file_path: &file_path,
                split_json: split.as_deref(),
                clean_json: clean.as_deref(),
                source_url: None,
                crawl: None,
                crawl_sitemap_url: None,
            })
            .await;
        let job_id = match inserted {
            Ok(job_id) => job_id,
            Err(e) => {
                self.files.remove(&file_path).await;
                if let Error::Conflict(_) = e
                    && let Some(existing) =
                        self.store.document_by_sha256(&kb.kb_id, &sha256).await?
                {
                    // Lost a race with the same file uploaded at the same moment.
                    return Ok(UploadOutcome::duplicate(existing, name));
                }
                return Err(e);
            }
        };
        self.queue.notify();
        Ok(UploadOutcome::queued(document_id, name, job_id))
    }

    /// Documents of a KB.
    pub async fn list_documents(
        &self,
        id_or_name: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<DocumentView>> {
        let kb = self.store.kb(id_or_name).await?;
        Ok(self
            .store
            .list_documents(&kb.kb_id, offset, limit)
            .await?
            .into_iter()
            .map(DocumentView::from)
            .collect())
    }

    /// One document.
    pub async fn document(&self, id_or_name: &str, document_id: &str) -> Result<DocumentView> {
        let kb = self.store.kb(id_or_name).await?;
        Ok(self
            .store
            .document(Some(&kb.kb_id), document_id)
            .await?
            .into())
    }

    /// Enable or disable a document for retrieval.
    pub async fn set_document_enabled(
        &self,
        id_or_name: &str,
        document_id: &str,
        enabled: bool,
    ) -> Result<DocumentView> {
        let kb = self.store.kb(id_or_name).await?;
        self.store.document(Some(&kb.kb_id), document_id).await?;
        self.store
            .set_document_enabled(document_id, enabled)
            .await?;
        self.indexes.catch_up(&kb.kb_id).await?;
        self.document(&kb.kb_id, document_id).await
    }

    /// Delete a document and its chunks.
    #[instrument(skip_all, fields(document_id))]
    pub async fn delete_document(&self, id_or_name: &str, document_id: &str) -> Result<()> {
        let kb = self.store.kb(id_or_name).await?;
        self.store.document(Some(&kb.kb_id), document_id).await?;
        let file = self.store.delete_document(document_id).await?;
        self.files.remove(&file).await;
        self.indexes.catch_up(&kb.kb_id).await
    }

    /// A page of a document's chunks, with the total.
    pub async fn chunks(
        &self,
        id_or_name: &str,
        document_id: &str,
        query: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ChunkRow>, i64)> {
        let kb = self.store.kb(id_or_name).await?;
        self.store.document(Some(&kb.kb_id), document_id).await?;
        self.store
            .list_chunks(document_id, query, offset, limit)
            .await
    }

    /// Edit a chunk's text (re-embedded) and/or enabled flag.
    pub async fn update_chunk(
        &self,
        id_or_name: &str,
        document_id: &str,
        chunk_id: i64,
        text: Option<String>,
        enabled: Option<bool>,
    ) -> Result<ChunkRow> {
        let kb = self.store.kb(id_or_name).await?;
        self.store.document(Some(&kb.kb_id), document_id).await?;
        self.store.chunk(document_id, chunk_id).await?;
        let new_text = match text {
            Some(t) => {
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(Error::InvalidInput("chunk text must not be empty".into()));
                }
                self.check_model(&kb)?;
                let embedder = self.embedder().clone();
                let input = vec![t.clone()];
                let (vector, tokens) =
                    tokio::task::spawn_blocking(move || -> ingest::Result<(Vec<f32>, usize)> {
                        let tokens = embedder.tokens()?.count(&input[0]);
                        let v = embedder
                            .embed_passages(&input, |_, _| {})?
                            .pop()
                            .unwrap_or_default();
                        Ok((v, tokens))
                    })
                    .await??;
                if tokens > ingest::split::MAX_CHUNK_TOKENS {
                    return Err(Error::InvalidInput(format!(
                        "the chunk has {tokens} tokens; the limit is {}",
                        ingest::split::MAX_CHUNK_TOKENS
                    )));
                }
                Some((t, tokens, vector))
            }
            None => None,
        };
        let sha = new_text.as_ref().map(|(t, _, _)| sha256_hex(t.as_bytes()));
        let text_arg = new_text
            .as_ref()
            .zip(sha.as_deref())
            .map(|((t, n, v), h)| (t.as_str(), *n as i64, h, v.as_slice()));
        self.store.update_chunk(chunk_id, text_arg, enabled).await?;
        self.indexes.catch_up(&kb.kb_id).await?;
        self.store.chunk(document_id, chunk_id).await
    }

    /// Delete a chunk.
    pub async fn delete_chunk(
        &self,
        id_or_name: &str,
        document_id: &str,
        chunk_id: i64,
    ) -> Result<()> {
        let kb = self.store.kb(id_or_name).await?;
        self.store.document(Some(&kb.kb_id), document_id).await?;
        self.store.chunk(document_id, chunk_id).await?;
        self.store.delete_chunk(chunk_id).await?;
        self.indexes.catch_up(&kb.kb_id).await
    }

    /// Extract, clean and split a file as an upload would, saving nothing.
    pub async fn split_preview(
        &self,
        id_or_name: &str,
        file_name: &str,
        bytes: Vec<u8>,
        settings: UploadSettings,
    ) -> Result<Vec<PreviewChunk>> {
        let kb = self.store.kb(id_or_name).await?;
        if bytes.len() as u64 > self.max_upload_bytes {
            return Err(Error::PayloadTooLarge {
                limit_bytes: self.max_upload_bytes,
            });
        }
        let split = match settings.split {
            Some(s) => s,
            None => {
                serde_json::from_str(&kb.split_json).map_err(|e| Error::Internal(e.to_string()))?
            }
        };
        let clean = match settings.clean {
            Some(c) => c,
            None => {
                serde_json::from_str(&kb.clean_json).map_err(|e| Error::Internal(e.to_string()))?
            }
        };
        let source = SourceDocument {
            name: display_name(file_name),
            bytes: bytes.into(),
            split,
            clean,
            ocr_languages: kb.ocr_languages,
        };
        let pipeline = self.pipeline.clone();
        let (_, chunks) = tokio::task::spawn_blocking(move || pipeline.chunk(&source)).await??;
        Ok(chunks.into_iter().map(PreviewChunk::from).collect())
    }
}

/// The last path component of a client-supplied name, without control characters: a
/// file name is display text, never a path.
pub fn display_name(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string();
    if clean.is_empty() || clean == "." || clean == ".." {
        "untitled.txt".into()
    } else {
        clean.chars().take(MAX_DOCUMENT_NAME_CHARS).collect()
    }
}

/// The accepted extensions, for error messages (the same list as the 415's).
pub fn accepted_types() -> String {
    ingest::extract::accepted_list()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_file_names_are_never_paths() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\x\\报告.pdf"), "报告.pdf");
        assert_eq!(display_name(".."), "untitled.txt");
        assert_eq!(display_name("a\u{0}b.txt"), "ab.txt");
    }
}
