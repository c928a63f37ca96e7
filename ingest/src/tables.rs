//! Spreadsheets as typed tables: what a bot's `table_query` tool loads into SQL to count,
//! filter, sum and average exactly, where passages give the model ten rows of thousands.
//!
//! A table is read from its section as the extractor wrote it (one line per row, cells
//! between ` | `, the header line known from [`TableLines`]), after cleaning: the same
//! rows the chunks hold. Every sheet and CSV with a header becomes one table; a list
//! without a header does not.
//!
//! Column types are inferred from the values, strictly, so that a sum never silently
//! skips a cell: a column is INTEGER or REAL only when every non-empty cell reads as a
//! number (`1,234.5`, `¥300`, `12%`), and TEXT otherwise. Codes with a leading zero stay
//! text; a formula without its value (`=D3*E3`) is empty; a row of the sheet's own totals
//! (合计, Total) is left out, so that a sum does not count it twice. Dates (`2024-03-05`,
//! `2024/3/5`, `2024年3月5日`) are written as ISO text, which SQL compares and cuts
//! (`strftime`, `LIKE '2024-03%'`) correctly.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::{Extracted, Section};

/// A column's SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Whole numbers.
    Integer,
    /// Numbers with fractions.
    Real,
    /// Anything else (dates too, as ISO text).
    Text,
}

impl ColumnType {
    /// The SQL type name.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Integer => "INTEGER",
            Self::Real => "REAL",
            Self::Text => "TEXT",
        }
    }
}

/// What a column's values are, beyond their type: told to the model so it writes the
/// right comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnNote {
    /// ISO dates (`YYYY-MM-DD`), as text.
    Date,
    /// Percentages, stored as the number before the `%` (12.5 for `12.5%`).
    Percent,
}

/// One column of a [`Table`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Its name as an SQL identifier (letters, digits and `_`; from the header).
    pub name: String,
    /// The header's own words, where the name had to change them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// What the values are, where the type does not say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<ColumnNote>,
}

/// A sheet or CSV file as a table: columns from its header, typed rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Its name as an SQL identifier (the sheet's, or the file's without extension).
    pub name: String,
    /// The sheet's own name, or the file's.
    pub source: String,
    /// Title lines above the header (a merged title), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows: per row one value per column (null, a number or text).
    pub rows: Vec<Vec<Value>>,
}

/// The tables of a document: one per table section with a header, in document order,
/// as long as all of them hold at most `max_cells` cells together (beyond that the
/// document has none: a part of a table would give wrong sums). `document_name` names a
/// table whose section has no title (a CSV).
pub fn tables_of(extracted: &Extracted, document_name: &str, max_cells: usize) -> Vec<Table> {
    let tables: Vec<Table> = extracted
        .sections
        .iter()
        .filter_map(|section| table_of(section, document_name))
        .collect();
    let cells: usize = tables.iter().map(|t| t.rows.len() * t.columns.len()).sum();
    if cells > max_cells {
        tracing::warn!(
            cells,
            max_cells,
            "the document's tables are too large to load for table queries (ingest.max_table_cells)"
        );
        return Vec::new();
    }
    tables
}

fn table_of(section: &Section, document_name: &str) -> Option<Table> {
    let layout = section.table.as_ref()?;
    if layout.header_lines == 0 {
        return None;
    }
    let lines: Vec<&str> = section.text.split('\n').collect();
    let header = split_cells(lines.get(layout.header_lines - 1)?);
    let title = lines[..layout.header_lines - 1].join(" ");
    let rows: Vec<Vec<String>> = lines[layout.header_lines..]
        .iter()
        .map(|line| split_cells(line))
        .filter(|cells| !is_total_row(cells))
        .map(|cells| cells.into_iter().map(without_formula).collect())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let width = rows
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(header.len());
    let names = identifiers(
        (0..width).map(|i| header.get(i).map_or("", String::as_str)),
        "列",
    );
    let mut columns = Vec::with_capacity(width);
    let mut typed: Vec<Vec<Value>> = vec![Vec::with_capacity(width); rows.len()];
    for (i, name) in names.into_iter().enumerate() {
        let cells: Vec<&str> = rows
            .iter()
            .map(|r| r.get(i).map_or("", String::as_str))
            .collect();
        let (kind, note, values) = type_column(&cells);
        let header_text = header.get(i).cloned().unwrap_or_default();
        columns.push(Column {
            header: (!header_text.is_empty() && header_text != name).then_some(header_text),
            name,
            kind,
            note,
        });
        for (row, value) in typed.iter_mut().zip(values) {
            row.push(value);
        }
    }
    let source = section
        .title
        .clone()
        .unwrap_or_else(|| stem(document_name).to_string());
    let name = identifiers(std::iter::once(source.as_str()), "表")
        .pop()
        .unwrap_or_else(|| "表".to_string());
    Some(Table {
        name,
        source,
        title: (!title.trim().is_empty()).then(|| title.trim().to_string()),
        columns,
        rows: typed,
    })
}

