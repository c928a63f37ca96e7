//! PDF: one section per page, through pdf-extract.
//!
//! Pages are extracted one by one (what `pdf_extract::extract_text_from_mem_by_pages` does),
//! but each page under its own `catch_unwind`: pdf-extract panics on fonts it doesn't know
//! (`unsupported encoding GBK-EUC-H`), and one such page shouldn't cost the others. The
//! whole-document guard in `mod.rs` still catches anything outside a page.

use std::panic::{self, AssertUnwindSafe};

use pdf_extract::{Document, OutputError, PlainTextOutput};

use super::guard::panic_message;
use super::{DocKind, Extracted, Section};
use crate::{Error, Result};

/// One section per page that yielded anything; [`Error::Encrypted`] when a user password
/// is needed (an owner-only password opens with the empty one), [`Error::Corrupt`] when
/// the file can't be parsed, [`Error::Panicked`] when every page panicked.
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted> {
    let mut doc = Document::load_mem(bytes).map_err(pdf_error)?;
    if doc.is_encrypted() {
        doc.decrypt("").map_err(pdf_error)?;
    }
    let pages = doc.get_pages();
    let page_count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    let mut sections = Vec::with_capacity(pages.len());
    let mut panics = Vec::new();
    let mut errors = Vec::new();
    for &page in pages.keys() {
        let attempt = panic::catch_unwind(AssertUnwindSafe(|| page_text(&doc, page)));
        match attempt {
            Ok(Ok(text)) => sections.push(Section {
                page: Some(page),
                title: None,
                text,
            }),
            Ok(Err(e)) => errors.push(format!("page {page}: {e}")),
            Err(payload) => {
                panics.push(format!("page {page}: {}", panic_message(payload.as_ref())))
            }
        }
    }
    if sections.is_empty() && !panics.is_empty() {
        return Err(Error::Panicked {
            kind: "pdf".into(),
            detail: panics.join("; "),
        });
    }
    if sections.is_empty() && !errors.is_empty() {
        return Err(Error::Corrupt {
            kind: "pdf".into(),
            detail: errors.join("; "),
        });
    }
    for problem in panics.iter().chain(&errors) {
        tracing::warn!(problem, "pdf page skipped");
    }
    let title = info_title(&doc);
    Ok(Extracted {
        kind: DocKind::Pdf,
        sections,
        page_count: Some(page_count),
        title,
    })
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
