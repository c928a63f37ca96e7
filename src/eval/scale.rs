//! Growing a knowledge base past what can be embedded for a benchmark: `zhiku bench search`
//! measures search at 1M chunks, which would take a day to embed on two cores. So a few
//! thousand real chunks (text and vector, from the real pipeline) are blended: each
//! synthetic chunk mixes two random real ones, keeping a share of each one's clauses (in
//! order) and taking their weighted vector plus Gaussian noise, renormalised. BM25 then
//! sees the corpus's real vocabulary at the grown size, and the vector index sees new
//! points all over the region the real chunks span, as a bigger corpus on the same topics
//! would give.
//!
//! The first version made noisy copies of single chunks. That put every real chunk at the
//! exact centre of hundreds of copies all about as far from each other as from it, a shape
//! real corpora do not have and which HNSW's neighbour pruning cannot link (see
//! docs/benchmarks.md, "HNSW against exact search"): the benchmark then measured that shape
//! rather than search at scale.

use std::time::Instant;

use ingest::jobs::JobQueue;
use ingest::pipeline::sha256_hex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::metrics::{mean_over, percentile};
use super::run::Progress;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::search::{SearchMode, SearchRequest, SearchTimings};
use crate::store::Store;
use crate::store::chunks::NewChunk;
use crate::store::documents::NewDocument;

/// Chunks per synthetic document (one SQLite transaction each).
const CHUNKS_PER_DOCUMENT: usize = 1_000;
/// Rows read per page when loading the source chunks.
const SOURCE_PAGE: i64 = 2_000;

/// One real chunk that synthetic ones are made from.
#[derive(Debug, Clone)]
pub struct SourceChunk {
    /// Text.
    pub text: String,
    /// Unit vector.
    pub vector: Vec<f32>,
}

/// A synthetic chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticChunk {
    /// Text: some of its sources' clauses.
    pub text: String,
    /// Unit vector between its sources'.
    pub vector: Vec<f32>,
}

/// The lightest share either source of a blend gets: a blend is never a near copy of
/// one chunk.
const MIN_BLEND_WEIGHT: f32 = 0.25;

/// Makes synthetic chunks, reproducibly from a seed.
pub struct Grower {
    rng: StdRng,
    noise_per_dim: f32,
}

/// Clause ends: Chinese and Western punctuation, and line breaks.
fn is_clause_end(c: char) -> bool {
    matches!(
        c,
        '。' | '，' | '、' | '；' | '！' | '？' | '.' | ',' | ';' | '!' | '?' | '\n'
    )
}

