//! One document's way from bytes to embedded chunks, and the worker loop that drives jobs.
//!
//! The crate does not know where documents live or how chunks are indexed: the server
//! implements [`ChunkSink`] for that (ripgrep's "the library defines the sink" shape).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{Instrument, Span, info, info_span, warn};

use crate::clean::{CleanSettings, clean};
use crate::embed::Embedder;
use crate::extract::guard::{Outcome, run_guarded};
use crate::extract::{self, DocKind, ExtractLimits, Extracted};
use crate::jobs::{BatchLimits, Job, JobQueue};
use crate::split::{ChunkDraft, SplitSettings, split};
use crate::tables::{Table, tables_of};
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
    /// Tesseract languages for this document's OCR (its knowledge base's setting, e.g.
    /// `chi_tra+eng`); `None` keeps [`Pipeline::limits`]' own.
    pub ocr_languages: Option<String>,
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
    /// Its sheets (or its CSV) as typed tables, for table queries.
    pub tables: Vec<Table>,
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
    ) -> impl Future<Output = Result<HashMap<String, Vec<f32>>>> + Send;
    /// Store the chunks, replacing any earlier ones of the document (not yet searchable).
    /// Must be idempotent: a crash after it and before the job is acked runs it again.
    fn write(&self, job: &Job, doc: ProcessedDocument) -> impl Future<Output = Result<()>> + Send;
    /// Make the documents of these jobs, whose chunks [`ChunkSink::write`] stored, searchable
    /// and mark them so: called once per batch, so their index updates share one commit.
    fn publish(&self, jobs: &[Job]) -> impl Future<Output = Result<()>> + Send;
    /// The document goes back in the queue untouched (the server is stopping).
    fn requeued(&self, job: &Job) -> impl Future<Output = Result<()>> + Send;
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
    /// How many small jobs a worker takes at once.
    pub batch: BatchLimits,
    /// Wall-clock limit for cleaning and splitting one document.
    pub split_timeout: Duration,
    /// Passages embedded between two looks at the queue: a big document is embedded in
    /// slices of this many, and between slices the worker runs the small documents queued
    /// meanwhile (and stops, if the server is stopping).
    pub slice_passages: usize,
    /// Most cells a document's tables may hold together to be loaded as typed tables
    /// (see [`crate::tables`]).
    pub max_table_cells: usize,
}

/// hex sha256 of a text.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Pipeline {
    /// Extract, clean and split (no embedding): what `split-preview` shows.
    pub fn chunk(&self, source: &SourceDocument) -> Result<(Extracted, Vec<ChunkDraft>)> {
        let limits = self.limits_for(source);
        let extracted = extract::extract(&source.name, source.bytes.clone(), &limits)?;
        self.clean_and_split(extracted, source)
    }

    /// The extraction limits for `source`: [`Pipeline::limits`] with its OCR languages.
    pub fn limits_for(&self, source: &SourceDocument) -> ExtractLimits {
        let mut limits = self.limits.clone();
        if let Some(languages) = &source.ocr_languages {
            limits.ocr.languages.clone_from(languages);
        }
        limits
    }

    /// Clean and split an extracted document under [`Pipeline::split_timeout`].
    ///
    /// The tokenizer that sizes chunks is not ours to interrupt, and one pathological
    /// "word" kept it busy for minutes: like extraction, the work runs on a thread of its
    /// own and the document fails when the limit passes (the thread is abandoned).
    pub fn clean_and_split(
        &self,
        extracted: Extracted,
        source: &SourceDocument,
    ) -> Result<(Extracted, Vec<ChunkDraft>)> {
        let tokens = self.embedder.tokens()?;
        let (clean_settings, split_settings) = (source.clean.clone(), source.split.clone());
        let limit_ms = self.split_timeout.as_millis() as u64;
        let work = move || -> Result<(Extracted, Vec<ChunkDraft>)> {
            let mut extracted = extracted;
            for section in &mut extracted.sections {
                // Line by line for a table, so that its rows stay one per line.
                section.rewrite(|text| clean(text, &clean_settings));
            }
            extracted.sections.retain(|s| !s.text.is_empty());
            if extracted.sections.is_empty() {
                return Err(if extracted.kind.may_be_scanned() {
                    Error::NoText
                } else {
                    Error::Empty
                });
            }
            let chunks = split(&extracted, &split_settings, &*tokens)?;
            if chunks.is_empty() {
                return Err(Error::NoText);
            }
            Ok((extracted, chunks))
        };
        match run_guarded("split", self.split_timeout, work)? {
            Outcome::Done(result) => result,
            Outcome::Panicked(detail) => Err(Error::Panicked {
                kind: "splitting".into(),
                detail,
            }),
            Outcome::TimedOut => Err(Error::SplitTimedOut { limit_ms }),
        }
    }
}

