//! One document's way from bytes to embedded chunks, and the worker loop that drives jobs.
//!
//! The crate does not know where documents live or how chunks are indexed: the server
//! implements [`ChunkSink`] for that (ripgrep's "the library defines the sink" shape).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tracing::{Instrument, info, info_span, warn};

use crate::clean::{CleanSettings, clean};
use crate::embed::Embedder;
use crate::extract::{self, DocKind, ExtractLimits, Extracted};
use crate::jobs::{Job, JobQueue};
use crate::split::{ChunkDraft, SplitSettings, split};
use crate::{Error, Result};

/// What the sink hands the pipeline for one job.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    /// The client's file name (for type detection by extension).
    pub name: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
    /// Split settings in force for this document.
    pub split: SplitSettings,
    /// Clean settings in force for this document.
    pub clean: CleanSettings,
}

/// A chunk with its vector.
#[derive(Debug, Clone)]
pub struct EmbeddedChunk {
    /// Text, page and offsets.
    pub draft: ChunkDraft,
    /// sha256 of the text, hex.
    pub text_sha256: String,
    /// The vector.
    pub vector: Vec<f32>,
}

/// A processed document, ready to be stored and indexed.
#[derive(Debug, Clone)]
pub struct ProcessedDocument {
    /// Detected kind.
    pub kind: DocKind,
    /// Pages, for paged documents.
    pub page_count: Option<u32>,
    /// The chunks in document order.
    pub chunks: Vec<EmbeddedChunk>,
}

/// Where documents come from and where their chunks go; implemented by the server.
pub trait ChunkSink: Send + Sync + 'static {
    /// Load the document of `job`.
    fn fetch(&self, job: &Job) -> impl Future<Output = Result<SourceDocument>> + Send;
    /// The document is being processed (its status for users).
    fn started(&self, job: &Job) -> impl Future<Output = Result<()>> + Send;
    /// Vectors already stored in this KB for these text hashes (identical chunks are not
    /// embedded twice).
    fn known_vectors(
        &self,
        job: &Job,
        text_sha256: &[String],
    ) -> impl Future<Output = Result<std::collections::HashMap<String, Vec<f32>>>> + Send;
    /// Store the chunks, replacing any earlier ones of the document, and index them.
    /// Must be idempotent: a crash after it and before the job is acked runs it again.
    fn write(&self, job: &Job, doc: ProcessedDocument) -> impl Future<Output = Result<()>> + Send;
    /// The document failed; record why.
    fn failed(&self, job: &Job, error: &Error) -> impl Future<Output = Result<()>> + Send;
}

/// Extraction, cleaning, splitting and embedding settings shared by all jobs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The embedding model.
    pub embedder: Arc<Embedder>,
    /// Limits for extraction.
    pub limits: ExtractLimits,
}

/// hex sha256 of a text.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Pipeline {
    /// Extract, clean and split (no embedding): what `split-preview` shows.
    pub fn chunk(&self, source: &SourceDocument) -> Result<(Extracted, Vec<ChunkDraft>)> {
        let mut extracted = extract::extract(&source.name, source.bytes.clone(), &self.limits)?;
        for section in &mut extracted.sections {
            section.text = clean(&section.text, &source.clean);
        }
        extracted.sections.retain(|s| !s.text.is_empty());
        if extracted.sections.is_empty() {
            return Err(if extracted.kind == DocKind::Pdf {
                Error::NoText
            } else {
                Error::Empty
            });
        }
        let chunks = split(&extracted, &source.split, self.embedder.tokens())?;
        if chunks.is_empty() {
            return Err(Error::NoText);
        }
        Ok((extracted, chunks))
    }
}

