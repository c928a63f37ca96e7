//! What the ingest crate's model-backed tests share: where the models are, and a pipeline
//! built on the real embedder as a worker builds it.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ingest::embed::{Embedder, EmbedderConfig};
use ingest::extract::ExtractLimits;
use ingest::jobs::BatchLimits;
use ingest::pipeline::Pipeline;

/// `ZHIKU_MODELS_DIR`, or the repository's `models/`.
pub(crate) fn models_dir() -> PathBuf {
    std::env::var_os("ZHIKU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// A pipeline on the real e5 model with default limits, splitting under `split_timeout`.
pub(crate) fn pipeline(split_timeout: Duration) -> Pipeline {
    let models = models_dir();
    let embedder = Embedder::load(&EmbedderConfig {
        model_dir: models.join("multilingual-e5-small"),
        ort_library: models.join("onnxruntime/libonnxruntime.so.1.31.1"),
        threads: 2,
        batch_size: 8,
        batch_tokens: 1024,
        passage_idle_release_s: 0,
        remote: None,
    })
    .unwrap();
    Pipeline {
        embedder: Arc::new(embedder),
        limits: ExtractLimits::default(),
        batch: BatchLimits {
            max_jobs: 64,
            max_bytes: 262_144,
        },
        split_timeout,
        slice_passages: 128,
        max_table_cells: 2_000_000,
    }
}
