//! What zhiku does, independent of how it is asked (HTTP or CLI): [`knowledge`] (KBs,
//! documents, chunks; [`web_pages`]: documents fetched from URLs through [`fetch`], which
//! keeps them off private addresses, synced and re-crawled by [`web_sync`], on a KB's schedule by [`web_schedule`]), [`indexing`] (keeping BM25 and vectors in step with the database; [`replicas`]: with the other nodes' writes too),
//! [`files`] (uploaded files and fetched pages, in the data directory or the database),
//! [`jobs`] (the ingestion queue) and [`workers`] (ingesting in this process), [`search`] (hit testing), [`embeddings`] (the embedding
//! model for `/v1`), [`limits`] (every limit a client should know, from their homes), [`bots`] (bot drafts, versions, API keys, recorded conversations), [`key_rate`] (a key's requests per minute, on one node or all),
//! [`chat`] (answers: [`prompt`] builds what the model reads, [`focus`] cuts passages to
//! what the question asks, [`evidence`] checks what the answer says against them),
//! [`health`] (whether this node can work) and [`metrics`] (what it has done, for
//! Prometheus).
//! [`migrate`] moves an SQLite deployment to PostgreSQL.
//! Services never import axum. Handlers and CLI commands reach the store only through
//! them.

pub mod backup;
pub mod backup_postgres;
pub mod bots;
pub mod chat;
pub mod embeddings;
pub mod evidence;
pub mod fetch;
pub mod files;
pub mod focus;
pub mod health;
pub mod indexing;
pub mod jobs;
pub mod key_rate;
pub mod knowledge;
pub mod limits;
pub mod metrics;
pub mod migrate;
pub mod pg_tools;
pub mod prompt;
pub mod reembed;
pub mod replicas;
pub mod retrieve;
pub mod search;
pub mod secrets;
#[cfg(test)]
pub(crate) mod testing;
pub mod tools;
pub mod web_pages;
pub mod web_schedule;
pub mod web_sync;
pub mod workers;
