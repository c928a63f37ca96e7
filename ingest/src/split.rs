//! Splitting extracted sections into chunks, measured in embedding-tokenizer tokens.
//!
//! Each chunk stays inside one section (a PDF page, a sheet), so it keeps its page number
//! and the byte range it came from. Markdown-shaped documents (Markdown, DOCX and HTML,
//! which extraction renders with `#` headings) use the markdown-aware splitter so a heading
//! stays with its paragraph.

use serde::{Deserialize, Serialize};
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};

use crate::extract::{DocKind, Extracted};
use crate::{Error, Result};

/// Default chunk size of the auto mode, in embedding tokens.
///
/// 256 tokens is ~350 Chinese characters: big enough to hold an answer with its context,
/// small enough that five of them (~1,300 prompt tokens) keep the first answer token within
/// seconds on a CPU, and well under e5's 512-token window.
pub const AUTO_MAX_TOKENS: usize = 256;
/// Default overlap of the auto mode, in tokens (1/8 of a chunk).
pub const AUTO_OVERLAP_TOKENS: usize = 32;
/// The largest chunk we accept: e5's window (512) minus the prefix and special tokens.
pub const MAX_CHUNK_TOKENS: usize = 500;
/// The smallest chunk size we accept.
pub const MIN_CHUNK_TOKENS: usize = 16;

/// How to split a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum SplitSettings {
    /// Structure-aware with the default size and overlap.
    #[default]
    Auto,
    /// Split on `separator` first, then cut pieces longer than `max_tokens`.
    Custom {
        /// The separator; `\n` and `\t` escapes are understood (as typed in a form).
        separator: String,
        /// Largest chunk, in embedding tokens.
        max_tokens: usize,
        /// Tokens shared by neighbouring pieces of a long segment.
        #[serde(default)]
        overlap_tokens: usize,
    },
}

impl SplitSettings {
    /// Check the numbers; a clear error instead of a surprising split.
    pub fn validate(&self) -> Result<()> {
        if let SplitSettings::Custom {
            separator,
            max_tokens,
            overlap_tokens,
        } = self
        {
            if separator.is_empty() {
                return Err(Error::InvalidSettings("separator must not be empty".into()));
            }
            if !(MIN_CHUNK_TOKENS..=MAX_CHUNK_TOKENS).contains(max_tokens) {
                return Err(Error::InvalidSettings(format!(
                    "max_tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}, got {max_tokens}"
                )));
            }
            if *overlap_tokens * 2 > *max_tokens {
                return Err(Error::InvalidSettings(format!(
                    "overlap_tokens must be at most half of max_tokens ({}), got {overlap_tokens}",
                    max_tokens / 2
                )));
            }
        }
        Ok(())
    }
}

/// Counts tokens the way the embedding model will see them.
pub trait TokenCount: Send + Sync {
    /// Number of tokens in `text`, without special tokens.
    fn count(&self, text: &str) -> usize;
}

struct Sizer<'a>(&'a dyn TokenCount);

impl ChunkSizer for Sizer<'_> {
    fn size(&self, chunk: &str) -> usize {
        self.0.count(chunk)
    }
}

/// One chunk before it has a vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkDraft {
    /// Position of the chunk in its document, from 0.
    pub ordinal: u32,
    /// The text.
    pub text: String,
    /// 1-based page for paged documents.
    pub page: Option<u32>,
    /// Byte offset of the chunk's start within its section's text.
    pub start_byte: usize,
    /// Byte offset of the chunk's end within its section's text.
    pub end_byte: usize,
    /// Tokens in `text` as the embedding model counts them.
    pub token_count: usize,
}

/// Split every section of `doc` (already cleaned) into chunks.
pub fn split(
    doc: &Extracted,
    settings: &SplitSettings,
    tokens: &dyn TokenCount,
) -> Result<Vec<ChunkDraft>> {
    settings.validate()?;
    let mut chunks = Vec::new();
    for section in &doc.sections {
        let pieces = match settings {
            SplitSettings::Auto => split_auto(&section.text, doc.kind, tokens)?,
            SplitSettings::Custom {
                separator,
                max_tokens,
                overlap_tokens,
            } => split_custom(
                &section.text,
                &unescape(separator),
                *max_tokens,
                *overlap_tokens,
                tokens,
            )?,
        };
        for (start, piece) in pieces {
            let text = piece.trim();
            if text.is_empty() {
                continue;
            }
            // The offsets are the trimmed text's: a piece can start with whitespace (the
            // space after a custom separator), and `start` is where the piece starts.
            let start = start + (piece.len() - piece.trim_start().len());
            let ordinal = u32::try_from(chunks.len()).map_err(|_| Error::TooLarge {
                detail: "more than 4 billion chunks".into(),
            })?;
            chunks.push(ChunkDraft {
                ordinal,
                page: section.page,
                start_byte: start,
                end_byte: start + text.len(),
                token_count: tokens.count(text),
                text: text.to_string(),
            });
        }
    }
    Ok(chunks)
}

fn config(
    max_tokens: usize,
    overlap: usize,
    tokens: &dyn TokenCount,
) -> Result<ChunkConfig<Sizer<'_>>> {
    ChunkConfig::new(max_tokens)
        .with_overlap(overlap)
        .map(|c| c.with_sizer(Sizer(tokens)))
        .map_err(|e| Error::InvalidSettings(e.to_string()))
}