/// Where a batch's time went, for the log line each batch ends with.
#[derive(Debug, Clone, Copy, Default)]
struct StageTimes {
    extract: Duration,
    split: Duration,
    embed: Duration,
    store: Duration,
    index: Duration,
}

impl StageTimes {
    fn add(&mut self, other: StageTimes) {
        self.extract += other.extract;
        self.split += other.split;
        self.embed += other.embed;
        self.store += other.store;
        self.index += other.index;
    }
}

/// A job of a batch, extracted and split, waiting for its vectors.
struct Prepared {
    job: Job,
    span: Span,
    started: Instant,
    kind: DocKind,
    page_count: Option<u32>,
    drafts: Vec<ChunkDraft>,
    tables: Vec<Table>,
    hashes: Vec<String>,
    known: HashMap<String, Vec<f32>>,
    times: StageTimes,
}

/// A job of a batch whose chunks are stored, waiting to be made searchable.
struct Written {
    job: Job,
    span: Span,
    started: Instant,
    chunks: usize,
}

/// Run a batch of jobs (one, or several small ones) to their end: each is extracted and
/// split on its own, then the batch shares one embedding run (its passages sorted by
/// length, so short notes fill whole batches) and one publish (one index commit per KB).
/// A job's failure is recorded on that job and its document only; errors are returned
/// only when the database itself fails.
async fn run_batch<S: ChunkSink>(
    queue: &JobQueue,
    pipeline: &Pipeline,
    sink: &S,
    jobs: Vec<Job>,
    turns: &Turns<'_>,
) -> Result<()> {
    let worker = turns.worker;
    let ids: Vec<i64> = jobs.iter().map(|j| j.job_id).collect();
    queue.progress_many(&ids, "extract", 0.0).await?;
    let mut prepared = Vec::with_capacity(jobs.len());
    for job in jobs {
        let span = info_span!("ingest_job", worker, job_id = job.job_id, document_id = %job.document_id, kb_id = %job.kb_id);
        let started = Instant::now();
        match prepare(queue, pipeline, sink, &job)
            .instrument(span.clone())
            .await
        {
            Ok(Split {
                extracted,
                drafts,
                tables,
                hashes,
                known,
                times,
            }) => prepared.push(Prepared {
                job,
                span,
                started,
                kind: extracted.kind,
                page_count: extracted.page_count,
                drafts,
                tables,
                hashes,
                known,
                times,
            }),
            Err(error) => {
                settle_failure(queue, sink, &job, &error)
                    .instrument(span)
                    .await?
            }
        }
    }
    if prepared.is_empty() {
        return Ok(());
    }

    let mut times = StageTimes::default();
    for p in &prepared {
        times.add(p.times);
    }
    let ids: Vec<i64> = prepared.iter().map(|p| p.job.job_id).collect();
    let embed_started = Instant::now();
    let vectors = match embed_missing(queue, pipeline, sink, &prepared, &ids, turns).await {
        Ok(vectors) => vectors,
        Err(Error::Stopping) => {
            for p in &prepared {
                queue.release(p.job.job_id).await?;
                sink.requeued(&p.job).instrument(p.span.clone()).await?;
            }
            info!(
                worker,
                jobs = prepared.len(),
                "server stopping: embedding stopped between two slices; the documents are queued again"
            );
            return Ok(());
        }
        Err(error) => {
            for p in &prepared {
                settle_failure(queue, sink, &p.job, &error)
                    .instrument(p.span.clone())
                    .await?;
            }
            return Ok(());
        }
    };

    times.embed = embed_started.elapsed();
    let store_started = Instant::now();
    queue.progress_many(&ids, "index", 0.9).await?;
    let mut vectors = vectors.into_iter();
    let mut written = Vec::with_capacity(prepared.len());
    'jobs: for p in prepared {
        let Prepared {
            job,
            span,
            started,
            kind,
            page_count,
            drafts,
            tables,
            hashes,
            known,
            times: _,
        } = p;
        let mut chunks = Vec::with_capacity(drafts.len());
        for (draft, text_sha256) in drafts.into_iter().zip(hashes) {
            let vector = match known.get(&text_sha256) {
                Some(v) => Some(v.clone()),
                None => vectors.next(),
            };
            let Some(vector) = vector else {
                let error = Error::Model("fewer vectors than chunks".into());
                settle_failure(queue, sink, &job, &error)
                    .instrument(span)
                    .await?;
                continue 'jobs;
            };
            chunks.push(EmbeddedChunk {
                draft,
                text_sha256,
                vector,
            });
        }
        let count = chunks.len();
        let stored = async {
            if queue.is_lost(job.job_id).await? {
                return Err(Error::NotHeld { job_id: job.job_id });
            }
            sink.write(
                &job,
                ProcessedDocument {
                    kind,
                    page_count,
                    chunks,
                    tables,
                },
            )
            .await
        }
        .instrument(span.clone())
        .await;
        match stored {
            Ok(()) => written.push(Written {
                job,
                span,
                started,
                chunks: count,
            }),
            Err(error) => {
                settle_failure(queue, sink, &job, &error)
                    .instrument(span)
                    .await?
            }
        }
    }
    if written.is_empty() {
        return Ok(());
    }

    times.store = store_started.elapsed();
    let index_started = Instant::now();
    let stored_jobs: Vec<Job> = written.iter().map(|w| w.job.clone()).collect();
    match sink.publish(&stored_jobs).await {
        Ok(()) => {
            times.index = index_started.elapsed();
            info!(
                worker,
                jobs = stored_jobs.len(),
                chunks = written.iter().map(|w| w.chunks).sum::<usize>(),
                extract_ms = times.extract.as_millis() as u64,
                split_ms = times.split.as_millis() as u64,
                embed_ms = times.embed.as_millis() as u64,
                store_ms = times.store.as_millis() as u64,
                index_ms = times.index.as_millis() as u64,
                "batch indexed"
            );
            for w in written {
                let _entered = w.span.enter();
                queue.succeed(w.job.job_id).await?;
                info!(
                    chunks = w.chunks,
                    batch = stored_jobs.len(),
                    elapsed_ms = w.started.elapsed().as_millis() as u64,
                    "indexed"
                );
            }
        }
        Err(error) => {
            for w in &written {
                settle_failure(queue, sink, &w.job, &error)
                    .instrument(w.span.clone())
                    .await?;
            }
        }
    }
    Ok(())
}

