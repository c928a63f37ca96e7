//! Text bytes → `String`, and the normal form every extractor's output is put in.
//!
//! Chinese users upload GBK files saved by Notepad or Excel as often as UTF-8 ones, with no
//! BOM and no declared charset, so decoding is: BOM, else valid UTF-8, else the declared
//! charset (HTML only), else chardetng's guess. Normalising in one place lets the cleaner and
//! the splitter assume LF line ends and no stray control characters.

use std::sync::LazyLock;

use chardetng::EncodingDetector;
use encoding_rs::{Encoding, UTF_8};
use regex::bytes::Regex;

/// Decode `bytes` as text. `declared` is a charset the document names itself (an HTML
/// `<meta>`); it beats the statistical guess but not a BOM or valid UTF-8, since pages that
/// declare one charset and are saved in UTF-8 are common.
pub(crate) fn decode(
    bytes: &[u8],
    declared: Option<&'static Encoding>,
) -> (String, &'static Encoding) {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let rest = bytes.get(bom_len..).unwrap_or_default();
        return (
            encoding.decode_without_bom_handling(rest).0.into_owned(),
            encoding,
        );
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (text.to_owned(), UTF_8);
    }
    let encoding = declared.unwrap_or_else(|| {
        let mut detector = EncodingDetector::new();
        detector.feed(bytes, true);
        detector.guess(None, true)
    });
    (
        encoding.decode_without_bom_handling(bytes).0.into_owned(),
        encoding,
    )
}

/// `<meta charset=…>` and `<meta http-equiv="Content-Type" content="…; charset=…">` share
/// the `charset=` spelling, so one pattern covers both.
static META_CHARSET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"(?i)<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)"#).ok()
});

/// The charset an HTML page declares in its first 2 KB, as the HTML spec's prescan does.
pub(crate) fn html_declared_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes.get(..2048).unwrap_or(bytes);
    let captures = META_CHARSET.as_ref()?.captures(head)?;
    let encoding = Encoding::for_label(captures.get(1)?.as_bytes())?;
    // A page can't really be UTF-16 if its ASCII meta tag was readable; WHATWG says UTF-8.
    Some(encoding.output_encoding())
}

/// Put text in the form all extractors promise: LF line ends; no NUL, BOM or other control
/// characters except tab; no trailing whitespace; no leading or trailing blank lines; at
/// most one blank line in a row. Form feeds (PDF page ends) count as line breaks.
pub(crate) fn normalise(text: &str) -> String {
    let unified = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(unified.len());
    let mut line = String::new();
    let mut pending_blank = false;
    for raw in unified.split(['\n', '\r', '\u{0b}', '\u{0c}']) {
        line.clear();
        line.extend(raw.chars().filter(|&c| is_kept(c)));
        let kept = line.trim_end();
        if kept.is_empty() {
            pending_blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if pending_blank {
                out.push('\n');
            }
        }
        pending_blank = false;
        out.push_str(kept);
    }
    out
}

fn is_kept(c: char) -> bool {
    c == '\t' || !(c.is_control() || c == '\u{feff}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn bom_wins_and_is_stripped() {
        let (text, enc) = decode(b"\xEF\xBB\xBFhi", None);
        assert_eq!((text.as_str(), enc.name()), ("hi", "UTF-8"));
        let (text, enc) = decode(b"\xFF\xFEh\0i\0", None);
        assert_eq!((text.as_str(), enc.name()), ("hi", "UTF-16LE"));
        let (text, _) = decode(b"\xFE\xFF\0h\0i", None);
        assert_eq!(text, "hi");
    }

    #[test]
    fn gbk_without_bom_is_guessed() {
        let (gbk, _, _) = encoding_rs::GBK.encode("牛蒡属的植物，多年生草本，根可以食用。");
        let (text, enc) = decode(&gbk, None);
        assert_eq!(text, "牛蒡属的植物，多年生草本，根可以食用。");
        assert!(
            enc.name() == "GBK" || enc.name() == "gb18030",
            "{}",
            enc.name()
        );
    }

    #[test]
    fn declared_charset_beats_the_guess_but_not_utf8() {
        let (latin, _, _) = encoding_rs::WINDOWS_1252.encode("café");
        assert_eq!(decode(&latin, Some(encoding_rs::WINDOWS_1252)).0, "café");
        assert_eq!(decode("漂泊".as_bytes(), Some(encoding_rs::GBK)).0, "漂泊");
    }

    #[test]
    fn meta_charset_is_found_in_both_spellings() {
        let a = br#"<html><head><meta charset="utf-8"><title>x</title>"#;
        assert_eq!(html_declared_charset(a).map(|e| e.name()), Some("UTF-8"));
        let b = br#"<meta http-equiv="Content-Type" content="text/html; charset=gbk">"#;
        assert_eq!(html_declared_charset(b).map(|e| e.name()), Some("GBK"));
        assert_eq!(html_declared_charset(b"<p>charset=gbk</p>"), None);
        let late = [vec![b' '; 3000], b.to_vec()].concat();
        assert_eq!(html_declared_charset(&late), None);
    }

    #[test]
    fn normalise_cleans_lines() {
        assert_eq!(
            normalise("\n\n a \r\nb\t \r\r\r\n\nc\0\u{feff}d\u{0c}\n"),
            " a\nb\n\ncd"
        );
        assert_eq!(normalise("x\u{0c}y"), "x\ny");
        assert_eq!(normalise("  \n\u{0c}\n "), "");
        assert_eq!(normalise("keep\tinner\ttabs"), "keep\tinner\ttabs");
    }
}
