//! CSV: decoded like any text (Excel on Chinese Windows writes GBK), parsed by the `csv`
//! crate (RFC 4180 quoting, ragged rows allowed), written as a table (see `rows`).
//!
//! Records are read one at a time into one reused record and written straight into the
//! table's text, so a file of hundreds of thousands of rows is held as its bytes, its
//! decoded text and the table's text, not as millions of cells.

use super::decode::decode;
use super::rows::TableWriter;
use super::{DocKind, Extracted, Section};
use crate::{Error, Result};

/// The whole table as one section; a record's row is its number in the file (the row a
/// spreadsheet shows it on), counting records rather than lines, as quoted cells may hold
/// line breaks.
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted> {
    let (text, _) = decode(bytes, None);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(guess_delimiter(&text))
        .from_reader(text.as_bytes());
    let mut table = TableWriter::with_capacity(text.len() + text.len() / 8);
    let mut record = ::csv::StringRecord::new();
    let mut number: u32 = 0;
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| Error::Corrupt {
                kind: "csv".into(),
                detail: e.to_string(),
            })?;
        if !more {
            break;
        }
        number = number.saturating_add(1);
        table.push(number, record.iter());
    }
    let (text, lines) = table.finish();
    Ok(Extracted {
        kind: DocKind::Csv,
        sections: vec![Section {
            page: None,
            title: None,
            text,
            ocr: false,
            table: Some(lines),
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
            "编号 | 问题 | 答案\n1 | a, b | 1. x 2. y\n2 | 说 \"IP67\" | ok"
        );
        let lines = doc.sections[0].table.as_ref().unwrap();
        assert_eq!(lines.rows, [1, 2, 3], "records, not lines, are rows");
    }

    #[test]
    fn semicolons_and_tabs_are_recognised() {
        assert_eq!(guess_delimiter("a;b;c\n1,5;2;3"), b';');
        assert_eq!(guess_delimiter("a\tb\n"), b'\t');
        assert_eq!(guess_delimiter("a,b;c"), b',');
    }
}
