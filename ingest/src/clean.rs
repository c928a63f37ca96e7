//! Cleaning rules applied to extracted text before it is split (Coze's "预处理规则").
//!
//! Pure functions: the same settings on the same text always give the same result, so a
//! re-run of a job produces the same chunks.

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

/// Apply `settings` to `text`.
pub fn clean(text: &str, settings: &CleanSettings) -> String {
    let mut out = text.replace("\r\n", "\n").replace(['\r', '\u{000C}'], "\n");
    if settings.strip_urls_emails {
        out = URL.replace_all(&out, "").into_owned();
        out = EMAIL.replace_all(&out, "").into_owned();
    }
    if settings.collapse_whitespace {
        out = collapse_whitespace(&out);
    }
    out.trim().to_string()
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
    fn keeps_markdown_structure() {
        let s = CleanSettings::default();
        assert_eq!(
            clean("# 标题\n\n正文\n- 一\n- 二", &s),
            "# 标题\n\n正文\n- 一\n- 二"
        );
    }
}