/// A job that ended in `error`: canceled meanwhile, retried later when the error is
/// transient, or failed with its reason on the job and the document.
async fn settle_failure<S: ChunkSink>(
    queue: &JobQueue,
    sink: &S,
    job: &Job,
    error: &Error,
) -> Result<()> {
    if queue.is_lost(job.job_id).await? {
        info!("job was canceled, or taken over after its lease ran out, while running");
        return Ok(());
    }
    if error.is_retryable() && job.attempts < queue.max_attempts() {
        warn!(code = error.code(), %error, attempts = job.attempts, "transient failure; the job will run again");
        queue.retry_later(job.job_id, error).await?;
        queue.notify();
        return Ok(());
    }
    warn!(code = error.code(), %error, "ingestion failed");
    sink.failed(job, error).await?;
    queue.fail(job.job_id, error).await
}

/// Fetch, extract, clean and split one job, and look up the vectors its KB already has.
/// The job's stage says which of these runs now, so a document stuck in one shows where.
/// A job's document extracted, split and read as tables, with what is known of its chunks.
struct Split {
    extracted: Extracted,
    drafts: Vec<ChunkDraft>,
    tables: Vec<Table>,
    hashes: Vec<String>,
    known: HashMap<String, Vec<f32>>,
    times: StageTimes,
}

