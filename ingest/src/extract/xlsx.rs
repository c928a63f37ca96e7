//! XLSX: the zip is checked for bombs, then read by calamine (see `spreadsheet`).

use std::io::Cursor;

use calamine::Xlsx;

use super::spreadsheet::{corrupt, sheet_sections};
use super::{DocKind, ExtractLimits, Extracted, ooxml};
use crate::Result;

/// One section per visible worksheet, titled with the sheet name.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let mut archive = ooxml::open(bytes, "xlsx", limits)?;
    // calamine inflates whole parts with no cap of its own.
    ooxml::check_inflated_size(&mut archive, "xlsx", limits)?;
    let title = ooxml::core_title(&mut archive, "xlsx", limits);
    let mut workbook: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| corrupt("xlsx", &e))?;
    Ok(Extracted {
        kind: DocKind::Xlsx,
        // A sheet whose merged regions can't be read still has its values.
        sections: sheet_sections(&mut workbook, "xlsx", |workbook, name| {
            workbook
                .worksheet_merge_cells(name)
                .and_then(std::result::Result::ok)
                .unwrap_or_default()
        })?,
        page_count: None,
        title,
    })
}
