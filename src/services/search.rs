//! Hit testing and the retrieval step of chat: full-text and semantic search run side by
//! side, stale or disabled hits are dropped against SQLite, and the rankings are fused.
//!
//! What `min_score` means depends on the mode, because each mode reports its own score:
//! - `fulltext`: the raw BM25 score (unbounded; ~5–30 for a good match of a short query).
//! - `semantic`: cosine similarity of the query and chunk vectors (-1..1; e5 puts related
//!   text around 0.8–0.9 and unrelated text around 0.7, so useful thresholds are ~0.8).
//! - `hybrid` (`search.fusion = "weighted"`, the default, or a request's `semantic_weight`):
//!   `w · cos' + (1 − w) · bm25'`, at most 1.
//!   - With `search.score_scale = "bounded"` (the default) `cos'` is the cosine itself and
//!     `bm25'` the BM25 score divided by the query's best, so with w = 0.9 the top chunk
//!     scores about 0.9 · its cosine + 0.1: ~0.85–0.9 when the knowledge base answers the
//!     question, lower when it only holds related text.
//!   - With `"minmax"` each is min-max normalised over the query's candidates, so 1.0
//!     means best for both retrievers; it is relative to the candidates, and the best
//!     chunk of a query nothing matches well still scores high.
//! - `hybrid` with `search.fusion = "rrf"`: reciprocal rank fusion normalised to 0..1, where
//!   1.0 means ranked first by both retrievers and ~0.5 ranked first by one and missed by
//!   the other.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use ingest::embed::{Embedder, ModelInfo};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::indexing::IndexRegistry;
use crate::config::SearchConfig;
use crate::error::{Error, Result};
use crate::retrieval::fusion::{Fusion, Hit, fuse};
use crate::store::Store;
/// Which retrievers to use: a bot setting, so it is stored with the bot's settings.
pub use crate::store::bots::SearchMode;
use crate::store::chunks::LiveChunk;

/// A search request (`POST /api/kbs/{kb}/search`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question.
    #[schema(min_length = 1, pattern = r"\S")]
    pub query: String,
    /// Retrievers.
    #[serde(default)]
    pub mode: SearchMode,
    /// Results wanted.
    #[schema(minimum = 1, maximum = 100)]
    pub top_k: Option<usize>,
    /// Drop results scoring below this (see the module docs for its meaning per mode).
    pub min_score: Option<f32>,
    /// Weighted fusion with this semantic weight, 0..=1, on `search.score_scale` (instead of
    /// `search.fusion`).
    pub semantic_weight: Option<f32>,
}

/// Each retriever's rank (from 1) of a result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ranks {
    /// BM25 rank.
    pub fulltext: Option<usize>,
    /// Vector rank.
    pub semantic: Option<usize>,
}

/// Each retriever's raw score of a result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RawScores {
    /// BM25 score.
    pub bm25: Option<f32>,
    /// Cosine similarity.
    pub cosine: Option<f32>,
}

/// One result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    /// Chunk id.
    pub chunk_id: i64,
    /// Document id.
    pub document_id: String,
    /// Document name.
    pub document_name: String,
    /// The document's web address, for a page added by URL.
    pub source_url: Option<String>,
    /// Page.
    pub page: Option<i64>,
    /// Where the chunk lies when a page cannot say it: a table's sheet and rows
    /// (`销售明细 第3–8行`).
    pub label: Option<String>,
    /// Whether the text was read by OCR (it may hold recognition errors).
    pub ocr: bool,
    /// Text.
    pub text: String,
    /// The score of the mode used.
    pub score: f32,
    /// Ranks.
    pub ranks: Ranks,
    /// Raw scores.
    pub raw: RawScores,
}

/// Where the time went.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SearchTimings {
    /// Query embedding.
    pub embed_ms: f64,
    /// BM25 search.
    pub fulltext_ms: f64,
    /// Vector search.
    pub semantic_ms: f64,
    /// Filtering, fusion and loading results.
    pub fuse_ms: f64,
    /// All of it.
    pub total_ms: f64,
}

