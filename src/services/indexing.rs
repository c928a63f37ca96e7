//! Keeping each KB's indexes in step with the database, and the
//! [`ingest::pipeline::ChunkSink`] that stores a processed document.
//!
//! Catch-up is the only way indexes change: read chunk rows with `seq` above the index's
//! mark, apply them, move the mark. It runs after every write, at start-up, and on open,
//! so a crash at any point is repaired by the next catch-up; with several nodes on one
//! PostgreSQL database it also runs when another node writes ([`super::replicas`]).
//!
//! Indexes whose mark a rebuild's tombstone purge has passed (`kb.reindexed_through_seq`,
//! a rebuild on another node, or on this one while it was down), or whose vectors no
//! longer have the KB's dimensions (a re-embedding), cannot be caught up: they start
//! afresh in a new generation at mark 0, which the same catch-up then fills.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ingest::jobs::{Job, JobQueue};
use ingest::pipeline::{ChunkSink, ProcessedDocument, SourceDocument};
use tracing::{info, warn};

use super::fetch::Fetcher;
use super::files::FileStore;
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
    /// Held while a KB's indexes are opened, started afresh or dropped, so that two of
    /// these never pick the same new generation or undo each other.
    opening: tokio::sync::Mutex<()>,
}

/// What one pass of catch-up found.
enum CatchUp {
    /// The indexes hold every change up to the log's end when the pass began.
    Done,
    /// They cannot be caught up (why): start afresh.
    Stale(&'static str),
}

/// How many times in a row a KB's indexes are started afresh before catch-up gives up
/// (each time a rebuild elsewhere purged tombstones while this one read).
const MAX_FRESH_STARTS: usize = 3;

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
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// The indexes of a KB, opened and caught up on first use.
    pub async fn get(&self, kb_id: &str) -> Result<Arc<KbIndexes>> {
        if let Some(found) = self.open_indexes(kb_id)? {
            return Ok(found);
        }
        let indexes = self.open_kb(kb_id).await?;
        self.catch_up_indexes(kb_id, indexes).await
    }

    /// The indexes of a KB if they are open.
    fn open_indexes(&self, kb_id: &str) -> Result<Option<Arc<KbIndexes>>> {
        Ok(self.open.read().map_err(poisoned)?.get(kb_id).cloned())
    }

    /// Open a KB's current generation (or start a fresh one when it is unreadable).
    async fn open_kb(&self, kb_id: &str) -> Result<Arc<KbIndexes>> {
        let _opening = self.opening.lock().await;
        if let Some(found) = self.open_indexes(kb_id)? {
            return Ok(found);
        }
        let kb = self.store.kb(kb_id).await?;
        let dir = retrieval::kb_dir(&self.data_dir, kb_id);
        let (params, read_only) = (self.params, self.read_only);
        let dims = kb.embedding_dims as usize;
        let opened = tokio::task::spawn_blocking(move || -> Result<KbIndexes> {
            match KbIndexes::open_current(&dir, dims, params, read_only) {
                Ok(found) => Ok(found),
                // Damaged or unreadable indexes: start a fresh generation at mark 0; the
                // catch-up that follows then replays every chunk from the database.
                Err(e) if !read_only => {
                    warn!(dir = %dir.display(), error = %e, "indexes unreadable; rebuilding them from the database");
                    fresh_generation(&dir, dims, params)
                }
                Err(e) => Err(e),
            }
        })
        .await??;
        let opened = Arc::new(opened);
        self.open
            .write()
            .map_err(poisoned)?
            .insert(kb_id.to_string(), opened.clone());
        Ok(opened)
    }

