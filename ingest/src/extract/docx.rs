//! DOCX: `word/document.xml` → Markdown-flavoured lines.
//!
//! Headings become `#` lines so the Markdown splitter keeps a section's paragraphs together;
//! list items get `- `; a table row stays on one line with its cells joined by ` | `.
//! Headers and footers live in other parts and are page chrome, so they are never read.
//! Style ids are localised (Chinese Word writes `1` for "heading 1"), so `styles.xml` is read
//! to learn which ids are headings and lists.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ooxml::{self, resolve_ref};
use super::rows::one_line;
use super::{DocKind, ExtractLimits, Extracted, Section};
use crate::{Error, Result};

/// What a paragraph style means for us.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct StyleRole {
    heading_level: Option<usize>,
    is_list: bool,
}

/// The body text as one section; the title from the core properties.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let mut archive = ooxml::open(bytes, "docx", limits)?;
    let document = ooxml::read_entry(&mut archive, "word/document.xml", "docx", limits)?
        .ok_or_else(|| corrupt("word/document.xml is missing".into()))?;
    let styles = match ooxml::read_entry(&mut archive, "word/styles.xml", "docx", limits)? {
        Some(xml) => read_styles(&xml),
        None => HashMap::new(),
    };
    let text = body_text(&document, &styles)?;
    let title = ooxml::core_title(&mut archive, "docx", limits);
    Ok(Extracted {
        kind: DocKind::Docx,
        sections: vec![Section {
            page: None,
            title: None,
            text,
            ocr: false,
            table: None,
        }],
        page_count: None,
        title,
    })
}

fn corrupt(detail: String) -> Error {
    Error::Corrupt {
        kind: "docx".into(),
        detail,
    }
}

fn attr(e: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| {
            let raw = std::str::from_utf8(&a.value).ok()?;
            quick_xml::escape::unescape(raw)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// A style's role from its display name (`heading 2`, `Title`, `List Bullet`) or its id.
fn role_from_name(name: &str) -> StyleRole {
    let lower = name.to_ascii_lowercase().replace(' ', "");
    let heading_level = if lower == "title" {
        Some(1)
    } else {
        lower
            .strip_prefix("heading")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=9).contains(n))
    };
    StyleRole {
        heading_level: heading_level.map(|n| n.min(6)),
        is_list: lower.starts_with("list"),
    }
}

/// Style id → role, from `word/styles.xml`. Unreadable styles just mean no roles.
fn read_styles(xml: &[u8]) -> HashMap<String, StyleRole> {
    let mut roles = HashMap::new();
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut current: Option<(String, StyleRole)> = None;
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Start(e) if e.local_name().as_ref() == b"style" => {
                current = attr(&e, b"styleId").map(|id| (id.clone(), role_from_name(&id)));
            }
            Event::Empty(e) | Event::Start(e) => {
                match (e.local_name().as_ref(), current.as_mut()) {
                    (b"name", Some((_, role))) => {
                        let named = role_from_name(&attr(&e, b"val").unwrap_or_default());
                        role.heading_level = named.heading_level.or(role.heading_level);
                        role.is_list |= named.is_list;
                    }
                    (b"outlineLvl", Some((_, role))) => {
                        let level = attr(&e, b"val").and_then(|v| v.parse::<usize>().ok());
                        role.heading_level = role
                            .heading_level
                            .or(level.filter(|l| *l < 9).map(|l| (l + 1).min(6)));
                    }
                    _ => {}
                }
            }
            Event::End(e) if e.local_name().as_ref() == b"style" => {
                if let Some((id, role)) = current.take() {
                    roles.insert(id, role);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    roles
}

/// One open `w:p`.
#[derive(Default)]
struct Paragraph {
    text: String,
    role: StyleRole,
    list_level: usize,
}

/// One open `w:tbl`: the row being built and the cell being built.
#[derive(Default)]
struct Table {
    row: Vec<String>,
    cell: Option<String>,
}

/// Walks `document.xml` and collects lines.
struct Body<'s> {
    styles: &'s HashMap<String, StyleRole>,
    out: String,
    paragraphs: Vec<Paragraph>,
    tables: Vec<Table>,
    in_text: bool,
    /// Open `w:pPr` elements (they nest: `w:pPrChange` holds the old `w:pPr`).
    properties_depth: usize,
}

fn body_text(xml: &[u8], styles: &HashMap<String, StyleRole>) -> Result<String> {
    let mut body = Body {
        styles,
        out: String::new(),
        paragraphs: Vec::new(),
        tables: Vec::new(),
        in_text: false,
        properties_depth: 0,
    };
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format!("word/document.xml: {e}")))?;
        match event {
            // A Fallback repeats its Choice (text boxes for old readers), and moved-away or
            // deleted text is not in the document any more.
            Event::Start(e)
                if matches!(e.local_name().as_ref(), b"Fallback" | b"moveFrom" | b"del") =>
            {
                let end = e.to_end().into_owned();
                reader
                    .read_to_end_into(end.name(), &mut Vec::new())
                    .map_err(|e| corrupt(e.to_string()))?;
            }
            Event::Start(e) => body.start(&e),
            Event::Empty(e) => body.empty(&e),
            Event::End(e) => body.end(e.local_name().as_ref()),
            Event::Text(t) if body.in_text => {
                body.push(&t.decode().map_err(|e| corrupt(e.to_string()))?)
            }
            Event::GeneralRef(r) if body.in_text => body.push(&resolve_ref(&r)),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(body.out)
}