/// Whether a row is a sheet's own total (合计, 小计, Total…): summed again by a query, it
/// would count everything twice.
fn is_total_row(cells: &[String]) -> bool {
    const TOTALS: [&str; 8] = [
        "合计",
        "总计",
        "小计",
        "总和",
        "共计",
        "total",
        "subtotal",
        "grand total",
    ];
    let Some(first) = cells.iter().find(|c| !c.is_empty()) else {
        return false;
    };
    let first: String = first
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, ':' | '：'))
        .collect::<String>()
        .to_lowercase();
    TOTALS.iter().any(|t| t.replace(' ', "") == first)
}

/// A formula without its value (`=D3*E3`, as scripts write workbooks) is no value: empty.
fn without_formula(cell: String) -> String {
    if cell.starts_with('=') {
        String::new()
    } else {
        cell
    }
}

/// A file name without its extension.
fn stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rfind('.') {
        Some(dot) if dot > 0 => &base[..dot],
        _ => base,
    }
}

/// A row line's cells: split at ` | ` separators, `\|` read back as `|`.
fn split_cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

/// Names as SQL identifiers, unique among themselves: each run of characters other than
/// letters and digits becomes `_`; an empty name is `{fallback}{n}` (1-based), one that
/// starts with a digit gets the fallback before it, and a repeated one `_2`, `_3`, ….
pub fn identifiers<'a>(names: impl IntoIterator<Item = &'a str>, fallback: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, raw) in names.into_iter().enumerate() {
        let mut name = String::new();
        for c in raw.trim().chars() {
            if c.is_alphanumeric() {
                name.push(c);
            } else if !name.is_empty() && !name.ends_with('_') {
                name.push('_');
            }
        }
        let name = name.trim_end_matches('_').to_string();
        let name = if name.is_empty() {
            format!("{fallback}{}", i + 1)
        } else if name.starts_with(|c: char| c.is_ascii_digit()) {
            format!("{fallback}{name}")
        } else {
            name
        };
        let mut unique = name.clone();
        let mut n = 2;
        while out.iter().any(|o| o.eq_ignore_ascii_case(&unique)) {
            unique = format!("{name}_{n}");
            n += 1;
        }
        out.push(unique);
    }
    out
}

/// A column's type, note and values from its cells.
fn type_column(cells: &[&str]) -> (ColumnType, Option<ColumnNote>, Vec<Value>) {
    let filled: Vec<&str> = cells.iter().copied().filter(|c| !c.is_empty()).collect();
    let text = |cells: &[&str]| -> Vec<Value> {
        cells
            .iter()
            .map(|c| {
                if c.is_empty() {
                    Value::Null
                } else {
                    Value::String((*c).to_string())
                }
            })
            .collect()
    };
    if filled.is_empty() {
        return (ColumnType::Text, None, text(cells));
    }
    if filled.iter().all(|c| iso_date(c).is_some()) {
        let values = cells
            .iter()
            .map(|c| iso_date(c).map_or(Value::Null, Value::String))
            .collect();
        return (ColumnType::Text, Some(ColumnNote::Date), values);
    }
    let percent = filled.iter().all(|c| c.ends_with(['%', '％']));
    let numbers: Option<Vec<Number>> = filled
        .iter()
        .map(|c| {
            let c = if percent {
                c.trim_end_matches(['%', '％']).trim_end()
            } else {
                c
            };
            number(c)
        })
        .collect();
    let Some(numbers) = numbers else {
        return (ColumnType::Text, None, text(cells));
    };
    let integer = numbers.iter().all(|n| matches!(n, Number::Integer(_)));
    let mut numbers = numbers.into_iter();
    let values = cells
        .iter()
        .map(|c| {
            if c.is_empty() {
                return Value::Null;
            }
            match numbers.next() {
                Some(Number::Integer(i)) if integer => Value::from(i),
                Some(Number::Integer(i)) => Value::from(i as f64),
                Some(Number::Real(f)) => Value::from(f),
                None => Value::Null,
            }
        })
        .collect();
    let kind = if integer {
        ColumnType::Integer
    } else {
        ColumnType::Real
    };
    (kind, percent.then_some(ColumnNote::Percent), values)
}

