//! What the services' unit tests share: a temporary database with one knowledge base, its
//! indexes, and a stand-in query embedder, so search and chat run with no model files.

use std::sync::Arc;

use ingest::embed::ModelInfo;
use ingest::jobs::JobQueue;
use tempfile::TempDir;

use super::indexing::IndexRegistry;
use super::search::{QueryEmbedder, SearchService};
use crate::config::Config;
use crate::eval::scale::{SyntheticChunk, write_document};
use crate::store::Store;
use crate::store::kbs::NewKb;

/// Dimensions of the stand-in vectors.
const DIMS: usize = 64;

/// A stand-in embedding model: a text's characters hashed into a bag, scaled to length 1.
/// Texts sharing characters are close, identical texts identical: enough for search to
/// rank by meaning in a test.
pub(crate) struct HashEmbedder {
    info: ModelInfo,
}

impl HashEmbedder {
    /// The stand-in, named `id`.
    pub(crate) fn new(id: &str) -> Self {
        Self {
            info: ModelInfo {
                id: id.into(),
                dims: DIMS,
                query_prefix: String::new(),
                passage_prefix: String::new(),
                max_tokens: 512,
            },
        }
    }

    /// The vector of `text`.
    pub(crate) fn vector(text: &str) -> Vec<f32> {
        let mut v = vec![0f32; DIMS];
        for c in text.chars().filter(|c| c.is_alphanumeric()) {
            v[c.to_lowercase().fold(0, |h, c| h * 31 + c as usize) % DIMS] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

impl QueryEmbedder for HashEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed_query(&self, query: &str) -> ingest::Result<Vec<f32>> {
        Ok(Self::vector(query))
    }
}

/// The model id the fixture's KB is built with.
pub(crate) const MODEL: &str = "stand-in-hash";

/// The job lease of a test's only node (the shipped config's length).
pub(crate) fn lease() -> ingest::jobs::Lease {
    let config = Config::load(None).expect("the shipped config");
    config.job_lease("test-node")
}

/// A temporary data dir with one KB (`kb`) and the services over it.
pub(crate) struct Fixture {
    /// Database.
    pub(crate) store: Store,
    /// The KB's id.
    pub(crate) kb_id: String,
    /// Search over the stand-in embedder.
    pub(crate) search: Arc<SearchService>,
    queue: JobQueue,
    documents: usize,
    _dir: TempDir,
}

impl Fixture {
    /// An empty KB named `kb`, built with [`MODEL`].
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Store::open(&dir.path().join("t.sqlite"))
            .await
            .expect("a database");
        let queue = JobQueue::new(store.pool.clone(), 3, crate::services::testing::lease());
        let kb = store
            .insert_kb(&NewKb {
                name: "kb",
                description: "",
                split_json: "{}",
                clean_json: "{}",
                ocr_languages: None,
                embedding_model: MODEL,
                embedding_dims: DIMS as i64,
            })
            .await
            .expect("a KB");
        let config = Config::load(None).expect("the shipped config");
        let indexes = Arc::new(IndexRegistry::new(
            store.clone(),
            dir.path().to_path_buf(),
            &config.search,
            false,
        ));
        let search = Arc::new(SearchService {
            store: store.clone(),
            indexes,
            embedder: Arc::new(HashEmbedder::new(MODEL)),
            config: config.search,
        });
        Self {
            store,
            kb_id: kb.kb_id,
            search,
            queue,
            documents: 0,
            _dir: dir,
        }
    }

    /// Add a document whose chunks are `texts`, stored and indexed as if ingested; returns
    /// its id.
    pub(crate) async fn add_document(&mut self, texts: &[&str]) -> String {
        let chunks: Vec<SyntheticChunk> = texts
            .iter()
            .map(|t| SyntheticChunk {
                text: t.to_string(),
                vector: HashEmbedder::vector(t),
            })
            .collect();
        write_document(
            &self.store,
            &self.queue,
            &self.kb_id,
            self.documents,
            &chunks,
        )
        .await
        .expect("a document");
        self.documents += 1;
        // As the ingestion sink does once a document is stored: search only catches up
        // the indexes when it first opens them.
        self.search
            .indexes
            .catch_up(&self.kb_id)
            .await
            .expect("the indexes caught up");
        let docs = self
            .store
            .list_documents(&self.kb_id, 0, 1_000)
            .await
            .expect("the documents");
        let name = format!("synthetic-{:06}.txt", self.documents - 1);
        docs.into_iter()
            .find(|d| d.name == name)
            .map(|d| d.document_id)
            .expect("the document just written")
    }
}
