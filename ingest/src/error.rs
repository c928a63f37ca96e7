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
    /// The file parsed, but holds no text: a PDF without a text layer where OCR found none
    /// either (or OCR is turned off), or an image without legible text.
    #[error("no extractable text (neither a text layer nor OCR found any)")]
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
    /// Cleaning and splitting ran past their time limit (a tokenizer stuck on one huge
    /// "word" is the usual cause).
    #[error(
        "cleaning and splitting took longer than {limit_ms} ms and were abandoned; the text may hold a huge run without spaces (an embedded file?)"
    )]
    SplitTimedOut {
        /// The limit that was exceeded.
        limit_ms: u64,
    },
    /// This node no longer holds the job: it was canceled, or its lease ran out and it went
    /// back to the queue (see `ingest::jobs`). Nothing of this attempt is kept.
    #[error(
        "job {job_id} is no longer held by this node (canceled, or its lease ran out and another node took it over)"
    )]
    NotHeld {
        /// The job.
        job_id: i64,
    },
    /// The server is stopping: the job was put back in the queue, not failed.
    #[error("the server is stopping; the document is processed again at the next start")]
    Stopping,
    /// A program extraction needs (tesseract, pdftoppm, a tesseract language, antiword,
    /// catppt) is not installed; `package` is the Debian package that provides it.
    #[error("{what} is not installed (Debian package {package}); {remedy}")]
    ToolMissing {
        /// The program or language data that is missing.
        what: String,
        /// The Debian package to install.
        package: String,
        /// What the administrator can do ("install it or turn OCR off").
        remedy: String,
    },
    /// OCR (rendering a page or reading it) failed on every page it was needed for.
    #[error("OCR failed: {0}")]
    Ocr(String),
    /// The embedding model could not be loaded or failed on a batch.
    #[error("embedding model: {0}")]
    Model(String),
    /// The remote embedding server (`embedding.backend = "remote"`) did not embed: no
    /// connection, an error status, or an answer that holds no embeddings. The message
    /// names the URL and what came back.
    #[error("{message}")]
    EmbeddingServer {
        /// What happened, with the URL and the status.
        message: String,
        /// Whether asking again later may succeed (no connection, a timeout, 429, 5xx)
        /// rather than get the same answer (a refused key, a bad request).
        transient: bool,
    },
    /// Invalid split or clean settings.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// The job queue's database failed.
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// File system failure.
    #[error("io: {0}")]
    Io(std::io::Error),
    /// The disk (or a file-size limit) is full; see [`StorageTrouble`].
    #[error("{0}")]
    StorageFull(String),
    /// Another process holds the database's write lock; see [`StorageTrouble`].
    #[error("{0}")]
    Busy(String),
    /// The chunk sink (indexing) failed.
    #[error("indexing: {0}")]
    Sink(String),
    /// A web page could not be fetched: the site did not answer, answered with an error
    /// status, or redirected too often. The message names the URL and what happened.
    #[error("{0}")]
    Fetch(String),
    /// A web page's address answers 404 Not Found or 410 Gone: the page was removed (a
    /// document that held it keeps its last text, marked with this).
    #[error("{0}")]
    PageGone(String),
    /// A URL is refused before anything is fetched: not http(s), or it leads to a
    /// loopback, link-local or private address while those are not allowed.
    #[error("{0}")]
    UrlRefused(String),
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
            Error::TimedOut { .. } | Error::SplitTimedOut { .. } => "timed_out",
            Error::NotHeld { .. } => "job_not_held",
            Error::Stopping => "stopping",
            Error::ToolMissing { .. } => "tool_missing",
            Error::Ocr(_) => "ocr_failed",
            Error::Model(_) => "model",
            Error::EmbeddingServer { .. } => "embedding_server",
            Error::InvalidSettings(_) => "invalid_settings",
            Error::Database(_) => "database",
            Error::Io(_) => "io",
            Error::StorageFull(_) => "storage_full",
            Error::Busy(_) => "busy",
            Error::Sink(_) => "indexing",
            Error::Fetch(_) => "fetch_failed",
            Error::PageGone(_) => "page_gone",
            Error::UrlRefused(_) => "url_refused",
        }
    }

    /// Whether running the same job again could succeed (transient failures).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Database(_)
                | Error::Io(_)
                | Error::Busy(_)
                | Error::Sink(_)
                | Error::EmbeddingServer {
                    transient: true,
                    ..
                }
        )
    }
}

/// A database or file failure that means something a person can act on, with the message
/// that says what. Both crates' errors use it, so the words are the same everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageTrouble {
    /// Out of space: nothing was saved.
    Full(String),
    /// Another process holds the database's write lock.
    Locked(String),
}

/// SQLite result codes (sqlx reports extended codes; the primary one is the low byte).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_FULL: i64 = 13;
/// SQLITE_IOERR_WRITE: what a write past a file-size limit (or to a dying disk) gives.
const SQLITE_IOERR_WRITE: i64 = 778;

impl StorageTrouble {
    /// What a database error means, when it is one of these.
    pub fn of_sqlx(e: &sqlx::Error) -> Option<Self> {
        let sqlx::Error::Database(db) = e else {
            return None;
        };
        if db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some()
        {
            // SQLSTATE classes: 53100 disk_full, 55P03 lock_not_available.
            return match db.code().as_deref() {
                Some("53100") => Some(Self::Full(format!(
                    "the PostgreSQL server's disk is full ({db}); nothing was saved"
                ))),
                Some("55P03") => Some(Self::Locked(format!(
                    "a PostgreSQL lock is held by another session ({db}); try again later"
                ))),
                _ => None,
            };
        }
        let code = db.code().and_then(|c| c.parse::<i64>().ok())?;
        if code == SQLITE_IOERR_WRITE {
            return Some(Self::Full(format!(
                "the database could not write to the disk ({db}): the disk may be full or failing; nothing was saved"
            )));
        }
        match code & 0xff {
            SQLITE_FULL => Some(Self::Full(format!(
                "the disk is full: the database could not grow ({db}); free some space and try again"
            ))),
            SQLITE_BUSY | SQLITE_LOCKED => Some(Self::Locked(format!(
                "the database is locked by another process ({db}); close whatever holds it (a sqlite3 shell, a backup tool) or try again later"
            ))),
            _ => None,
        }
    }

    /// What a file-system error means, when it is one of these.
    pub fn of_io(e: &std::io::Error) -> Option<Self> {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::StorageFull | ErrorKind::FileTooLarge | ErrorKind::QuotaExceeded => {
                Some(Self::Full(format!(
                    "the disk is full ({e}); nothing was saved: free some space and try again"
                )))
            }
            _ => None,
        }
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

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
