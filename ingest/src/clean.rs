//! Cleaning rules applied to extracted text before it is split (Coze's "预处理规则").
//!
//! Pure functions: the same settings on the same text always give the same result, so a
//! re-run of a job produces the same chunks.
//!
//! Whatever the settings, embedded binary is dropped first: a data URI or a long base64
//! blob (an image that Typora or Obsidian inlined into a Markdown export) is megabytes of
//! one "word" that means nothing to a reader, and the tokenizer that sizes chunks spent
//! more than eight minutes on one such 5 MB file.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which cleaning rules to apply. Stored per knowledge base, overridable per upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CleanSettings {
    /// Collapse runs of spaces and tabs, drop spaces between CJK characters (PDF extraction
    /// puts them there) and keep at most one blank line between paragraphs.
    pub collapse_whitespace: bool,
    /// Remove URLs and e-mail addresses.
    pub strip_urls_emails: bool,
}

impl Default for CleanSettings {
    fn default() -> Self {
        Self {
            collapse_whitespace: true,
            strip_urls_emails: false,
        }
    }
}

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:https?|ftp)://[^\s<>()\[\]{}，。、；：！？“”‘’（）《》]+|\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s<>()\[\]{}，。、；：！？“”‘’（）《》]*")
        .expect("static URL regex is valid")
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b")
        .expect("static e-mail regex is valid")
});
static HSPACE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[ \t\u{00A0}\u{3000}\u{200B}]+").expect("static regex is valid"));
static CJK_GAP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([\p{Han}\u{3000}-\u{303F}\u{FF00}-\u{FFEF}]) ([\p{Han}\u{3000}-\u{303F}\u{FF00}-\u{FFEF}])")
        .expect("static regex is valid")
});

/// A `data:` URI with a base64 payload (`data:image/png;base64,iVBOR…`). A payload wrapped
/// over lines ends at the first line break here; its other lines are a base64 blob.
static DATA_URI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)data:[a-z0-9.+-]+/[a-z0-9.+-]+(?:;[a-z0-9.+-]+=[a-z0-9.+-]+)*;base64,[A-Za-z0-9+/=%]*")
        .expect("static data URI regex is valid")
});
/// A run of base64 characters, possibly wrapped over lines; [`BASE64_BLOB_MIN_CHARS`]
/// decides whether it is a blob.
static BASE64_RUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9+/]{40,}={0,2}(?:[ \t]*\n[ \t]*[A-Za-z0-9+/]{40,}={0,2})*")
        .expect("static base64 regex is valid")
});
/// Fewer base64 characters than this are kept: hashes, keys and identifiers people search
/// for are shorter (a sha512 in hex is 128), and no word of any language is this long.
const BASE64_BLOB_MIN_CHARS: usize = 256;

/// Apply `settings` to `text`.
pub fn clean(text: &str, settings: &CleanSettings) -> String {
    let mut out = text.replace("\r\n", "\n").replace(['\r', '\u{000C}'], "\n");
    out = strip_embedded_binary(&out);
    if settings.strip_urls_emails {
        out = URL.replace_all(&out, "").into_owned();
        out = EMAIL.replace_all(&out, "").into_owned();
    }
    if settings.collapse_whitespace {
        out = collapse_whitespace(&out);
    }
    out.trim().to_string()
}

/// Drop data URIs and base64 blobs (see the module's comment); text without them comes
/// back unchanged.
fn strip_embedded_binary(text: &str) -> String {
    let text = DATA_URI.replace_all(text, "");
    BASE64_RUN
        .replace_all(&text, |found: &regex::Captures<'_>| {
            let run = &found[0];
            let chars = run.bytes().filter(|b| !b.is_ascii_whitespace()).count();
            if chars >= BASE64_BLOB_MIN_CHARS {
                String::new()
            } else {
                run.to_string()
            }
        })
        .into_owned()
}

fn collapse_whitespace(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut blank_run = 0;
    for line in text.lines() {
        let line = HSPACE.replace_all(line, " ");
        // Twice, because each match consumes the character after the gap.
        let line = CJK_GAP.replace_all(&line, "$1$2");
        let line = CJK_GAP.replace_all(&line, "$1$2");
        let line = line.trim();
        if line.is_empty() {
            blank_run += 1;
            if blank_run == 1 && !lines.is_empty() {
                lines.push(String::new());
            }
        } else {
            blank_run = 0;
            lines.push(line.to_string());
        }
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_spaces_and_blank_lines() {
        let s = CleanSettings::default();
        assert_eq!(clean("a  \t b\n\n\n\nc  ", &s), "a b\n\nc");
    }

    #[test]
    fn removes_spaces_between_cjk_characters() {
        let s = CleanSettings::default();
        assert_eq!(clean("东 北 电 气 发展", &s), "东北电气发展");
        assert_eq!(clean("RRF 融合 k = 60", &s), "RRF 融合 k = 60");
    }

    #[test]
    fn strips_urls_and_emails_only_when_asked() {
        let text = "见 https://example.com/a?b=1 或写信 hr@example.com。";
        assert_eq!(clean(text, &CleanSettings::default()), text);
        let s = CleanSettings {
            collapse_whitespace: true,
            strip_urls_emails: true,
        };
        assert_eq!(clean(text, &s), "见或写信。");
    }

    #[test]
    fn drops_data_uris_and_base64_blobs_but_keeps_short_codes() {
        let s = CleanSettings::default();
        let png = "iVBORw0KGgoAAAANSUhEUgAA".repeat(40);
        let text = format!(
            "图一 ![logo](data:image/png;base64,{png}) 之后\n\n{png}\n\nsha256 {}",
            "ab12".repeat(16)
        );
        assert_eq!(
            clean(&text, &s),
            format!("图一 ![logo]() 之后\n\nsha256 {}", "ab12".repeat(16))
        );
        // Wrapped at 76 characters, as MIME and PEM do.
        let wrapped = (0..10)
            .map(|_| "QUJD".repeat(19))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(clean(&format!("前\n{wrapped}\n后"), &s), "前\n\n后");
    }

    #[test]
    fn keeps_markdown_structure() {
        let s = CleanSettings::default();
        assert_eq!(
            clean("# 标题\n\n正文\n- 一\n- 二", &s),
            "# 标题\n\n正文\n- 一\n- 二"
        );
    }
}
