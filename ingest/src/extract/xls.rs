//! XLS (Excel 97–2003, a BIFF8 workbook in an OLE compound file), read by calamine like
//! XLSX (see `spreadsheet`). There is no zip to check: an XLS is no bigger than the upload.

use std::io::Cursor;

use calamine::{Xls, XlsError};

use super::spreadsheet::{corrupt, sheet_sections};
use super::{DocKind, Extracted};
use crate::{Error, Result};

/// One section per visible worksheet, titled with the sheet name.
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted> {
    super::cfb_check::check(bytes, "xls")?;
    let mut workbook: Xls<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| match e {
            XlsError::Password => Error::Encrypted,
            other => corrupt("xls", &other),
        })?;
    Ok(Extracted {
        kind: DocKind::Xls,
        sections: sheet_sections(&mut workbook, "xls", |workbook, name| {
            workbook.worksheet_merge_cells(name).unwrap_or_default()
        })?,
        page_count: None,
        title: None,
    })
}