async fn prepare<S: ChunkSink>(
    queue: &JobQueue,
    pipeline: &Pipeline,
    sink: &S,
    job: &Job,
) -> Result<Split> {
    sink.started(job).await?;
    let source = Arc::new(sink.fetch(job).await?);
    let started = Instant::now();
    let extracted = extract_recording_ocr(queue, pipeline, job.job_id, source.clone()).await?;
    let extracted_at = Instant::now();
    queue.progress_many(&[job.job_id], "split", 0.05).await?;
    let (extracted, drafts, tables) = blocking("pipeline", {
        let p = pipeline.clone();
        move || {
            let (extracted, drafts) = p.clean_and_split(extracted, &source)?;
            let tables = tables_of(&extracted, &source.name, p.max_table_cells);
            Ok((extracted, drafts, tables))
        }
    })
    .await?;
    let times = StageTimes {
        extract: extracted_at - started,
        split: extracted_at.elapsed(),
        ..StageTimes::default()
    };
    let hashes: Vec<String> = drafts
        .iter()
        .map(|d| sha256_hex(d.text.as_bytes()))
        .collect();
    let known = sink.known_vectors(job, &hashes).await?;
    Ok(Split {
        extracted,
        drafts,
        tables,
        hashes,
        known,
        times,
    })
}

/// Extract a job's document on the blocking pool, recording on the job how far OCR is
/// (pages read of the total, and the time left at the rate so far) as its pages end.
async fn extract_recording_ocr(
    queue: &JobQueue,
    pipeline: &Pipeline,
    job_id: i64,
    source: Arc<SourceDocument>,
) -> Result<Extracted> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
    let started = Instant::now();
    let extraction = blocking("pipeline", {
        let p = pipeline.clone();
        move || {
            let on_page = move |read: usize, total: usize| {
                let _ = tx.send((read, total));
            };
            let limits = p.limits_for(&source);
            extract::extract_reporting(&source.name, source.bytes.clone(), &limits, &on_page)
        }
    });
    tokio::pin!(extraction);
    loop {
        tokio::select! {
            Some((read, total)) = rx.recv() => {
                let spent = started.elapsed().as_secs_f64();
                let eta = (read > 0).then(|| spent / read as f64 * total.saturating_sub(read) as f64);
                queue.ocr_progress(job_id, read, total, eta).await?;
            }
            result = &mut extraction => return result,
        }
    }
}

/// Run `work` on tokio's blocking pool inside the caller's span; a panic becomes
/// [`Error::Panicked`] of `kind`.
async fn blocking<T: Send + 'static>(
    kind: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| Error::Panicked {
            kind: kind.into(),
            detail: e.to_string(),
        })?
}

/// What a batch may do between its embedding slices.
struct Turns<'a> {
    worker: usize,
    /// Turns true when the server is stopping: the batch stops at the next slice.
    shutdown: &'a watch::Receiver<bool>,
    /// Whether small queued jobs run between this batch's slices (not when this batch is
    /// itself such a turn: small jobs do not wait for each other long).
    may_yield: bool,
}

/// Embed every chunk of the batch that its KB does not already have a vector for; the
/// vectors come back in batch order (job by job, chunk by chunk). `ids` are the batch's
/// job ids, for progress.
///
/// The passages go in slices of [`Pipeline::slice_passages`]. Between two slices the
/// worker runs the small jobs queued meanwhile (see [`JobQueue::claim_small`]), so a note
/// waits for one slice of a big document, not all of it; and it returns
/// [`Error::Stopping`] if the server is stopping, so a shutdown waits for one slice.
async fn embed_missing<S: ChunkSink>(
    queue: &JobQueue,
    pipeline: &Pipeline,
    sink: &S,
    prepared: &[Prepared],
    ids: &[i64],
    turns: &Turns<'_>,
) -> Result<Vec<Vec<f32>>> {
    let missing: Vec<String> = prepared
        .iter()
        .flat_map(|p| {
            p.drafts
                .iter()
                .zip(&p.hashes)
                .filter(|(_, h)| !p.known.contains_key(*h))
                .map(|(d, _)| d.text.clone())
        })
        .collect();
    let total = missing.len();
    queue.embed_progress(ids, 0, total, None).await?;
    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(total);
    // Time spent embedding this batch's own passages, for the estimate of the time left
    // (small jobs run in between do not count).
    let mut embedding = Duration::ZERO;
    for (n, slice) in missing.chunks(pipeline.slice_passages.max(1)).enumerate() {
        if n > 0 {
            let stopping = *turns.shutdown.borrow();
            if stopping {
                return Err(Error::Stopping);
            }
            if turns.may_yield {
                run_small_jobs_between_slices(queue, pipeline, sink, turns).await?;
            }
        }
        let started = Instant::now();
        let slice_vectors = embed_slice(
            queue,
            pipeline,
            slice.to_vec(),
            ids,
            vectors.len(),
            total,
            embedding,
        )
        .await?;
        vectors.extend(slice_vectors);
        embedding += started.elapsed();
    }
    Ok(vectors)
}

