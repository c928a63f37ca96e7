//! Running headers and footers: the lines a paged document repeats at the top or bottom of
//! its pages ("东北电气发展股份有限公司 2018 年第一季度报告全文", "第 3 页 共 22 页"). Left in,
//! they cut the text at every page break, are indexed on every page, and a bot quotes them
//! as if they said something: asked for the report's shareholder count, the default model
//! went on from the running header with a figure of its own.
//!
//! A line is running when, with its numbers masked, it is among the first or last
//! [`EDGE_LINES`] lines of at least half the pages (and of [`MIN_PAGES`] at least). It is
//! then taken off the top and bottom of every page — but a header with words in it stays
//! on the first page it runs on, where it is often the document's title and says once what
//! the document is.

use std::collections::{HashMap, HashSet};

use super::Section;

/// How many lines at each end of a page may be running ones.
const EDGE_LINES: usize = 2;

/// The fewest pages a line must run on: two pages that start alike are a coincidence.
const MIN_PAGES: usize = 3;

/// Remove the running lines of `sections` (a document's pages, in order; tables and
/// sections without a page are left alone).
pub(super) fn remove(sections: &mut [Section]) {
    let pages: Vec<usize> = (0..sections.len())
        .filter(|&i| sections[i].page.is_some() && sections[i].table.is_none())
        .collect();
    let mut seen_on: HashMap<String, usize> = HashMap::new();
    for &i in &pages {
        let keys: HashSet<String> = edge_lines(&sections[i].text)
            .into_iter()
            .map(|edge| edge.key)
            .collect();
        for key in keys {
            *seen_on.entry(key).or_default() += 1;
        }
    }
    let needed = MIN_PAGES.max(pages.len().div_ceil(2));
    let running: HashSet<&String> = seen_on
        .iter()
        .filter(|(_, count)| **count >= needed)
        .map(|(key, _)| key)
        .collect();
    if running.is_empty() {
        return;
    }
    let mut kept_once: HashSet<String> = HashSet::new();
    for &i in &pages {
        let text = &sections[i].text;
        let lines: Vec<&str> = text.split('\n').collect();
        let mut drop = vec![false; lines.len()];
        for edge in edge_lines(text) {
            if !running.contains(&edge.key) {
                continue;
            }
            let names_the_document = edge.at_top && edge.key.chars().any(char::is_alphabetic);
            drop[edge.line] = !names_the_document || !kept_once.insert(edge.key);
        }
        if drop.iter().any(|d| *d) {
            let kept: Vec<&str> = lines
                .iter()
                .zip(&drop)
                .filter(|(_, d)| !**d)
                .map(|(line, _)| *line)
                .collect();
            sections[i].text = kept.join("\n").trim().to_string();
        }
    }
}

/// One of the lines at a page's top or bottom.
struct Edge {
    /// Its index among the page's lines.
    line: usize,
    /// The line without whitespace, each run of digits as "#" ([`key`]).
    key: String,
    /// Whether it is at the top.
    at_top: bool,
}

/// The first and last [`EDGE_LINES`] non-blank lines of `text`. None on a page too short
/// to have a body between them (a slide's "第1步" is its content).
fn edge_lines(text: &str) -> Vec<Edge> {
    let filled: Vec<(usize, &str)> = text
        .split('\n')
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .collect();
    if filled.len() <= 2 * EDGE_LINES {
        return Vec::new();
    }
    let mut at: Vec<usize> = (0..filled.len().min(EDGE_LINES)).collect();
    at.extend(filled.len().saturating_sub(EDGE_LINES)..filled.len());
    at.sort_unstable();
    at.dedup();
    at.into_iter()
        .map(|k| Edge {
            line: filled[k].0,
            key: key(filled[k].1),
            at_top: k < EDGE_LINES,
        })
        .collect()
}

/// `line` without whitespace, each run of digits as one "#": "第 3 页" and "第 12 页" are
/// the same running line.
fn key(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars().filter(|c| !c.is_whitespace()) {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(page: u32, text: &str) -> Section {
        Section {
            page: Some(page),
            title: None,
            text: text.to_string(),
            ocr: false,
            table: None,
        }
    }

    const HEADER: &str = "东北电气发展股份有限公司 2018 年第一季度报告全文";

    #[test]
    fn a_header_and_page_numbers_on_most_pages_are_taken_off() {
        let body = |n: &str| format!("{n}页第一句。\n{n}页第二句。\n{n}页第三句。\n{n}页第四句。");
        let mut pages: Vec<Section> = ["甲", "乙", "丙", "丁"]
            .iter()
            .zip(1..)
            .map(|(n, at)| page(at, &format!("{HEADER}\n{}\n第 {at} 页", body(n))))
            .collect();
        // One page has no header: half the pages are enough.
        pages.push(page(5, &format!("{}\n第 5 页", body("戊"))));
        remove(&mut pages);
        // The header stays once, on the first page, where it names the document.
        assert_eq!(pages[0].text, format!("{HEADER}\n{}", body("甲")));
        assert_eq!(pages[1].text, body("乙"));
        assert_eq!(pages[3].text, body("丁"));
        assert_eq!(pages[4].text, body("戊"));
    }

    #[test]
    fn lines_that_do_not_run_stay() {
        // Two pages that start alike are not enough, nor are short pages (slides).
        let mut two = vec![
            page(1, "目录\n一、概述\n甲\n乙\n丙"),
            page(2, "目录\n二、细则\n丁\n戊\n己"),
        ];
        remove(&mut two);
        assert_eq!(two[0].text, "目录\n一、概述\n甲\n乙\n丙");
        assert_eq!(two[1].text, "目录\n二、细则\n丁\n戊\n己");
        let mut slides: Vec<Section> = (1..=4)
            .map(|n| page(n, &format!("第{n}步\n做事")))
            .collect();
        remove(&mut slides);
        assert_eq!(slides[3].text, "第4步\n做事");
        // A line repeated in the middle of pages is content, and a table is not a page.
        let body = |n: &str| format!("{n}页开头\n{n}页第二行\n合计\n{n}页倒数第二行\n{n}页结尾");
        let mut pages: Vec<Section> = ["甲", "乙", "丙"]
            .iter()
            .zip(1..)
            .map(|(n, at)| page(at, &body(n)))
            .collect();
        let mut sheet = page(4, "第4章\n合计");
        sheet.table = Some(crate::extract::TableLines::default());
        pages.push(sheet);
        remove(&mut pages);
        assert_eq!(pages[1].text, body("乙"));
        assert_eq!(pages[3].text, "第4章\n合计");
    }
}