#[derive(Debug, Clone, Copy)]
enum Number {
    Integer(i64),
    Real(f64),
}

/// A cell as a number: `-1,234.50`, `¥300`, `1.5e3`; not a code with a leading zero
/// (`007`), not a formula.
fn number(cell: &str) -> Option<Number> {
    let cell = cell.trim();
    let (negative, rest) = match cell.strip_prefix(['-', '−']) {
        Some(rest) => (true, rest),
        None => (false, cell),
    };
    let rest = rest.trim_start_matches(['¥', '￥', '$', '€', '£']).trim();
    let grouped = rest.contains(',');
    let digits: String = rest.chars().filter(|&c| c != ',').collect();
    if grouped && !thousands_grouped(rest) {
        return None;
    }
    let integer_part = digits.split(['.', 'e', 'E']).next().unwrap_or_default();
    if integer_part.is_empty()
        || !integer_part.bytes().all(|b| b.is_ascii_digit())
        || (integer_part.len() > 1 && integer_part.starts_with('0'))
    {
        return None;
    }
    let sign = if negative { "-" } else { "" };
    if let Ok(i) = format!("{sign}{digits}").parse::<i64>() {
        return Some(Number::Integer(i));
    }
    let f = format!("{sign}{digits}").parse::<f64>().ok()?;
    f.is_finite().then_some(Number::Real(f))
}

/// Whether the commas of `text` (a number's digits) group thousands: `1,234,567.5`.
fn thousands_grouped(text: &str) -> bool {
    let whole = text.split('.').next().unwrap_or_default();
    let mut groups = whole.split(',');
    let first = groups.next().unwrap_or_default();
    (1..=3).contains(&first.len()) && groups.all(|g| g.len() == 3)
}