/// Run one job to its end. Errors are recorded on the job and the document, not returned,
/// except when the database itself fails.
async fn run_job<S: ChunkSink>(
    queue: &JobQueue,
    pipeline: &Pipeline,
    sink: &S,
    job: &Job,
) -> Result<()> {
    let started = Instant::now();
    match process(queue, pipeline, sink, job).await {
        Ok(chunks) => {
            queue.succeed(job.job_id).await?;
            info!(
                chunks,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "indexed"
            );
        }
        Err(error) => {
            if queue.is_canceled(job.job_id).await? {
                info!("job was canceled while running");
                return Ok(());
            }
            if error.is_retryable() && job.attempts < queue.max_attempts() {
                warn!(code = error.code(), %error, attempts = job.attempts, "transient failure; the job will run again");
                queue.retry_later(job.job_id, &error).await?;
                queue.notify();
                return Ok(());
            }
            warn!(code = error.code(), %error, "ingestion failed");
            sink.failed(job, &error).await?;
            queue.fail(job.job_id, &error).await?;
        }
    }
    Ok(())
}

async fn process<S: ChunkSink>(
    queue: &JobQueue,
    pipeline: &Pipeline,
    sink: &S,
    job: &Job,
) -> Result<usize> {
    sink.started(job).await?;
    let source = sink.fetch(job).await?;
    queue.progress(job.job_id, "extract", 0.0).await?;
    let span = tracing::Span::current();
    let p = pipeline.clone();
    let src = source.clone();
    let (extracted, drafts) = tokio::task::spawn_blocking(move || span.in_scope(|| p.chunk(&src)))
        .await
        .map_err(|e| Error::Panicked {
            kind: "pipeline".into(),
            detail: e.to_string(),
        })??;
    queue.progress(job.job_id, "embed", 0.1).await?;

    let hashes: Vec<String> = drafts
        .iter()
        .map(|d| sha256_hex(d.text.as_bytes()))
        .collect();
    let known = sink.known_vectors(job, &hashes).await?;
    let missing: Vec<String> = drafts
        .iter()
        .zip(&hashes)
        .filter(|(_, h)| !known.contains_key(*h))
        .map(|(d, _)| d.text.clone())
        .collect();
    let embedder = pipeline.embedder.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
    let span = tracing::Span::current();
    let embedding = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            embedder.embed_passages(&missing, |done, total| {
                let _ = tx.send((done, total));
            })
        })
    });
    tokio::pin!(embedding);
    let new_vectors = loop {
        tokio::select! {
            Some((done, total)) = rx.recv() => {
                let fraction = 0.1 + 0.8 * done as f64 / total.max(1) as f64;
                queue.progress(job.job_id, "embed", fraction).await?;
            }
            result = &mut embedding => {
                break result.map_err(|e| Error::Panicked { kind: "embedding".into(), detail: e.to_string() })??;
            }
        }
    };
    let mut new_vectors = new_vectors.into_iter();
    let mut chunks = Vec::with_capacity(drafts.len());
    for (draft, text_sha256) in drafts.into_iter().zip(hashes) {
        let vector = match known.get(&text_sha256) {
            Some(v) => v.clone(),
            None => new_vectors
                .next()
                .ok_or_else(|| Error::Model("fewer vectors than chunks".into()))?,
        };
        chunks.push(EmbeddedChunk {
            draft,
            text_sha256,
            vector,
        });
    }
    queue.progress(job.job_id, "index", 0.9).await?;
    if queue.is_canceled(job.job_id).await? {
        return Err(Error::Sink("document deleted while processing".into()));
    }
    let count = chunks.len();
    sink.write(
        job,
        ProcessedDocument {
            kind: extracted.kind,
            page_count: extracted.page_count,
            chunks,
        },
    )
    .await?;
    Ok(count)
}

/// The worker loop: claim a job, run it, repeat; sleeps until woken when the queue is empty.
/// Returns when `shutdown` turns true. A database error is logged and retried after a pause.
pub async fn run_worker<S: ChunkSink>(
    worker: usize,
    queue: JobQueue,
    pipeline: Pipeline,
    sink: Arc<S>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match queue.claim().await {
            Ok(Some(job)) => {
                let span = info_span!("ingest_job", worker, job_id = job.job_id, document_id = %job.document_id, kb_id = %job.kb_id);
                if let Err(e) = run_job(&queue, &pipeline, sink.as_ref(), &job)
                    .instrument(span)
                    .await
                {
                    warn!(worker, job_id = job.job_id, error = %e, "job bookkeeping failed; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = queue.wait(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                warn!(worker, error = %e, "cannot claim a job; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