impl Grower {
    /// `noise_per_dim` is the standard deviation added to each coordinate: with 384
    /// dimensions, 0.01 puts a chunk at a cosine of about 0.98 from its blend, 0.02 at 0.93.
    pub fn new(seed: u64, noise_per_dim: f32) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            noise_per_dim,
        }
    }

    /// A blend of two random `sources` (the same one twice only when there is one).
    pub fn blend_of(&mut self, sources: &[SourceChunk]) -> Option<SyntheticChunk> {
        let n = sources.len();
        if n == 0 {
            return None;
        }
        let first = self.rng.random_range(0..n);
        let mut second = self.rng.random_range(0..n);
        if n > 1 && second == first {
            second = (second + 1) % n;
        }
        Some(self.blend(&sources[first], &sources[second]))
    }

    /// A blend of `a` and `b`, weighted at random between [`MIN_BLEND_WEIGHT`] and its
    /// complement.
    pub fn blend(&mut self, a: &SourceChunk, b: &SourceChunk) -> SyntheticChunk {
        let weight = self
            .rng
            .random_range(MIN_BLEND_WEIGHT..=1.0 - MIN_BLEND_WEIGHT);
        let mut text = self.some_clauses(&a.text, weight);
        text.push_str(&self.some_clauses(&b.text, 1.0 - weight));
        if text.trim().is_empty() {
            // Never empty: the first clause of the heavier source then.
            let heavier = if weight >= 0.5 { a } else { b };
            text = clauses(&heavier.text)
                .first()
                .map_or_else(|| heavier.text.clone(), |c| c.to_string());
        }
        let mixed: Vec<f32> = a
            .vector
            .iter()
            .zip(&b.vector)
            .map(|(x, y)| weight * x + (1.0 - weight) * y + self.noise_per_dim * self.gaussian())
            .collect();
        SyntheticChunk {
            text,
            vector: unit(mixed),
        }
    }

    /// Each clause of `text` kept with probability `share`, in order.
    fn some_clauses(&mut self, text: &str, share: f32) -> String {
        clauses(text)
            .into_iter()
            .filter(|_| self.rng.random::<f32>() < share)
            .collect()
    }

    /// A standard normal sample (Box–Muller).
    fn gaussian(&mut self) -> f32 {
        let u1: f32 = self.rng.random::<f32>().max(f32::MIN_POSITIVE);
        let u2: f32 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

/// `text` cut after each clause end (the last piece may have none).
fn clauses(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if is_clause_end(c) {
            let end = i + c.len_utf8();
            out.push(&text[start..end]);
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// `v` scaled to length 1 (left as is when it is all zeros).
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Every live chunk of a KB, as the sources of synthetic ones.
pub async fn source_chunks(state: &AppState, kb_id: &str) -> Result<Vec<SourceChunk>> {
    let mut out = Vec::new();
    let mut pages = state.knowledge.store.live_chunk_pages(kb_id, SOURCE_PAGE);
    while let Some(rows) = pages.next_page().await? {
        out.extend(rows.iter().map(|r| SourceChunk {
            vector: r.vector(),
            text: r.text.clone(),
        }));
    }
    Ok(out)
}

/// What growing a KB to a size cost.
#[derive(Debug, Clone, Serialize)]
pub struct GrowReport {
    /// Live chunks after growing.
    pub chunks: usize,
    /// Seconds writing the synthetic chunks into SQLite.
    pub store_s: f64,
    /// Seconds bringing BM25 and HNSW up to date (jieba, tantivy commits, graph
    /// insertions, the graph's save), for the chunks added at this step.
    pub index_s: f64,
}

/// Add blends of random `sources` to `kb_id` until it holds `target` chunks, then bring its
/// indexes up to date, timing both.
pub async fn grow_kb(
    state: &AppState,
    kb_id: &str,
    sources: &[SourceChunk],
    have: usize,
    target: usize,
    grower: &mut Grower,
    progress: Progress<'_>,
) -> Result<GrowReport> {
    if sources.is_empty() {
        return Err(Error::InvalidInput(
            "the base corpus gave no chunks to copy".into(),
        ));
    }
    let started = Instant::now();
    let mut next = have;
    while next < target {
        let count = CHUNKS_PER_DOCUMENT.min(target - next);
        let copies: Vec<SyntheticChunk> = (0..count)
            .filter_map(|_| grower.blend_of(sources))
            .collect();
        write_document(
            &state.knowledge.store,
            &state.knowledge.queue,
            kb_id,
            next / CHUNKS_PER_DOCUMENT,
            &copies,
        )
        .await?;
        next += count;
        progress("storing", (next - have) as u64, (target - have) as u64);
    }
    let store_s = started.elapsed().as_secs_f64();
    progress("indexing", 0, 1);
    let started = Instant::now();
    state.indexes.catch_up(kb_id).await?;
    state.indexes.save_all().await?;
    Ok(GrowReport {
        chunks: target,
        store_s,
        index_s: started.elapsed().as_secs_f64(),
    })
}

/// One synthetic document holding `copies`, stored as if ingested (its job done), its
/// chunks not yet in the indexes.
pub(crate) async fn write_document(
    store: &Store,
    queue: &JobQueue,
    kb_id: &str,
    number: usize,
    copies: &[SyntheticChunk],
) -> Result<()> {
    let document_id = uuid::Uuid::new_v4().to_string();
    let name = format!("synthetic-{number:06}.txt");
    let bytes: usize = copies.iter().map(|c| c.text.len()).sum();
    let job_id = store
        .insert_document(&NewDocument {
            document_id: &document_id,
            kb_id,
            name: &name,
            bytes: bytes as i64,
            sha256: &sha256_hex(document_id.as_bytes()),
            file_path: "",
            split_json: None,
            clean_json: None,
            source_url: None,
            crawl: None,
            crawl_sitemap_url: None,
        })
        .await?;
    let hashes: Vec<String> = copies
        .iter()
        .map(|c| sha256_hex(c.text.as_bytes()))
        .collect();
    let mut offset = 0i64;
    let chunks: Vec<NewChunk<'_>> = copies
        .iter()
        .zip(&hashes)
        .enumerate()
        .map(|(i, (c, hash))| {
            let start = offset;
            offset += c.text.len() as i64;
            NewChunk {
                ordinal: i as i64,
                page: None,
                start_byte: start,
                end_byte: offset,
                text: &c.text,
                token_count: c.text.chars().count() as i64,
                text_sha256: hash,
                vector: &c.vector,
                label: None,
                is_ocr: false,
            }
        })
        .collect();
    // Claimed as a worker would, so that the job is this node's to finish.
    queue.claim_job(job_id).await?;
    store
        .replace_document_chunks(Some((queue, job_id)), &document_id, "text", None, &chunks)
        .await?;
    store
        .set_document_status(&document_id, "indexed", None)
        .await?;
    queue.succeed(job_id).await?;
    Ok(())
}

/// Latency of one search mode at one size.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// fulltext, semantic or hybrid.
    pub mode: String,
    /// Queries timed.
    pub queries: usize,
    /// Search without the query embedding: 50th percentile.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The query embedding alone (0 for full-text): 50th percentile.
    pub embed_p50_ms: f64,
    /// 95th percentile.
    pub embed_p95_ms: f64,
    /// The whole search as a caller waits for it, query embedding included: 50th
    /// percentile.
    pub total_p50_ms: f64,
    /// 95th percentile.
    pub total_p95_ms: f64,
    /// Where the time goes, 50th percentiles: BM25, the vector index, and loading,
    /// filtering and fusing the candidates.
    pub fulltext_p50_ms: f64,
    /// The vector index (HNSW) alone.
    pub semantic_p50_ms: f64,
    /// Loading the candidates from SQLite and fusing them.
    pub fuse_p50_ms: f64,
}

/// Ask every query once in `mode` (after a few untimed ones to warm caches) and take the
/// server's own timings, the query embedding apart.
pub async fn time_mode(
    state: &AppState,
    kb_id: &str,
    queries: &[String],
    mode: SearchMode,
    progress: Progress<'_>,
) -> Result<LatencyReport> {
    let request = |query: &str| SearchRequest {
        query: query.to_string(),
        mode,
        top_k: Some(10),
        min_score: None,
        semantic_weight: None,
    };
    for q in queries.iter().take(5) {
        state.search.search(kb_id, &request(q)).await?;
    }
    let mut timings = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        timings.push(state.search.search(kb_id, &request(q)).await?.timings_ms);
        progress(
            super::run::mode_name(mode),
            i as u64 + 1,
            queries.len() as u64,
        );
    }
    let series = |part: fn(&SearchTimings) -> f64| timings.iter().map(part).collect::<Vec<f64>>();
    let search_ms = series(|t| t.total_ms - t.embed_ms);
    let embed_ms = series(|t| t.embed_ms);
    let total_ms = series(|t| t.total_ms);
    Ok(LatencyReport {
        mode: super::run::mode_name(mode).to_string(),
        queries: queries.len(),
        p50_ms: percentile(&search_ms, 50.0),
        p95_ms: percentile(&search_ms, 95.0),
        p99_ms: percentile(&search_ms, 99.0),
        embed_p50_ms: percentile(&embed_ms, 50.0),
        embed_p95_ms: percentile(&embed_ms, 95.0),
        total_p50_ms: percentile(&total_ms, 50.0),
        total_p95_ms: percentile(&total_ms, 95.0),
        fulltext_p50_ms: percentile(&series(|t| t.fulltext_ms), 50.0),
        semantic_p50_ms: percentile(&series(|t| t.semantic_ms), 50.0),
        fuse_p50_ms: percentile(&series(|t| t.fuse_ms), 50.0),
    })
}

/// How closely the vector index's approximate search finds the true nearest chunks at one
/// size (exact search scans every vector, so this is what the graph's shortcuts cost), at
/// the configured `hnsw_ef_search` and at wider searches (what they would buy, and cost).
#[derive(Debug, Clone, Serialize)]
pub struct AnnRecall {
    /// Queries measured.
    pub queries: usize,
    /// Of each query's 10 nearest chunks by exact search, the share among HNSW's top 10
    /// at the configured `hnsw_ef_search` (`by_ef`'s first entry, kept here for readers
    /// of earlier reports).
    pub recall_at_10: f64,
    /// The same share among all the points semantic search hands to fusion
    /// (2 × `search.candidates`).
    pub recall_in_candidates: f64,
    /// The exact search's cosine of each query's nearest and 10th nearest chunk (means):
    /// how far apart the true top 10 are, for reading a gap below.
    pub exact_cosine_at_1: f64,
    /// See `exact_cosine_at_1`.
    pub exact_cosine_at_10: f64,
    /// The configured `hnsw_ef_search` (first) and 2, 4 and 8 times it.
    pub by_ef: Vec<EfRecall>,
    /// Live chunks a search for their own vector finds (a sample; see index-check).
    pub self_found: usize,
    /// Of how many searched.
    pub self_checked: usize,
    /// Milliseconds an exact scan of the whole KB took per query (for scale).
    pub exact_ms_per_query: f64,
}

/// HNSW's top 10 at one search breadth, against the exact top 10.
#[derive(Debug, Clone, Serialize)]
pub struct EfRecall {
    /// The search breadth.
    pub ef: usize,
    /// Share of the exact top 10 found.
    pub recall_at_10: f64,
    /// How much lower the cosine of HNSW's 10th chunk is than the exact 10th's (mean over
    /// queries): a miss between near ties costs almost nothing, a miss of the region a lot.
    pub cosine_gap_at_10: f64,
    /// Of HNSW's best chunk against the exact best (mean).
    pub cosine_gap_at_1: f64,
    /// One search at this breadth, p50 (ms).
    pub search_p50_ms: f64,
}

/// Measure [`AnnRecall`] for `queries` with the configured `hnsw_ef_search`.
pub async fn ann_recall(state: &AppState, kb_id: &str, queries: &[String]) -> Result<AnnRecall> {
    const K: usize = 10;
    let embedder = state.search.embedder.clone();
    let texts = queries.to_vec();
    let vectors = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .map(|q| embedder.embed_query(q))
            .collect::<ingest::Result<Vec<_>>>()
    })
    .await??;
    let vectors = std::sync::Arc::new(vectors);

    // Exact: one pass over the KB, keeping each query's K best (score, seq).
    let started = Instant::now();
    let mut best: Vec<Vec<(f32, i64)>> = vec![Vec::new(); vectors.len()];
    let mut pages = state.knowledge.store.live_chunk_pages(kb_id, SOURCE_PAGE);
    while let Some(rows) = pages.next_page().await? {
        let queries = vectors.clone();
        best = tokio::task::spawn_blocking(move || {
            for row in &rows {
                let v = row.vector();
                for (q, top) in queries.iter().zip(best.iter_mut()) {
                    let score = crate::retrieval::vector::dot(q, &v);
                    if top.len() < K || score > top[K - 1].0 {
                        let at = top.partition_point(|(s, _)| *s >= score);
                        top.insert(at, (score, row.seq));
                        top.truncate(K);
                    }
                }
            }
            best
        })
        .await?;
    }
    let exact_ms = started.elapsed().as_secs_f64() * 1000.0;

    let indexes = state.indexes.get(kb_id).await?;
    let search = &state.config.search;
    let (limit, ef) = (search.candidates * 2, search.hnsw_ef_search);
    let queries = vectors.clone();
    let exact = std::sync::Arc::new(best);
    let truth = exact.clone();
    let (found_candidates, by_ef) = tokio::task::spawn_blocking(move || {
        let mut found_candidates = 0usize;
        for (q, exact) in queries.iter().zip(truth.iter()) {
            let seqs: Vec<i64> = indexes
                .vectors
                .search(q, limit.max(K), ef)?
                .iter()
                .map(|(seq, _)| *seq)
                .collect();
            found_candidates += exact.iter().filter(|(_, s)| seqs.contains(s)).count();
        }
        let by_ef = [1, 2, 4, 8]
            .iter()
            .map(|times| ef_recall(&indexes.vectors, &queries, &truth, ef * times))
            .collect::<Result<Vec<_>>>()?;
        Ok::<_, Error>((found_candidates, by_ef))
    })
    .await??;
    let health = state.indexes.check(kb_id).await?;
    let wanted: usize = exact.iter().map(Vec::len).sum();
    let mean_at = |rank: usize| {
        let scores: Vec<f64> = exact
            .iter()
            .filter_map(|top| top.get(rank).map(|(s, _)| f64::from(*s)))
            .collect();
        mean_over(scores.iter().sum(), scores.len())
    };
    Ok(AnnRecall {
        queries: vectors.len(),
        recall_at_10: by_ef.first().map_or(0.0, |e| e.recall_at_10),
        recall_in_candidates: mean_over(found_candidates as f64, wanted),
        exact_cosine_at_1: mean_at(0),
        exact_cosine_at_10: mean_at(K - 1),
        by_ef,
        self_found: health.vector_self_found,
        self_checked: health.vector_self_checked,
        exact_ms_per_query: exact_ms / vectors.len().max(1) as f64,
    })
}