/// Embed one slice of a batch's passages (those after the first `offset` of `total`),
/// recording progress and the time left after each ONNX Runtime run.
async fn embed_slice(
    queue: &JobQueue,
    pipeline: &Pipeline,
    texts: Vec<String>,
    ids: &[i64],
    offset: usize,
    total: usize,
    spent_before: Duration,
) -> Result<Vec<Vec<f32>>> {
    let embedder = pipeline.embedder.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let span = info_span!("embed_slice", offset, passages = texts.len(), total);
    let started = Instant::now();
    let embedding = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            embedder.embed_passages(&texts, |done, _| {
                let _ = tx.send(done);
            })
        })
    });
    tokio::pin!(embedding);
    loop {
        tokio::select! {
            Some(done) = rx.recv() => {
                let done = offset + done;
                let spent = (spent_before + started.elapsed()).as_secs_f64();
                let eta = (done > 0).then(|| spent / done as f64 * (total - done.min(total)) as f64);
                queue.embed_progress(ids, done, total, eta).await?;
            }
            result = &mut embedding => {
                return result.map_err(|e| Error::Panicked { kind: "embedding".into(), detail: e.to_string() })?;
            }
        }
    }
}

/// Run the small jobs queued behind a big batch, as batches of their own, before the big
/// batch's next slice. A database failure while they run puts them back in the queue and
/// interrupts the big batch too (its worker then settles it).
async fn run_small_jobs_between_slices<S: ChunkSink>(
    queue: &JobQueue,
    pipeline: &Pipeline,
    sink: &S,
    turns: &Turns<'_>,
) -> Result<()> {
    loop {
        let small = queue.claim_small(pipeline.batch).await?;
        if small.is_empty() {
            return Ok(());
        }
        info!(
            worker = turns.worker,
            jobs = small.len(),
            "small documents run between two slices of a big one"
        );
        let turn = Turns {
            worker: turns.worker,
            shutdown: turns.shutdown,
            may_yield: false,
        };
        if let Err(error) = run_turn(queue, pipeline, sink, small.clone(), &turn).await {
            let _ = settle_unfinished(queue, sink, &small, &error).await;
            return Err(error);
        }
        let stopping = *turns.shutdown.borrow();
        if stopping {
            return Ok(());
        }
    }
}

/// [`run_batch`] boxed, with its `Send` spelled out: a batch runs small batches between its
/// slices, and a recursive future needs a name for its type.
fn run_turn<'a, S: ChunkSink>(
    queue: &'a JobQueue,
    pipeline: &'a Pipeline,
    sink: &'a S,
    jobs: Vec<Job>,
    turns: &'a Turns<'a>,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(run_batch(queue, pipeline, sink, jobs, turns))
}

