//! `zhiku reindex [--kb NAME] [--re-embed]`: rebuild BM25 and HNSW from SQLite, and with
//! `--re-embed` first recompute every vector with the configured model (after a model
//! change). New vectors are staged and swapped in with one transaction, and the new
//! indexes are built beside the old ones and switched in atomically: a kill at any moment
//! leaves the old state or the new one, and a re-run resumes the staging.

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

pub(super) async fn run(config: Config, args: ReindexArgs) -> Result<()> {
    let (state, _lock) = writer_state(config).await?;
    let kbs = match &args.kb {
        Some(name) => vec![state.knowledge.kb(name).await?],
        None => state.knowledge.list_kbs().await?,
    };
    for kb in kbs {
        if args.re_embed {
            let bar = progress_bar(kb.chunk_count as u64, "embedding");
            let report = state
                .knowledge
                .re_embed(&kb.id, |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .await?;
            bar.finish_and_clear();
            let info = state.embeddings.info();
            let resumed = match report.resumed {
                0 => String::new(),
                n => format!(", {n} of them staged by an interrupted run"),
            };
            println!(
                "{}: re-embedded with {} ({} dims): {} chunks{resumed}",
                kb.name, info.id, info.dims, report.chunks
            );
        }
        let bar = progress_bar(kb.chunk_count as u64, "indexing");
        let n = state
            .indexes
            .rebuild(&kb.id, |done, total| {
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