impl Body<'_> {
    fn start(&mut self, e: &BytesStart<'_>) {
        match e.local_name().as_ref() {
            b"p" => self.paragraphs.push(Paragraph::default()),
            b"pPr" => self.properties_depth += 1,
            b"t" => self.in_text = true,
            b"tbl" => {
                self.blank_line();
                self.tables.push(Table::default());
            }
            b"tr" => {
                if let Some(table) = self.tables.last_mut() {
                    table.row.clear();
                }
            }
            b"tc" => {
                if let Some(table) = self.tables.last_mut() {
                    table.cell = Some(String::new());
                }
            }
            _ => self.empty(e),
        }
    }

    /// Self-closing elements (and the properties that may also come as start tags).
    fn empty(&mut self, e: &BytesStart<'_>) {
        let name = e.local_name();
        match name.as_ref() {
            b"pStyle" => {
                let id = attr(e, b"val").unwrap_or_default();
                let role = self
                    .styles
                    .get(&id)
                    .copied()
                    .unwrap_or_else(|| role_from_name(&id));
                if let Some(p) = self.paragraphs.last_mut() {
                    p.role.heading_level = p.role.heading_level.or(role.heading_level);
                    p.role.is_list |= role.is_list;
                }
            }
            b"numPr" => self.with_paragraph(|p| p.role.is_list = true),
            b"ilvl" => {
                let level = attr(e, b"val").and_then(|v| v.parse().ok()).unwrap_or(0);
                self.with_paragraph(|p| p.list_level = level);
            }
            b"outlineLvl" if self.properties_depth > 0 => {
                let level = attr(e, b"val")
                    .and_then(|v| v.parse::<usize>().ok())
                    .filter(|l| *l < 9);
                self.with_paragraph(|p| {
                    p.role.heading_level = p.role.heading_level.or(level.map(|l| (l + 1).min(6)))
                });
            }
            // Tab stops are declared in paragraph properties; only a run's tab is text.
            b"tab" if self.properties_depth == 0 => self.push(" "),
            // Page and column breaks are layout; a line break is text.
            b"br" if attr(e, b"type").is_none_or(|t| t == "textWrapping") => self.push("\n"),
            b"cr" => self.push("\n"),
            b"noBreakHyphen" => self.push("-"),
            _ => {}
        }
    }

    fn end(&mut self, local: &[u8]) {
        match local {
            b"t" => self.in_text = false,
            b"pPr" => self.properties_depth = self.properties_depth.saturating_sub(1),
            b"p" => {
                if let Some(p) = self.paragraphs.pop() {
                    self.emit(p);
                }
            }
            b"tc" => {
                if let Some(table) = self.tables.last_mut() {
                    let cell = table.cell.take().unwrap_or_default();
                    table.row.push(one_line(&cell));
                }
            }
            b"tr" => {
                if let Some(table) = self.tables.last_mut() {
                    let row = std::mem::take(&mut table.row);
                    if row.iter().any(|c| !c.is_empty()) {
                        let line = row.join(" | ");
                        self.line(&line);
                    }
                }
            }
            b"tbl" => {
                self.tables.pop();
                self.blank_line();
            }
            _ => {}
        }
    }

    fn with_paragraph(&mut self, change: impl FnOnce(&mut Paragraph)) {
        if let Some(p) = self.paragraphs.last_mut() {
            change(p);
        }
    }

    fn push(&mut self, text: &str) {
        if let Some(p) = self.paragraphs.last_mut() {
            p.text.push_str(text);
        }
    }

    /// A finished paragraph goes into the open table cell, or out as a line.
    fn emit(&mut self, p: Paragraph) {
        let text = p.text.trim();
        if let Some(cell) = self.tables.last_mut().and_then(|t| t.cell.as_mut()) {
            if !text.is_empty() {
                if !cell.is_empty() {
                    cell.push(' ');
                }
                cell.push_str(text);
            }
            return;
        }
        if text.is_empty() {
            return;
        }
        if let Some(level) = p.role.heading_level {
            self.blank_line();
            let heading = format!("{} {}", "#".repeat(level), one_line(text));
            self.line(&heading);
            self.blank_line();
        } else if p.role.is_list {
            let item = format!("{}- {}", "  ".repeat(p.list_level), text.replace('\n', " "));
            self.line(&item);
        } else {
            self.line(text);
        }
    }

    /// A line of output, or the open cell's text when inside a nested table.
    fn line(&mut self, text: &str) {
        let depth = self.tables.len();
        if let Some(cell) = depth
            .checked_sub(2)
            .and_then(|outer| self.tables[outer].cell.as_mut())
        {
            if !cell.is_empty() {
                cell.push(' ');
            }
            cell.push_str(text);
            return;
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn blank_line(&mut self) {
        if self.tables.is_empty() && !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    const W: &str = "xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"";

    fn body(inner: &str, styles: &HashMap<String, StyleRole>) -> String {
        body_text(
            format!("<w:document {W}><w:body>{inner}</w:body></w:document>").as_bytes(),
            styles,
        )
        .unwrap()
    }

    fn p(style: &str, text: &str) -> String {
        let props = if style.is_empty() {
            String::new()
        } else {
            format!("<w:pPr><w:pStyle w:val=\"{style}\"/></w:pPr>")
        };
        format!("<w:p>{props}<w:r><w:t>{text}</w:t></w:r></w:p>")
    }

    #[test]
    fn headings_lists_and_runs() {
        let xml = [
            p("Title", "制度"),
            p("Heading2", "第一章"),
            "<w:p><w:r><w:t xml:space=\"preserve\">为规范，</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>提高效率</w:t></w:r><w:r><w:tab/><w:t>&amp;x</w:t></w:r></w:p>".into(),
            p("ListBullet", "一项"),
            "<w:p><w:pPr><w:tabs><w:tab w:val=\"left\" w:pos=\"1\"/></w:tabs><w:numPr><w:ilvl w:val=\"1\"/></w:numPr></w:pPr><w:r><w:t>二级</w:t></w:r></w:p>".into(),
            "<w:p><w:r><w:br w:type=\"page\"/></w:r></w:p>".into(),
            p("", "附则"),
        ]
        .concat();
        assert_eq!(
            body(&xml, &HashMap::new()),
            "# 制度\n\n## 第一章\n\n为规范，提高效率 &x\n- 一项\n  - 二级\n附则\n"
        );
    }

    #[test]
    fn tables_are_rows_of_cells() {
        let cell = |t: &str| format!("<w:tc>{}</w:tc>", p("", t));
        let xml = format!(
            "{}<w:tbl><w:tr>{}{}</w:tr><w:tr>{}<w:tc>{}{}</w:tc></w:tr></w:tbl>{}",
            p("", "前"),
            cell("城市类别"),
            cell("每晚住宿上限（元）"),
            cell("一类"),
            p("", "600"),
            p("", "元"),
            p("", "后")
        );
        assert_eq!(
            body(&xml, &HashMap::new()),
            "前\n\n城市类别 | 每晚住宿上限（元）\n一类 | 600 元\n\n后\n"
        );
    }

    #[test]
    fn localised_style_ids_are_mapped_through_styles_xml() {
        let styles = read_styles(
            format!("<w:styles {W}><w:style w:styleId=\"1\"><w:name w:val=\"heading 1\"/></w:style><w:style w:styleId=\"a3\"><w:name w:val=\"List Paragraph\"/></w:style><w:style w:styleId=\"x\"><w:pPr><w:outlineLvl w:val=\"2\"/></w:pPr></w:style></w:styles>").as_bytes(),
        );
        assert_eq!(styles["1"].heading_level, Some(1));
        assert!(styles["a3"].is_list);
        assert_eq!(styles["x"].heading_level, Some(3));
        assert_eq!(
            body(&[p("1", "总则"), p("a3", "条目")].concat(), &styles),
            "# 总则\n\n- 条目\n"
        );
    }
}
