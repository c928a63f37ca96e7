//! CSV: decoded like any text (Excel on Chinese Windows writes GBK), parsed by the `csv`
//! crate (RFC 4180 quoting, ragged rows allowed), rendered as one line per row.

use super::decode::decode;
use super::rows::render_table;
use super::{DocKind, Extracted, Section};
use crate::{Error, Result};

/// The whole table as one section.
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted> {
    let (text, _) = decode(bytes, None);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(guess_delimiter(&text))
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::Corrupt {
            kind: "csv".into(),
            detail: e.to_string(),
        })?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(Extracted {
        kind: DocKind::Csv,
        sections: vec![Section {
            page: None,
            title: None,
            text: render_table(&rows),
            ocr: false,
        }],
        page_count: None,
        title: None,
    })
}

/// Comma unless the first line clearly uses semicolons (European Excel) or tabs.
fn guess_delimiter(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or_default();
    let count = |c: char| first.matches(c).count();
    [b';', b'\t']
        .into_iter()
        .find(|&d| count(d as char) > count(','))
        .unwrap_or(b',')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_stay_in_their_row() {
        let csv = "编号,问题,答案\r\n1,\"a, b\",\"1. x\r\n2. y\"\r\n2,\"说 \"\"IP67\"\"\",ok\r\n";
        let doc = extract(csv.as_bytes()).unwrap();
        assert_eq!(
            doc.sections[0].text,
            "编号: 1; 问题: a, b; 答案: 1. x 2. y\n编号: 2; 问题: 说 \"IP67\"; 答案: ok"
        );
    }

    #[test]
    fn semicolons_and_tabs_are_recognised() {
        assert_eq!(guess_delimiter("a;b;c\n1,5;2;3"), b';');
        assert_eq!(guess_delimiter("a\tb\n"), b'\t');
        assert_eq!(guess_delimiter("a,b;c"), b',');
    }
}
