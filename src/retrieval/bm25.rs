//! Full-text retrieval: one tantivy index per knowledge base, analysed by jieba.
//!
//! Only ids are stored (text lives in SQLite). Each commit carries the highest chunk `seq`
//! applied as its payload, so after a crash the index knows exactly which SQLite rows to
//! replay.

use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::jieba::{ANALYZER, ANALYZER_VERSION, analyzer, terms};
use crate::error::{Error, Result};

/// Memory tantivy's writer may use before flushing a segment.
const WRITER_HEAP_BYTES: usize = 50_000_000;

/// The file in an index's folder naming the analyzer that built it.
const ANALYZER_FILE: &str = "analyzer.txt";

/// A change to apply to the index.
#[derive(Debug, Clone)]
pub enum Bm25Change {
    /// Add or replace a chunk.
    Upsert {
        /// Chunk id.
        chunk_id: i64,
        /// Its text.
        text: String,
    },
    /// Remove a chunk.
    Remove {
        /// Chunk id.
        chunk_id: i64,
    },
}

/// The full-text index of one KB.
pub struct Bm25Index {
    index: Index,
    reader: IndexReader,
    writer: Mutex<Option<IndexWriter>>,
    chunk_id: Field,
    text: Field,
}

fn schema() -> (Schema, Field, Field) {
    let mut builder = Schema::builder();
    let chunk_id = builder.add_i64_field("chunk_id", INDEXED | STORED);
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = builder.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(indexing),
    );
    (builder.build(), chunk_id, text)
}

impl Bm25Index {
    /// Open the index in `dir`, creating it when absent. An index built by another analyzer
    /// (or by a zhiku that wrote no analyzer file) is emptied, and its mark with it, so the
    /// caller's catch-up replays every chunk from SQLite; `read_only` (a CLI beside a
    /// running server, which does that itself) opens it as it is.
    pub fn open(dir: &Path, read_only: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let analyzer_file = dir.join(ANALYZER_FILE);
        let built_by = std::fs::read_to_string(&analyzer_file).ok();
        if !read_only && built_by.as_deref() != Some(ANALYZER_VERSION) {
            if dir.join("meta.json").exists() {
                tracing::info!(dir = %dir.display(), built_by = built_by.as_deref().unwrap_or("an older zhiku"), "full-text index built by another analyzer; rebuilding it from SQLite");
                std::fs::remove_dir_all(dir)?;
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&analyzer_file, ANALYZER_VERSION)?;
        }
        let (schema, chunk_id, text) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| Error::Index(e.to_string()))?;
        let index = Index::open_or_create(directory, schema)?;
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(None),
            chunk_id,
            text,
        })
    }

    /// The highest chunk seq this index has committed.
    pub fn applied_seq(&self) -> Result<i64> {
        let metas = self.index.load_metas()?;
        Ok(metas.payload.and_then(|p| p.parse().ok()).unwrap_or(0))
    }

    /// Apply `changes` and commit with `applied_seq` as the new mark.
    pub fn apply(&self, changes: &[Bm25Change], applied_seq: i64) -> Result<()> {
        self.commit_with(applied_seq, |writer| {
            for change in changes {
                match change {
                    Bm25Change::Upsert { chunk_id, text } => {
                        writer.delete_term(Term::from_field_i64(self.chunk_id, *chunk_id));
                        let mut doc = TantivyDocument::default();
                        doc.add_i64(self.chunk_id, *chunk_id);
                        doc.add_text(self.text, text);
                        writer.add_document(doc)?;
                    }
                    Bm25Change::Remove { chunk_id } => {
                        writer.delete_term(Term::from_field_i64(self.chunk_id, *chunk_id));
                    }
                }
            }
            Ok(())
        })
    }

    /// Run `edit` on the writer (opened on first use), then commit with the mark as payload
    /// and reload the reader.
    fn commit_with(
        &self,
        applied_seq: i64,
        edit: impl FnOnce(&mut IndexWriter) -> Result<()>,
    ) -> Result<()> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| Error::Index("bm25 writer poisoned".into()))?;
        if guard.is_none() {
            *guard = Some(self.index.writer(WRITER_HEAP_BYTES)?);
        }
        let writer = guard
            .as_mut()
            .ok_or_else(|| Error::Index("bm25 writer missing".into()))?;
        edit(writer)?;
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&applied_seq.to_string());
        commit.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Pick up commits made by another process (the CLI reading while the server writes).
    pub fn refresh(&self) -> Result<()> {
        Ok(self.reader.reload()?)
    }

    /// Chunks matching any term of `query`, best first: (chunk_id, bm25 score).
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<(i64, f32)>> {
        let mut seen = std::collections::HashSet::new();
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms(query)
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.text, &t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        if clauses.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(limit))?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(self.chunk_id).and_then(|v| v.as_i64()) {
                out.push((id, score));
            }
        }
        Ok(out)
    }

    /// Number of live documents (for consistency checks).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index holds no documents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every chunk id in the index (for consistency checks; not for hot paths).
    pub fn all_chunk_ids(&self) -> Result<Vec<i64>> {
        let searcher = self.reader.searcher();
        let mut ids = Vec::new();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(1)?;
            for doc_id in segment.doc_ids_alive() {
                let doc: TantivyDocument = store.get(doc_id)?;
                if let Some(id) = doc.get_first(self.chunk_id).and_then(|v| v.as_i64()) {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_chinese_text_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let idx = Bm25Index::open(dir.path(), false).unwrap();
            idx.apply(
                &[
                    Bm25Change::Upsert {
                        chunk_id: 1,
                        text: "员工每年可以享受带薪年假".into(),
                    },
                    Bm25Change::Upsert {
                        chunk_id: 2,
                        text: "会议室最长可以使用四小时".into(),
                    },
                ],
                7,
            )
            .unwrap();
            let hits = idx.search("如何申请年假？", 5).unwrap();
            assert_eq!(hits.first().map(|h| h.0), Some(1));
        }
        let idx = Bm25Index::open(dir.path(), false).unwrap();
        assert_eq!(idx.applied_seq().unwrap(), 7);
        idx.apply(&[Bm25Change::Remove { chunk_id: 1 }], 8).unwrap();
        assert!(idx.search("年假", 5).unwrap().is_empty());
        assert_eq!(idx.all_chunk_ids().unwrap(), vec![2]);
    }

    #[test]
    fn an_index_built_by_another_analyzer_is_emptied_for_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let upsert = Bm25Change::Upsert {
            chunk_id: 1,
            text: "员工每年可以享受带薪年假".into(),
        };
        Bm25Index::open(dir.path(), false)
            .unwrap()
            .apply(std::slice::from_ref(&upsert), 7)
            .unwrap();
        // What a zhiku before analyzer files left: the index without one.
        std::fs::remove_file(dir.path().join(ANALYZER_FILE)).unwrap();
        // A CLI beside the server reads it as it is.
        assert_eq!(
            Bm25Index::open(dir.path(), true)
                .unwrap()
                .applied_seq()
                .unwrap(),
            7
        );
        let idx = Bm25Index::open(dir.path(), false).unwrap();
        assert_eq!(
            idx.applied_seq().unwrap(),
            0,
            "every chunk is replayed from SQLite"
        );
        assert!(idx.all_chunk_ids().unwrap().is_empty());
        idx.apply(&[upsert], 7).unwrap();
        assert_eq!(
            Bm25Index::open(dir.path(), false)
                .unwrap()
                .applied_seq()
                .unwrap(),
            7
        );
    }
}
