//! What zhiku does, independent of how it is asked (HTTP or CLI): [`knowledge`] (KBs,
//! documents, chunks), [`indexing`] (keeping BM25 and vectors in step with SQLite) and
//! [`search`] (hit testing). Services never import axum.

pub mod indexing;
pub mod knowledge;
pub mod search;
