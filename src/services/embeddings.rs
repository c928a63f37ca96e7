//! The embedding model as a service of its own: `POST /v1/embeddings` hands texts to it
//! rather than running the model inside the handler. Search embeds its questions through
//! [`super::search::QueryEmbedder`]; ingestion embeds passages in the pipeline.

use std::sync::Arc;

use ingest::embed::{Embedder, ModelInfo};

use crate::error::Result;

/// Vectors for a list of texts, with the tokens they took.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// One vector per text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, as the model's tokenizer counts them.
    pub tokens: usize,
}

/// Embeds texts with the server's embedding model.
pub struct EmbeddingService {
    /// The model.
    pub embedder: Arc<Embedder>,
}

impl EmbeddingService {
    /// Which model it is.
    pub fn info(&self) -> &ModelInfo {
        self.embedder.info()
    }

    /// Embed `inputs` as passages, or as questions with `as_query` (e5's prefixes differ).
    pub async fn embed(&self, inputs: Vec<String>, as_query: bool) -> Result<Embedded> {
        let embedder = self.embedder.clone();
        let (vectors, tokens) = tokio::task::spawn_blocking(move || -> ingest::Result<_> {
            // Queries are counted by the query session's own tokenizer, so embedding
            // questions does not start the passage model.
            if as_query {
                let mut tokens = 0;
                let vectors = inputs
                    .iter()
                    .map(|t| {
                        tokens += embedder.query_tokens(t)?;
                        embedder.embed_query(t)
                    })
                    .collect::<ingest::Result<Vec<_>>>()?;
                return Ok((vectors, tokens));
            }
            let counter = embedder.tokens()?;
            let tokens: usize = inputs.iter().map(|t| counter.count(t)).sum();
            Ok((embedder.embed_passages(&inputs, |_, _| {})?, tokens))
        })
        .await??;
        Ok(Embedded { vectors, tokens })
    }

    /// Let the passage model go now if it is idle (benchmarks measure memory without it).
    pub async fn release_idle(&self) -> Result<bool> {
        let embedder = self.embedder.clone();
        Ok(tokio::task::spawn_blocking(move || embedder.release_idle()).await?)
    }
}
