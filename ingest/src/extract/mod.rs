//! Bytes → text sections: the only place that knows document formats.
//!
//! [`detect_kind`] decides what a file is from its content (the name only tells text formats
//! apart), and [`extract`] runs the matching parser on its own thread under `catch_unwind`
//! and a time limit, because third-party parsers (pdf-extract above all) panic or loop on
//! inputs they don't expect, and one bad upload must fail one job, not the worker.
//!
//! Scans, photos and PDF pages without a usable text layer are then read by OCR
//! (tesseract, `scanned`), outside that thread: OCR runs in child processes with their own
//! time and memory limits ([`OcrSettings`]), and its sections are marked [`Section::ocr`].
//!
//! Every extractor's output goes through one normaliser (`decode::normalise`), so callers
//! can count on text without NULs, BOMs, trailing spaces or runs of blank lines.

mod cfb_check;
mod csv;
mod decode;
mod doc;
mod docx;
mod epub;
pub(crate) mod guard;
mod html;
mod image;
mod json;
mod links;
mod markdown;
mod misread;
mod ocr;
mod ods;
mod odt;
mod ooxml;
mod pdf;
mod pptx;
mod render;
mod rows;
mod running_lines;
mod scale;
mod scanned;
mod sniff;
mod spreadsheet;
mod subprocess;
mod text;
mod xls;
mod xlsx;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use links::{is_sitemap_index, page_links, sitemap_locations};
pub use ocr::{OcrSettings, check_languages, installed_languages};
pub use sniff::detect_kind;

/// The document kinds we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// PDF (with a text layer, or scanned: then read by OCR).
    Pdf,
    /// Word 2007+ (`.docx`).
    Docx,
    /// Excel 2007+ (`.xlsx`).
    Xlsx,
    /// PowerPoint 2007+ (`.pptx`): one section per slide.
    Pptx,
    /// Word 97–2003 (`.doc`), read by `antiword` (see `doc`).
    Doc,
    /// Excel 97–2003 (`.xls`).
    Xls,
    /// OpenDocument text (`.odt`, LibreOffice Writer).
    Odt,
    /// OpenDocument spreadsheet (`.ods`, LibreOffice Calc).
    Ods,
    /// EPUB e-book: one section per chapter.
    Epub,
    /// JSON: one section per item of a top-level array.
    Json,
    /// JSON Lines: one section per line.
    Jsonl,
    /// Comma-separated values.
    Csv,
    /// An HTML page.
    Html,
    /// Markdown.
    Markdown,
    /// Plain text.
    Text,
    /// An image (PNG, JPEG, TIFF, WebP, BMP): a scan or a photo, read by OCR.
    Image,
}

impl DocKind {
    /// The lowercase name used in the API, the database and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Pdf => "pdf",
            DocKind::Docx => "docx",
            DocKind::Xlsx => "xlsx",
            DocKind::Pptx => "pptx",
            DocKind::Doc => "doc",
            DocKind::Xls => "xls",
            DocKind::Odt => "odt",
            DocKind::Ods => "ods",
            DocKind::Epub => "epub",
            DocKind::Json => "json",
            DocKind::Jsonl => "jsonl",
            DocKind::Csv => "csv",
            DocKind::Html => "html",
            DocKind::Markdown => "markdown",
            DocKind::Text => "text",
            DocKind::Image => "image",
        }
    }

    /// Whether the extractor writes Markdown-flavoured text (`#` headings, `- ` items), which
    /// the Markdown splitter should cut so that a section's paragraphs stay together.
    pub fn writes_markdown(self) -> bool {
        matches!(
            self,
            DocKind::Markdown | DocKind::Docx | DocKind::Html | DocKind::Odt | DocKind::Epub
        )
    }

    /// Whether a document of this kind with no text is "no extractable text" (a scan)
    /// rather than "empty".
    pub fn may_be_scanned(self) -> bool {
        matches!(self, DocKind::Pdf | DocKind::Image)
    }

    /// Whether its sections are printed pages, which repeat a running header and footer
    /// (a JSON file's records and a deck's slides are pages too, but alike by design).
    pub fn prints_pages(self) -> bool {
        matches!(self, DocKind::Pdf | DocKind::Image)
    }
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of file an upload takes: what a person calls it and the extensions it comes under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileType {
    /// How a person reads it, e.g. "Word (docx/doc)".
    pub label: &'static str,
    /// Its extensions, lowercase, without the dot.
    pub extensions: &'static [&'static str],
}

