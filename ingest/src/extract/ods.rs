//! ODS (OpenDocument spreadsheet, LibreOffice Calc): the zip is checked for bombs, then
//! read by calamine like XLSX (see `spreadsheet`).
//!
//! calamine reads an ODS's values but not its merged cells (it has no
//! `worksheet_merge_cells` for ODS: a covered cell reads as empty and the span that covers
//! it is dropped), so the spans are read here from `content.xml`, the part calamine reads
//! the values from, and the merged values are spread as for XLSX.

use std::collections::HashMap;
use std::io::Cursor;

use calamine::{Dimensions, Ods, OdsError};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::spreadsheet::{corrupt, sheet_sections};
use super::{DocKind, ExtractLimits, Extracted, ooxml};
use crate::{Error, Result};

/// One section per visible sheet, titled with the sheet name; the title from `meta.xml`.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let mut archive = ooxml::open(bytes, "ods", limits)?;
    // calamine inflates whole parts with no cap of its own.
    ooxml::check_inflated_size(&mut archive, "ods", limits)?;
    let title = ooxml::part_title(&mut archive, "meta.xml", "ods", limits);
    // A workbook whose spans can't be read still has its values (as for XLSX).
    let mut merged = ooxml::read_entry(&mut archive, "content.xml", "ods", limits)
        .ok()
        .flatten()
        .map(|xml| merged_regions(&xml))
        .unwrap_or_default();
    let mut workbook: Ods<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| match e {
            OdsError::Password => Error::Encrypted,
            other => corrupt("ods", &other),
        })?;
    Ok(Extracted {
        kind: DocKind::Ods,
        sections: sheet_sections(&mut workbook, "ods", |_, name| {
            merged.remove(name).unwrap_or_default()
        })?,
        page_count: None,
        title,
    })
}

/// Each sheet's merged regions (cells with `table:number-columns-spanned` or
/// `table:number-rows-spanned` above 1), by sheet name, in the 0-based sheet coordinates
/// calamine gives its ranges: rows and columns counted with their repeats. Tables nested in
/// a cell are skipped; malformed XML ends the reading with what was read until then.
fn merged_regions(xml: &[u8]) -> HashMap<String, Vec<Dimensions>> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut sheets: HashMap<String, Vec<Dimensions>> = HashMap::new();
    // The sheet being read, and how deep inside it a nested table is (0: not in one).
    let mut sheet: Option<String> = None;
    let mut nested = 0u32;
    let (mut row, mut col, mut row_repeats) = (0u32, 0u32, 1u32);
    loop {
        let (event, is_empty) = match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::End(e)) => {
                match e.name().as_ref() {
                    b"table:table" if nested > 0 => nested -= 1,
                    b"table:table" => sheet = None,
                    b"table:table-row" if nested == 0 => row = row.saturating_add(row_repeats),
                    _ => {}
                }
                buf.clear();
                continue;
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {
                buf.clear();
                continue;
            }
        };
        match event.name().as_ref() {
            b"table:table" if sheet.is_some() => nested += u32::from(!is_empty),
            b"table:table" => {
                sheet = attribute(&event, b"table:name");
                (row, col) = (0, 0);
            }
            b"table:table-row" if nested == 0 && sheet.is_some() => {
                row_repeats = number(&event, b"table:number-rows-repeated");
                col = 0;
                if is_empty {
                    row = row.saturating_add(row_repeats);
                }
            }
            name @ (b"table:table-cell" | b"table:covered-table-cell") if nested == 0 => {
                if let Some(sheet) = &sheet
                    && name == b"table:table-cell"
                {
                    let columns = number(&event, b"table:number-columns-spanned");
                    let rows = number(&event, b"table:number-rows-spanned");
                    if columns > 1 || rows > 1 {
                        sheets.entry(sheet.clone()).or_default().push(Dimensions {
                            start: (row, col),
                            end: (
                                row.saturating_add(rows - 1),
                                col.saturating_add(columns - 1),
                            ),
                        });
                    }
                }
                col = col.saturating_add(number(&event, b"table:number-columns-repeated"));
            }
            _ => {}
        }
        buf.clear();
    }
    sheets
}

/// An attribute's text, unescaped.
fn attribute(element: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    let value = element.try_get_attribute(name).ok()??;
    let text = std::str::from_utf8(&value.value).ok()?;
    Some(quick_xml::escape::unescape(text).ok()?.into_owned())
}

/// A count attribute (repeats, spans): 1 where it is absent or not a positive number.
fn number(element: &BytesStart<'_>, name: &[u8]) -> u32 {
    attribute(element, name)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn spans_are_found_where_calamine_puts_the_cells() {
        let xml = r#"<office:document-content><office:body><office:spreadsheet>
            <table:table table:name="A &amp; B">
              <table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="3"/></table:table-row>
              <table:table-row>
                <table:table-cell table:number-columns-repeated="2"/>
                <table:table-cell table:number-columns-spanned="2" table:number-rows-spanned="3"><text:p>华东</text:p></table:table-cell>
                <table:covered-table-cell/>
              </table:table-row>
            </table:table>
            <table:table table:name="二">
              <table:table-row><table:table-cell table:number-columns-spanned="4"><table:table><table:table-row><table:table-cell table:number-columns-spanned="9"/></table:table-row></table:table></table:table-cell></table:table-row>
            </table:table>
        </office:spreadsheet></office:body></office:document-content>"#;
        let regions = merged_regions(xml.as_bytes());
        assert_eq!(
            regions["A & B"],
            [Dimensions {
                start: (2, 2),
                end: (4, 3)
            }]
        );
        assert_eq!(
            regions["二"],
            [Dimensions {
                start: (0, 0),
                end: (0, 3)
            }],
            "the table nested in a cell is not the sheet's"
        );
    }
}
