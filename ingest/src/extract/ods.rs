//! ODS (OpenDocument spreadsheet, LibreOffice Calc): the zip is checked for bombs, then
//! read by calamine like XLSX (see `spreadsheet`).

use std::io::Cursor;

use calamine::{Ods, OdsError};

use super::spreadsheet::{corrupt, sheet_sections};
use super::{DocKind, ExtractLimits, Extracted, ooxml};
use crate::{Error, Result};

/// One section per visible sheet, titled with the sheet name; the title from `meta.xml`.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let mut archive = ooxml::open(bytes, "ods", limits)?;
    // calamine inflates whole parts with no cap of its own.
    ooxml::check_inflated_size(&mut archive, "ods", limits)?;
    let title = ooxml::part_title(&mut archive, "meta.xml", "ods", limits);
    let mut workbook: Ods<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| match e {
            OdsError::Password => Error::Encrypted,
            other => corrupt("ods", &other),
        })?;
    Ok(Extracted {
        kind: DocKind::Ods,
        // calamine reads an ODS's covered cells but not the spans that cover them, so its
        // merged cells keep their value in the first cell only.
        sections: sheet_sections(&mut workbook, "ods", |_, _| Vec::new())?,
        page_count: None,
        title,
    })
}