/// A date cell as ISO `YYYY-MM-DD`: `2024-03-05`, `2024/3/5`, `2024.3.5`, `2024年3月5日`
/// (a time after it, as calamine writes date-times, is dropped only when it is midnight).
fn iso_date(cell: &str) -> Option<String> {
    let cell = cell.trim();
    let (date, time) = match cell.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (cell, None),
    };
    if time.is_some_and(|t| !t.trim_start_matches(['0', ':']).is_empty()) {
        return None;
    }
    let parts: Vec<&str> = date
        .trim_end_matches('日')
        .split(['-', '/', '.', '年', '月'])
        .collect();
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if y.len() != 4 || !all_digits(y) || m.len() > 2 || d.len() > 2 {
        return None;
    }
    if !all_digits(m) || !all_digits(d) {
        return None;
    }
    let (y, m, d): (i32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    chrono::NaiveDate::from_ymd_opt(y, m, d).map(|date| date.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::extract::{DocKind, TableLines};
    use serde_json::json;

    fn sheet(title: Option<&str>, text: &str, header_lines: usize) -> Extracted {
        let rows = (1..=text.lines().count() as u32).collect();
        Extracted {
            kind: DocKind::Xlsx,
            sections: vec![Section {
                page: None,
                title: title.map(str::to_string),
                text: text.to_string(),
                ocr: false,
                table: Some(TableLines { header_lines, rows }),
            }],
            page_count: None,
            title: None,
        }
    }

    #[test]
    fn a_sheet_becomes_a_typed_table() {
        let doc = sheet(
            Some("销售 明细"),
            "2024 年销售\n日期 | 地区 | 销售额 | 数量 | 增长率 | 编号\n2024/3/5 | 华东 | 1,234.5 | 3 | 12% | 007\n2024-03-06 | | ¥300 | 4 | 8.5% | 010\n2024年3月7日 | 华南 | -20 | | 1% | 011",
            2,
        );
        let tables = tables_of(&doc, "sales.xlsx", 1_000);
        let t = &tables[0];
        assert_eq!(t.name, "销售_明细");
        assert_eq!(t.source, "销售 明细");
        assert_eq!(t.title.as_deref(), Some("2024 年销售"));
        let kinds: Vec<_> = t
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind, c.note))
            .collect();
        assert_eq!(
            kinds,
            [
                ("日期", ColumnType::Text, Some(ColumnNote::Date)),
                ("地区", ColumnType::Text, None),
                ("销售额", ColumnType::Real, None),
                ("数量", ColumnType::Integer, None),
                ("增长率", ColumnType::Real, Some(ColumnNote::Percent)),
                ("编号", ColumnType::Text, None),
            ]
        );
        assert_eq!(
            t.rows[0],
            [
                json!("2024-03-05"),
                json!("华东"),
                json!(1234.5),
                json!(3),
                json!(12.0),
                json!("007")
            ]
        );
        assert_eq!(t.rows[1][1], Value::Null);
        assert_eq!(t.rows[2][0], json!("2024-03-07"));
        assert_eq!(t.rows[2][2], json!(-20.0));
        assert_eq!(t.rows[2][3], Value::Null);
    }

    #[test]
    fn a_csv_is_named_after_its_file_and_odd_headers_become_names() {
        let doc = sheet(None, "a b | | a_b | 2023 | x\\|y\n1 | 2 | 3 | 4 | 5 | 6", 1);
        let t = &tables_of(&doc, "reports/q1 data.csv", 1_000)[0];
        assert_eq!(t.name, "q1_data");
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a_b", "列2", "a_b_2", "列2023", "x_y", "列6"]);
        assert_eq!(t.columns[4].header.as_deref(), Some("x|y"));
    }

    #[test]
    fn totals_and_uncalculated_formulas_are_not_rows() {
        let doc = sheet(
            Some("s"),
            "城市 | 数量 | 金额\n上海 | 120 | =B2*C2\n杭州 | 45 | =B3*C3\n合 计 | =SUM(B2:B3) | 165",
            1,
        );
        let t = &tables_of(&doc, "a.xlsx", 1_000)[0];
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.columns[1].kind, ColumnType::Integer);
        assert_eq!(t.rows[0][2], Value::Null);
    }

    #[test]
    fn lists_and_too_large_tables_are_left_out() {
        assert!(tables_of(&sheet(Some("s"), "one\ntwo", 0), "a.xlsx", 1_000).is_empty());
        let big = sheet(Some("s"), "a | b\n1 | 2\n3 | 4", 1);
        assert_eq!(tables_of(&big, "a.xlsx", 4).len(), 1);
        assert!(tables_of(&big, "a.xlsx", 3).is_empty());
    }

    #[test]
    fn numbers_are_read_strictly() {
        for (cell, want) in [
            ("1,234", Some(1234.0)),
            ("0.5", Some(0.5)),
            ("-3", Some(-3.0)),
        ] {
            let got = number(cell).map(|n| match n {
                Number::Integer(i) => i as f64,
                Number::Real(f) => f,
            });
            assert_eq!(got, want, "{cell}");
        }
        for cell in ["12,34", "007", "=SUM(A1:A3)", "1.2.3", "abc", ""] {
            assert!(number(cell).is_none(), "{cell}");
        }
        assert_eq!(iso_date("2024-02-30"), None);
        assert_eq!(
            iso_date("2024-02-03 00:00:00").as_deref(),
            Some("2024-02-03")
        );
        assert_eq!(iso_date("2024-02-03 10:30:00"), None);
    }
}
