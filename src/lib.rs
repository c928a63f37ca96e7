//! zhiku: a local-first knowledge-base service. A tour, in the order data flows:
//!
//! - [`cli`] and [`server`] are the two ways in; both build an [`app::AppState`] from the
//!   one [`config::Config`].
//! - [`http`] is the JSON API (one router per resource, admin guard over `/api`).
//! - [`services`] is what zhiku does: knowledge bases, documents and chunks, keeping
//!   indexes in step, search, bots and chat. HTTP and CLI call the same functions and
//!   nothing else: neither touches the store or the queue.
//! - [`llm`] is the chat model behind one trait: llama.cpp in process, or a remote
//!   OpenAI-compatible server.
//! - [`retrieval`] holds the derived indexes: BM25 with jieba (tantivy) and HNSW vectors,
//!   and their fusion.
//! - [`store`] is SQLite, the source of truth, and holds all its SQL, each table written
//!   by one module. The `ingest` crate turns files into embedded chunks and owns the
//!   durable job queue (`ingest_job`).
//! - [`eval`] measures retrieval and answers on a labelled query set (`zhiku eval`).
//! - [`error`] is the one error type; [`lock`] keeps one writer per data dir.

pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod http;
pub mod llm;
pub mod lock;
pub mod retrieval;
pub mod server;
pub mod services;
pub mod store;