/// HNSW's top 10 for every query at breadth `ef`, against `exact` (each query's true top 10,
/// best first).
fn ef_recall(
    vectors: &crate::retrieval::vector::VectorIndex,
    queries: &[Vec<f32>],
    exact: &[Vec<(f32, i64)>],
    ef: usize,
) -> Result<EfRecall> {
    let (mut found, mut wanted) = (0usize, 0usize);
    let (mut gap_1, mut gap_10, mut gaps) = (0.0f64, 0.0f64, 0usize);
    let mut times_ms = Vec::with_capacity(queries.len());
    for (q, exact) in queries.iter().zip(exact) {
        let started = Instant::now();
        let hits = vectors.search(q, exact.len(), ef)?;
        times_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        wanted += exact.len();
        found += exact
            .iter()
            .filter(|(_, seq)| hits.iter().any(|(s, _)| s == seq))
            .count();
        if let (Some(first), Some(last), Some(hit_first), Some(hit_last)) = (
            exact.first(),
            exact.last(),
            hits.first(),
            exact.len().checked_sub(1).and_then(|i| hits.get(i)),
        ) {
            // The graph scores in f16: a tie may come out a little above the exact cosine.
            gap_1 += f64::from(first.0 - hit_first.1).max(0.0);
            gap_10 += f64::from(last.0 - hit_last.1).max(0.0);
            gaps += 1;
        }
    }
    Ok(EfRecall {
        ef,
        recall_at_10: mean_over(found as f64, wanted),
        cosine_gap_at_10: mean_over(gap_10, gaps),
        cosine_gap_at_1: mean_over(gap_1, gaps),
        search_p50_ms: percentile(&times_ms, 50.0),
    })
}

