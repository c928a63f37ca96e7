//! Table rows → lines of a table, shared by CSV and the workbooks.
//!
//! A table is written as it reads: the header row once, then one line per row with its
//! cells between ` | `. The splitter later groups whole rows into chunks and repeats the
//! header at the top of each (see `split`), so a chunk reads like a piece of the table and
//! every value still has its column's name above it. [`TableLines`] records which lines
//! are the header and which source row each line is, for the chunk's label.
//!
//! Rows arrive one at a time ([`TableWriter::push`]), so a CSV of hundreds of thousands of
//! rows is written straight into one string and never held as cells.

use super::TableLines;

/// Writes a table's rows into text and [`TableLines`], one row at a time.
///
/// The header is the first row with at least two non-empty cells; rows above it (a merged
/// title, a note) are title lines that head the table with it. A table with no such row is
/// a list, one value per line, without a header.
#[derive(Debug, Default)]
pub(crate) struct TableWriter {
    text: String,
    rows: Vec<u32>,
    /// Lines up to and including the header, once there is one.
    header_lines: Option<usize>,
    cell: String,
}

impl TableWriter {
    /// An empty table whose text will be about `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            text: String::with_capacity(capacity),
            ..Self::default()
        }
    }

    /// Add source row `number` (1-based), its cells in column order. A row without values
    /// is skipped.
    pub(crate) fn push<'c>(&mut self, number: u32, cells: impl IntoIterator<Item = &'c str>) {
        let start = self.text.len();
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let body = self.text.len();
        let mut filled = 0;
        if self.header_lines.is_some() {
            // A data row keeps a slot for each empty cell before a value, so every value
            // stays under its column (`a | | c`); empty cells at the end are dropped.
            let mut empty_run = 0;
            for cell in cells {
                self.cell.clear();
                write_cell(&mut self.cell, cell);
                if self.cell.is_empty() {
                    empty_run += 1;
                    continue;
                }
                if filled > 0 {
                    self.text.push_str(" |");
                }
                for _ in 0..empty_run {
                    let separator = if self.text.len() == body { "|" } else { " |" };
                    self.text.push_str(separator);
                }
                if self.text.len() > body {
                    self.text.push(' ');
                }
                self.text.push_str(&self.cell);
                filled += 1;
                empty_run = 0;
            }
        } else {
            // Above the header (or in a list) only the values count: a merged title is one
            // value wherever its cell is.
            let mut values = Vec::new();
            for cell in cells {
                let mut value = String::new();
                write_cell(&mut value, cell);
                if !value.is_empty() {
                    values.push(value);
                }
            }
            filled = values.len();
            let separator = if filled >= 2 { " | " } else { " " };
            self.text.push_str(&values.join(separator));
            if filled >= 2 {
                self.header_lines = Some(self.rows.len() + 1);
            }
        }
        if filled == 0 {
            self.text.truncate(start);
            return;
        }
        self.rows.push(number);
    }

    /// The text and its layout.
    pub(crate) fn finish(self) -> (String, TableLines) {
        let lines = TableLines {
            header_lines: self.header_lines.unwrap_or(0),
            rows: self.rows,
        };
        (self.text, lines)
    }
}

/// The index of the header among `rows`: the first with at least two non-empty cells, as
/// [`TableWriter`] decides it (the workbooks need it before writing, to spread merged
/// cells from the header down).
pub(crate) fn header_row(rows: &[Vec<String>]) -> Option<usize> {
    rows.iter()
        .position(|row| row.iter().filter(|c| has_value(c)).count() >= 2)
}

/// Whether a cell writes as something: [`write_cell`] trims whitespace and line breaks.
fn has_value(cell: &str) -> bool {
    !cell.trim().is_empty()
}

/// A cell's text on one line (line breaks become spaces, ends trimmed), with `|` escaped
/// so that it does not read as a column boundary.
fn write_cell(out: &mut String, cell: &str) {
    let parts = cell
        .split(['\r', '\n', '\u{0b}', '\u{0c}'])
        .map(str::trim)
        .filter(|part| !part.is_empty());
    for (i, part) in parts.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if part.contains('|') {
            out.push_str(&part.replace('|', "\\|"));
        } else {
            out.push_str(part);
        }
    }
}

/// A cell's text on one line: embedded line breaks become spaces, ends trimmed (for the
/// tables of documents, which write their own rows).
pub(crate) fn one_line(cell: &str) -> String {
    cell.split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Render whole rows (numbered from `first_row`) at once: what [`TableWriter`] does row by row.
#[cfg(test)]
pub(crate) fn render(first_row: u32, rows: &[Vec<String>]) -> (String, TableLines) {
    let mut writer = TableWriter::default();
    for (n, row) in (first_row..).zip(rows) {
        writer.push(n, row.iter().map(String::as_str));
    }
    writer.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn table(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn rows_become_lines_under_the_header() {
        let t = table(&[
            &["问题", "答案", "分类"],
            &["如何重置密码？", "点击\r\n“忘记密码”", ""],
            &["", "", ""],
            &["a", "b|c", "c", "extra"],
            &["", "", "仅分类"],
        ]);
        let (text, lines) = render(1, &t);
        assert_eq!(
            text,
            "问题 | 答案 | 分类\n如何重置密码？ | 点击 “忘记密码”\na | b\\|c | c | extra\n| | 仅分类"
        );
        assert_eq!(lines.header_lines, 1);
        assert_eq!(lines.rows, [1, 2, 4, 5], "the empty row 3 has no line");
        assert!(lines.fits(&text));
    }

    #[test]
    fn a_title_row_above_the_header_heads_the_table() {
        let t = table(&[
            &["2024 销售明细", "", ""],
            &["", "", ""],
            &["日期", "产品", "金额"],
            &["2024-01-08", "音箱", "=D3*E3"],
        ]);
        let (text, lines) = render(1, &t);
        assert_eq!(
            text,
            "2024 销售明细\n日期 | 产品 | 金额\n2024-01-08 | 音箱 | =D3*E3"
        );
        assert_eq!((lines.header_lines, lines.rows), (2, vec![1, 3, 4]));
    }

    #[test]
    fn single_column_is_a_list_and_header_only_is_kept() {
        let (text, lines) = render(1, &table(&[&["说明"], &["", "第一条"]]));
        assert_eq!(text, "说明\n第一条");
        assert_eq!((lines.header_lines, lines.rows), (0, vec![1, 2]));
        let (text, lines) = render(7, &table(&[&["a", "b"]]));
        assert_eq!((text.as_str(), lines.header_lines), ("a | b", 1));
        assert_eq!(render(1, &[]).0, "");
    }
}
