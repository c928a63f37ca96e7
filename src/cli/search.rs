//! `zhiku search --kb NAME [--mode] QUERY`.

use clap::Args;

use super::{print_json, reader_state};
use crate::config::Config;
use crate::error::Result;
use crate::services::search::{SearchMode, SearchRequest};

/// Arguments of `zhiku search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Knowledge base name or id.
    #[arg(long)]
    kb: String,
    /// fulltext, semantic or hybrid.
    #[arg(long, value_enum, default_value = "hybrid")]
    mode: Mode,
    /// Results.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Minimum score (its meaning depends on the mode; see `POST /api/kbs/{kb}/search`).
    #[arg(long)]
    min_score: Option<f32>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The question.
    query: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    Fulltext,
    Semantic,
    Hybrid,
}

pub(super) async fn run(config: Config, args: SearchArgs) -> Result<()> {
    let (state, _lock) = reader_state(config).await?;
    let req = SearchRequest {
        query: args.query.join(" "),
        mode: match args.mode {
            Mode::Fulltext => SearchMode::Fulltext,
            Mode::Semantic => SearchMode::Semantic,
            Mode::Hybrid => SearchMode::Hybrid,
        },
        top_k: Some(args.top_k),
        min_score: args.min_score,
        semantic_weight: None,
    };
    let response = state.search.search(&args.kb, &req).await?;
    if args.json {
        return print_json(&response);
    }
    if response.results.is_empty() {
        println!("no results");
    }
    for (i, r) in response.results.iter().enumerate() {
        let page = r.page.map(|p| format!(" p.{p}")).unwrap_or_default();
        let snippet: String = r
            .text
            .chars()
            .take(120)
            .collect::<String>()
            .replace('\n', " ");
        println!(
            "{:>2}. {:.3}  {}{}  [bm25 #{} cos #{}]\n    {}",
            i + 1,
            r.score,
            r.document_name,
            page,
            r.ranks
                .fulltext
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
            r.ranks
                .semantic
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
            snippet
        );
    }
    println!("({:.1} ms)", response.timings_ms.total_ms);
    Ok(())
}