/// The file types accepted: the one list behind error messages, the 415 response, the
/// server's checks and the UI's file picker (served by `GET /api/limits`; the sniffer's
/// text and image lists are subsets, checked by a test).
pub const ACCEPTED_TYPES: &[FileType] = &[
    FileType {
        label: "PDF",
        extensions: &["pdf"],
    },
    FileType {
        label: "Word (docx/doc)",
        extensions: &["docx", "doc"],
    },
    FileType {
        label: "Excel (xlsx/xls)",
        extensions: &["xlsx", "xls"],
    },
    FileType {
        label: "PowerPoint (pptx)",
        extensions: &["pptx"],
    },
    FileType {
        label: "OpenDocument (odt/ods)",
        extensions: &["odt", "ods"],
    },
    FileType {
        label: "EPUB",
        extensions: &["epub"],
    },
    FileType {
        label: "CSV",
        extensions: &["csv"],
    },
    FileType {
        label: "JSON/JSONL",
        extensions: &["json", "jsonl"],
    },
    FileType {
        label: "HTML",
        extensions: &["html", "htm"],
    },
    FileType {
        label: "Markdown",
        extensions: &["md", "markdown"],
    },
    FileType {
        label: "TXT",
        extensions: &["txt"],
    },
    FileType {
        label: "PNG/JPEG/TIFF/WebP/BMP (OCR)",
        extensions: &["png", "jpg", "jpeg", "tif", "tiff", "webp", "bmp"],
    },
];

/// Every accepted extension (lowercase, no dot), in [`ACCEPTED_TYPES`]' order.
pub fn accepted_extensions() -> impl Iterator<Item = &'static str> {
    ACCEPTED_TYPES
        .iter()
        .flat_map(|t| t.extensions.iter().copied())
}

/// Whether `ext` (lowercase, no dot) is an accepted extension.
pub fn is_accepted_extension(ext: &str) -> bool {
    accepted_extensions().any(|e| e == ext)
}

/// One piece of extracted text: a PDF page, a spreadsheet sheet, or the whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// 1-based page (a PDF page, a slide, a frame of a TIFF, 1 for a single image);
    /// `None` for documents without pages.
    pub page: Option<u32>,
    /// Sheet name and the like.
    pub title: Option<String>,
    /// The text, normalised (LF line ends, no trailing spaces, at most one blank line in a row).
    pub text: String,
    /// Whether the text was read by OCR (a scan or photo): it may hold recognition
    /// errors, so chunks from it can be flagged as such.
    #[serde(default)]
    pub ocr: bool,
    /// For a table (a sheet, a CSV file): which lines of `text` are its header and which
    /// source row each line is, so the splitter can put whole rows under the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableLines>,
}

/// How a table lies in its [`Section::text`]: one line per row, the header first.
///
/// Rows are lines so that the text stays readable and searchable like any other; this is
/// the part a line cannot say. It stays true only while the text is rewritten line by
/// line, which is why [`Section::rewrite`] exists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TableLines {
    /// How many lines at the top head the table: title rows above the header, then the
    /// header row. 0 for a list without a header.
    pub header_lines: usize,
    /// The 1-based row of the source (as a spreadsheet numbers it) of each line, header
    /// lines included. Rows without values have no line, so the numbers may jump.
    pub rows: Vec<u32>,
}

impl TableLines {
    /// Whether these lines describe `text`: as many rows as it has lines.
    pub fn fits(&self, text: &str) -> bool {
        self.header_lines <= self.rows.len() && text.split('\n').count() == self.rows.len()
    }
}

