//! Keeping each KB's indexes in step with SQLite, and the [`ingest::pipeline::ChunkSink`]
//! that stores a processed document.
//!
//! Catch-up is the only way indexes change: read chunk rows with `seq` above the index's
//! mark, apply them, move the mark. It runs after every write, at start-up, and on open,
//! so a crash at any point is repaired by the next catch-up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ingest::jobs::{Job, JobQueue};
use ingest::pipeline::{ChunkSink, ProcessedDocument, SourceDocument};
use tracing::{info, warn};

use super::fetch::Fetcher;
use crate::config::SearchConfig;
use crate::error::{Error, Result};
use crate::retrieval::bm25::Bm25Change;
use crate::retrieval::vector::HnswParams;
use crate::retrieval::{self, KbIndexes};
use crate::store::Store;
use crate::store::chunks::NewChunk;

/// Rows read from SQLite per catch-up step.
const CATCH_UP_PAGE: i64 = 2_000;
/// How many live chunks a consistency check searches for by their own vector.
const SELF_SEARCH_SAMPLE: usize = 2_000;

/// Open indexes of all KBs, by KB id.
pub struct IndexRegistry {
    store: Store,
    data_dir: PathBuf,
    params: HnswParams,
    save_every_points: usize,
    read_only: bool,
    open: RwLock<HashMap<String, Arc<KbIndexes>>>,
}

/// Result of comparing a KB's indexes with the database.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Consistency {
    /// Live chunks in the database (SQLite or PostgreSQL).
    pub db_chunks: usize,
    /// Documents in the BM25 index.
    pub bm25_docs: usize,
    /// Live chunks whose current seq is a point of the vector index (exact).
    pub vector_hits: usize,
    /// Live chunks the vector index lacks (first 20).
    pub vector_missing: Vec<i64>,
    /// Live chunks searched for by their own vector (top 10): all of them up to 2,000,
    /// an even sample of 2,000 or so beyond.
    pub vector_self_checked: usize,
    /// Of those, the ones the search returned. HNSW is approximate, so this may fall a
    /// little short of `vector_self_checked`; far short means a poorly built graph,
    /// which `zhiku reindex` rebuilds.
    pub vector_self_found: usize,
    /// Whether BM25 holds exactly the live chunk ids.
    pub bm25_matches: bool,
    /// Live chunks BM25 lacks (first 20).
    pub bm25_missing: Vec<i64>,
    /// Chunks in BM25 that are not live (first 20).
    pub bm25_extra: Vec<i64>,
}

impl IndexRegistry {
    /// A registry over `data_dir`; `read_only` for a CLI reading beside a running server
    /// (catch-up then happens in memory only).
    pub fn new(store: Store, data_dir: PathBuf, search: &SearchConfig, read_only: bool) -> Self {
        Self {
            store,
            data_dir,
            params: HnswParams {
                max_connections: search.hnsw_max_connections,
                ef_construction: search.hnsw_ef_construction,
            },
            save_every_points: search.hnsw_save_every_points,
            read_only,
            open: RwLock::new(HashMap::new()),
        }
    }

    /// The indexes of a KB, opened and caught up on first use.
    pub async fn get(&self, kb_id: &str) -> Result<Arc<KbIndexes>> {
        if let Some(found) = self.open.read().map_err(poisoned)?.get(kb_id) {
            return Ok(found.clone());
        }
        let kb = self.store.kb(kb_id).await?;
        let dir = retrieval::kb_dir(&self.data_dir, kb_id);
        let (params, read_only) = (self.params, self.read_only);
        let dims = kb.embedding_dims as usize;
        let opened = tokio::task::spawn_blocking(move || -> Result<KbIndexes> {
            match KbIndexes::open_current(&dir, dims, params, read_only) {
                Ok(found) => Ok(found),
                // Damaged or unreadable indexes: start a fresh generation at mark 0; the
                // catch-up below then replays every chunk from SQLite.
                Err(e) if !read_only => {
                    warn!(dir = %dir.display(), error = %e, "indexes unreadable; rebuilding them from SQLite");
                    let generation = retrieval::current_generation(&dir).unwrap_or(0) + 1;
                    let fresh = KbIndexes::create(&dir, generation, dims, params)?;
                    retrieval::make_current(&dir, generation)?;
                    Ok(fresh)
                }
                Err(e) => Err(e),
            }
        })
        .await??;
        let indexes = {
            let mut open = self.open.write().map_err(poisoned)?;
            open.entry(kb_id.to_string())
                .or_insert_with(|| Arc::new(opened))
                .clone()
        };
        self.catch_up_indexes(kb_id, &indexes).await?;
        Ok(indexes)
    }

