//! One file through the ingest crate's whole path, as a worker runs it: extract, clean and
//! split (`Pipeline::chunk`), then embed every chunk in slices like the worker does, the
//! vectors kept until the end as the worker keeps them for the sink. What the server adds
//! on top (SQLite writes, the BM25 and vector indexes) is not here.
//!
//! Prints one JSON line: chunks, seconds per stage, and the process's peak RSS (VmHWM).
//! Used by `scripts/bench_sheet.py`.
//!
//! ```text
//! cargo run --release -p ingest --example ingest_file -- FILE [--no-embed] [--models DIR]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::embed::{Embedder, EmbedderConfig};
use ingest::extract::ExtractLimits;
use ingest::jobs::BatchLimits;
use ingest::pipeline::{Pipeline, SourceDocument};
use ingest::{Error, Result};

/// Passages per slice, as `embed_slice_passages` in config.toml.
const SLICE_PASSAGES: usize = 64;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut embed = true;
    let mut models = std::env::var_os("ZHIKU_MODELS_DIR").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-embed" => embed = false,
            "--models" => models = args.next().map(PathBuf::from),
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    let file = file.ok_or_else(|| Error::InvalidSettings("usage: ingest_file FILE".into()))?;
    let models = models.unwrap_or_else(|| PathBuf::from("models"));
    // The server's defaults (config.toml): all cores, runs of 8 passages / 1,024 tokens.
    let embedder = Embedder::load(&EmbedderConfig {
        model_dir: models.join("multilingual-e5-small"),
        ort_library: models.join("onnxruntime/libonnxruntime.so.1.31.1"),
        threads: 0,
        batch_size: 8,
        batch_tokens: 1024,
        passage_idle_release_s: 0,
        remote: None,
    })?;
    let pipeline = Pipeline {
        embedder: Arc::new(embedder),
        limits: ExtractLimits::default(),
        batch: BatchLimits {
            max_jobs: 64,
            max_bytes: 262_144,
        },
        split_timeout: Duration::from_secs(120),
        slice_passages: SLICE_PASSAGES,
        max_table_cells: 2_000_000,
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let started = Instant::now();
    let source = SourceDocument {
        name,
        bytes: std::fs::read(&file)?.into(),
        split: Default::default(),
        clean: Default::default(),
        ocr_languages: None,
    };
    let extracted = ingest::extract::extract(&source.name, source.bytes.clone(), &pipeline.limits)?;
    let extract_s = started.elapsed().as_secs_f64();
    let (extracted, drafts) = pipeline.clean_and_split(extracted, &source)?;
    let split_s = started.elapsed().as_secs_f64() - extract_s;
    let rss_after_split = peak_rss_kib();
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    let embed_started = Instant::now();
    if embed {
        let texts: Vec<String> = drafts.iter().map(|d| d.text.clone()).collect();
        for slice in texts.chunks(SLICE_PASSAGES) {
            vectors.extend(pipeline.embedder.embed_passages(slice, |_, _| {})?);
            // A line per slice with the time so far: a run cut short still tells its rate.
            eprintln!(
                "embedded {}/{} in {:.0} s",
                vectors.len(),
                texts.len(),
                embed_started.elapsed().as_secs_f64()
            );
        }
    }
    let embed_s = embed_started.elapsed().as_secs_f64();
    let total_s = started.elapsed().as_secs_f64();
    let max_tokens = drafts.iter().map(|d| d.token_count).max().unwrap_or(0);
    let mean_tokens =
        drafts.iter().map(|d| d.token_count).sum::<usize>() as f64 / drafts.len().max(1) as f64;
    println!(
        "{{\"kind\":\"{}\",\"sections\":{},\"chunks\":{},\"mean_tokens\":{mean_tokens:.1},\"max_tokens\":{max_tokens},\"first_label\":{:?},\"last_label\":{:?},\"embedded\":{},\"extract_s\":{extract_s:.2},\"split_s\":{split_s:.2},\"embed_s\":{embed_s:.2},\"total_s\":{total_s:.2},\"peak_rss_after_split_kib\":{rss_after_split},\"peak_rss_kib\":{}}}",
        extracted.kind,
        extracted.sections.len(),
        drafts.len(),
        drafts
            .first()
            .and_then(|d| d.label.clone())
            .unwrap_or_default(),
        drafts
            .last()
            .and_then(|d| d.label.clone())
            .unwrap_or_default(),
        vectors.len(),
        peak_rss_kib(),
    );
    Ok(())
}

/// The process's peak resident set (VmHWM), in KiB; 0 where /proc has no such line.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
