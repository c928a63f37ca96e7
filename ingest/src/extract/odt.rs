//! ODT (OpenDocument text, LibreOffice Writer): `content.xml` → Markdown-flavoured lines,
//! as DOCX (see `docx`).
//!
//! Headings (`text:h` with its outline level, and the "Title" paragraph) become `#` lines so the Markdown splitter keeps
//! a section's paragraphs together; list items get `- `; a table row stays on one line with
//! its cells joined by ` | `. Footnotes and endnotes are kept: the mark stays in the text as
//! `[1]` and the note follows its paragraph as `[1] …`, since notes often hold the
//! exceptions a question is about. Headers and footers live in `styles.xml` and are page
//! chrome, so they are never read; nor are tracked deletions, comments or a generated table
//! of contents (it repeats the headings).

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ooxml::{self, resolve_ref};
use super::rows::one_line;
use super::{DocKind, ExtractLimits, Extracted, Section};
use crate::{Error, Result};

/// Elements skipped with everything inside them.
const SKIPPED: &[&[u8]] = &[
    b"tracked-changes",
    b"annotation",
    b"table-of-content",
    b"sequence-decls",
    b"forms",
];

/// The body text as one section; the title from `meta.xml`.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let mut archive = ooxml::open(bytes, "odt", limits)?;
    let content = ooxml::read_entry(&mut archive, "content.xml", "odt", limits)?
        .ok_or_else(|| corrupt("content.xml is missing".into()))?;
    let text = body_text(&content)?;
    let title = ooxml::part_title(&mut archive, "meta.xml", "odt", limits);
    Ok(Extracted {
        kind: DocKind::Odt,
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
        kind: "odt".into(),
        detail,
    }
}

fn attr(e: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| String::from_utf8(a.value.into_owned()).ok())
}

/// One open `text:p` or `text:h`.
#[derive(Default)]
struct Paragraph {
    text: String,
    heading_level: Option<usize>,
}

/// One open `table:table`: the row being built and the cell being built.
#[derive(Default)]
struct Table {
    row: Vec<String>,
    cell: Option<String>,
}

/// Walks `content.xml` and collects lines.
#[derive(Default)]
struct Body {
    out: String,
    paragraphs: Vec<Paragraph>,
    tables: Vec<Table>,
    list_depth: usize,
    /// Inside `text:note-body`: finished paragraphs go to `notes`.
    note_depth: usize,
    /// The open note's mark (`1`, `i`), while its citation is read and its body written.
    citation: Option<String>,
    /// Inside `text:note-citation`.
    in_citation: bool,
    /// Notes waiting for the paragraph that cites them to be written.
    notes: Vec<String>,
}

fn body_text(xml: &[u8]) -> Result<String> {
    let mut body = Body::default();
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut in_body = false;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format!("content.xml: {e}")))?;
        match event {
            Event::Start(e) if e.local_name().as_ref() == b"body" => in_body = true,
            Event::Start(e) if SKIPPED.contains(&e.local_name().as_ref()) => {
                let end = e.to_end().into_owned();
                reader
                    .read_to_end_into(end.name(), &mut Vec::new())
                    .map_err(|e| corrupt(e.to_string()))?;
            }
            Event::Start(e) if in_body => body.start(&e),
            Event::Empty(e) if in_body => body.empty(&e),
            Event::End(e) => body.end(e.local_name().as_ref()),
            Event::Text(t) if in_body => {
                body.push(&t.decode().map_err(|e| corrupt(e.to_string()))?)
            }
            Event::GeneralRef(r) if in_body => body.push(&resolve_ref(&r)),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(body.out)
}

impl Body {
    fn start(&mut self, e: &BytesStart<'_>) {
        match e.local_name().as_ref() {
            // The document's title is a paragraph in the "Title" style, not an outline heading.
            b"p" => self.paragraphs.push(Paragraph {
                text: String::new(),
                heading_level: (attr(e, b"style-name").as_deref() == Some("Title")).then_some(1),
            }),
            b"h" => self.paragraphs.push(Paragraph {
                text: String::new(),
                heading_level: Some(
                    attr(e, b"outline-level")
                        .and_then(|l| l.parse::<usize>().ok())
                        .unwrap_or(1)
                        .clamp(1, 6),
                ),
            }),
            b"list" => self.list_depth += 1,
            b"note-citation" => {
                self.in_citation = true;
                self.citation = Some(String::new());
            }
            b"note-body" => self.note_depth += 1,
            b"table" => {
                self.blank_line();
                self.tables.push(Table::default());
            }
            b"table-row" => {
                if let Some(table) = self.tables.last_mut() {
                    table.row.clear();
                }
            }
            b"table-cell" => {
                if let Some(table) = self.tables.last_mut() {
                    table.cell = Some(String::new());
                }
            }
            _ => self.empty(e),
        }
    }

    /// Self-closing elements: spaces, tabs and line breaks.
    fn empty(&mut self, e: &BytesStart<'_>) {
        match e.local_name().as_ref() {
            b"s" => {
                let count = attr(e, b"c")
                    .and_then(|c| c.parse::<usize>().ok())
                    .unwrap_or(1)
                    .min(100);
                self.push(&" ".repeat(count));
            }
            b"tab" => self.push(" "),
            b"line-break" => self.push("\n"),
            _ => {}
        }
    }