    /// Replace `stale` (if it is still the KB's open indexes) with empty ones in a new
    /// generation at mark 0, for catch-up to fill from the database. Searches meanwhile
    /// find fewer chunks, never wrong ones: results are checked against the database.
    async fn start_afresh(&self, kb_id: &str, stale: &Arc<KbIndexes>) -> Result<Arc<KbIndexes>> {
        let _opening = self.opening.lock().await;
        match self.open_indexes(kb_id)? {
            Some(current) if !Arc::ptr_eq(&current, stale) => return Ok(current),
            _ => {}
        }
        // No catch-up of the old indexes runs while their generation is replaced.
        let _apply = stale.apply_lock.lock().await;
        let kb = self.store.kb(kb_id).await?;
        let dir = retrieval::kb_dir(&self.data_dir, kb_id);
        let (params, dims) = (self.params, kb.embedding_dims as usize);
        let fresh = Arc::new(
            tokio::task::spawn_blocking(move || fresh_generation(&dir, dims, params)).await??,
        );
        self.open
            .write()
            .map_err(poisoned)?
            .insert(kb_id.to_string(), fresh.clone());
        Ok(fresh)
    }

    /// At start-up: bring every KB's indexes up to date with the database, and remove the
    /// indexes of KBs deleted meanwhile (by another node). A KB whose indexes cannot be
    /// opened is logged and skipped, so one damaged KB leaves the rest served.
    pub async fn catch_up_all(&self) -> Result<()> {
        for kb in self.store.list_kbs().await? {
            if let Err(e) = self.catch_up(&kb.kb_id).await {
                warn!(kb = %kb.name, error = %e, "cannot open the indexes of this knowledge base");
            }
        }
        if !self.read_only {
            let existing = self
                .store
                .list_kbs()
                .await?
                .into_iter()
                .map(|kb| kb.kb_id)
                .collect();
            self.drop_deleted_kbs(&existing).await?;
        }
        Ok(())
    }

    /// Apply database changes newer than the indexes' marks.
    pub async fn catch_up(&self, kb_id: &str) -> Result<()> {
        let indexes = match self.open_indexes(kb_id)? {
            Some(found) => found,
            None => self.open_kb(kb_id).await?,
        };
        self.catch_up_indexes(kb_id, indexes).await.map(|_| ())
    }

    /// Catch up, starting afresh when the indexes cannot be caught up; returns the
    /// indexes that are open at the end.
    async fn catch_up_indexes(
        &self,
        kb_id: &str,
        mut indexes: Arc<KbIndexes>,
    ) -> Result<Arc<KbIndexes>> {
        for _ in 0..MAX_FRESH_STARTS {
            match self.apply_changes(kb_id, &indexes).await? {
                CatchUp::Done => return Ok(indexes),
                CatchUp::Stale(why) => {
                    warn!(
                        kb_id,
                        why, "indexes cannot be caught up; building them afresh"
                    );
                    indexes = self.start_afresh(kb_id, &indexes).await?;
                }
            }
        }
        Err(Error::Busy(format!(
            "the indexes of knowledge base {kb_id} were started afresh {MAX_FRESH_STARTS} times while rebuilds removed tombstones; try again"
        )))
    }

