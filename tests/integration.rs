//! End-to-end tests: the real release binary, real models, a temp data dir, over HTTP.
//! One test binary (one link step) with a module per area.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod common;

mod access;
mod auth;
mod backup;
mod bots;
mod chat;
mod crash;
mod eval;
mod fairness;
mod faults;
mod health;
mod hostile;
mod injection;
mod knowledge;
mod labels;
mod load;
mod migrate;
mod openai;
mod postgres;
mod reembed;
mod remote_embeddings;
mod schema;
mod web;
mod web_pages;
