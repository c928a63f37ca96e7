//! Arbitrary text through `clean` and `split` with settings derived from the input.
//!
//! Input: 4 setting bytes, then the text (invalid UTF-8 replaced by U+FFFD, as extraction
//! would have decoded it). Byte 0: bit 0 collapse_whitespace, bit 1 strip_urls_emails,
//! bit 2 custom mode, bits 3-4 the document kind (markdown-aware splitter or not), bit 5
//! split the text into pages on form feeds. Byte 1: max_tokens. Byte 2: overlap.
//! Byte 3: separator.
#![no_main]

use ingest::clean::{CleanSettings, clean};
use ingest::extract::{DocKind, Extracted, Section};
use ingest::split::{MAX_CHUNK_TOKENS, MIN_CHUNK_TOKENS, SplitSettings, split};
use libfuzzer_sys::fuzz_target;
use zhiku_fuzz::{Chars, check_chunks, install_panic_policy};

/// Separators as typed in the form (escapes included) and a few odd ones.
const SEPARATORS: &[&str] = &[
    "\\n", "\\n\\n", "###", "。", "\\t", "\\", "\\\\", " ", "\\r\\n", "---", "é", "\\x",
];
const KINDS: &[DocKind] = &[
    DocKind::Text,
    DocKind::Markdown,
    DocKind::Pdf,
    DocKind::Html,
];

fuzz_target!(|data: &[u8]| {
    install_panic_policy();
    let Some((head, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let [flags, size, overlap, sep] = *head;
    let clean_settings = CleanSettings {
        collapse_whitespace: flags & 1 != 0,
        strip_urls_emails: flags & 2 != 0,
    };
    let split_settings = if flags & 4 != 0 {
        let max_tokens =
            MIN_CHUNK_TOKENS + usize::from(size) % (MAX_CHUNK_TOKENS - MIN_CHUNK_TOKENS + 1);
        SplitSettings::Custom {
            separator: SEPARATORS[usize::from(sep) % SEPARATORS.len()].to_owned(),
            max_tokens,
            overlap_tokens: usize::from(overlap) % (max_tokens / 2 + 1),
        }
    } else {
        SplitSettings::Auto
    };
    let kind = KINDS[usize::from(flags >> 3) % KINDS.len()];
    let text = String::from_utf8_lossy(body);
    let paged = flags & 32 != 0;
    let pieces: Vec<&str> = if paged {
        text.split('\u{000C}').collect()
    } else {
        vec![&text]
    };
    let sections: Vec<Section> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, t)| Section {
            page: paged.then(|| u32::try_from(i + 1).unwrap_or(u32::MAX)),
            title: None,
            text: clean(t, &clean_settings),
            ocr: false,
            table: None,
        })
        .filter(|s| !s.text.is_empty())
        .collect();
    for section in &sections {
        assert_eq!(section.text.trim(), section.text, "clean must trim");
        assert!(
            !section.text.contains('\r'),
            "clean must leave LF line ends only"
        );
    }
    let doc = Extracted {
        kind,
        sections,
        page_count: None,
        title: None,
    };
    let chunks = split(&doc, &split_settings, &Chars).expect("settings are valid by construction");
    check_chunks(&doc, &chunks);
});