    async fn apply_changes(&self, kb_id: &str, indexes: &Arc<KbIndexes>) -> Result<CatchUp> {
        // Group commit: the rows this caller needs are those committed before now. If a
        // catch-up that ran while we waited for the lock already covered them, there is
        // nothing left to do — so workers finishing together share one tantivy commit.
        let Some(log) = self.store.kb_log_state(kb_id).await? else {
            return Err(Error::not_found(format!("knowledge base '{kb_id}'")));
        };
        let needed = log.max_seq;
        let _guard = indexes.apply_lock.lock().await;
        let started = Instant::now();
        if self.read_only {
            indexes.bm25.refresh()?;
        }
        let bm25_mark = indexes.bm25.applied_seq()?;
        let start_mark = bm25_mark.min(indexes.vectors.applied_seq());
        // A CLI beside a running server reads what the server built and rebuilds nothing.
        if !self.read_only {
            if indexes.vectors.dims() != log.embedding_dims as usize {
                return Ok(CatchUp::Stale("the KB's vectors changed dimensions"));
            }
            // Tombstones above the mark were purged unread (a mark of 0 needs none: it
            // has nothing to remove). BM25's mark only: the vector index never removes a
            // point (search drops those of dead chunks), so it needs no tombstone.
            if bm25_mark > 0 && bm25_mark < log.reindexed_through_seq {
                return Ok(CatchUp::Stale(
                    "a rebuild removed tombstones not applied yet",
                ));
            }
            // Marks above every seq the database has handed out: it was restored from a
            // backup taken after these indexes were built. Its next seqs would fall under
            // the mark and never be read, and rows the indexes hold may be gone.
            if bm25_mark.max(indexes.vectors.applied_seq()) > log.seq_counter {
                return Ok(CatchUp::Stale(
                    "the database is behind these indexes (restored from an earlier backup)",
                ));
            }
            if bm25_mark >= needed && indexes.vectors.applied_seq() >= needed {
                return Ok(CatchUp::Done);
            }
        }
        let mut from = start_mark;
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
            // What was committed when this pass began is applied; later commits are the
            // next pass's, so a pass ends under a steady stream of writes.
            if from >= needed {
                break;
            }
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
        if !self.read_only && (applied > 0 || from < log.reindexed_through_seq) {
            let Some(after) = self.store.kb_log_state(kb_id).await? else {
                return Err(Error::not_found(format!("knowledge base '{kb_id}'")));
            };
            // A purge while the pages were read may have taken a tombstone before this
            // pass reached it.
            if after.reindexed_through_seq != log.reindexed_through_seq
                && after.reindexed_through_seq > bm25_mark
            {
                return Ok(CatchUp::Stale(
                    "a rebuild removed tombstones during catch-up",
                ));
            }
            // Every row up to the purge's mark was read (the tombstones among them are
            // gone, and were not needed from this pass's start), so the mark moves there:
            // otherwise it would stay below it and look stale to the next pass.
            if from < log.reindexed_through_seq {
                let (idx, through) = (indexes.clone(), log.reindexed_through_seq);
                tokio::task::spawn_blocking(move || -> Result<()> {
                    idx.bm25.apply(&[], through)?;
                    idx.vectors.advance(through);
                    Ok(())
                })
                .await??;
            }
        }
        Ok(CatchUp::Done)
    }

    /// The mark of a KB's open indexes: every change up to it is applied (`None`: not
    /// open).
    pub async fn mark(&self, kb_id: &str) -> Result<Option<i64>> {
        let Some(indexes) = self.open_indexes(kb_id)? else {
            return Ok(None);
        };
        // BM25's mark is read from its commit's metadata file.
        let mark = tokio::task::spawn_blocking(move || -> Result<i64> {
            Ok(indexes
                .bm25
                .applied_seq()?
                .min(indexes.vectors.applied_seq()))
        })
        .await??;
        Ok(Some(mark))
    }

