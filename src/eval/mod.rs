//! `zhiku eval`: measure retrieval (recall@k, MRR@10, nDCG@10, latency per search mode)
//! and, optionally, a bot's answers, on a labelled query set.
//!
//! [`dataset`] reads the JSON-lines files, [`metrics`] holds the ranking maths,
//! [`answers`] judges answer text, and [`run`] drives the services: it builds the
//! throw-away knowledge base, searches it in each mode and asks a bot. The command line
//! and the printed table live in `cli/eval.rs`. [`scale`] grows a knowledge base with
//! noisy copies for `zhiku bench search` (`cli/bench.rs`).

pub mod answers;
pub mod dataset;
pub mod metrics;
pub mod run;
pub mod scale;
