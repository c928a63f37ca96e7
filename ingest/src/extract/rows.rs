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
/// a list, one value per line, without a header. A header of group names over a row of
/// column names (see [`two_row_header`]) becomes one header line naming each column fully.
#[derive(Debug, Default)]
pub(crate) struct TableWriter {
    text: String,
    rows: Vec<u32>,
    /// Lines up to and including the header, once there is one.
    header_lines: Option<usize>,
    /// The header's cells and where its line starts in `text`, until the next row with
    /// values has said whether it is the second row of a two-row header.
    pending_header: Option<(usize, Vec<String>)>,
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
        if let Some((header_start, header)) = self.pending_header.take() {
            // Only the row right under the header can finish it; it is read whole (one row,
            // once per table) to compare it with the header.
            let raw: Vec<&str> = cells.into_iter().collect();
            let row: Vec<String> = raw
                .iter()
                .map(|cell| {
                    let mut out = String::new();
                    write_cell(&mut out, cell);
                    out
                })
                .collect();
            if row.iter().all(String::is_empty) {
                self.pending_header = Some((header_start, header));
                return;
            }
            if let Some(combined) = two_row_header(&header, &row) {
                self.text.truncate(header_start);
                let names: Vec<&str> = combined
                    .iter()
                    .map(String::as_str)
                    .filter(|c| !c.is_empty())
                    .collect();
                self.text.push_str(&names.join(" | "));
                return;
            }
            self.push(number, raw);
            return;
        }
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
            let row: Vec<String> = cells
                .into_iter()
                .map(|cell| {
                    let mut value = String::new();
                    write_cell(&mut value, cell);
                    value
                })
                .collect();
            let values: Vec<&str> = row
                .iter()
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .collect();
            filled = values.len();
            let separator = if filled >= 2 { " | " } else { " " };
            self.text.push_str(&values.join(separator));
            if filled >= 2 {
                self.header_lines = Some(self.rows.len() + 1);
                self.pending_header = Some((body, row));
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

/// The header of a two-row header, one name per column, or `None` where `names` (the row
/// under `groups`) is not the second row of one.
///
/// Reports often head a table with two rows: group names whose cells are merged across
/// their columns (销售额 over 一季度 and 二季度), above the column names, with a column
/// that needs no group (地区) merged down both rows. Written as they come, the second row
/// would read as data and no column would say it holds 销售额. Exported to CSV (or read
/// where the merged regions are lost) the group name is in its first column only, so the
/// shape is recognised from the cells alone, strictly, to leave ordinary tables alone:
///
/// * a group is a name in `groups` followed by empty cells, under which `names` has a
///   value in every column (the first included);
/// * every other column with a name in `groups` has nothing under it in `names` (merged
///   down both rows) or the same name again (the merged value copied);
/// * there is at least one group, and no value in `names` reads as a number or a date
///   (those are a first row of data).
///
/// Each column is then named "group / name"; columns outside groups keep their one name.
pub(crate) fn two_row_header(groups: &[String], names: &[String]) -> Option<Vec<String>> {
    let width = groups.len().max(names.len());
    if names.iter().any(|n| looks_numeric(n)) {
        return None;
    }
    let mut combined = Vec::with_capacity(width);
    let mut group: Option<&str> = None;
    let mut groups_found = 0;
    for c in 0..width {
        let (top, below) = (cell(groups, c), cell(names, c));
        let starts_group = !top.is_empty()
            && !below.is_empty()
            && below != top
            && cell(groups, c + 1).is_empty()
            && !cell(names, c + 1).is_empty();
        if starts_group {
            groups_found += 1;
            group = Some(top);
            combined.push(format!("{top} / {below}"));
        } else if top.is_empty() {
            // A column inside a group: the group's name is in its first column only.
            let open = group?;
            if below.is_empty() {
                return None;
            }
            combined.push(format!("{open} / {below}"));
        } else {
            if !below.is_empty() && below != top {
                return None;
            }
            group = None;
            combined.push(top.to_owned());
        }
    }
    (groups_found > 0).then_some(combined)
}

/// The header of a two-row header whose merged regions are known (the workbooks, with
/// the merged values already copied into every cell they cover): `groups` has a group's
/// name in each of its columns, `names` the column names under it. `spans` are the groups'
/// column ranges, 0-based and inclusive: the header row's regions that cover more than one
/// column. `None` where `names` is not a row of column names under those groups.
pub(crate) fn merged_two_row_header(
    groups: &[String],
    names: &[String],
    spans: &[(usize, usize)],
) -> Option<Vec<String>> {
    if names.iter().any(|n| looks_numeric(n)) {
        return None;
    }
    // Under a group, at least two different column names (one name under a merged title
    // over a data row's cells is not a group of columns).
    let grouped = spans.iter().any(|&(c0, c1)| {
        let mut under: Vec<&str> = (c0..=c1)
            .map(|c| cell(names, c))
            .filter(|n| !n.is_empty())
            .collect();
        under.dedup();
        under.len() >= 2 && (c0..=c1).all(|c| cell(groups, c) != cell(names, c))
    });
    if !grouped {
        return None;
    }
    let width = groups.len().max(names.len());
    Some(
        (0..width)
            .map(|c| match (cell(groups, c), cell(names, c)) {
                (top, below) if below.is_empty() || top == below => top.to_owned(),
                ("", below) => below.to_owned(),
                (top, below) => format!("{top} / {below}"),
            })
            .collect(),
    )
}

/// Column `c` of a row, trimmed; "" past its end.
fn cell(row: &[String], c: usize) -> &str {
    row.get(c).map_or("", |v| v.trim())
}

/// Whether a cell reads as a number, an amount or a date (`1,200`, `12.5%`, `2024-01-08`,
/// `¥299`): a value, never a column's name.
fn looks_numeric(cell: &str) -> bool {
    let cell = cell.trim();
    cell.chars().any(|c| c.is_ascii_digit())
        && cell
            .chars()
            .all(|c| c.is_ascii_digit() || " .,-+%:/¥￥$".contains(c))
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

    fn cells(row: &[&str]) -> Vec<String> {
        row.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn a_two_row_header_is_told_from_a_header_over_data() {
        let groups = cells(&["区域", "销售额", "", "利润", ""]);
        assert_eq!(
            two_row_header(
                &groups,
                &cells(&["", "一季度", "二季度", "一季度", "二季度"])
            ),
            Some(cells(&[
                "区域",
                "销售额 / 一季度",
                "销售额 / 二季度",
                "利润 / 一季度",
                "利润 / 二季度"
            ]))
        );
        // A merged value copied down (区域 under 区域) is the same column.
        assert!(two_row_header(&groups, &cells(&["区域", "Q1", "Q2", "Q1", "Q2"])).is_some());
        // Numbers or dates under the header are data.
        assert_eq!(
            two_row_header(&groups, &cells(&["", "1200", "1350", "180", "210"])),
            None
        );
        assert_eq!(
            two_row_header(&groups, &cells(&["", "2024-01-08", "音箱", "a", "b"])),
            None
        );
        // A value under a column outside any group is a data row.
        assert_eq!(
            two_row_header(
                &groups,
                &cells(&["华东", "一季度", "二季度", "一季度", "二季度"])
            ),
            None
        );
        // A header without gaps has no groups.
        assert_eq!(
            two_row_header(&cells(&["问题", "答案"]), &cells(&["如何登录", "点击登录"])),
            None
        );
        // A gap the row below leaves empty too is not a group.
        assert_eq!(
            two_row_header(&groups, &cells(&["", "一季度", "", "一季度", "二季度"])),
            None
        );
    }

    #[test]
    fn merged_groups_need_two_names_under_them() {
        let groups = cells(&["区域", "销售额", "销售额"]);
        let spans = [(1, 2)];
        assert_eq!(
            merged_two_row_header(&groups, &cells(&["区域", "一季度", "二季度"]), &spans),
            Some(cells(&["区域", "销售额 / 一季度", "销售额 / 二季度"]))
        );
        assert_eq!(
            merged_two_row_header(&groups, &cells(&["华东", "1200", "1350"]), &spans),
            None
        );
        assert_eq!(
            merged_two_row_header(&groups, &cells(&["华东", "缺货", ""]), &spans),
            None,
            "one value under the group is a data row"
        );
    }

    #[test]
    fn the_writer_joins_a_two_row_header_into_one_line() {
        let t = table(&[
            &["报表", "", ""],
            &["区域", "销售额", ""],
            &["", "", ""],
            &["", "一季度", "二季度"],
            &["华东", "1|2", "3"],
        ]);
        let (text, lines) = render(1, &t);
        assert_eq!(
            text,
            "报表\n区域 | 销售额 / 一季度 | 销售额 / 二季度\n华东 | 1\\|2 | 3"
        );
        assert!(lines.fits(&text));
        assert_eq!((lines.header_lines, lines.rows), (2, vec![1, 2, 5]));
    }
}
