//! Plain text: decoded and nothing more, since it has no structure to keep or drop.

use super::decode::decode;
use super::{DocKind, Extracted, Section};

/// The whole file as one section.
pub(super) fn extract(bytes: &[u8]) -> Extracted {
    let (text, _) = decode(bytes, None);
    Extracted {
        kind: DocKind::Text,
        sections: vec![Section {
            page: None,
            title: None,
            text,
            ocr: false,
            table: None,
        }],
        page_count: None,
        title: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text() {
        let doc = extract("第一行\n第二行".as_bytes());
        assert_eq!(doc.sections[0].text, "第一行\n第二行");
        assert_eq!(doc.title, None);
    }
}
