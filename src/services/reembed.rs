//! Re-embedding a KB after an embedding-model change (`zhiku reindex --re-embed`).
//!
//! Vectors are staged page by page and swapped into the chunks in one transaction
//! ([`crate::store::reembed`]), so a kill part-way leaves the KB whole on its old model, and
//! running the command again resumes where the staging stopped.

use std::sync::Arc;

use ingest::embed::Embedder;
use tracing::info;

use crate::error::Result;
use crate::store::Store;

/// Chunks embedded and staged per SQLite transaction: small enough that an interrupted run
/// loses little work, large enough to fill the embedder's batches.
const PAGE_CHUNKS: i64 = 64;

/// What a re-embedding did.
#[derive(Debug, Clone, Copy)]
pub struct ReEmbedReport {
    /// Chunks now carrying the new model's vectors.
    pub chunks: usize,
    /// Of those, staged by an earlier interrupted run and reused.
    pub resumed: usize,
}

/// Re-embed every chunk of `kb_id` with `embedder` and switch the KB to its model.
/// `progress(done, total)` is called after each page.
pub async fn re_embed_kb(
    store: &Store,
    embedder: &Arc<Embedder>,
    kb_id: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<ReEmbedReport> {
    let model = embedder.info().id.clone();
    let dims = embedder.info().dims as i64;
    let start = store.prepare_staging(kb_id, &model).await?;
    let total = start.chunks as usize;
    let mut done = start.staged as usize;
    if start.staged > 0 {
        info!(
            kb_id,
            model,
            staged = start.staged,
            "resuming an interrupted re-embedding"
        );
    }
    progress(done, total);
    let mut after = 0;
    loop {
        let rows = store
            .unstaged_chunks_page(kb_id, &model, after, PAGE_CHUNKS)
            .await?;
        let Some(last) = rows.last().map(|r| r.chunk_id) else {
            break;
        };
        after = last;
        let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
        let e = embedder.clone();
        let vectors =
            tokio::task::spawn_blocking(move || e.embed_passages(&texts, |_, _| {})).await??;
        let staged: Vec<(i64, Vec<f32>)> = rows.iter().map(|r| r.chunk_id).zip(vectors).collect();
        store.stage_vectors(kb_id, &model, &staged).await?;
        done += staged.len();
        progress(done, total.max(done));
    }
    let chunks = store.swap_in_staged_vectors(kb_id, &model, dims).await?;
    Ok(ReEmbedReport {
        chunks,
        resumed: start.staged as usize,
    })
}
