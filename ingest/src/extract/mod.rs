//! Bytes → text sections: the only place that knows document formats.
//!
//! [`detect_kind`] decides what a file is from its content (the name only tells text formats
//! apart), and [`extract`] runs the matching parser on its own thread under `catch_unwind`
//! and a time limit, because third-party parsers (pdf-extract above all) panic or loop on
//! inputs they don't expect, and one bad upload must fail one job, not the worker.
//!
//! Every extractor's output goes through one normaliser (`decode::normalise`), so callers
//! can count on text without NULs, BOMs, trailing spaces or runs of blank lines.

mod csv;
mod decode;
mod docx;
mod guard;
mod html;
mod markdown;
mod ooxml;
mod pdf;
mod rows;
mod sniff;
mod text;
mod xlsx;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use sniff::detect_kind;

/// The document kinds we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// PDF with a text layer.
    Pdf,
    /// Word 2007+ (`.docx`).
    Docx,
    /// Excel 2007+ (`.xlsx`).
    Xlsx,
    /// Comma-separated values.
    Csv,
    /// An HTML page.
    Html,
    /// Markdown.
    Markdown,
    /// Plain text.
    Text,
}

impl DocKind {
    /// The lowercase name used in the API, the database and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Pdf => "pdf",
            DocKind::Docx => "docx",
            DocKind::Xlsx => "xlsx",
            DocKind::Csv => "csv",
            DocKind::Html => "html",
            DocKind::Markdown => "markdown",
            DocKind::Text => "text",
        }
    }
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Extensions accepted, for error messages and the 415 response.
pub const ACCEPTED_EXTENSIONS: &[&str] = &[
    "pdf", "docx", "xlsx", "csv", "html", "htm", "md", "markdown", "txt",
];

/// One piece of extracted text: a PDF page, a spreadsheet sheet, or the whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// 1-based PDF page; `None` for documents without pages.
    pub page: Option<u32>,
    /// Sheet name and the like.
    pub title: Option<String>,
    /// The text, normalised (LF line ends, no trailing spaces, at most one blank line in a row).
    pub text: String,
}

/// What a document yielded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// What the content turned out to be.
    pub kind: DocKind,
    /// Non-empty sections in document order.
    pub sections: Vec<Section>,
    /// Number of pages, for paged documents (pages without text included).
    pub page_count: Option<u32>,
    /// The document's own title (metadata, `<title>`, front matter), if it has one.
    pub title: Option<String>,
}

/// Limits that keep one hostile or broken file from taking the worker down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractLimits {
    /// Wall-clock limit for one extraction.
    pub timeout_ms: u64,
    /// Most bytes a zip container (DOCX, XLSX) may expand to.
    pub max_uncompressed_bytes: u64,
    /// Most entries a zip container may hold.
    pub max_archive_entries: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            timeout_ms: 60_000,
            max_uncompressed_bytes: 200 * 1024 * 1024,
            max_archive_entries: 10_000,
        }
    }
}

/// The accepted extensions as one comma-separated string, for [`Error::Unsupported`].
pub(crate) fn accepted_list() -> String {
    ACCEPTED_EXTENSIONS.join(", ")
}

/// Extract text, guarded: detection and parsing run on their own thread under
/// `catch_unwind` with `limits.timeout_ms`; a panic becomes [`Error::Panicked`], an overrun
/// [`Error::TimedOut`].
pub fn extract(file_name: &str, bytes: Arc<[u8]>, limits: &ExtractLimits) -> Result<Extracted> {
    let started = Instant::now();
    // The worker thread records the kind before parsing, so a panic can still name it.
    let detected: Arc<OnceLock<DocKind>> = Arc::new(OnceLock::new());
    let name = file_name.to_owned();
    let job_limits = *limits;
    let job_detected = Arc::clone(&detected);
    let job = move || -> Result<Extracted> {
        let kind = detect_kind(&name, &bytes)?;
        let _ = job_detected.set(kind);
        extract_kind(kind, &bytes, &job_limits)
    };
    let timeout = Duration::from_millis(limits.timeout_ms);
    let outcome = guard::run_guarded("extract", timeout, job)?;
    let kind_name = || detected.get().map_or("document", |k| k.as_str()).to_owned();
    let result = match outcome {
        guard::Outcome::Done(result) => result,
        guard::Outcome::Panicked(detail) => Err(Error::Panicked {
            kind: kind_name(),
            detail,
        }),
        guard::Outcome::TimedOut => Err(Error::TimedOut {
            limit_ms: limits.timeout_ms,
        }),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &result {
        Ok(doc) => tracing::debug!(
            kind = doc.kind.as_str(),
            sections = doc.sections.len(),
            elapsed_ms,
            "extracted"
        ),
        Err(error) => tracing::debug!(code = error.code(), %error, elapsed_ms, "extraction failed"),
    }
    result
}

/// Run the parser for `kind` on the calling thread, then normalise its output. Unguarded:
/// only [`extract`] calls it, from the guard's thread.
fn extract_kind(kind: DocKind, bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let raw = match kind {
        DocKind::Pdf => pdf::extract(bytes)?,
        DocKind::Docx => docx::extract(bytes, limits)?,
        DocKind::Xlsx => xlsx::extract(bytes, limits)?,
        DocKind::Csv => csv::extract(bytes)?,
        DocKind::Html => html::extract(bytes),
        DocKind::Markdown => markdown::extract(bytes),
        DocKind::Text => text::extract(bytes),
    };
    finish(raw)
}

/// Normalise every section, drop the empty ones, and turn "nothing left" into the error
/// users understand: a PDF without text is probably a scan, anything else is just empty.
fn finish(mut doc: Extracted) -> Result<Extracted> {
    for section in &mut doc.sections {
        section.text = decode::normalise(&section.text);
    }
    doc.sections.retain(|s| !s.text.is_empty());
    doc.title = doc
        .title
        .map(|t| decode::normalise(&t).replace('\n', " "))
        .filter(|t| !t.is_empty());
    if doc.sections.is_empty() {
        return Err(if doc.kind == DocKind::Pdf {
            Error::NoText
        } else {
            Error::Empty
        });
    }
    Ok(doc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn run(name: &str, bytes: &[u8]) -> Result<Extracted> {
        extract(name, Arc::from(bytes), &ExtractLimits::default())
    }

    #[test]
    fn kinds_serialise_lowercase() {
        assert_eq!(
            serde_json::to_string(&DocKind::Markdown).unwrap(),
            "\"markdown\""
        );
        assert_eq!(
            serde_json::from_str::<DocKind>("\"xlsx\"").unwrap(),
            DocKind::Xlsx
        );
        assert_eq!(DocKind::Pdf.as_str(), "pdf");
    }

    #[test]
    fn plain_text_comes_back_normalised() {
        let doc = run(
            "a.txt",
            b"\xEF\xBB\xBFline one  \r\n\r\n\r\n\r\nline two\r\n",
        )
        .unwrap();
        assert_eq!(doc.kind, DocKind::Text);
        assert_eq!(doc.sections.len(), 1);
        assert_eq!(doc.sections[0].text, "line one\n\nline two");
    }

    #[test]
    fn whitespace_only_is_empty() {
        assert!(matches!(run("a.txt", b" \n\t "), Err(Error::Empty)));
        assert!(matches!(run("a.pdf", b""), Err(Error::Empty)));
    }

    #[test]
    fn markup_without_text_is_empty() {
        assert!(matches!(
            run("a.html", b"<html><body><script>x()</script></body></html>"),
            Err(Error::Empty)
        ));
    }
}