impl Section {
    /// Replace the text by `rewrite(text)`. A table is rewritten line by line, and a line
    /// that comes out empty drops its row, so its [`TableLines`] stay true; line breaks the
    /// rewrite puts into a row become spaces.
    pub fn rewrite(&mut self, rewrite: impl Fn(&str) -> String) {
        let Some(table) = self.table.as_mut().filter(|t| t.fits(&self.text)) else {
            // A layout that no longer fits is dropped rather than trusted: the text is
            // then split like any other.
            self.table = None;
            self.text = rewrite(&self.text);
            return;
        };
        let mut text = String::with_capacity(self.text.len());
        let mut rows = Vec::with_capacity(table.rows.len());
        let mut header_lines = 0;
        for (i, (line, &row)) in self.text.split('\n').zip(&table.rows).enumerate() {
            let line = rewrite(line);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if !text.is_empty() {
                text.push('\n');
            }
            if line.contains(['\n', '\r']) {
                text.push_str(&line.replace(['\n', '\r'], " "));
            } else {
                text.push_str(line);
            }
            rows.push(row);
            if i < table.header_lines {
                header_lines += 1;
            }
        }
        table.rows = rows;
        table.header_lines = header_lines;
        self.text = text;
    }
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

/// Limits that keep one hostile or broken file from taking the worker down, and the OCR
/// settings (OCR has limits of its own: it runs after parsing, in child processes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractLimits {
    /// Wall-clock limit for parsing one document (OCR excluded: see [`OcrSettings`]).
    pub timeout_ms: u64,
    /// Most bytes a zip container (DOCX, XLSX, PPTX, ODT, ODS, EPUB) may expand to; also the
    /// most text a JSON file may render to, and antiword may write for a `.doc`.
    pub max_uncompressed_bytes: u64,
    /// Most entries a zip container may hold.
    pub max_archive_entries: usize,
    /// OCR for scans, photos and unusable PDF text layers: languages and limits.
    #[serde(default)]
    pub ocr: OcrSettings,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            timeout_ms: 60_000,
            max_uncompressed_bytes: 200 * 1024 * 1024,
            max_archive_entries: 10_000,
            ocr: OcrSettings::default(),
        }
    }
}

/// What parsing left for OCR to do.
#[derive(Debug)]
enum OcrWork {
    /// Nothing: the text is all there.
    None,
    /// These 1-based PDF pages.
    PdfPages(Vec<u32>),
    /// The whole document is an image.
    Image,
}

/// A parsed document before OCR and normalising.
#[derive(Debug)]
struct Parsed {
    doc: Extracted,
    ocr: OcrWork,
    /// What to report if no text turns up at all (the parser's own failure).
    failure: Option<Error>,
}

/// The accepted extensions as one comma-separated string, for [`Error::Unsupported`].
pub fn accepted_list() -> String {
    accepted_extensions().collect::<Vec<_>>().join(", ")
}

/// Extract text, guarded: detection and parsing run on their own thread under
/// `catch_unwind` with `limits.timeout_ms`; a panic becomes [`Error::Panicked`], an overrun
/// [`Error::TimedOut`]. Then, unless `limits.ocr.enabled` is off, OCR reads what parsing
/// could not (see [`OcrSettings`] for its limits): a missing program or language is
/// [`Error::ToolMissing`] when the document has no other text (and a warning when it has),
/// OCR failing on every page [`Error::Ocr`].
pub fn extract(file_name: &str, bytes: Arc<[u8]>, limits: &ExtractLimits) -> Result<Extracted> {
    extract_reporting(file_name, bytes, limits, &|_, _| {})
}