    /// At start-up: bring every KB's indexes up to date with SQLite. A KB whose indexes
    /// cannot be opened is logged and skipped, so one damaged KB leaves the rest served.
    pub async fn catch_up_all(&self) -> Result<()> {
        for kb in self.store.list_kbs().await? {
            if let Err(e) = self.catch_up(&kb.kb_id).await {
                warn!(kb = %kb.name, error = %e, "cannot open the indexes of this knowledge base");
            }
        }
        Ok(())
    }

    /// Apply SQLite changes newer than the indexes' marks.
    pub async fn catch_up(&self, kb_id: &str) -> Result<()> {
        let indexes = self.get(kb_id).await?;
        self.catch_up_indexes(kb_id, &indexes).await
    }

    async fn catch_up_indexes(&self, kb_id: &str, indexes: &Arc<KbIndexes>) -> Result<()> {
        // Group commit: the rows this caller needs are those committed before now. If a
        // catch-up that ran while we waited for the lock already covered them, there is
        // nothing left to do — so workers finishing together share one tantivy commit.
        let needed = self.store.max_kb_seq(kb_id).await?;
        let _guard = indexes.apply_lock.lock().await;
        let started = Instant::now();
        if self.read_only {
            indexes.bm25.refresh()?;
        }
        let bm25_mark = indexes.bm25.applied_seq()?;
        if !self.read_only && bm25_mark >= needed && indexes.vectors.applied_seq() >= needed {
            return Ok(());
        }
        let mut from = bm25_mark.min(indexes.vectors.applied_seq());
        let mut applied = 0usize;
        loop {
            let rows = self.store.changes_since(kb_id, from, CATCH_UP_PAGE).await?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                break;
            };
            applied += rows.len();
            let idx = indexes.clone();
            let read_only = self.read_only;
            tokio::task::spawn_blocking(move || -> Result<()> {
                let vector_mark = idx.vectors.applied_seq();
                let changes: Vec<Bm25Change> = rows
                    .iter()
                    .filter(|r| r.seq > bm25_mark)
                    .map(|r| match r.is_live {
                        true => Bm25Change::Upsert {
                            chunk_id: r.chunk_id,
                            text: r.text.clone(),
                        },
                        false => Bm25Change::Remove {
                            chunk_id: r.chunk_id,
                        },
                    })
                    .collect();
                // The CLI beside a running server must not take tantivy's writer lock; it
                // reads the server's commits instead.
                if !changes.is_empty() && !read_only {
                    idx.bm25.apply(&changes, last)?;
                }
                let points: Vec<(i64, Vec<f32>)> = rows
                    .iter()
                    .filter(|r| r.seq > vector_mark && r.is_live)
                    .map(|r| (r.seq, r.vector()))
                    .collect();
                idx.vectors.insert(&points, last)?;
                Ok(())
            })
            .await??;
            from = last;
        }
        if !self.read_only && indexes.vectors.unsaved_points() >= self.save_every_points {
            let idx = indexes.clone();
            tokio::task::spawn_blocking(move || idx.vectors.save()).await??;
        }
        if applied > 0 {
            info!(
                kb_id,
                applied,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "indexes caught up"
            );
        }
        Ok(())
    }

    /// Chunk changes committed to the database that the open indexes have not applied yet,
    /// over every KB: the lag of this node's indexes behind the database (`/metrics`).
    /// Zero when idle; during a write, the chunks between its commit and the catch-up that
    /// follows it. KBs not opened yet are not counted (they catch up when opened).
    pub async fn lag_chunks(&self) -> Result<i64> {
        let open: Vec<(String, Arc<KbIndexes>)> = self
            .open
            .read()
            .map_err(poisoned)?
            .iter()
            .map(|(kb_id, indexes)| (kb_id.clone(), indexes.clone()))
            .collect();
        let mut lag = 0;
        for (kb_id, indexes) in open {
            // BM25's mark is read from its commit's metadata file.
            let mark = tokio::task::spawn_blocking(move || -> Result<i64> {
                Ok(indexes
                    .bm25
                    .applied_seq()?
                    .min(indexes.vectors.applied_seq()))
            })
            .await??;
            lag += self.store.count_changes_after(&kb_id, mark).await?;
        }
        Ok(lag)
    }

    /// Save every open vector index that has unsaved points (shutdown, idle).
    pub async fn save_all(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let all: Vec<Arc<KbIndexes>> = self
            .open
            .read()
            .map_err(poisoned)?
            .values()
            .cloned()
            .collect();
        for idx in all {
            let _guard = idx.apply_lock.lock().await;
            if idx.vectors.unsaved_points() > 0 {
                let i = idx.clone();
                tokio::task::spawn_blocking(move || i.vectors.save()).await??;
            }
        }
        Ok(())
    }

    /// Forget a KB's open indexes and remove its folder (the KB was deleted).
    pub async fn drop_kb(&self, kb_id: &str) -> Result<()> {
        self.open.write().map_err(poisoned)?.remove(kb_id);
        let dir = retrieval::kb_dir(&self.data_dir, kb_id);
        if dir.exists() {
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await??;
        }
        Ok(())
    }

    /// Build fresh indexes for a KB from SQLite in a new generation and switch to it.
    /// `progress(done, total)` is called as chunks are added.
    pub async fn rebuild(
        &self,
        kb_id: &str,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize> {
        if self.read_only {
            return Err(Error::Busy(
                "cannot rebuild indexes while the server is running".into(),
            ));
        }
        let kb = self.store.kb_with_counts(kb_id).await?;
        let total = kb.chunk_count.unwrap_or(0) as usize;
        let dir = retrieval::kb_dir(&self.data_dir, kb_id);
        let current = retrieval::current_generation(&dir)?;
        let generation = current + 1;
        // Hold the old generation's lock so no catch-up runs against it meanwhile.
        let old = self.get(kb_id).await.ok();
        let _guard = match &old {
            Some(o) => Some(o.apply_lock.lock().await),
            None => None,
        };
        let mark = self.store.max_seq().await?;
        let (d, params, dims) = (dir.clone(), self.params, kb.embedding_dims as usize);
        let fresh = Arc::new(
            tokio::task::spawn_blocking(move || KbIndexes::create(&d, generation, dims, params))
                .await??,
        );
        let mut done = 0usize;
        let mut pages = self.store.live_chunk_pages(kb_id, CATCH_UP_PAGE);
        while let Some(rows) = pages.next_page().await? {
            done += rows.len();
            let idx = fresh.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                let changes: Vec<Bm25Change> = rows
                    .iter()
                    .map(|r| Bm25Change::Upsert {
                        chunk_id: r.chunk_id,
                        text: r.text.clone(),
                    })
                    .collect();
                idx.bm25.apply(&changes, 0)?;
                let points: Vec<(i64, Vec<f32>)> =
                    rows.iter().map(|r| (r.seq, r.vector())).collect();
                idx.vectors.insert(&points, 0)?;
                Ok(())
            })
            .await??;
            progress(done, total.max(done));
        }
        let idx = fresh.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            idx.bm25.apply(&[], mark)?;
            idx.vectors.advance(mark);
            idx.vectors.save()?;
            retrieval::make_current(&dir, generation)
        })
        .await??;
        drop(_guard);
        self.open.write().map_err(poisoned)?.remove(kb_id);
        self.store.purge_tombstones(kb_id).await?;
        // Changes made during the rebuild (seq > mark) are applied on the next get().
        self.catch_up(kb_id).await?;
        Ok(done)
    }

    /// Compare a KB's indexes with the database (tests and `zhiku doctor`).
    pub async fn check(&self, kb_id: &str) -> Result<Consistency> {
        let indexes = self.get(kb_id).await?;
        let live = self.store.live_chunk_ids(kb_id).await?;
        let bm25_ids = {
            let idx = indexes.clone();
            tokio::task::spawn_blocking(move || idx.bm25.all_chunk_ids()).await??
        };
        let graph_seqs = {
            let idx = indexes.clone();
            Arc::new(tokio::task::spawn_blocking(move || idx.vectors.seqs()).await??)
        };
        // Every live chunk is looked up in the graph exactly; the self-search, an HNSW
        // query each, runs on an even sample so a check of a 1M-chunk KB takes seconds.
        let stride = live.len().div_ceil(SELF_SEARCH_SAMPLE).max(1);
        let mut vectors = VectorTally::default();
        let mut seen = 0usize;
        let mut pages = self.store.live_chunk_pages(kb_id, CATCH_UP_PAGE);
        while let Some(rows) = pages.next_page().await? {
            let (idx, graph_seqs, first) = (indexes.clone(), graph_seqs.clone(), seen);
            seen += rows.len();
            let page = tokio::task::spawn_blocking(move || -> Result<VectorTally> {
                let mut page = VectorTally::default();
                for (i, row) in rows.iter().enumerate() {
                    if graph_seqs.contains(&row.seq) {
                        page.hits += 1;
                    } else {
                        page.missing.push(row.chunk_id);
                    }
                    if (first + i) % stride == 0 {
                        page.self_checked += 1;
                        let found = idx.vectors.search(&row.vector(), 10, 64)?;
                        page.self_found += usize::from(found.iter().any(|(s, _)| *s == row.seq));
                    }
                }
                Ok(page)
            })
            .await??;
            vectors.add(page);
        }
        let live_set: std::collections::HashSet<i64> = live.iter().copied().collect();
        let bm25_set: std::collections::HashSet<i64> = bm25_ids.iter().copied().collect();
        Ok(Consistency {
            bm25_missing: live
                .iter()
                .filter(|id| !bm25_set.contains(id))
                .take(20)
                .copied()
                .collect(),
            bm25_extra: bm25_ids
                .iter()
                .filter(|id| !live_set.contains(id))
                .take(20)
                .copied()
                .collect(),
            db_chunks: live.len(),
            bm25_docs: bm25_ids.len(),
            vector_hits: vectors.hits,
            vector_missing: vectors.missing,
            vector_self_checked: vectors.self_checked,
            vector_self_found: vectors.self_found,
            bm25_matches: bm25_ids == live,
        })
    }
}

