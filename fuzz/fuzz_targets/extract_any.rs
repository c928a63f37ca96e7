//! Arbitrary bytes under each accepted file name, through the same guarded entry point
//! the server uses (`ingest::extract::extract`: own thread, `catch_unwind`, time limit),
//! then clean + split the way `Pipeline::chunk` does.
//!
//! Input: first byte = which file name (index into `NAMES`, modulo), the rest = the file.
#![no_main]

use std::sync::Arc;

use ingest::Error;
use ingest::clean::{CleanSettings, clean};
use ingest::extract::{ExtractLimits, OcrSettings, extract};
use ingest::split::{SplitSettings, split};
use libfuzzer_sys::fuzz_target;
use zhiku_fuzz::{Chars, check_chunks, install_panic_policy};

/// One name per accepted extension, plus names without a known one (content sniffing).
const NAMES: &[&str] = &[
    "doc.pdf",
    "doc.docx",
    "doc.xlsx",
    "doc.csv",
    "doc.html",
    "doc.htm",
    "doc.md",
    "doc.markdown",
    "doc.txt",
    "upload",
    "DOC.PDF",
    "notes.bin",
];

fuzz_target!(|data: &[u8]| {
    install_panic_policy();
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(selector) % NAMES.len()];
    // The server's limits, except a deadline under libFuzzer's -timeout (30 s), so a hang
    // shows up as the guard's own TimedOut below, and OCR off: it runs tesseract and
    // pdftoppm in child processes (crashes there can't reach us), seconds per input.
    let limits = ExtractLimits {
        timeout_ms: 20_000,
        ocr: OcrSettings {
            enabled: false,
            ..OcrSettings::default()
        },
        ..ExtractLimits::default()
    };
    let mut doc = match extract(name, Arc::from(body), &limits) {
        Ok(doc) => doc,
        Err(Error::TimedOut { limit_ms }) => {
            panic!(
                "extraction of {name} ({} bytes) ran past {limit_ms} ms",
                body.len()
            )
        }
        Err(Error::Io(e)) => panic!("the guard could not start its thread: {e}"),
        // Corrupt, Unsupported, Encrypted, Empty, NoText, TooLarge, Panicked (a
        // third-party panic the guard caught): what users see for a bad file.
        Err(_) => return,
    };
    assert!(!doc.sections.is_empty(), "Ok with no sections");
    for section in &doc.sections {
        assert!(!section.text.is_empty(), "Ok with an empty section");
        assert!(!section.text.contains('\0'), "NUL survived normalisation");
    }
    for section in &mut doc.sections {
        // As the pipeline does: a table line by line, so its rows stay lines.
        section.rewrite(|text| clean(text, &CleanSettings::default()));
    }
    doc.sections.retain(|s| !s.text.is_empty());
    let chunks = split(&doc, &SplitSettings::Auto, &Chars).expect("auto settings are valid");
    check_chunks(&doc, &chunks);
});
