//! `zhiku bench search --corpus C --queries Q [--chunks 10000,100000,1000000]`: how search
//! scales on this machine. A throw-away knowledge base is built from the first `--base`
//! corpus records through the real pipeline, then grown with blends of pairs of their chunks
//! (see `eval::scale`) to each size in turn; at each size every query is asked once per
//! mode, and the figures are search latency with the query embedding apart, index build
//! time, resident memory and disk.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{print_json, progress_bar, writer_state};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::eval::dataset;
use crate::eval::run;
use crate::eval::scale::{self, GrowReport, Grower, LatencyReport};
use crate::services::search::SearchMode;

/// `zhiku bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Search latency, build time, memory and disk at growing knowledge-base sizes.
    Search(SearchBenchArgs),
}

/// Arguments of `zhiku bench search`.
#[derive(Debug, Args)]
pub struct SearchBenchArgs {
    /// Passages, one JSON object a line: {"id","title","text"} (the `zhiku eval` format).
    #[arg(long)]
    corpus: PathBuf,
    /// More passages, read after the corpus.
    #[arg(long)]
    distractors: Vec<PathBuf>,
    /// Queries, one JSON object a line (only "query" is used).
    #[arg(long)]
    queries: PathBuf,
    /// Only the first N queries.
    #[arg(long, default_value_t = 200)]
    limit: usize,
    /// Records ingested for real (embedded by the pipeline); the synthetic chunks are
    /// blends of theirs.
    #[arg(long, default_value_t = 500)]
    base: usize,
    /// Sizes to measure, in chunks, ascending.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    chunks: Vec<usize>,
    /// Noise per vector coordinate of a synthetic chunk (0.01 ≈ cosine 0.98 to the blend
    /// of its two sources).
    #[arg(long, default_value_t = 0.01)]
    noise: f32,
    /// Seed of the synthetic chunks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Everything measured at one size.
#[derive(Debug, Serialize)]
struct SizeReport {
    #[serde(flatten)]
    grown: GrowReport,
    /// Per mode.
    modes: Vec<LatencyReport>,
    #[serde(flatten)]
    memory: scale::Memory,
    disk_mib: f64,
    /// The vector index against exact search.
    ann: scale::AnnRecall,
}

#[derive(Debug, Serialize)]
struct Report {
    base_records: usize,
    base_chunks: usize,
    base_ingest_s: f64,
    queries: usize,
    sizes: Vec<SizeReport>,
}

/// Run a `zhiku bench` command.
pub(super) async fn run(config: Config, cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Search(args) => search(config, args).await,
    }
}

fn check_sizes(sizes: &[usize]) -> Result<()> {
    if sizes.is_empty() || sizes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::InvalidInput(
            "--chunks takes sizes in ascending order, e.g. 10000,100000,1000000".into(),
        ));
    }
    Ok(())
}