/// After a batch was cut short (the database failed under it, or something panicked), its
/// jobs that are still 'processing' are queued again, or failed once they have had their
/// attempts: retried until the database lets us, so none is left 'processing' until the
/// next restart. The batch, not one job, was interrupted, so even a panic gets its retries
/// (a job claimed before runs alone, and so fails alone if it is the cause).
async fn settle_interrupted<S: ChunkSink>(
    queue: &JobQueue,
    sink: &S,
    jobs: &[Job],
    error: &Error,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match settle_unfinished(queue, sink, jobs, error).await {
            Ok(()) => {
                queue.notify();
                return;
            }
            Err(e) => warn!(error = %e, "cannot put the interrupted jobs back yet; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn settle_unfinished<S: ChunkSink>(
    queue: &JobQueue,
    sink: &S,
    jobs: &[Job],
    error: &Error,
) -> Result<()> {
    for job in jobs {
        // Finished meanwhile, canceled, or taken over by another node: not ours to settle.
        if queue.is_lost(job.job_id).await? {
            continue;
        }
        if job.attempts < queue.max_attempts() {
            queue.retry_later(job.job_id, error).await?;
        } else {
            sink.failed(job, error).await?;
            queue.fail(job.job_id, error).await?;
        }
    }
    Ok(())
}

/// The worker loop: claim a job (or a batch of small ones), run it, repeat; sleeps until
/// woken when the queue is empty. Returns when `shutdown` turns true. A database error is
/// logged and retried after a pause.
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
        match queue.claim_batch(pipeline.batch).await {
            Ok(jobs) if !jobs.is_empty() => {
                let claimed = jobs.clone();
                // Its own task, so that a panic anywhere in the batch ends the batch, not
                // the worker, and the jobs it held are not left 'processing' for ever.
                let batch = tokio::spawn({
                    let (queue, pipeline, sink) = (queue.clone(), pipeline.clone(), sink.clone());
                    let shutdown = shutdown.clone();
                    async move {
                        let turns = Turns {
                            worker,
                            shutdown: &shutdown,
                            may_yield: true,
                        };
                        run_batch(&queue, &pipeline, sink.as_ref(), jobs, &turns).await
                    }
                });
                let interrupted = match batch.await {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error),
                    Err(e) => Some(Error::Panicked {
                        kind: "ingestion".into(),
                        detail: e.to_string(),
                    }),
                };
                if let Some(error) = interrupted {
                    warn!(worker, job_id = claimed[0].job_id, jobs = claimed.len(), %error,
                        "batch interrupted; its unfinished jobs go back in the queue");
                    settle_interrupted(&queue, sink.as_ref(), &claimed, &error, &mut shutdown)
                        .await;
                }
            }
            Ok(_) => {
                // Nothing queued: the passage model may have been idle long enough.
                let embedder = pipeline.embedder.clone();
                let _ = tokio::task::spawn_blocking(move || embedder.release_idle()).await;
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::jobs::JobStatus;
    use crate::jobs::tests::queue_with;

    /// Records the documents reported failed; settling an interrupted batch calls nothing else.
    #[derive(Default)]
    struct FailedDocuments(Mutex<Vec<String>>);

    impl ChunkSink for FailedDocuments {
        async fn fetch(&self, _: &Job) -> Result<SourceDocument> {
            unreachable!("not called when settling")
        }
        async fn started(&self, _: &Job) -> Result<()> {
            unreachable!("not called when settling")
        }
        async fn known_vectors(&self, _: &Job, _: &[String]) -> Result<HashMap<String, Vec<f32>>> {
            unreachable!("not called when settling")
        }
        async fn write(&self, _: &Job, _: ProcessedDocument) -> Result<()> {
            unreachable!("not called when settling")
        }
        async fn publish(&self, _: &[Job]) -> Result<()> {
            unreachable!("not called when settling")
        }
        async fn requeued(&self, _: &Job) -> Result<()> {
            unreachable!("not called when settling")
        }
        async fn failed(&self, job: &Job, _: &Error) -> Result<()> {
            self.0.lock().unwrap().push(job.document_id.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_interrupted_batch_leaves_no_job_processing() {
        let queue = queue_with(crate::db::Backend::Sqlite, &[Some(10); 3]).await;
        let mut batch = queue
            .claim_batch(BatchLimits {
                max_jobs: 3,
                max_bytes: 1_000,
            })
            .await
            .unwrap();
        assert_eq!(batch.len(), 3);
        // The first finished before the interruption; the last has had all its attempts.
        queue.succeed(batch[0].job_id).await.unwrap();
        batch[2].attempts = queue.max_attempts();
        let sink = FailedDocuments::default();
        let (_stop, mut shutdown) = tokio::sync::watch::channel(false);
        let error = Error::Panicked {
            kind: "ingestion".into(),
            detail: "boom".into(),
        };
        settle_interrupted(&queue, &sink, &batch, &error, &mut shutdown).await;

        let status = |i: usize| {
            let queue = queue.clone();
            let id = batch[i].job_id;
            async move { queue.get(id).await.unwrap().unwrap().status }
        };
        assert_eq!(status(0).await, JobStatus::Succeeded);
        assert_eq!(status(1).await, JobStatus::Enqueued, "retried");
        assert_eq!(status(2).await, JobStatus::Failed, "out of attempts");
        assert_eq!(*sink.0.lock().unwrap(), ["doc-2"]);
    }
}
