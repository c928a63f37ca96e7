//! Table rows → self-describing lines, shared by CSV and XLSX.
//!
//! A chunk of a table is only useful if each row still says what its values are, so every
//! data row is written as `header: value; header: value` on one line. One row per line also
//! lets the splitter cut between rows and never through one.

/// Render rows of cells. The header is the first row with at least two non-empty cells
/// (a merged title row above it becomes a line of its own); a table with no such row is a
/// list, one value per line.
pub(crate) fn render_table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| one_line(cell)).collect::<Vec<_>>())
        .filter(|row| row.iter().any(|cell| !cell.is_empty()))
        .collect();
    let filled = |row: &Vec<String>| row.iter().filter(|c| !c.is_empty()).count();
    let Some(header_at) = rows.iter().position(|row| filled(row) >= 2) else {
        return rows
            .iter()
            .map(|row| join_filled(row, " "))
            .collect::<Vec<_>>()
            .join("\n");
    };
    let header = &rows[header_at];
    let mut lines: Vec<String> = rows[..header_at]
        .iter()
        .map(|row| join_filled(row, " "))
        .collect();
    let data = &rows[header_at + 1..];
    if data.is_empty() {
        lines.push(join_filled(header, "; "));
    }
    lines.extend(data.iter().map(|row| render_row(header, row)));
    lines.join("\n")
}

/// `header: value` pairs for the non-empty cells; a value without a header stands alone.
fn render_row(header: &[String], row: &[String]) -> String {
    let pairs: Vec<String> = row
        .iter()
        .enumerate()
        .filter(|(_, value)| !value.is_empty())
        .map(|(i, value)| match header.get(i).filter(|h| !h.is_empty()) {
            Some(name) => format!("{name}: {value}"),
            None => value.clone(),
        })
        .collect();
    pairs.join("; ")
}

fn join_filled(row: &[String], separator: &str) -> String {
    row.iter()
        .filter(|c| !c.is_empty())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(separator)
}

/// A cell's text on one line: embedded line breaks become spaces, ends trimmed.
pub(crate) fn one_line(cell: &str) -> String {
    cell.split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
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
    fn rows_become_header_value_lines() {
        let t = table(&[
            &["问题", "答案", "分类"],
            &["如何重置密码？", "点击\r\n“忘记密码”", ""],
            &["", "", ""],
            &["a", "b", "c", "extra"],
        ]);
        assert_eq!(
            render_table(&t),
            "问题: 如何重置密码？; 答案: 点击 “忘记密码”\n问题: a; 答案: b; 分类: c; extra"
        );
    }

    #[test]
    fn a_title_row_above_the_header_stays_a_line() {
        let t = table(&[
            &["2024 销售明细", "", ""],
            &["", "", ""],
            &["日期", "产品", "金额"],
            &["2024-01-08", "音箱", "=D3*E3"],
        ]);
        assert_eq!(
            render_table(&t),
            "2024 销售明细\n日期: 2024-01-08; 产品: 音箱; 金额: =D3*E3"
        );
    }

    #[test]
    fn single_column_is_a_list_and_header_only_is_kept() {
        assert_eq!(
            render_table(&table(&[&["说明"], &["", "第一条"]])),
            "说明\n第一条"
        );
        assert_eq!(render_table(&table(&[&["a", "b"]])), "a; b");
        assert_eq!(render_table(&[]), "");
    }
}