async fn search(mut config: Config, args: SearchBenchArgs) -> Result<()> {
    check_sizes(&args.chunks)?;
    let queries: Vec<String> = dataset::load_queries(&args.queries, Some(args.limit))?
        .into_iter()
        .map(|q| q.query)
        .collect();
    if queries.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no queries",
            args.queries.display()
        )));
    }
    let mut paths = vec![args.corpus.as_path()];
    paths.extend(args.distractors.iter().map(PathBuf::as_path));
    let mut corpus = dataset::load_corpus(&paths)?;
    corpus.truncate(args.base.max(1));

    let bar = progress_bar(0, "");
    let progress = |what: &str, done: u64, total: u64| {
        bar.set_message(what.to_string());
        bar.set_length(total);
        bar.set_position(done);
    };
    // The temp dir lives until the end of this function; dropping it deletes the KB.
    let temp = tempfile::Builder::new()
        .prefix("zhiku-bench-")
        .tempdir_in(std::env::temp_dir())?;
    config.data_dir = temp.path().to_path_buf();
    config.embedding.passage_idle_release_s = 1;
    let (state, _lock) = writer_state(config).await?;

    let started = Instant::now();
    let kb = run::build_kb(&state, "bench", &corpus, true, None, &progress).await?;
    let base_ingest_s = started.elapsed().as_secs_f64();
    let sources = scale::source_chunks(&state, &kb.kb_id).await?;
    if let Some(&too_small) = args.chunks.iter().find(|&&n| n < sources.len()) {
        return Err(Error::InvalidInput(format!(
            "--chunks {too_small} is below the {} chunks the base corpus already has",
            sources.len()
        )));
    }

    let mut grower = Grower::new(args.seed, args.noise);
    let mut sizes = Vec::new();
    let mut have = sources.len();
    for &target in &args.chunks {
        let grown = scale::grow_kb(
            &state,
            &kb.kb_id,
            &sources,
            have,
            target,
            &mut grower,
            &progress,
        )
        .await?;
        have = target;
        // A serving server releases its passage model once documents stop coming
        // (`embedding.passage_idle_release_s`); the sizes are measured as it then stands.
        state.embeddings.release_idle().await?;
        let mut modes = Vec::new();
        for mode in [
            SearchMode::Fulltext,
            SearchMode::Semantic,
            SearchMode::Hybrid,
        ] {
            modes.push(scale::time_mode(&state, &kb.kb_id, &queries, mode, &progress).await?);
        }
        let memory = scale::memory();
        progress("exact search", 0, 1);
        let ann = scale::ann_recall(&state, &kb.kb_id, &queries).await?;
        let size = SizeReport {
            grown,
            modes,
            memory,
            ann,
            disk_mib: scale::disk_bytes(temp.path()) as f64 / (1024.0 * 1024.0),
        };
        if !args.json {
            bar.suspend(|| print_size(&size));
        }
        sizes.push(size);
    }
    bar.finish_and_clear();
    let report = Report {
        base_records: corpus.len(),
        base_chunks: sources.len(),
        base_ingest_s,
        queries: queries.len(),
        sizes,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "base: {} records → {} chunks, ingested in {:.1} s; {} queries per mode",
        report.base_records, report.base_chunks, report.base_ingest_s, report.queries
    );
    Ok(())
}

fn print_size(s: &SizeReport) {
    println!(
        "\n{} chunks: stored in {:.1} s, indexed in {:.1} s; RSS {:.0} MiB ({:.0} private, {:.0} mapped files; peak {:.0}); disk {:.0} MiB",
        s.grown.chunks,
        s.grown.store_s,
        s.grown.index_s,
        s.memory.rss_mib,
        s.memory.anon_rss_mib,
        s.memory.file_rss_mib,
        s.memory.peak_rss_mib,
        s.disk_mib
    );
    println!(
        "  {:<9} {:>8} {:>8} {:>8}   {:>14}   {:>14}   p50 of bm25 / hnsw / fuse ms",
        "mode", "p50 ms", "p95 ms", "p99 ms", "embed p50/p95", "total p50/p95"
    );
    for m in &s.modes {
        println!(
            "  {:<9} {:>8.2} {:>8.2} {:>8.2}   {:>6.1} / {:<6.1}   {:>6.1} / {:<6.1}   {:.2} / {:.2} / {:.2}",
            m.mode,
            m.p50_ms,
            m.p95_ms,
            m.p99_ms,
            m.embed_p50_ms,
            m.embed_p95_ms,
            m.total_p50_ms,
            m.total_p95_ms,
            m.fulltext_p50_ms,
            m.semantic_p50_ms,
            m.fuse_p50_ms
        );
    }
    let ann = &s.ann;
    println!(
        "  HNSW against exact search: exact top 10 among the points fusion gets {:.3}; {} of {} chunks find themselves (exact scan {:.0} ms per query; its cosine at rank 1 {:.3}, at rank 10 {:.3})",
        ann.recall_in_candidates,
        ann.self_found,
        ann.self_checked,
        ann.exact_ms_per_query,
        ann.exact_cosine_at_1,
        ann.exact_cosine_at_10
    );
    println!(
        "  {:>6} {:>10} {:>22} {:>22} {:>12}",
        "ef", "recall@10", "cosine gap at rank 1", "cosine gap at rank 10", "search p50"
    );
    for e in &ann.by_ef {
        println!(
            "  {:>6} {:>10.3} {:>22.4} {:>22.4} {:>9.2} ms",
            e.ef, e.recall_at_10, e.cosine_gap_at_1, e.cosine_gap_at_10, e.search_p50_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_must_ascend() {
        assert!(check_sizes(&[10_000, 100_000]).is_ok());
        assert!(check_sizes(&[100_000, 10_000]).is_err());
        assert!(check_sizes(&[10_000, 10_000]).is_err());
        assert!(check_sizes(&[]).is_err());
    }
}
