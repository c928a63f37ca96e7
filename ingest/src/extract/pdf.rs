//! PDF: one section per page, through pdf-extract.
//!
//! Pages are extracted one by one (what `pdf_extract::extract_text_from_mem_by_pages` does),
//! but each page under its own `catch_unwind`: pdf-extract panics on fonts it doesn't know
//! (`unsupported encoding GBK-EUC-H`), and one such page shouldn't cost the others. The
//! whole-document guard in `mod.rs` still catches anything outside a page.
//!
//! Pages whose text layer is missing or unusable (a panic, an error, nothing, or mostly
//! characters no real text is made of) are listed for OCR rather than dropped.

use std::panic::{self, AssertUnwindSafe};

use pdf_extract::{Document, OutputError, PlainTextOutput};

use super::guard::panic_message;
use super::{DocKind, Extracted, Section};
use crate::{Error, Result};

/// A PDF's text layer, and the pages it gave nothing usable for.
#[derive(Debug)]
pub(super) struct PdfText {
    /// One section per page whose text layer is usable.
    pub(super) doc: Extracted,
    /// 1-based pages to OCR: the parser panicked or failed on them, or their text layer is
    /// empty or unusable.
    pub(super) unread: Vec<u32>,
    /// What to report if no page yields any text (OCR included): [`Error::Panicked`] when
    /// every page panicked, [`Error::Corrupt`] when every page failed.
    pub(super) failure: Option<Error>,
}

/// The text layer, page by page; [`Error::Encrypted`] when a user password is needed (an
/// owner-only password opens with the empty one), [`Error::Corrupt`] when the file can't
/// be parsed.
pub(super) fn extract(bytes: &[u8]) -> Result<PdfText> {
    let mut doc = Document::load_mem(bytes).map_err(pdf_error)?;
    if doc.is_encrypted() {
        doc.decrypt("").map_err(pdf_error)?;
    }
    let pages = doc.get_pages();
    let page_count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    let mut sections = Vec::with_capacity(pages.len());
    let mut unread = Vec::new();
    let mut panics = Vec::new();
    let mut errors = Vec::new();
    for &page in pages.keys() {
        let attempt = panic::catch_unwind(AssertUnwindSafe(|| page_text(&doc, page)));
        match attempt {
            Ok(Ok(text)) if is_usable(&text) => sections.push(Section {
                page: Some(page),
                title: None,
                text,
                ocr: false,
                table: None,
            }),
            Ok(Ok(_)) => unread.push(page),
            Ok(Err(e)) => {
                unread.push(page);
                errors.push(format!("page {page}: {e}"));
            }
            Err(payload) => {
                unread.push(page);
                panics.push(format!("page {page}: {}", panic_message(payload.as_ref())));
            }
        }
    }
    let failure = if !panics.is_empty() && errors.len() + panics.len() == unread.len() {
        Some(Error::Panicked {
            kind: "pdf".into(),
            detail: panics.join("; "),
        })
    } else if !errors.is_empty() && errors.len() == unread.len() {
        Some(Error::Corrupt {
            kind: "pdf".into(),
            detail: errors.join("; "),
        })
    } else {
        None
    };
    for problem in panics.iter().chain(&errors) {
        tracing::warn!(problem, "pdf page's text layer unreadable");
    }
    let title = info_title(&doc);
    Ok(PdfText {
        doc: Extracted {
            kind: DocKind::Pdf,
            sections,
            page_count: Some(page_count),
            title,
        },
        unread,
        failure,
    })
}

/// The share of characters that may be suspicious before a text layer counts as
/// unusable, in percent. Mojibake (GBK bytes shown as Latin-1, glyph ids without a
/// ToUnicode map) is nearly all suspicious; real text in any language almost none (even
/// Polish or Vietnamese stay far below a third, since their letters outside Latin-1 mix
/// with plain ASCII ones).
const MAX_SUSPICIOUS_PERCENT: usize = 30;

/// Whether a page's text layer is worth keeping: it has some non-space text, and at most
/// [`MAX_SUSPICIOUS_PERCENT`] of it is characters no real text is made of.
fn is_usable(text: &str) -> bool {
    let (mut total, mut suspicious) = (0usize, 0usize);
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        total += 1;
        if is_suspicious(c) {
            suspicious += 1;
        }
    }
    total > 0 && suspicious * 100 <= total * MAX_SUSPICIOUS_PERCENT
}

/// Replacement characters, private-use code points (unmapped glyphs), control characters,
/// and the Latin-1 / Latin Extended letters that GBK or UTF-8 bytes decoded as a
/// single-byte charset turn into.
fn is_suspicious(c: char) -> bool {
    c == '\u{fffd}'
        || c.is_control()
        || ('\u{e000}'..='\u{f8ff}').contains(&c)
        || ('\u{00c0}'..='\u{024f}').contains(&c)
        || ('\u{0080}'..='\u{00bf}').contains(&c)
}

fn page_text(doc: &Document, page: u32) -> Result<String, OutputError> {
    let mut text = String::new();
    let mut output = PlainTextOutput::new(&mut text);
    pdf_extract::output_doc_page(doc, &mut output, page)?;
    Ok(text)
}

/// A wrong or missing user password means "password-protected"; anything else is damage.
fn pdf_error(e: pdf_extract::Error) -> Error {
    match e {
        pdf_extract::Error::Decryption(_) | pdf_extract::Error::InvalidPassword => Error::Encrypted,
        other => Error::Corrupt {
            kind: "pdf".into(),
            detail: other.to_string(),
        },
    }
}

/// `/Title` from the document information dictionary.
fn info_title(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let info = match info {
        pdf_extract::Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        other => other.as_dict().ok()?,
    };
    let title = pdf_extract::decode_text_string(info.get(b"Title").ok()?).ok()?;
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mojibake_and_empty_layers_are_unusable() {
        assert!(is_usable("第一节 重要提示"));
        assert!(is_usable("Airworthiness Directives; The Boeing Company"));
        assert!(is_usable(
            "Zażółć gęślą jaźń, przeczytał mężczyzna w zeszycie."
        ));
        assert!(!is_usable(" \n\u{0c}\n"));
        // "浙江省" in GBK, read as Latin-1.
        assert!(!is_usable("Õã½\u{ad}Ê¡ Õã½\u{ad}Ê¡"));
        assert!(!is_usable("\u{e001}\u{e002}\u{e003} \u{fffd}\u{fffd}"));
    }
}