/// What a consistency check found in the vector index, summed over pages.
#[derive(Default)]
struct VectorTally {
    hits: usize,
    /// First 20 only.
    missing: Vec<i64>,
    self_checked: usize,
    self_found: usize,
}

impl VectorTally {
    fn add(&mut self, page: VectorTally) {
        self.hits += page.hits;
        let room = 20usize.saturating_sub(self.missing.len());
        self.missing.extend(page.missing.into_iter().take(room));
        self.self_checked += page.self_checked;
        self.self_found += page.self_found;
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("index registry lock poisoned".into())
}

/// Stores processed documents and indexes them: the server's side of the pipeline.
pub struct IndexingSink {
    /// Database.
    pub store: Store,
    /// Indexes.
    pub indexes: Arc<IndexRegistry>,
    /// Data dir (stored files are relative to it).
    pub data_dir: PathBuf,
    /// Fetches web documents the first time their job runs.
    pub fetcher: Fetcher,
    /// The queue the jobs come from: storing a job's chunks checks that this node still
    /// holds the job.
    pub queue: JobQueue,
}

impl IndexingSink {
    async fn fetch_source(&self, job: &Job) -> Result<SourceDocument> {
        let doc = self.store.document(None, &job.document_id).await?;
        let kb = self.store.kb(&doc.kb_id).await?;
        let split_json = doc.split_json.as_deref().unwrap_or(&kb.split_json);
        let clean_json = doc.clean_json.as_deref().unwrap_or(&kb.clean_json);
        let (name, bytes) = match (&doc.source_url, &doc.source_fetched_at) {
            // A web page not fetched yet: its job fetches it (a crash before the fetch
            // was recorded fetches it again).
            (Some(url), None) => {
                super::web_pages::fetch_for_job(
                    &self.store,
                    &self.fetcher,
                    &self.data_dir,
                    &doc,
                    url,
                )
                .await?
            }
            _ => {
                let path = self.data_dir.join(&doc.file_path);
                let bytes = tokio::fs::read(&path).await.map_err(|e| {
                    Error::Internal(format!("stored file {} is missing: {e}", path.display()))
                })?;
                // A web page's stored file is named with the extension its type gave it.
                let name = match doc.source_url {
                    Some(_) => doc
                        .file_path
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    None => doc.name,
                };
                (name, bytes)
            }
        };
        Ok(SourceDocument {
            name,
            bytes: bytes.into(),
            split: serde_json::from_str(split_json)
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
            clean: serde_json::from_str(clean_json)
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
            ocr_languages: kb.ocr_languages,
        })
    }

