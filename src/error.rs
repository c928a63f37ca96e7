//! `zhiku::Error`: one error type for the server and the CLI. Each variant has a stable
//! [`Error::code`]; `http/error.rs` maps codes to HTTP statuses (no HTTP types here).

use ingest::error::StorageTrouble;

/// Everything that can go wrong in zhiku.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// Request input is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// A named thing does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. "knowledge base 'x'".
        what: String,
    },
    /// A name or a file is already there.
    #[error("{0}")]
    Conflict(String),
    /// The upload is over the size cap.
    #[error("the upload is larger than the limit of {limit_bytes} bytes per file")]
    PayloadTooLarge {
        /// The configured cap.
        limit_bytes: u64,
    },
    /// A JSON request body over the configured limit.
    #[error("the request body is too large: {0}")]
    BodyTooLarge(String),
    /// The file type is not one we read.
    #[error("{0}")]
    UnsupportedType(String),
    /// Too many requests are waiting; try again after the given seconds.
    #[error(
        "the server is busy: {waiting} requests are already waiting; try again in {retry_after_s} s"
    )]
    Overloaded {
        /// Requests waiting.
        waiting: usize,
        /// Suggested wait.
        retry_after_s: u64,
    },
    /// One API key sent too many requests.
    #[error(
        "this API key made more than {per_minute} requests a minute; try again in {retry_after_s} s"
    )]
    RateLimited {
        /// The configured limit.
        per_minute: u32,
        /// When the next request is allowed.
        retry_after_s: u64,
    },
    /// The credentials are valid but do not open this resource.
    #[error("{0}")]
    Forbidden(String),
    /// The language model failed while answering.
    #[error("the language model failed: {0}")]
    Llm(String),
    /// Missing or wrong admin token.
    #[error(
        "missing, invalid or revoked token: send Authorization: Bearer <admin token> for the admin API, or a bot API key for that bot's chat and /v1"
    )]
    Unauthorized,
    /// The KB was built with another embedding model.
    #[error(
        "knowledge base '{kb}' was built with embedding model {built_with} ({built_dims} dims) but the configured model is {configured} ({configured_dims} dims); run `zhiku reindex --kb {kb} --re-embed` to rebuild it with the configured model"
    )]
    ModelMismatch {
        /// KB name.
        kb: String,
        /// Model id stored in the KB.
        built_with: String,
        /// Dims stored in the KB.
        built_dims: usize,
        /// Configured model id.
        configured: String,
        /// Configured dims.
        configured_dims: usize,
    },
    /// The disk (or the file-size limit) is full: nothing was written; free space and retry.
    #[error("{0}")]
    StorageFull(String),
    /// Another process (the server) holds the data directory.
    #[error("{0}")]
    Busy(String),
    /// The embedding model or runtime is not available.
    #[error("model not available: {0}")]
    ModelUnavailable(String),
    /// Ingestion failed.
    #[error(transparent)]
    Ingest(#[from] ingest::Error),
    /// Database failure.
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// Migration failure.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Index (tantivy / hnsw) failure.
    #[error("index: {0}")]
    Index(String),
    /// File system failure.
    #[error("io: {0}")]
    Io(std::io::Error),
    /// A background task died.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::InvalidInput(_) => "invalid_input",
            Error::NotFound { .. } => "not_found",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge { .. } | Error::BodyTooLarge(_) => "payload_too_large",
            Error::UnsupportedType(_) => "unsupported_type",
            Error::Unauthorized => "unauthorized",
            Error::Overloaded { .. } => "overloaded",
            Error::Forbidden(_) => "forbidden",
            Error::RateLimited { .. } => "rate_limited",
            Error::Llm(_) => "llm_failed",
            Error::ModelMismatch { .. } => "model_mismatch",
            Error::Busy(_) => "busy",
            Error::StorageFull(_) => "storage_full",
            Error::ModelUnavailable(_) => "model_unavailable",
            Error::Ingest(e) => e.code(),
            Error::Database(_) | Error::Migrate(_) => "database",
            Error::Index(_) => "index",
            Error::Io(_) => "io",
            Error::Internal(_) => "internal",
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
}

impl From<tantivy::TantivyError> for Error {
    fn from(e: tantivy::TantivyError) -> Self {
        Error::Index(e.to_string())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match StorageTrouble::of_sqlx(&e) {
            Some(StorageTrouble::Full(m)) => Error::StorageFull(m),
            Some(StorageTrouble::Locked(m)) => Error::Busy(m),
            None => Error::Database(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match StorageTrouble::of_io(&e) {
            Some(StorageTrouble::Full(m)) => Error::StorageFull(m),
            Some(StorageTrouble::Locked(m)) => Error::Busy(m),
            None => Error::Io(e),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("background task failed: {e}"))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_errors_keep_their_code() {
        let e: Error = ingest::Error::Encrypted.into();
        assert_eq!(e.code(), "encrypted");
        assert!(e.to_string().contains("password-protected"));
    }

    #[test]
    fn a_full_disk_says_so() {
        let e: Error = std::io::Error::from(std::io::ErrorKind::StorageFull).into();
        assert_eq!(e.code(), "storage_full");
        assert!(e.to_string().contains("the disk is full"));
        let e: Error = std::io::Error::from(std::io::ErrorKind::NotFound).into();
        assert_eq!(e.code(), "io");
    }

    #[test]
    fn model_mismatch_names_the_fix() {
        let e = Error::ModelMismatch {
            kb: "docs".into(),
            built_with: "a".into(),
            built_dims: 384,
            configured: "b".into(),
            configured_dims: 768,
        };
        assert!(e.to_string().contains("zhiku reindex --kb docs --re-embed"));
    }
}