fn split_auto<'t>(
    text: &'t str,
    kind: DocKind,
    tokens: &dyn TokenCount,
) -> Result<Vec<(usize, &'t str)>> {
    let cfg = config(AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS, tokens)?;
    Ok(if kind.writes_markdown() {
        MarkdownSplitter::new(cfg).chunk_indices(text).collect()
    } else {
        TextSplitter::new(cfg).chunk_indices(text).collect()
    })
}

fn split_custom<'t>(
    text: &'t str,
    separator: &str,
    max_tokens: usize,
    overlap: usize,
    tokens: &dyn TokenCount,
) -> Result<Vec<(usize, &'t str)>> {
    let splitter = TextSplitter::new(config(max_tokens, overlap, tokens)?);
    let mut out = Vec::new();
    let mut offset = 0;
    for segment in text.split(separator) {
        let seg_start = offset;
        offset += segment.len() + separator.len();
        if segment.trim().is_empty() {
            continue;
        }
        if tokens.count(segment) <= max_tokens {
            out.push((seg_start, segment));
        } else {
            out.extend(
                splitter
                    .chunk_indices(segment)
                    .map(|(i, s)| (seg_start + i, s)),
            );
        }
    }
    Ok(out)
}

/// Turn the escapes a person types into a form (`\n`, `\t`, `\\`) into the characters.
fn unescape(separator: &str) -> String {
    let mut out = String::with_capacity(separator.len());
    let mut chars = separator.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Section;

    /// One token per character: enough to test the splitting logic without a model.
    struct Chars;
    impl TokenCount for Chars {
        fn count(&self, text: &str) -> usize {
            text.chars().count()
        }
    }

    fn doc(kind: DocKind, sections: &[(Option<u32>, &str)]) -> Extracted {
        Extracted {
            kind,
            sections: sections
                .iter()
                .map(|(page, text)| Section {
                    page: *page,
                    title: None,
                    text: (*text).to_string(),
                    ocr: false,
                })
                .collect(),
            page_count: None,
            title: None,
        }
    }

    #[test]
    fn chunks_keep_their_page_and_offsets() {
        let d = doc(
            DocKind::Pdf,
            &[(Some(1), "第一页。"), (Some(2), "第二页的内容。")],
        );
        let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].page, Some(2));
        assert_eq!(chunks[1].ordinal, 1);
        let text = &d.sections[1].text;
        assert_eq!(
            &text[chunks[1].start_byte..chunks[1].end_byte],
            chunks[1].text
        );
    }

    #[test]
    fn long_text_is_cut_within_the_limit() {
        let text = "句子很长。".repeat(200);
        let d = doc(DocKind::Text, &[(None, &text)]);
        let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
        assert!(chunks.len() > 3);
        assert!(chunks.iter().all(|c| c.token_count <= AUTO_MAX_TOKENS));
    }

    #[test]
    fn custom_separator_splits_first() {
        let d = doc(DocKind::Text, &[(None, "问一\n答一###问二\n答二###")]);
        let s = SplitSettings::Custom {
            separator: "###".into(),
            max_tokens: 100,
            overlap_tokens: 0,
        };
        let chunks = split(&d, &s, &Chars).unwrap();
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["问一\n答一", "问二\n答二"]);
        assert_eq!(chunks[1].start_byte, "问一\n答一###".len());
    }

    #[test]
    fn offsets_point_at_the_trimmed_text() {
        // Found by fuzz/clean_split (fuzz/regressions/clean_split/): the offsets were the
        // untrimmed segment's, one space off after "###".
        let d = doc(DocKind::Text, &[(None, "问一### 问二 ###\u{3000}问三")]);
        let s = SplitSettings::Custom {
            separator: "###".into(),
            max_tokens: 100,
            overlap_tokens: 0,
        };
        let chunks = split(&d, &s, &Chars).unwrap();
        let text = &d.sections[0].text;
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["问一", "问二", "问三"]);
        for c in &chunks {
            assert_eq!(&text[c.start_byte..c.end_byte], c.text);
        }
    }

    #[test]
    fn escaped_newline_separator_is_understood() {
        let d = doc(DocKind::Text, &[(None, "a\n\nb")]);
        let s = SplitSettings::Custom {
            separator: "\\n\\n".into(),
            max_tokens: 100,
            overlap_tokens: 0,
        };
        assert_eq!(split(&d, &s, &Chars).unwrap().len(), 2);
    }

    #[test]
    fn bad_settings_are_rejected_with_the_reason() {
        let s = SplitSettings::Custom {
            separator: "\n".into(),
            max_tokens: 5000,
            overlap_tokens: 0,
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("max_tokens must be between"), "{err}");
        let s = SplitSettings::Custom {
            separator: "\n".into(),
            max_tokens: 100,
            overlap_tokens: 80,
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn settings_parse_from_json() {
        let s: SplitSettings = serde_json::from_str(r#"{"mode":"auto"}"#).unwrap();
        assert_eq!(s, SplitSettings::Auto);
        let s: SplitSettings = serde_json::from_str(
            r#"{"mode":"custom","separator":"\n","max_tokens":128,"overlap_tokens":16}"#,
        )
        .unwrap();
        assert!(matches!(
            s,
            SplitSettings::Custom {
                max_tokens: 128,
                ..
            }
        ));
    }
}
