//! Workbooks (XLSX, XLS, ODS) through calamine: each visible worksheet → one section
//! written as a table (see `rows`), titled with the sheet name, its rows numbered as the
//! sheet numbers them.
//!
//! Files written by scripts (openpyxl) carry formulas without cached values; a reader that
//! trusts cached values alone shows those cells as empty, so the formula text is used instead.
//! A merged cell's value belongs to every row and column it spans (a region "华东" over five
//! rows says where each of them is), so it is copied into each cell of the region, from the
//! header down: a title merged across the top stays one line. A header row whose regions
//! group several columns over a row of column names is then joined with that row into one
//! header (`销售额 / 一季度`). The container checks (zip
//! bombs) are the caller's: calamine has no caps of its own.

use calamine::{Data, Dimensions, Range, Reader, SheetType, SheetVisible};

use super::Section;
use super::rows::{TableWriter, header_row, merged_two_row_header};
use crate::{Error, Result};

/// One section per visible worksheet, in workbook order; `kind` names the format in errors.
/// `merged` gives a sheet's merged regions (none where the format's reader has none).
pub(super) fn sheet_sections<RS, R>(
    workbook: &mut R,
    kind: &str,
    mut merged: impl FnMut(&mut R, &str) -> Vec<Dimensions>,
) -> Result<Vec<Section>>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS>,
    R::Error: std::fmt::Display,
{
    let sheets: Vec<String> = workbook
        .sheets_metadata()
        .iter()
        .filter(|s| s.typ == SheetType::WorkSheet && s.visible == SheetVisible::Visible)
        .map(|s| s.name.clone())
        .collect();
    let mut sections = Vec::with_capacity(sheets.len());
    for name in sheets {
        let values = workbook
            .worksheet_range(&name)
            .map_err(|e| corrupt(kind, &e))?;
        // Formulas are a fallback only; a sheet whose formulas can't be read still has values.
        let formulas = workbook.worksheet_formula(&name).unwrap_or_default();
        let Some(mut grid) = sheet_rows(&values, &formulas) else {
            continue;
        };
        // The calamine ranges are a second copy of the sheet: gone before it is written out.
        drop((values, formulas));
        let regions = merged(workbook, &name);
        grid.spread_merged(&regions);
        grid.join_two_row_header(&regions);
        let mut table = TableWriter::default();
        for (number, row) in (grid.top.saturating_add(1)..).zip(&grid.rows) {
            table.push(number, row.iter().map(String::as_str));
        }
        let (text, lines) = table.finish();
        sections.push(Section {
            page: None,
            title: Some(name),
            text,
            ocr: false,
            table: Some(lines),
        });
    }
    Ok(sections)
}

/// A sheet's cells as text: `rows[0][0]` is the cell at (`top`, `left`), 0-based.
#[derive(Debug, PartialEq)]
struct Grid {
    top: u32,
    left: u32,
    rows: Vec<Vec<String>>,
}

impl Grid {
    /// Copy each merged region's value (its top-left cell's) into the empty cells it
    /// covers, in the header row and below. Regions are clipped to the grid; one whose
    /// top-left cell lies outside it has no value here.
    fn spread_merged(&mut self, regions: &[Dimensions]) {
        let Some(header) = header_row(&self.rows) else {
            return;
        };
        for region in regions {
            let at = |(row, col): (u32, u32)| {
                let row = usize::try_from(row.checked_sub(self.top)?).ok()?;
                let col = usize::try_from(col.checked_sub(self.left)?).ok()?;
                Some((row, col))
            };
            let (Some((r0, c0)), Some((r1, c1))) = (at(region.start), at(region.end)) else {
                continue;
            };
            let Some(value) = self.rows.get(r0).and_then(|r| r.get(c0)).cloned() else {
                continue;
            };
            if value.trim().is_empty() {
                continue;
            }
            // `take`/`skip` rather than slicing: a region may be malformed (its end
            // before its start) and must not panic.
            for row in self.rows.iter_mut().take(r1 + 1).skip(r0.max(header)) {
                for cell in row.iter_mut().take(c1 + 1).skip(c0) {
                    if cell.trim().is_empty() {
                        cell.clone_from(&value);
                    }
                }
            }
        }
    }
}