    async fn store_document(&self, job: &Job, doc: ProcessedDocument) -> Result<()> {
        let chunks: Vec<NewChunk<'_>> = doc
            .chunks
            .iter()
            .map(|c| NewChunk {
                ordinal: i64::from(c.draft.ordinal),
                page: c.draft.page.map(i64::from),
                start_byte: c.draft.start_byte as i64,
                end_byte: c.draft.end_byte as i64,
                text: &c.draft.text,
                token_count: c.draft.token_count as i64,
                text_sha256: &c.text_sha256,
                vector: &c.vector,
                label: c.draft.label.as_deref(),
                is_ocr: c.draft.ocr,
            })
            .collect();
        self.store
            .replace_document_chunks(
                Some((&self.queue, job.job_id)),
                &job.document_id,
                doc.kind.as_str(),
                doc.page_count.map(i64::from),
                &chunks,
            )
            .await
    }

    /// One catch-up per KB for the whole batch, then the documents are marked indexed.
    async fn publish_documents(&self, jobs: &[Job]) -> Result<()> {
        let mut kbs: Vec<&str> = jobs.iter().map(|j| j.kb_id.as_str()).collect();
        kbs.sort_unstable();
        kbs.dedup();
        for kb_id in kbs {
            self.indexes.catch_up(kb_id).await?;
        }
        // Only now: "indexed" promises the document is searchable.
        for job in jobs {
            self.store
                .set_document_status(&job.document_id, "indexed", None)
                .await?;
        }
        Ok(())
    }
}

fn to_ingest(e: Error) -> ingest::Error {
    match e {
        Error::Ingest(inner) => inner,
        Error::Database(db) => ingest::Error::Database(db),
        Error::Io(io) => ingest::Error::Io(io),
        Error::StorageFull(m) => ingest::Error::StorageFull(m),
        Error::Busy(m) => ingest::Error::Busy(m),
        other => ingest::Error::Sink(other.to_string()),
    }
}

impl ChunkSink for IndexingSink {
    async fn fetch(&self, job: &Job) -> ingest::Result<SourceDocument> {
        self.fetch_source(job).await.map_err(to_ingest)
    }

