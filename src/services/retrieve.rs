//! A bot's retrieval for one query: every knowledge base of the bot searched, the results
//! merged by score, the best `top_k` kept, and of those the sentences that matter to the
//! query given to the model as numbered passages. The question's own retrieval and the
//! `knowledge_search` tool's are this one.

use serde::Serialize;
use tracing::warn;

use super::focus::focus;
use super::prompt::Passage;
use super::search::{SearchRequest, SearchResult, SearchService};
use crate::error::{Error, Result};
use crate::store::bots::RetrievalSettings;

/// A retrieved chunk in the debug trace.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TracedChunk {
    /// Its knowledge base.
    pub kb_id: String,
    /// The marker it got in the prompt (`None`: not given to the model).
    pub marker: Option<usize>,
    /// The search result: scores and per-retriever ranks.
    #[serde(flatten)]
    pub result: SearchResult,
}

/// What one retrieval found.
#[derive(Debug, Clone, Default)]
pub struct Retrieved {
    /// The chunks kept, best first, with the marker each got.
    pub chunks: Vec<TracedChunk>,
    /// What the model reads of them, numbered from 1; a chunk with no sentence that
    /// matters to the query is left out (and has no marker).
    pub passages: Vec<Passage>,
    /// The knowledge bases that could not be searched, and why.
    pub errors: Vec<String>,
}

/// Search `kb_ids` for `query` as `settings` say. Fails only when every knowledge base
/// failed: answering "nothing found" then would be a lie.
pub async fn retrieve(
    search: &SearchService,
    kb_ids: &[String],
    settings: &RetrievalSettings,
    query: &str,
) -> Result<Retrieved> {
    let request = SearchRequest {
        query: query.to_string(),
        mode: settings.mode,
        top_k: Some(settings.top_k),
        min_score: Some(settings.min_score),
        semantic_weight: None,
    };
    let mut chunks = Vec::new();
    let mut errors = Vec::new();
    for kb_id in kb_ids {
        match search.search(kb_id, &request).await {
            Ok(found) => chunks.extend(found.results.into_iter().map(|result| TracedChunk {
                kb_id: kb_id.clone(),
                marker: None,
                result,
            })),
            Err(e) => {
                warn!(kb = %kb_id, error = %e, "knowledge base skipped in retrieval");
                errors.push(format!("{kb_id}: {e}"));
            }
        }
    }
    if !kb_ids.is_empty() && errors.len() == kb_ids.len() {
        return Err(Error::InvalidInput(format!(
            "the bot's knowledge could not be searched: {}",
            errors.join("; ")
        )));
    }
    chunks.sort_by(|a, b| b.result.score.total_cmp(&a.result.score));
    chunks.truncate(settings.top_k);
    let whole: Vec<&str> = chunks.iter().map(|c| c.result.text.as_str()).collect();
    let read = focus(&whole, query, settings.read_tokens);
    let mut passages: Vec<Passage> = Vec::with_capacity(chunks.len());
    for (chunk, text) in chunks.iter_mut().zip(read) {
        if text.is_empty() {
            continue;
        }
        let marker = passages.len() + 1;
        chunk.marker = Some(marker);
        let r = &chunk.result;
        passages.push(Passage {
            marker,
            chunk_id: r.chunk_id,
            document_id: r.document_id.clone(),
            document_name: r.document_name.clone(),
            source_url: r.source_url.clone(),
            page: r.page,
            label: r.label.clone(),
            text,
            score: r.score,
        });
    }
    Ok(Retrieved {
        chunks,
        passages,
        errors,
    })
}