    fn end(&mut self, local: &[u8]) {
        match local {
            b"p" | b"h" => {
                if let Some(p) = self.paragraphs.pop() {
                    self.emit(p);
                }
            }
            b"list" => self.list_depth = self.list_depth.saturating_sub(1),
            b"note-citation" => {
                self.in_citation = false;
                let mark = self.citation.clone().unwrap_or_default();
                self.push(&format!("[{}]", mark.trim()));
            }
            b"note-body" => self.note_depth = self.note_depth.saturating_sub(1),
            b"note" => self.citation = None,
            b"table-cell" => {
                if let Some(table) = self.tables.last_mut() {
                    let cell = table.cell.take().unwrap_or_default();
                    table.row.push(one_line(&cell));
                }
            }
            b"table-row" => {
                if let Some(table) = self.tables.last_mut() {
                    let row = std::mem::take(&mut table.row);
                    if row.iter().any(|c| !c.is_empty()) {
                        let line = row.join(" | ");
                        self.line(&line);
                    }
                }
            }
            b"table" => {
                self.tables.pop();
                self.blank_line();
            }
            _ => {}
        }
    }

    fn push(&mut self, text: &str) {
        if self.in_citation {
            if let Some(citation) = self.citation.as_mut() {
                citation.push_str(text);
            }
        } else if let Some(p) = self.paragraphs.last_mut() {
            p.text.push_str(text);
        }
    }

    /// A finished paragraph goes into its note, the open table cell, or out as a line;
    /// the notes it cited follow it.
    fn emit(&mut self, p: Paragraph) {
        let text = p.text.trim().to_owned();
        if self.note_depth > 0 {
            if !text.is_empty() {
                let mark = self.citation.as_deref().unwrap_or_default().trim();
                self.notes
                    .push(format!("[{mark}] {}", text.replace('\n', " ")));
            }
            return;
        }
        let notes = if self.paragraphs.is_empty() {
            std::mem::take(&mut self.notes)
        } else {
            Vec::new()
        };
        if let Some(cell) = self.tables.last_mut().and_then(|t| t.cell.as_mut()) {
            for piece in std::iter::once(text).chain(notes) {
                if !piece.is_empty() {
                    if !cell.is_empty() {
                        cell.push(' ');
                    }
                    cell.push_str(&piece);
                }
            }
            return;
        }
        if !text.is_empty() {
            if let Some(level) = p.heading_level {
                self.blank_line();
                let heading = format!("{} {}", "#".repeat(level), one_line(&text));
                self.line(&heading);
                self.blank_line();
            } else if self.list_depth > 0 {
                let indent = "  ".repeat(self.list_depth - 1);
                let item = format!("{indent}- {}", text.replace('\n', " "));
                self.line(&item);
            } else {
                self.line(&text);
            }
        }
        for note in notes {
            self.line(&note);
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

    const NS: &str = "xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
        xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" \
        xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\"";

    fn body(inner: &str) -> String {
        body_text(
            format!(
                "<office:document-content {NS}><office:automatic-styles><text:p>样式</text:p>\
                 </office:automatic-styles><office:body><office:text>{inner}</office:text>\
                 </office:body></office:document-content>"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn headings_lists_spaces_and_notes() {
        let xml = "<text:p text:style-name=\"Title\">制度</text:p><text:sequence-decls><text:sequence-decl text:name=\"x\"/></text:sequence-decls>\
            <text:table-of-content><text:index-body><text:p>第一章 总则 1</text:p></text:index-body></text:table-of-content>\
            <text:h text:outline-level=\"1\">第一章 总则</text:h>\
            <text:p>为规范<text:s text:c=\"2\"/>管理<text:tab/>&amp;<text:line-break/>效率\
            <text:note text:note-class=\"footnote\"><text:note-citation>1</text:note-citation>\
            <text:note-body><text:p>试用期员工除外。</text:p></text:note-body></text:note>。</text:p>\
            <text:list><text:list-item><text:p>一项</text:p><text:list><text:list-item>\
            <text:p>二级</text:p></text:list-item></text:list></text:list-item></text:list>\
            <text:tracked-changes><text:changed-region><text:p>删掉的</text:p></text:changed-region></text:tracked-changes>\
            <office:annotation><text:p>批注</text:p></office:annotation>\
            <text:h text:outline-level=\"2\">附则</text:h>";
        assert_eq!(
            body(xml),
            "# 制度\n\n# 第一章 总则\n\n为规范  管理 &\n效率[1]。\n[1] 试用期员工除外。\n- 一项\n  - 二级\n\n## 附则\n\n"
        );
    }

    #[test]
    fn tables_are_rows_of_cells() {
        let cell = |t: &str| format!("<table:table-cell><text:p>{t}</text:p></table:table-cell>");
        let xml = format!(
            "<text:p>前</text:p><table:table><table:table-column/><table:table-header-rows>\
             <table:table-row>{}{}</table:table-row></table:table-header-rows>\
             <table:table-row>{}<table:table-cell><text:p>600</text:p><text:p>元</text:p>\
             </table:table-cell><table:covered-table-cell/></table:table-row></table:table>\
             <text:p>后</text:p>",
            cell("城市类别"),
            cell("每晚住宿上限（元）"),
            cell("一类"),
        );
        assert_eq!(
            body(&xml),
            "前\n\n城市类别 | 每晚住宿上限（元）\n一类 | 600 元\n\n后\n"
        );
    }
}