    async fn started(&self, job: &Job) -> ingest::Result<()> {
        self.store
            .set_document_status(&job.document_id, "processing", None)
            .await
            .map_err(to_ingest)
    }

    async fn known_vectors(
        &self,
        job: &Job,
        text_sha256: &[String],
    ) -> ingest::Result<HashMap<String, Vec<f32>>> {
        self.store
            .vectors_by_text_sha256(&job.kb_id, text_sha256)
            .await
            .map_err(to_ingest)
    }

    async fn write(&self, job: &Job, doc: ProcessedDocument) -> ingest::Result<()> {
        self.store_document(job, doc).await.map_err(to_ingest)
    }

    async fn publish(&self, jobs: &[Job]) -> ingest::Result<()> {
        self.publish_documents(jobs).await.map_err(to_ingest)
    }

    async fn requeued(&self, job: &Job) -> ingest::Result<()> {
        self.store
            .set_document_status(&job.document_id, "queued", None)
            .await
            .map_err(to_ingest)
    }

    async fn failed(&self, job: &Job, error: &ingest::Error) -> ingest::Result<()> {
        let message = error.to_string();
        if let Err(e) = self
            .store
            .set_document_status(&job.document_id, "failed", Some((error.code(), &message)))
            .await
        {
            warn!(error = %e, "cannot record the failure on the document");
            return Err(to_ingest(e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::scale::{SyntheticChunk, write_document};
    use crate::store::kbs::NewKb;

    /// More live chunks than SQLite takes parameters in one statement (32,766), so a check
    /// that listed them in one `IN (…)` would fail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_counts_a_kb_of_40k_chunks() {
        const CHUNKS: usize = 40_000;
        const DIMS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.sqlite")).await.unwrap();
        let queue = JobQueue::new(store.pool.clone(), 3, crate::services::testing::lease());
        let kb = store
            .insert_kb(&NewKb {
                name: "big",
                description: "",
                split_json: "{}",
                clean_json: "{}",
                ocr_languages: None,
                embedding_model: "test",
                embedding_dims: DIMS as i64,
            })
            .await
            .unwrap();
        // Random unit vectors, reproducibly from a seed.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        let mut vector = || -> Vec<f32> {
            let v: Vec<f32> = (0..DIMS)
                .map(|_| rand::Rng::random_range(&mut rng, -1.0f32..1.0))
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            v.into_iter().map(|x| x / norm).collect()
        };
        for document in 0..CHUNKS / 1_000 {
            let copies: Vec<SyntheticChunk> = (document * 1_000..(document + 1) * 1_000)
                .map(|i| SyntheticChunk {
                    text: format!("第{i}段 chunk number {i}"),
                    vector: vector(),
                })
                .collect();
            write_document(&store, &queue, &kb.kb_id, document, &copies)
                .await
                .unwrap();
        }
        let config = crate::config::Config::load(None).unwrap();
        let registry = IndexRegistry::new(
            store.clone(),
            dir.path().to_path_buf(),
            &config.search,
            false,
        );
        registry.catch_up(&kb.kb_id).await.unwrap();

        let check = registry.check(&kb.kb_id).await.unwrap();
        assert_eq!(check.db_chunks, CHUNKS);
        assert_eq!(check.bm25_docs, CHUNKS);
        assert!(check.bm25_matches, "{check:?}");
        assert_eq!(check.vector_hits, CHUNKS);
        assert!(check.vector_missing.is_empty());
        // The self-search runs on a sample, not on all 40k.
        assert!(
            (1_900..=2_000).contains(&check.vector_self_checked),
            "{check:?}"
        );
        assert!(
            check.vector_self_found * 100 >= check.vector_self_checked * 95,
            "{check:?}"
        );
    }
}