/// The answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    /// Results, best first.
    pub results: Vec<SearchResult>,
    /// Mode used.
    pub mode: SearchMode,
    /// Timings.
    pub timings_ms: SearchTimings,
}

/// What search needs of an embedding model: which it is, and a question's vector. The
/// [`Embedder`] in service; tests put a stand-in here so search runs with no model files.
pub trait QueryEmbedder: Send + Sync {
    /// The model's id and dimensions (a KB built with another model cannot be searched
    /// semantically).
    fn info(&self) -> &ModelInfo;

    /// The vector of a question (blocking: call it off the async threads).
    fn embed_query(&self, query: &str) -> ingest::Result<Vec<f32>>;
}

impl QueryEmbedder for Embedder {
    fn info(&self) -> &ModelInfo {
        Embedder::info(self)
    }

    fn embed_query(&self, query: &str) -> ingest::Result<Vec<f32>> {
        Embedder::embed_query(self, query)
    }
}

/// The search service.
pub struct SearchService {
    /// Database.
    pub store: Store,
    /// Indexes.
    pub indexes: Arc<IndexRegistry>,
    /// Query embedder.
    pub embedder: Arc<dyn QueryEmbedder>,
    /// Defaults.
    pub config: SearchConfig,
}

impl std::fmt::Debug for SearchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchService")
            .field("embedder", &self.embedder.info().id)
            .finish_non_exhaustive()
    }
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e5).round() / 100.0
}

/// Longest hit-test query, in characters (after trimming).
pub const MAX_QUERY_CHARS: usize = 2000;
/// Most results a hit test returns (its largest `top_k`).
pub const MAX_TOP_K: usize = 100;