/// [`extract`], calling `on_ocr_page(read, total)` as each page that needs OCR ends (read
/// or skipped; from OCR's threads): OCR takes seconds a page, so a long scan's progress is
/// worth showing. Not called for documents without such pages, nor for image files
/// (tesseract reads all frames of a TIFF in one run).
pub fn extract_reporting(
    file_name: &str,
    bytes: Arc<[u8]>,
    limits: &ExtractLimits,
    on_ocr_page: &(dyn Fn(usize, usize) + Sync),
) -> Result<Extracted> {
    let started = Instant::now();
    let result = parse_guarded(file_name, Arc::clone(&bytes), limits)
        .and_then(|parsed| read_the_rest(parsed, &bytes, &limits.ocr, on_ocr_page));
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &result {
        Ok(doc) => tracing::debug!(
            kind = doc.kind.as_str(),
            sections = doc.sections.len(),
            ocr_sections = doc.sections.iter().filter(|s| s.ocr).count(),
            elapsed_ms,
            "extracted"
        ),
        Err(error) => tracing::debug!(code = error.code(), %error, elapsed_ms, "extraction failed"),
    }
    result
}

/// Detection and parsing on the guard's thread.
fn parse_guarded(file_name: &str, bytes: Arc<[u8]>, limits: &ExtractLimits) -> Result<Parsed> {
    // The worker thread records the kind before parsing, so a panic can still name it.
    let detected: Arc<OnceLock<DocKind>> = Arc::new(OnceLock::new());
    let name = file_name.to_owned();
    let job_limits = limits.clone();
    let job_detected = Arc::clone(&detected);
    let job = move || -> Result<Parsed> {
        let kind = detect_kind(&name, &bytes)?;
        let _ = job_detected.set(kind);
        parse_kind(kind, &bytes, &job_limits)
    };
    let timeout = Duration::from_millis(limits.timeout_ms);
    let outcome = guard::run_guarded("extract", timeout, job)?;
    let kind_name = || detected.get().map_or("document", |k| k.as_str()).to_owned();
    match outcome {
        guard::Outcome::Done(result) => result,
        guard::Outcome::Panicked(detail) => Err(Error::Panicked {
            kind: kind_name(),
            detail,
        }),
        guard::Outcome::TimedOut => Err(Error::TimedOut {
            limit_ms: limits.timeout_ms,
        }),
    }
}

/// Run the parser for `kind` on the calling thread. Unguarded: only [`parse_guarded`]
/// calls it, from the guard's thread.
fn parse_kind(kind: DocKind, bytes: &[u8], limits: &ExtractLimits) -> Result<Parsed> {
    let plain = |doc| Parsed {
        doc,
        ocr: OcrWork::None,
        failure: None,
    };
    Ok(match kind {
        DocKind::Pdf => {
            let pdf = pdf::extract(bytes)?;
            Parsed {
                doc: pdf.doc,
                ocr: OcrWork::PdfPages(pdf.unread),
                failure: pdf.failure,
            }
        }
        DocKind::Image => Parsed {
            doc: Extracted {
                kind: DocKind::Image,
                sections: Vec::new(),
                page_count: None,
                title: None,
            },
            ocr: OcrWork::Image,
            failure: None,
        },
        DocKind::Docx => plain(docx::extract(bytes, limits)?),
        DocKind::Xlsx => plain(xlsx::extract(bytes, limits)?),
        DocKind::Pptx => plain(pptx::extract(bytes, limits)?),
        DocKind::Doc => plain(doc::extract_doc(bytes, limits)?),
        DocKind::Xls => plain(xls::extract(bytes)?),
        DocKind::Odt => plain(odt::extract(bytes, limits)?),
        DocKind::Ods => plain(ods::extract(bytes, limits)?),
        DocKind::Epub => plain(epub::extract(bytes, limits)?),
        DocKind::Json => plain(json::extract_json(bytes, limits)?),
        DocKind::Jsonl => plain(json::extract_jsonl(bytes, limits)?),
        DocKind::Csv => plain(csv::extract(bytes)?),
        DocKind::Html => plain(html::extract(bytes)),
        DocKind::Markdown => plain(markdown::extract(bytes)),
        DocKind::Text => plain(text::extract(bytes)),
    })
}