    /// The KBs whose indexes are open.
    pub fn open_kb_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .open
            .read()
            .map_err(poisoned)?
            .keys()
            .cloned()
            .collect())
    }

    /// Remove the indexes of KBs that no longer exist: open ones, and folders in the data
    /// directory (a KB deleted by another node while this one was down). `existing` is a
    /// recent list of the KBs; one not in it is looked up again before its indexes go,
    /// since it may have been created since.
    pub async fn drop_deleted_kbs(&self, existing: &HashSet<String>) -> Result<()> {
        let mut known: Vec<String> = self.open_kb_ids()?;
        let kbs_dir = self.data_dir.join("kbs");
        if let Ok(entries) = std::fs::read_dir(&kbs_dir) {
            known.extend(
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string)),
            );
        }
        known.sort_unstable();
        known.dedup();
        for kb_id in known.into_iter().filter(|id| !existing.contains(id)) {
            // Ids are never reused, so a KB not found now is gone for good.
            if let Err(Error::NotFound { .. }) = self.store.kb(&kb_id).await {
                info!(kb_id, "knowledge base deleted; removing its indexes");
                self.drop_kb(&kb_id).await?;
            }
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
        for (kb_id, _) in open {
            if let Some(mark) = self.mark(&kb_id).await? {
                lag += self.store.count_changes_after(&kb_id, mark).await?;
            }
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
        let _opening = self.opening.lock().await;
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
        self.store.purge_tombstones(kb_id, mark).await?;
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

/// Empty indexes in the generation after `dir`'s current one, made current (blocking).
fn fresh_generation(dir: &std::path::Path, dims: usize, params: HnswParams) -> Result<KbIndexes> {
    let generation = retrieval::current_generation(dir).unwrap_or(0) + 1;
    let fresh = KbIndexes::create(dir, generation, dims, params)?;
    retrieval::make_current(dir, generation)?;
    Ok(fresh)
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
    /// Uploaded files and fetched pages.
    pub files: FileStore,
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
                super::web_pages::fetch_for_job(&self.store, &self.fetcher, &self.files, &doc, url)
                    .await?
            }
            _ => {
                let bytes = self.files.get(&doc.file_path).await?;
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
            .replace_document_content(
                Some((&self.queue, job.job_id)),
                &job.document_id,
                doc.kind.as_str(),
                doc.page_count.map(i64::from),
                &chunks,
                &doc.tables,
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
    use crate::store::backends::{chunk, doc, kb, test_store};
    use crate::store::kbs::NewKb;
    use ingest::db::Backend;
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn registry(store: &Store, data_dir: &std::path::Path) -> Arc<IndexRegistry> {
        let config = crate::config::Config::load(None).unwrap();
        Arc::new(IndexRegistry::new(
            store.clone(),
            data_dir.to_path_buf(),
            &config.search,
            false,
        ))
    }

    /// Indexes that hold exactly the live chunks, BM25 and vectors alike.
    fn assert_consistent(check: &Consistency) {
        assert!(check.bm25_matches, "{check:?}");
        assert!(
            check.bm25_missing.is_empty() && check.bm25_extra.is_empty(),
            "{check:?}"
        );
        assert!(check.vector_missing.is_empty(), "{check:?}");
        assert_eq!(check.vector_hits, check.db_chunks, "{check:?}");
    }

    /// The out-of-order commit case: writers storing, editing, disabling and deleting
    /// chunks at once, each transaction's seqs reserved some time before its commit, while
    /// another node's indexes catch up (`seq > mark`) over and over. Were a seq able to
    /// commit after a higher one was read, its row would stay behind the mark and the
    /// indexes would differ from the database at the end.
    async fn concurrent_writers_skip_nothing(backend: Backend) {
        const WRITERS: u64 = 4;
        const OPS: usize = 40;
        const MIN_PASSES: usize = 20;
        let (dir, store) = test_store(backend).await;
        let k = store.insert_kb(&kb("k")).await.unwrap();
        let kb_id = k.kb_id.clone();
        for w in 0..WRITERS {
            for d in 0..3 {
                let (id, sha) = (format!("w{w}d{d}"), format!("s{w}-{d}"));
                store
                    .insert_document(&doc(&id, &kb_id, &sha))
                    .await
                    .unwrap();
            }
        }
        let reader = registry(&store, &dir.path().join("reader"));
        reader.catch_up(&kb_id).await.unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(AtomicUsize::new(0));
        let catching_up = tokio::spawn({
            let (reader, done, kb_id) = (reader.clone(), done.clone(), kb_id.clone());
            let passes = passes.clone();
            async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(99);
                while !done.load(Ordering::SeqCst) {
                    reader.catch_up(&kb_id).await.unwrap();
                    passes.fetch_add(1, Ordering::SeqCst);
                    let pause = rng.random_range(0..3);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
            }
        });
        let writers = (0..WRITERS).map(|w| {
            let store = store.clone();
            let passes = passes.clone();
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(w);
                // At least OPS each, and on until the reader has caught up many times in
                // the middle of the writing (its passes take longer than the writes).
                for op in 0..OPS * 20 {
                    if op >= OPS && passes.load(Ordering::SeqCst) >= MIN_PASSES {
                        break;
                    }
                    let document = format!("w{w}d{}", rng.random_range(0..3));
                    let (live, _) = store.list_chunks(&document, None, 0, 100).await.unwrap();
                    let picked =
                        (!live.is_empty()).then(|| live[rng.random_range(0..live.len())].chunk_id);
                    let v = [rng.random_range(-1.0f32..1.0), 1.0];
                    match (rng.random_range(0..6), picked) {
                        (3, Some(chunk_id)) => {
                            let text = format!("edit {w} {op}");
                            let enabled = rng.random_bool(0.7);
                            store
                                .update_chunk(chunk_id, Some((&text, 2, &text, &v)), Some(enabled))
                                .await
                                .unwrap();
                        }
                        (4, Some(chunk_id)) => store.delete_chunk(chunk_id).await.unwrap(),
                        (5, _) => store
                            .set_document_enabled(&document, rng.random_bool(0.7))
                            .await
                            .unwrap(),
                        _ => {
                            let texts: Vec<String> = (0..rng.random_range(1..5))
                                .map(|i| format!("writer {w} op {op} chunk {i}"))
                                .collect();
                            let chunks: Vec<NewChunk<'_>> = texts
                                .iter()
                                .enumerate()
                                .map(|(i, t)| chunk(i as i64, t, &v))
                                .collect();
                            store
                                .replace_document_chunks(None, &document, "text", None, &chunks)
                                .await
                                .unwrap();
                        }
                    }
                    let pause = rng.random_range(0..3);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer.unwrap();
        }
        done.store(true, Ordering::SeqCst);
        catching_up.await.unwrap();
        let passes = passes.load(Ordering::SeqCst);
        assert!(
            passes >= MIN_PASSES,
            "the reader caught up {passes} times only"
        );
        // One more pass for the writes after the reader's last one. It reads above the
        // mark only, so it cannot bring back a row an earlier pass skipped.
        reader.catch_up(&kb_id).await.unwrap();
        let check = reader.check(&kb_id).await.unwrap();
        assert!(check.db_chunks > 0, "{check:?}");
        assert_consistent(&check);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_skip_nothing_on_sqlite() {
        concurrent_writers_skip_nothing(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_skip_nothing_on_postgres() {
        concurrent_writers_skip_nothing(Backend::Postgres).await
    }

    /// Two nodes' indexes over one database. A rebuild on A purges a tombstone B has not
    /// read yet: B notices and builds afresh instead of keeping the deleted chunk; and once
    /// the KB is deleted, B's indexes go too.
    async fn a_rebuild_elsewhere_sends_lagging_indexes_afresh(backend: Backend) {
        let (dir, store) = test_store(backend).await;
        let k = store.insert_kb(&kb("k")).await.unwrap();
        store
            .insert_document(&doc("d", &k.kb_id, "s"))
            .await
            .unwrap();
        let v = [1.0_f32, 0.0];
        store
            .replace_document_chunks(
                None,
                "d",
                "text",
                None,
                &[chunk(0, "a", &v), chunk(1, "b", &v), chunk(2, "c", &v)],
            )
            .await
            .unwrap();
        let (a, b) = (
            registry(&store, &dir.path().join("a")),
            registry(&store, &dir.path().join("b")),
        );
        a.catch_up(&k.kb_id).await.unwrap();
        b.catch_up(&k.kb_id).await.unwrap();
        let before = b.get(&k.kb_id).await.unwrap().generation;

        let (rows, _) = store.list_chunks("d", None, 0, 10).await.unwrap();
        store.delete_chunk(rows[0].chunk_id).await.unwrap();
        a.rebuild(&k.kb_id, |_, _| {}).await.unwrap();
        assert!(store.kb(&k.kb_id).await.unwrap().reindexed_through_seq > 0);
        assert_consistent(&a.check(&k.kb_id).await.unwrap());

        b.catch_up(&k.kb_id).await.unwrap();
        let check = b.check(&k.kb_id).await.unwrap();
        assert_eq!(check.db_chunks, 2);
        assert_consistent(&check);
        assert!(b.get(&k.kb_id).await.unwrap().generation > before);
        // Caught up after the rebuild, it is not sent afresh again.
        let after = b.get(&k.kb_id).await.unwrap().generation;
        store.delete_chunk(rows[1].chunk_id).await.unwrap();
        b.catch_up(&k.kb_id).await.unwrap();
        assert_eq!(b.get(&k.kb_id).await.unwrap().generation, after);
        assert_consistent(&b.check(&k.kb_id).await.unwrap());

        store.delete_kb(&k.kb_id).await.unwrap();
        b.drop_deleted_kbs(&HashSet::new()).await.unwrap();
        assert!(b.open_kb_ids().unwrap().is_empty());
        assert!(!retrieval::kb_dir(&dir.path().join("b"), &k.kb_id).exists());
    }

    ingest::on_both_backends!(a_rebuild_elsewhere_sends_lagging_indexes_afresh);

    /// The database restored from a backup taken before a document this node's indexes
    /// hold: new chunks get the seqs that document had, under the indexes' mark. The
    /// indexes notice (their mark is above the seq counter) and are built afresh, with the
    /// new chunks and without the lost document's.
    async fn indexes_ahead_of_a_restored_database_start_afresh(backend: Backend) {
        let (dir, store) = test_store(backend).await;
        let k = store.insert_kb(&kb("k")).await.unwrap();
        let v = [1.0_f32, 0.0];
        for (id, sha) in [("kept", "s1"), ("lost", "s2"), ("new", "s3")] {
            store
                .insert_document(&doc(id, &k.kb_id, sha))
                .await
                .unwrap();
        }
        store
            .replace_document_chunks(None, "kept", "text", None, &[chunk(0, "kept", &v)])
            .await
            .unwrap();
        let backup_seq = store.max_seq().await.unwrap();
        let lost = [chunk(0, "lost one", &v), chunk(1, "lost two", &v)];
        store
            .replace_document_chunks(None, "lost", "text", None, &lost)
            .await
            .unwrap();
        let node = registry(&store, &dir.path().join("node"));
        node.catch_up(&k.kb_id).await.unwrap();
        let before = node.get(&k.kb_id).await.unwrap().generation;

        // What a restore of the earlier backup leaves: the rows and the counter as they
        // were then.
        let sql = "DELETE FROM chunk WHERE document_id = 'lost'";
        ingest::on_db!(&store.pool, sql, |e, q| sqlx::query(q)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))
        .unwrap();
        ingest::on_db!(
            &store.pool,
            "UPDATE counter SET value = ? WHERE name = 'chunk_seq'",
            |e, q| {
                sqlx::query(q)
                    .bind(backup_seq)
                    .execute(e)
                    .await
                    .map(|r| r.rows_affected())
            }
        )
        .unwrap();
        store
            .replace_document_chunks(None, "new", "text", None, &[chunk(0, "new", &v)])
            .await
            .unwrap();

        node.catch_up(&k.kb_id).await.unwrap();
        let check = node.check(&k.kb_id).await.unwrap();
        assert_eq!(check.db_chunks, 2, "{check:?}");
        assert_consistent(&check);
        assert!(node.get(&k.kb_id).await.unwrap().generation > before);
    }

    ingest::on_both_backends!(indexes_ahead_of_a_restored_database_start_afresh);

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