impl Grid {
    /// Join a header of group names over a row of column names into one header row
    /// (销售额 merged over 一季度 and 二季度 → "销售额 / 一季度", "销售额 / 二季度"; see
    /// `rows::merged_two_row_header`), told by the header row's regions that span several
    /// columns. Runs after [`Grid::spread_merged`], so each group's name is in all of its
    /// columns; the row of names is emptied and so never written as data.
    fn join_two_row_header(&mut self, regions: &[Dimensions]) {
        let Some(header) = header_row(&self.rows) else {
            return;
        };
        let Some(at) = u32::try_from(header)
            .ok()
            .and_then(|h| self.top.checked_add(h))
        else {
            return;
        };
        let spans: Vec<(usize, usize)> = regions
            .iter()
            .filter(|r| r.start.0 == at && r.end.0 == at && r.end.1 > r.start.1)
            .filter_map(|r| {
                let c0 = usize::try_from(r.start.1.checked_sub(self.left)?).ok()?;
                let c1 = usize::try_from(r.end.1.checked_sub(self.left)?).ok()?;
                Some((c0, c1))
            })
            .collect();
        if spans.is_empty() {
            return;
        }
        let (head, rest) = self.rows.split_at_mut(header + 1);
        let (Some(groups), Some(names)) = (head.last_mut(), rest.first_mut()) else {
            return;
        };
        if let Some(combined) = merged_two_row_header(groups, names, &spans) {
            *groups = combined;
            names.iter_mut().for_each(String::clear);
        }
    }
}

/// calamine's error for a workbook of this kind, as [`Error::Corrupt`].
pub(super) fn corrupt(kind: &str, e: &impl std::fmt::Display) -> Error {
    Error::Corrupt {
        kind: kind.to_owned(),
        detail: e.to_string(),
    }
}

/// The cells as text, over the union of the value and formula ranges (a column of
/// uncalculated formulas may lie outside the value range); `None` for an empty sheet.
fn sheet_rows(values: &Range<Data>, formulas: &Range<String>) -> Option<Grid> {
    let bounds = [
        values.start().zip(values.end()),
        formulas.start().zip(formulas.end()),
    ];
    let ((top, left), (bottom, right)) =
        bounds.into_iter().flatten().reduce(|(s1, e1), (s2, e2)| {
            (
                (s1.0.min(s2.0), s1.1.min(s2.1)),
                (e1.0.max(e2.0), e1.1.max(e2.1)),
            )
        })?;
    let rows = (top..=bottom)
        .map(|row| {
            (left..=right)
                .map(|col| {
                    let value = values
                        .get_value((row, col))
                        .map(cell_text)
                        .unwrap_or_default();
                    if !value.is_empty() {
                        return value;
                    }
                    match formulas.get_value((row, col)).map(|f| f.trim()) {
                        Some(f) if !f.is_empty() => format!("={}", f.trim_start_matches('=')),
                        _ => String::new(),
                    }
                })
                .collect()
        })
        .collect();
    Some(Grid { top, left, rows })
}

/// A cell as people read it: integers without `.0`, dates as ISO dates.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Data::Error(e) => e.to_string(),
        Data::DateTime(dt) if dt.is_datetime() => {
            let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
            if (h, mi, s) == (0, 0, 0) {
                format!("{y:04}-{mo:02}-{d:02}")
            } else if dt.as_f64() < 1.0 {
                format!("{h:02}:{mi:02}:{s:02}")
            } else {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
            }
        }
        Data::DateTime(duration) => {
            let seconds = (duration.as_f64() * 86_400.0).round() as i64;
            format!(
                "{}:{:02}:{:02}",
                seconds / 3600,
                seconds % 3600 / 60,
                seconds % 60
            )
        }
    }
}

fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use calamine::{ExcelDateTime, ExcelDateTimeType};

    use super::*;

    #[test]
    fn cells_read_like_a_person_would() {
        assert_eq!(cell_text(&Data::Float(299.0)), "299");
        assert_eq!(cell_text(&Data::Float(0.25)), "0.25");
        assert_eq!(cell_text(&Data::Int(-3)), "-3");
        assert_eq!(cell_text(&Data::Bool(true)), "TRUE");
        let date = ExcelDateTime::new(45299.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&Data::DateTime(date)), "2024-01-08");
        let stamp = ExcelDateTime::new(45943.5, ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&Data::DateTime(stamp)), "2025-10-13 12:00:00");
        let span = ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false);
        assert_eq!(cell_text(&Data::DateTime(span)), "36:00:00");
    }

    #[test]
    fn formulas_fill_cells_without_values() {
        let mut values = Range::new((0, 0), (1, 1));
        values.set_value((0, 0), Data::String("数量".into()));
        values.set_value((0, 1), Data::String("金额".into()));
        values.set_value((1, 0), Data::Int(3));
        let mut formulas = Range::new((1, 1), (1, 2));
        formulas.set_value((1, 1), "A2*2".to_owned());
        formulas.set_value((1, 2), "SUM(B2)".to_owned());
        let grid = sheet_rows(&values, &formulas).unwrap();
        assert_eq!((grid.top, grid.left), (0, 0));
        assert_eq!(
            grid.rows,
            vec![vec!["数量", "金额", ""], vec!["3", "=A2*2", "=SUM(B2)"]]
        );
    }
}