/// OCR what parsing left unread, merge it in page order, and normalise.
fn read_the_rest(
    parsed: Parsed,
    bytes: &[u8],
    settings: &OcrSettings,
    on_page: &(dyn Fn(usize, usize) + Sync),
) -> Result<Extracted> {
    let Parsed {
        mut doc,
        ocr,
        failure,
    } = parsed;
    let outcome = match ocr {
        _ if !settings.enabled => None,
        OcrWork::None => None,
        OcrWork::PdfPages(pages) if pages.is_empty() => None,
        OcrWork::PdfPages(pages) => Some(
            settings
                .validate()
                .and_then(|()| scanned::read_pdf_pages(bytes, &pages, settings, on_page)),
        ),
        OcrWork::Image => Some(
            settings
                .validate()
                .and_then(|()| scanned::read_image(bytes, settings)),
        ),
    };
    let has_text = doc.sections.iter().any(|s| !s.text.trim().is_empty());
    let mut ocr_failures = Vec::new();
    match outcome {
        None => {}
        Some(Ok(read)) => {
            if doc.kind == DocKind::Image {
                doc.page_count = u32::try_from(read.sections.len()).ok();
            }
            doc.sections.extend(read.sections);
            doc.sections.sort_by_key(|s| s.page);
            for problem in &read.failures {
                tracing::warn!(problem, "page skipped: OCR could not read it");
            }
            ocr_failures = read.failures;
        }
        // The document's own text is worth more than a complete failure: keep it.
        Some(Err(error @ Error::ToolMissing { .. })) if has_text => {
            tracing::warn!(%error, "pages without a text layer skipped");
        }
        Some(Err(error)) => return Err(error),
    }
    finish(doc).map_err(|error| match (error, failure) {
        (Error::NoText, _) if !ocr_failures.is_empty() => Error::Ocr(ocr_failures.join("; ")),
        (Error::NoText, Some(parser)) => parser,
        (other, _) => other,
    })
}

/// Normalise every section, drop the empty ones, and turn "nothing left" into the error
/// users understand: a PDF without text is probably a scan, anything else is just empty.
fn finish(mut doc: Extracted) -> Result<Extracted> {
    for section in &mut doc.sections {
        section.rewrite(decode::normalise);
    }
    if doc.kind.prints_pages() {
        running_lines::remove(&mut doc.sections);
    }
    doc.sections.retain(|s| !s.text.is_empty());
    doc.title = doc
        .title
        .map(|t| decode::normalise(&t).replace('\n', " "))
        .filter(|t| !t.is_empty());
    if doc.sections.is_empty() {
        return Err(if doc.kind.may_be_scanned() {
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
        assert_eq!(
            serde_json::from_str::<DocKind>("\"jsonl\"").unwrap(),
            DocKind::Jsonl
        );
        assert!(DocKind::Odt.writes_markdown() && !DocKind::Json.writes_markdown());
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
    fn a_table_is_rewritten_row_by_row() {
        let mut section = Section {
            page: None,
            title: None,
            text: "标题\na | b\nhttp://x.cn\n1 | 2  3\n4 | 5".into(),
            ocr: false,
            table: Some(TableLines {
                header_lines: 2,
                rows: vec![1, 2, 3, 5, 6],
            }),
        };
        // A row that comes out empty goes with its number; one that comes out as two
        // lines stays one row.
        section.rewrite(|line| match line {
            "http://x.cn" => String::new(),
            "4 | 5" => "4 |\n5".into(),
            other => other.replace("  ", " "),
        });
        assert_eq!(section.text, "标题\na | b\n1 | 2 3\n4 | 5");
        let table = section.table.as_ref().unwrap();
        assert_eq!(
            (table.header_lines, &table.rows[..]),
            (2, &[1, 2, 5, 6][..])
        );
        // A layout that no longer fits its text is dropped, not trusted.
        section.table.as_mut().unwrap().rows.pop();
        section.rewrite(str::to_owned);
        assert_eq!(section.table, None);
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
