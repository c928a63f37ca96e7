//! `zhiku reindex [--kb NAME] [--re-embed]`: rebuild BM25 and HNSW from SQLite, and with
//! `--re-embed` first recompute every vector with the configured model (after a model
//! change). The new indexes are built beside the old ones and switched in atomically.

use clap::Args;

use super::{progress_bar, writer_state};
use crate::config::Config;
use crate::error::Result;

/// Arguments of `zhiku reindex`.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Only this knowledge base (name or id); all when absent.
    #[arg(long)]
    kb: Option<String>,
    /// Recompute vectors with the configured embedding model.
    #[arg(long)]
    re_embed: bool,
}

/// Chunks embedded per SQLite transaction while re-embedding.
const RE_EMBED_PAGE: i64 = 256;

pub(super) async fn run(config: Config, args: ReindexArgs) -> Result<()> {
    let (state, _lock) = writer_state(config).await?;
    let kbs = match &args.kb {
        Some(name) => vec![state.store.kb_with_counts(name).await?],
        None => state.store.list_kbs().await?,
    };
    for kb in kbs {
        if args.re_embed {
            let info = state.pipeline.embedder.info().clone();
            let bar = progress_bar(kb.chunk_count.unwrap_or(0) as u64, "embedding");
            let mut after = 0;
            loop {
                let rows = state
                    .store
                    .live_chunks_page(&kb.kb_id, after, RE_EMBED_PAGE)
                    .await?;
                let Some(last) = rows.last().map(|r| r.chunk_id) else {
                    break;
                };
                after = last;
                let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
                let embedder = state.pipeline.embedder.clone();
                let vectors =
                    tokio::task::spawn_blocking(move || embedder.embed_passages(&texts, |_, _| {}))
                        .await??;
                let updates: Vec<(i64, Vec<f32>)> =
                    rows.iter().map(|r| r.chunk_id).zip(vectors).collect();
                state.store.set_chunk_vectors(&updates).await?;
                bar.inc(rows.len() as u64);
            }
            bar.finish_and_clear();
            state
                .store
                .set_kb_model(&kb.kb_id, &info.id, info.dims as i64)
                .await?;
            println!(
                "{}: re-embedded with {} ({} dims)",
                kb.name, info.id, info.dims
            );
        }
        let bar = progress_bar(kb.chunk_count.unwrap_or(0) as u64, "indexing");
        let n = state
            .indexes
            .rebuild(&kb.kb_id, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .await?;
        bar.finish_and_clear();
        println!(
            "{}: rebuilt BM25 and vector indexes from {n} chunks",
            kb.name
        );
    }
    Ok(())
}
