//! zhiku's document pipeline: extract → clean → split → embed, and the durable job queue.
//!
//! The crate knows nothing about HTTP, tantivy or HNSW: it turns bytes into chunks with
//! vectors and hands them to a [`pipeline::ChunkSink`] that the server implements.
//!
//! ```
//! use ingest::extract::{DocKind, Extracted, Section};
//! use ingest::split::{split, SplitSettings, TokenCount};
//! use ingest::clean::{clean, CleanSettings};
//!
//! struct Chars;
//! impl TokenCount for Chars {
//!     fn count(&self, text: &str) -> usize { text.chars().count() }
//! }
//! let text = clean("知库  把文档\n\n\n变成可检索的知识。", &CleanSettings::default());
//! let doc = Extracted {
//!     kind: DocKind::Text,
//!     sections: vec![Section { page: None, title: None, text, ocr: false, table: None }],
//!     page_count: None,
//!     title: None,
//! };
//! let chunks = split(&doc, &SplitSettings::Auto, &Chars).unwrap();
//! assert_eq!(chunks[0].text, "知库把文档\n\n变成可检索的知识。");
//! ```

pub mod clean;
pub mod db;
pub mod embed;
pub mod error;
pub mod extract;
pub mod jobs;
mod passage_batches;
pub mod pipeline;
pub mod split;
pub mod tables;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use error::{Error, Result};