/// This process's resident memory, in MiB (Linux; 0 elsewhere).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// Resident now.
    pub rss_mib: f64,
    /// Resident at the peak so far.
    pub peak_rss_mib: f64,
    /// Of `rss_mib`, private memory (heap: vectors, graph, sessions).
    pub anon_rss_mib: f64,
    /// Of `rss_mib`, pages of mapped files (tantivy's segments, the libraries), which the
    /// kernel can drop and read again under memory pressure.
    pub file_rss_mib: f64,
}

/// The process's memory now.
pub fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    Memory {
        rss_mib: field("VmRSS:"),
        peak_rss_mib: field("VmHWM:"),
        anon_rss_mib: field("RssAnon:"),
        file_rss_mib: field("RssFile:"),
    }
}

/// Bytes of every file under `dir`.
pub fn disk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => disk_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::vector::dot;

    /// A chunk whose vector is a sawtooth of `period`, made unit length.
    fn chunk(text: &str, period: usize) -> SourceChunk {
        let half = (period / 2) as f32;
        let v: Vec<f32> = (0..384).map(|i| (i % period) as f32 - half).collect();
        SourceChunk {
            text: text.into(),
            vector: unit(v),
        }
    }

    fn source() -> SourceChunk {
        chunk(
            "范廷颂是越南罗马天主教枢机。1963年被任为主教；1990年被擢升为天主教河内总教区宗座署理，之后又被任命为总主教。",
            7,
        )
    }

    fn other() -> SourceChunk {
        chunk(
            "北京大学创办于1898年，初名京师大学堂。它是中国第一所国立综合性大学。",
            5,
        )
    }

    #[test]
    fn a_blend_lies_between_its_sources_and_takes_clauses_of_each() {
        let (a, b) = (source(), other());
        let mut grower = Grower::new(7, 0.01);
        let blends: Vec<SyntheticChunk> = (0..20).map(|_| grower.blend(&a, &b)).collect();
        assert_ne!(blends[0], blends[1]);
        for blend in &blends {
            let norm: f32 = blend.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
            // Nearer each source than the sources are to each other: in between.
            let apart = dot(&a.vector, &b.vector);
            assert!(dot(&blend.vector, &a.vector) > apart, "{blend:?}");
            assert!(dot(&blend.vector, &b.vector) > apart, "{blend:?}");
            assert!(!blend.text.trim().is_empty());
            // Every clause kept is one of the sources'.
            for clause in clauses(&blend.text) {
                assert!(
                    a.text.contains(clause) || b.text.contains(clause),
                    "{clause}"
                );
            }
        }
        let from = |s: &SourceChunk| {
            blends
                .iter()
                .filter(|bl| clauses(&s.text).iter().any(|c| bl.text.contains(c)))
                .count()
        };
        assert!(from(&a) > 10 && from(&b) > 10);
    }

    #[test]
    fn blends_of_one_source_are_noisy_copies() {
        let mut grower = Grower::new(1, 0.02);
        let copy = grower.blend_of(&[source()]).unwrap();
        assert!((0.85..0.99).contains(&dot(&copy.vector, &source().vector)));
        assert!(grower.blend_of(&[]).is_none());
    }

    #[test]
    fn the_same_seed_makes_the_same_blends() {
        let src = source();
        let sources = [src, other()];
        let a = Grower::new(3, 0.02).blend_of(&sources);
        let b = Grower::new(3, 0.02).blend_of(&sources);
        assert_eq!(a, b);
    }
}
