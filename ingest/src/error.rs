//! `ingest::Error`: every way a document can fail on its way to chunks and vectors.
//!
//! Each variant carries a stable [`Error::code`] so the API, the CLI and the job table
//! report the same word for the same failure, and a message a person can act on.

/// What went wrong while ingesting one document (or while setting the pipeline up).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The content is not a type we can read; `detected` is what sniffing found.
    #[error("unsupported file type ({detected}); accepted: {accepted}")]
    Unsupported {
        /// What the bytes look like (a MIME type or a short description).
        detected: String,
        /// The accepted extensions, comma-separated.
        accepted: String,
    },
    /// The file has no bytes (or only whitespace).
    #[error("the file is empty")]
    Empty,
    /// The file is password-protected.
    #[error("the file is password-protected; remove the password and upload it again")]
    Encrypted,
    /// The file parsed, but holds no text (e.g. a scanned PDF without a text layer).
    #[error("no extractable text (a scanned document? OCR is not supported)")]
    NoText,
    /// The file is damaged or not what its name says.
    #[error("the {kind} file is damaged or invalid: {detail}")]
    Corrupt {
        /// The document kind we tried to read it as.
        kind: String,
        /// What the parser reported.
        detail: String,
    },
    /// Over a size limit (upload size, or uncompressed size / entry count of a zip container).
    #[error("too large: {detail}")]
    TooLarge {
        /// Which limit was exceeded, with the numbers.
        detail: String,
    },
    /// The extractor panicked; the panic was contained.
    #[error("the {kind} extractor crashed on this file: {detail}")]
    Panicked {
        /// The document kind.
        kind: String,
        /// The panic message.
        detail: String,
    },
    /// The extractor ran past its time limit.
    #[error("extraction took longer than {limit_ms} ms and was abandoned")]
    TimedOut {
        /// The limit that was exceeded.
        limit_ms: u64,
    },
    /// The embedding model could not be loaded or failed on a batch.
    #[error("embedding model: {0}")]
    Model(String),
    /// Invalid split or clean settings.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// The job queue's database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// File system failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The chunk sink (indexing) failed.
    #[error("indexing: {0}")]
    Sink(String),
}

impl Error {
    /// A stable machine-readable code for this kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unsupported { .. } => "unsupported_type",
            Error::Empty => "empty",
            Error::Encrypted => "encrypted",
            Error::NoText => "no_text",
            Error::Corrupt { .. } => "corrupt",
            Error::TooLarge { .. } => "too_large",
            Error::Panicked { .. } => "extractor_panicked",
            Error::TimedOut { .. } => "timed_out",
            Error::Model(_) => "model",
            Error::InvalidSettings(_) => "invalid_settings",
            Error::Database(_) => "database",
            Error::Io(_) => "io",
            Error::Sink(_) => "indexing",
        }
    }

    /// Whether running the same job again could succeed (transient failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Database(_) | Error::Io(_) | Error::Sink(_))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