impl SearchService {
    /// Search one KB.
    #[instrument(skip_all, fields(kb = id_or_name, mode = ?req.mode))]
    pub async fn search(&self, id_or_name: &str, req: &SearchRequest) -> Result<SearchResponse> {
        let started = Instant::now();
        let query = req.query.trim();
        if query.is_empty() {
            return Err(Error::InvalidInput("query must not be empty".into()));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::InvalidInput(format!(
                "query must be at most {MAX_QUERY_CHARS} characters"
            )));
        }
        let top_k = req.top_k.unwrap_or(self.config.top_k);
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(Error::InvalidInput(format!(
                "top_k must be between 1 and {MAX_TOP_K}"
            )));
        }
        let fusion = match req.semantic_weight {
            Some(w) => Fusion::Weighted {
                semantic_weight: w,
                scale: self.config.score_scale,
            },
            None => self.config.fusion(),
        };
        fusion.validate()?;
        let kb = self.store.kb(id_or_name).await?;
        let info = self.embedder.info();
        let use_semantic = req.mode != SearchMode::Fulltext;
        if use_semantic
            && (kb.embedding_model != info.id || kb.embedding_dims as usize != info.dims)
        {
            return Err(Error::ModelMismatch {
                kb: kb.name,
                built_with: kb.embedding_model,
                built_dims: kb.embedding_dims as usize,
                configured: info.id.clone(),
                configured_dims: info.dims,
            });
        }
        let indexes = self.indexes.get(&kb.kb_id).await?;
        let candidates = self.config.candidates.max(top_k);
        let mut timings = SearchTimings::default();

        let fulltext = async {
            if req.mode == SearchMode::Semantic {
                return Ok((Vec::new(), 0.0));
            }
            let idx = indexes.clone();
            let q = query.to_string();
            let t = Instant::now();
            let hits =
                tokio::task::spawn_blocking(move || idx.bm25.search(&q, candidates)).await??;
            Ok::<_, Error>((hits, ms(t)))
        };
        let semantic = async {
            if !use_semantic {
                return Ok((Vec::new(), 0.0, 0.0));
            }
            let embedder = self.embedder.clone();
            let q = query.to_string();
            let t = Instant::now();
            let vector = tokio::task::spawn_blocking(move || embedder.embed_query(&q)).await??;
            let embed_ms = ms(t);
            let idx = indexes.clone();
            let ef = self.config.hnsw_ef_search;
            let t = Instant::now();
            // Ask for extra points: some may be stale versions of edited or deleted chunks.
            let hits = tokio::task::spawn_blocking(move || {
                idx.vectors.search(&vector, candidates * 2, ef)
            })
            .await??;
            Ok::<_, Error>((hits, embed_ms, ms(t)))
        };
        let ((bm25_hits, fulltext_ms), (vector_hits, embed_ms, semantic_ms)) =
            tokio::try_join!(fulltext, semantic)?;
        timings.fulltext_ms = fulltext_ms;
        timings.embed_ms = embed_ms;
        timings.semantic_ms = semantic_ms;

        let fuse_started = Instant::now();
        // Candidates are checked for liveness without their text (stale points of edited
        // or deleted chunks drop out here); only the results returned are loaded whole.
        let ids: Vec<i64> = bm25_hits.iter().map(|h| h.0).collect();
        let seqs: Vec<i64> = vector_hits.iter().map(|h| h.0).collect();
        // Two pooled connections answer the two lists at once.
        let (live_by_id, live_by_seq) = tokio::try_join!(
            self.store.live_chunk_keys(&kb.kb_id, &ids, false),
            self.store.live_chunk_keys(&kb.kb_id, &seqs, true)
        )?;
        let live_ids: HashSet<i64> = live_by_id.into_iter().map(|(id, _)| id).collect();
        let chunk_of_seq: HashMap<i64, i64> = live_by_seq
            .into_iter()
            .map(|(chunk_id, seq)| (seq, chunk_id))
            .collect();
        let ft: Vec<Hit> = bm25_hits
            .iter()
            .filter(|(id, _)| live_ids.contains(id))
            .map(|&(chunk_id, score)| Hit { chunk_id, score })
            .take(candidates)
            .collect();
        let sem: Vec<Hit> = vector_hits
            .iter()
            .filter_map(|&(seq, score)| {
                chunk_of_seq
                    .get(&seq)
                    .map(|&chunk_id| Hit { chunk_id, score })
            })
            .take(candidates)
            .collect();
        let fused: Vec<_> = fuse(&ft, &sem, fusion)?
            .into_iter()
            .map(|f| {
                let score = match req.mode {
                    SearchMode::Fulltext => f.bm25.unwrap_or(0.0),
                    SearchMode::Semantic => f.cosine.unwrap_or(0.0),
                    SearchMode::Hybrid => f.score,
                };
                (f, score)
            })
            .filter(|(_, score)| req.min_score.is_none_or(|min| *score >= min))
            .take(top_k)
            .collect();
        let top_ids: Vec<i64> = fused.iter().map(|(f, _)| f.chunk_id).collect();
        let mut rows: HashMap<i64, LiveChunk> = self
            .store
            .live_chunks(&kb.kb_id, &top_ids, false)
            .await?
            .into_iter()
            .map(|c| (c.chunk_id, c))
            .collect();
        let results: Vec<SearchResult> = fused
            .into_iter()
            .filter_map(|(f, score)| {
                rows.remove(&f.chunk_id).map(|c| SearchResult {
                    chunk_id: c.chunk_id,
                    document_id: c.document_id,
                    document_name: c.document_name,
                    source_url: c.source_url,
                    page: c.page,
                    label: c.label,
                    ocr: c.is_ocr,
                    text: c.text,
                    score,
                    ranks: Ranks {
                        fulltext: f.fulltext_rank,
                        semantic: f.semantic_rank,
                    },
                    raw: RawScores {
                        bm25: f.bm25,
                        cosine: f.cosine,
                    },
                })
            })
            .collect();
        timings.fuse_ms = ms(fuse_started);
        timings.total_ms = ms(started);
        Ok(SearchResponse {
            results,
            mode: req.mode,
            timings_ms: timings,
        })
    }
}

#[cfg(test)]
mod tests;
