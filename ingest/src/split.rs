//! Splitting extracted sections into chunks, measured in embedding-tokenizer tokens.
//!
//! Each chunk stays inside one section (a PDF page, a sheet), so it keeps its page number
//! and the byte range it came from. Markdown-shaped documents (Markdown, DOCX and HTML,
//! which extraction renders with `#` headings) use the markdown-aware splitter so a heading
//! stays with its paragraph; it reads their blocks and headings only, so a long paragraph
//! is cut between sentences, not at a quote, and a heading leads the first chunk of a
//! section too long for one.
//!
//! A table (a sheet, a CSV file: a section with [`TableLines`]) is cut between rows, never
//! through one: as many whole rows as the size allows go in a chunk, under the table's
//! header lines, and the chunk is labelled with the sheet and the rows it holds. Only a row
//! too long for a chunk of its own is cut, each piece again under the header.

use serde::{Deserialize, Serialize};
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};

use crate::extract::{DocKind, Extracted, Section, TableLines};
use crate::{Error, Result};

/// Default chunk size of the auto mode, in embedding tokens.
///
/// 256 tokens is ~350 Chinese characters: big enough to hold an answer with its context,
/// small enough that five of them (~1,300 prompt tokens) keep the first answer token within
/// seconds on a CPU, and well under e5's 512-token window.
pub const AUTO_MAX_TOKENS: usize = 256;
/// Default overlap of the auto mode, in tokens (1/8 of a chunk).
pub const AUTO_OVERLAP_TOKENS: usize = 32;
/// The largest chunk we accept: e5's window (512) minus the prefix and special tokens.
pub const MAX_CHUNK_TOKENS: usize = 500;
/// The smallest chunk size we accept.
pub const MIN_CHUNK_TOKENS: usize = 16;
/// A custom split's `overlap_tokens` is at most `max_tokens / MAX_OVERLAP_DIVISOR` (rounded
/// down): half a chunk, so that each piece still moves the text forward by at least as much
/// as it repeats.
pub const MAX_OVERLAP_DIVISOR: usize = 2;

/// How to split a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum SplitSettings {
    /// Structure-aware with the default size and overlap.
    #[default]
    Auto,
    /// Split on `separator` first, then cut pieces longer than `max_tokens`. A table (a
    /// sheet, a CSV file) is cut between rows whatever the separator, `max_tokens` its
    /// chunks' size, without overlap.
    Custom {
        /// The separator; `\n` and `\t` escapes are understood (as typed in a form).
        separator: String,
        /// Largest chunk, in embedding tokens.
        max_tokens: usize,
        /// Tokens shared by neighbouring pieces of a long segment.
        #[serde(default)]
        overlap_tokens: usize,
    },
}

impl SplitSettings {
    /// Check the numbers; a clear error instead of a surprising split.
    pub fn validate(&self) -> Result<()> {
        if let SplitSettings::Custom {
            separator,
            max_tokens,
            overlap_tokens,
        } = self
        {
            if separator.is_empty() {
                return Err(Error::InvalidSettings("separator must not be empty".into()));
            }
            if !(MIN_CHUNK_TOKENS..=MAX_CHUNK_TOKENS).contains(max_tokens) {
                return Err(Error::InvalidSettings(format!(
                    "max_tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}, got {max_tokens}"
                )));
            }
            let max_overlap = max_tokens / MAX_OVERLAP_DIVISOR;
            if *overlap_tokens > max_overlap {
                return Err(Error::InvalidSettings(format!(
                    "overlap_tokens must be at most max_tokens / {MAX_OVERLAP_DIVISOR} ({max_overlap}), got {overlap_tokens}"
                )));
            }
        }
        Ok(())
    }
}

/// Counts tokens the way the embedding model will see them.
pub trait TokenCount: Send + Sync {
    /// Number of tokens in `text`, without special tokens.
    fn count(&self, text: &str) -> usize;
}

struct Sizer<'a>(&'a dyn TokenCount);

impl ChunkSizer for Sizer<'_> {
    fn size(&self, chunk: &str) -> usize {
        self.0.count(chunk)
    }
}

/// One chunk before it has a vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkDraft {
    /// Position of the chunk in its document, from 0.
    pub ordinal: u32,
    /// The text.
    pub text: String,
    /// 1-based page for paged documents.
    pub page: Option<u32>,
    /// Byte offset of the chunk's start within its section's text. A table's chunk
    /// points at its rows: the header lines it starts with are a copy of the table's top.
    pub start_byte: usize,
    /// Byte offset of the chunk's end within its section's text.
    pub end_byte: usize,
    /// Tokens in `text` as the embedding model counts them.
    pub token_count: usize,
    /// Where the chunk lies when a page number cannot say it: a table's sheet and rows
    /// (`销售明细 第3–8行`, `第2–41行` for a CSV file).
    pub label: Option<String>,
    /// Whether the text was read by OCR (from [`Section::ocr`]): it may hold recognition
    /// errors, which users are told beside the chunk.
    pub ocr: bool,
}

/// Split every section of `doc` (already cleaned) into chunks.
pub fn split(
    doc: &Extracted,
    settings: &SplitSettings,
    tokens: &dyn TokenCount,
) -> Result<Vec<ChunkDraft>> {
    settings.validate()?;
    let mut chunks = Vec::new();
    for section in &doc.sections {
        if let Some(table) = section.table.as_ref().filter(|t| t.fits(&section.text)) {
            split_table(section, table, settings.max_tokens(), tokens, &mut chunks)?;
            continue;
        }
        let pieces = match settings {
            SplitSettings::Auto => split_auto(&section.text, doc.kind, tokens)?,
            SplitSettings::Custom {
                separator,
                max_tokens,
                overlap_tokens,
            } => split_custom(
                &section.text,
                &unescape(separator),
                *max_tokens,
                *overlap_tokens,
                tokens,
            )?,
        };
        for (start, piece) in pieces {
            let text = piece.trim();
            if text.is_empty() {
                continue;
            }
            // The offsets are the trimmed text's: a piece can start with whitespace (the
            // space after a custom separator), and `start` is where the piece starts.
            let start = start + (piece.len() - piece.trim_start().len());
            chunks.push(ChunkDraft {
                ordinal: next_ordinal(&chunks)?,
                page: section.page,
                start_byte: start,
                end_byte: start + text.len(),
                token_count: tokens.count(text),
                text: text.to_string(),
                label: None,
                ocr: section.ocr,
            });
        }
    }
    Ok(chunks)
}

fn next_ordinal(chunks: &[ChunkDraft]) -> Result<u32> {
    u32::try_from(chunks.len()).map_err(|_| Error::TooLarge {
        detail: "more than 4 billion chunks".into(),
    })
}

impl SplitSettings {
    /// The most tokens a chunk may have under these settings.
    pub fn max_tokens(&self) -> usize {
        match self {
            SplitSettings::Auto => AUTO_MAX_TOKENS,
            SplitSettings::Custom { max_tokens, .. } => *max_tokens,
        }
    }
}

/// Split a table (`table` fits `section.text`) into chunks of whole rows under its header,
/// each at most `budget` tokens.
///
/// The header lines head every chunk if they take at most half the budget; a wider header
/// becomes chunks of its own, and the rows go without it (repeating it would leave too
/// little room for rows). Neighbouring chunks do not overlap: the header is their context,
/// and a row in two chunks would be found twice. Tokens are counted per line and added up,
/// then the chunk's real count is checked, because a tokenizer need not count a text as
/// the sum of its lines.
fn split_table(
    section: &Section,
    table: &TableLines,
    budget: usize,
    tokens: &dyn TokenCount,
    chunks: &mut Vec<ChunkDraft>,
) -> Result<()> {
    let text = section.text.as_str();
    let sheet = section.title.as_deref();
    let mut lines = Vec::with_capacity(table.rows.len());
    let mut offset = 0;
    for (line, &row) in text.split('\n').zip(&table.rows) {
        lines.push(Line {
            start: offset,
            end: offset + line.len(),
            row,
        });
        offset += line.len() + 1;
    }
    let (header_lines, rows) = lines.split_at(table.header_lines);
    let header = match (header_lines.first(), header_lines.last()) {
        (Some(first), Some(last)) => &text[first.start..last.end],
        _ => "",
    };
    let header_tokens = if header.is_empty() {
        0
    } else {
        tokens.count(header)
    };
    let mut out = TableChunks {
        text,
        sheet,
        page: section.page,
        ocr: section.ocr,
        budget,
        header: "",
        tokens,
        chunks,
    };
    if header_tokens * 2 > budget {
        // Too wide to repeat: the header is chunks of its own, like any long text.
        out.long_line(header_lines, budget)?;
    } else {
        out.header = header;
    }
    // Room for rows under the header, its line break included.
    let room = if out.header.is_empty() {
        budget
    } else {
        budget.saturating_sub(header_tokens + 1)
    };
    if let (true, false, Some(first), Some(last)) = (
        rows.is_empty(),
        out.header.is_empty(),
        header_lines.first(),
        header_lines.last(),
    ) {
        // A header without rows is still the table's text.
        let count = tokens.count(header);
        let (rows, bytes) = ((first.row, last.row), first.start..last.end);
        return out.push(header.to_owned(), count, rows, bytes);
    }
    let mut group: Vec<Line> = Vec::new();
    let mut group_tokens = 0;
    for line in rows {
        let line_tokens = tokens.count(&text[line.start..line.end]) + 1;
        if !group.is_empty() && group_tokens + line_tokens > room {
            out.rows(&group)?;
            group.clear();
            group_tokens = 0;
        }
        if line_tokens > room {
            out.long_line(std::slice::from_ref(line), room)?;
            continue;
        }
        group.push(*line);
        group_tokens += line_tokens;
    }
    if !group.is_empty() {
        out.rows(&group)?;
    }
    Ok(())
}

/// A line of a table's text: its byte range and its source row.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    row: u32,
}

/// Where a table's chunks go, and what each of them shares.
struct TableChunks<'a, 'c> {
    text: &'a str,
    sheet: Option<&'a str>,
    page: Option<u32>,
    ocr: bool,
    budget: usize,
    /// The lines that head every chunk; empty when there are none, or they are too wide.
    header: &'a str,
    tokens: &'a dyn TokenCount,
    chunks: &'c mut Vec<ChunkDraft>,
}

impl TableChunks<'_, '_> {
    /// Consecutive whole rows as one chunk; halved until each part fits (see
    /// [`split_table`] on counting), and a single row that still does not is cut.
    fn rows(&mut self, group: &[Line]) -> Result<()> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(());
        };
        let body = &self.text[first.start..last.end];
        let text = self.with_header(body);
        let count = self.tokens.count(&text);
        if count > self.budget {
            if group.len() > 1 {
                let (a, b) = group.split_at(group.len() / 2);
                self.rows(a)?;
                return self.rows(b);
            }
            // One row whose count grew with the header: cut it with a margin.
            let room = self
                .budget
                .saturating_sub(self.tokens.count(self.header) + 2)
                .max(1);
            return self.long_line(group, room);
        }
        self.push(text, count, (first.row, last.row), first.start..last.end)
    }

    /// Lines too long for one chunk, cut by the text splitter into pieces of `room`
    /// tokens, each under the header.
    fn long_line(&mut self, lines: &[Line], room: usize) -> Result<()> {
        let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
            return Ok(());
        };
        let body = &self.text[first.start..last.end];
        let splitter = TextSplitter::new(config(room.max(1), 0, self.tokens)?);
        for (at, piece) in splitter.chunk_indices(body) {
            let trimmed = piece.trim();
            if trimmed.is_empty() {
                continue;
            }
            let start = first.start + at + (piece.len() - piece.trim_start().len());
            // The rows the piece is on: its first and last line's.
            let end = start + trimmed.len();
            let row_at = |byte: usize| {
                lines
                    .iter()
                    .rev()
                    .find(|l| l.start <= byte)
                    .map_or(first.row, |l| l.row)
            };
            let rows = (row_at(start), row_at(end.saturating_sub(1)));
            let text = self.with_header(trimmed);
            let count = self.tokens.count(&text);
            self.push(text, count, rows, start..end)?;
        }
        Ok(())
    }

    fn with_header(&self, body: &str) -> String {
        if self.header.is_empty() {
            return body.to_owned();
        }
        let mut text = String::with_capacity(self.header.len() + 1 + body.len());
        text.push_str(self.header);
        text.push('\n');
        text.push_str(body);
        text
    }

    /// A chunk of `count` tokens holding `rows`, at `bytes` of the section's text.
    fn push(
        &mut self,
        text: String,
        count: usize,
        rows: (u32, u32),
        bytes: std::ops::Range<usize>,
    ) -> Result<()> {
        self.chunks.push(ChunkDraft {
            ordinal: next_ordinal(self.chunks)?,
            page: self.page,
            start_byte: bytes.start,
            end_byte: bytes.end,
            token_count: count,
            text,
            label: Some(row_label(self.sheet, rows)),
            ocr: self.ocr,
        });
        Ok(())
    }
}

/// `销售明细 第3–8行`: the sheet (if the table has one) and the rows.
fn row_label(sheet: Option<&str>, (first, last): (u32, u32)) -> String {
    let rows = if first == last {
        format!("第{first}行")
    } else {
        format!("第{first}–{last}行")
    };
    match sheet {
        Some(name) => format!("{name} {rows}"),
        None => rows,
    }
}

fn config(
    max_tokens: usize,
    overlap: usize,
    tokens: &dyn TokenCount,
) -> Result<ChunkConfig<Sizer<'_>>> {
    ChunkConfig::new(max_tokens)
        .with_overlap(overlap)
        .map(|c| c.with_sizer(Sizer(tokens)))
        .map_err(|e| Error::InvalidSettings(e.to_string()))
}

fn split_auto<'t>(
    text: &'t str,
    kind: DocKind,
    tokens: &dyn TokenCount,
) -> Result<Vec<(usize, &'t str)>> {
    let cfg = config(AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS, tokens)?;
    Ok(if kind.writes_markdown() {
        // The splitter reads the structure from a copy whose inline syntax is made inert
        // (same bytes long), and the pieces are cut from the text at the same offsets.
        let structure = inert_inline_syntax(text);
        let splitter = MarkdownSplitter::new(cfg);
        let pieces = splitter
            .chunk_indices(&structure)
            .map(|(start, piece)| (start, &text[start..start + piece.len()]));
        headings_lead(pieces, text, AUTO_MAX_TOKENS + AUTO_OVERLAP_TOKENS, tokens)
    } else {
        TextSplitter::new(cfg).chunk_indices(text).collect()
    })
}

/// `pieces` of `text` (in order) with each piece that is only headings joined to the
/// piece after it, when the two together take at most `most_tokens`.
///
/// The splitter keeps a heading with its section when the section fits a chunk; when it
/// does not, the heading ("## 概述", "# 第二章交通与住宿标准") was a chunk of its own, which
/// answers nothing and matches every question that names the section, while the
/// paragraphs under it lost the heading that says what they are about. A chunk may
/// outgrow the splitter's size by the heading (up to the overlap's worth of tokens).
fn headings_lead<'t>(
    pieces: impl Iterator<Item = (usize, &'t str)>,
    text: &'t str,
    most_tokens: usize,
    tokens: &dyn TokenCount,
) -> Vec<(usize, &'t str)> {
    let mut out: Vec<(usize, &'t str)> = Vec::new();
    let mut heading: Option<(usize, &'t str)> = None;
    for (start, piece) in pieces {
        let piece = match heading.take() {
            Some((at, lead)) if start >= at + lead.len() => {
                let joined = &text[at..start + piece.len()];
                if tokens.count(joined) <= most_tokens {
                    (at, joined)
                } else {
                    out.push((at, lead));
                    (start, piece)
                }
            }
            Some(lead) => {
                out.push(lead);
                (start, piece)
            }
            None => (start, piece),
        };
        if is_only_headings(piece.1) {
            heading = Some(piece);
        } else {
            out.push(piece);
        }
    }
    out.extend(heading);
    out
}

/// Whether every line of `piece` with text is an ATX heading (`#`…).
fn is_only_headings(piece: &str) -> bool {
    let mut lines = piece.lines().map(str::trim).filter(|l| !l.is_empty());
    lines.clone().next().is_some() && lines.all(|l| l.starts_with('#'))
}

/// `text` with what the Markdown parser could read as inline syntax replaced, byte for
/// byte, by characters it reads as plain text; the start of each line (its indent and its
/// run of a marker character: `#`, `-`, `>`, `|`, a fence) is kept, and so is every block.
///
/// The Markdown splitter ranks inline elements above sentences, and the parser ends a text
/// element at each quote (smart punctuation), emphasis mark, bracket, backtick, `<`, `&` or
/// `$`. So a paragraph longer than a chunk was cut where a quote happened to fall rather than
/// between sentences: "漂泊信天翁（学名：\"\"" became a chunk of its own, apart from the
/// "）是一种大型的信天翁…" that says what it is, and "It doesn't…" was cut after "doesn".
/// Quotes and brackets become `}` and the other marks `,`: neither is Markdown syntax, and
/// both end or continue a sentence as the mark they replace does.
fn inert_inline_syntax(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let marker_len = body
            .chars()
            .next()
            .map_or(0, |first| body.len() - body.trim_start_matches(first).len());
        let (kept, rest) = line.split_at(line.len() - body.len() + marker_len);
        out.push_str(kept);
        out.extend(rest.chars().map(|c| match c {
            '"' | '\'' | '[' | ']' => '}',
            '*' | '_' | '`' | '<' | '>' | '&' | '\\' | '~' | '^' | '$' => ',',
            c => c,
        }));
    }
    out
}

fn split_custom<'t>(
    text: &'t str,
    separator: &str,
    max_tokens: usize,
    overlap: usize,
    tokens: &dyn TokenCount,
) -> Result<Vec<(usize, &'t str)>> {
    let splitter = TextSplitter::new(config(max_tokens, overlap, tokens)?);
    let mut out = Vec::new();
    let mut offset = 0;
    for segment in text.split(separator) {
        let seg_start = offset;
        offset += segment.len() + separator.len();
        if segment.trim().is_empty() {
            continue;
        }
        if tokens.count(segment) <= max_tokens {
            out.push((seg_start, segment));
        } else {
            out.extend(
                splitter
                    .chunk_indices(segment)
                    .map(|(i, s)| (seg_start + i, s)),
            );
        }
    }
    Ok(out)
}

/// Turn the escapes a person types into a form (`\n`, `\t`, `\\`) into the characters.
fn unescape(separator: &str) -> String {
    let mut out = String::with_capacity(separator.len());
    let mut chars = separator.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per character: enough to test the splitting logic without a model.
    struct Chars;
    impl TokenCount for Chars {
        fn count(&self, text: &str) -> usize {
            text.chars().count()
        }
    }

    fn doc(kind: DocKind, sections: &[(Option<u32>, &str)]) -> Extracted {
        Extracted {
            kind,
            sections: sections
                .iter()
                .map(|(page, text)| Section {
                    page: *page,
                    title: None,
                    text: (*text).to_string(),
                    ocr: false,
                    table: None,
                })
                .collect(),
            page_count: None,
            title: None,
        }
    }

    #[test]
    fn chunks_keep_their_page_and_offsets() {
        let d = doc(
            DocKind::Pdf,
            &[(Some(1), "第一页。"), (Some(2), "第二页的内容。")],
        );
        let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].page, Some(2));
        assert_eq!(chunks[1].ordinal, 1);
        let text = &d.sections[1].text;
        assert_eq!(
            &text[chunks[1].start_byte..chunks[1].end_byte],
            chunks[1].text
        );
    }

    #[test]
    fn a_long_paragraph_is_cut_between_sentences_not_at_its_quotes() {
        let zh = "漂泊信天翁（学名：\"\"）是一种大型的信天翁，生活在南冰洋附近。".to_string()
            + &"它的翼展是现存鸟类中最长的，平均达到三米以上。".repeat(12);
        let en =
            "The albatross doesn't flap its wings for hours, sailors say \"it follows ships\". "
                .to_string()
                + &"It glides twenty metres for every metre it loses in height. ".repeat(6);
        for (paragraph, ends, first) in [
            (
                zh,
                '。',
                "漂泊信天翁（学名：\"\"）是一种大型的信天翁，生活在南冰洋附近。",
            ),
            (en, '.', "sailors say \"it follows ships\"."),
        ] {
            let text = format!("## 概述\n\n{paragraph}\n\n## 速查表\n\n- **要点**：见上文\n");
            let d = doc(DocKind::Html, &[(None, text.as_str())]);
            let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
            assert!(chunks.len() >= 2, "{chunks:#?}");
            for c in &chunks {
                assert_eq!(&text[c.start_byte..c.end_byte], c.text);
            }
            // Every chunk but the last ends a sentence, and the first sentence is whole.
            for c in &chunks[..chunks.len() - 1] {
                assert!(c.text.ends_with(ends), "{:?}", c.text);
            }
            assert!(chunks[0].text.contains(first), "{chunks:#?}");
            // The Markdown around it is still read as Markdown: the heading leads its list.
            assert!(
                chunks
                    .iter()
                    .any(|c| c.text.contains("## 速查表\n\n- **要点**"))
            );
        }
    }

    #[test]
    fn a_heading_leads_the_first_piece_of_a_section_too_long_for_a_chunk() {
        let long = "第三条乘坐交通工具的标准以职级为准，出差前须在系统中登记。".repeat(12);
        let text = format!(
            "# 第二章交通与住宿标准\n\n## 第一节\n\n{long}\n\n# 附则\n\n本制度自发布之日起施行。"
        );
        let d = doc(DocKind::Docx, &[(None, text.as_str())]);
        let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
        assert!(
            chunks.iter().all(|c| !is_only_headings(&c.text)),
            "{chunks:#?}"
        );
        assert!(
            chunks[0]
                .text
                .starts_with("# 第二章交通与住宿标准\n\n## 第一节\n\n第三条")
        );
        for c in &chunks {
            assert_eq!(&text[c.start_byte..c.end_byte], c.text);
            assert!(c.token_count <= AUTO_MAX_TOKENS + AUTO_OVERLAP_TOKENS);
        }
        assert!(
            chunks
                .iter()
                .any(|c| c.text.ends_with("# 附则\n\n本制度自发布之日起施行。"))
        );
    }

    #[test]
    fn chunks_of_an_ocr_page_are_marked_and_the_others_are_not() {
        let mut d = doc(
            DocKind::Pdf,
            &[(Some(1), "有文字层的一页。"), (Some(2), "扫描的一页。")],
        );
        d.sections[1].ocr = true;
        let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
        let marks: Vec<_> = chunks.iter().map(|c| (c.page, c.ocr)).collect();
        assert_eq!(marks, vec![(Some(1), false), (Some(2), true)]);
    }

    /// A sheet of `rows` data rows under a title and a header, as the extractors write it.
    fn sheet(rows: usize, title: Option<&str>) -> Extracted {
        let mut text = String::from("2024 销售\n日期 | 城市 | 金额");
        let mut numbers = vec![1, 3];
        for i in 0..rows {
            text.push_str(&format!("\n1月{} | 上海 | {}", i + 1, 100 + i));
            numbers.push(4 + i as u32);
        }
        Extracted {
            kind: DocKind::Xlsx,
            sections: vec![Section {
                page: None,
                title: title.map(str::to_owned),
                text,
                ocr: false,
                table: Some(TableLines {
                    header_lines: 2,
                    rows: numbers,
                }),
            }],
            page_count: None,
            title: None,
        }
    }

    fn custom(max_tokens: usize) -> SplitSettings {
        SplitSettings::Custom {
            separator: "\n".into(),
            max_tokens,
            overlap_tokens: 0,
        }
    }

    #[test]
    fn table_chunks_hold_whole_rows_under_the_header() {
        let d = sheet(40, Some("销售明细"));
        let chunks = split(&d, &custom(100), &Chars).unwrap();
        assert!(chunks.len() > 3, "{chunks:#?}");
        let text = &d.sections[0].text;
        let mut next_row = 4;
        for c in &chunks {
            assert!(c.token_count <= 100, "{c:?}");
            let lines: Vec<&str> = c.text.lines().collect();
            assert_eq!(lines[..2], ["2024 销售", "日期 | 城市 | 金额"], "{c:?}");
            assert!(lines.len() > 3, "several rows per chunk: {c:?}");
            assert!(
                lines[2..]
                    .iter()
                    .all(|l| l.ends_with(|ch: char| ch.is_ascii_digit()))
            );
            // The offsets point at the chunk's rows; the rows follow one another.
            assert_eq!(text[c.start_byte..c.end_byte], lines[2..].join("\n"));
            let rows = lines.len() as u32 - 2;
            assert_eq!(
                c.label.as_deref(),
                Some(format!("销售明细 第{next_row}–{}行", next_row + rows - 1).as_str())
            );
            next_row += rows;
        }
        assert_eq!(next_row, 44, "every row once");
    }

    #[test]
    fn a_table_uses_the_auto_size_and_a_csv_label_has_no_sheet() {
        let d = sheet(3, None);
        let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, d.sections[0].text);
        assert_eq!(chunks[0].label.as_deref(), Some("第4–6行"));
        let only_header = Extracted {
            sections: vec![Section {
                text: "a | b".into(),
                table: Some(TableLines {
                    header_lines: 1,
                    rows: vec![7],
                }),
                ..d.sections[0].clone()
            }],
            ..d
        };
        let chunks = split(&only_header, &SplitSettings::Auto, &Chars).unwrap();
        assert_eq!(chunks[0].text, "a | b");
        assert_eq!(chunks[0].label.as_deref(), Some("第7行"));
    }

    #[test]
    fn a_row_longer_than_a_chunk_is_cut_under_the_header() {
        let mut d = sheet(2, Some("说明"));
        let long = "很长的备注。".repeat(60);
        d.sections[0]
            .text
            .push_str(&format!("\n1月9 | 北京 | {long}"));
        d.sections[0].text.push_str("\n1月10 | 广州 | 7");
        let rows = &mut d.sections[0].table.as_mut().unwrap().rows;
        rows.extend([9, 10]);
        let chunks = split(&d, &custom(80), &Chars).unwrap();
        let labels: Vec<_> = chunks.iter().map(|c| c.label.as_deref().unwrap()).collect();
        assert_eq!(labels.first(), Some(&"说明 第4–5行"));
        assert_eq!(labels.last(), Some(&"说明 第10行"));
        let pieces: Vec<_> = chunks
            .iter()
            .filter(|c| c.label.as_deref() == Some("说明 第9行"))
            .collect();
        assert!(pieces.len() >= 5, "{chunks:#?}");
        for c in &chunks {
            assert!(c.token_count <= 80, "{c:?}");
            assert!(
                c.text.starts_with("2024 销售\n日期 | 城市 | 金额\n"),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_header_too_wide_to_repeat_goes_alone() {
        let mut d = sheet(5, None);
        let wide: Vec<String> = (0..30).map(|i| format!("列{i}")).collect();
        d.sections[0].text =
            d.sections[0]
                .text
                .replacen("日期 | 城市 | 金额", &wide.join(" | "), 1);
        let chunks = split(&d, &custom(64), &Chars).unwrap();
        assert!(chunks.iter().any(|c| c.text.contains("列29")));
        let rows: Vec<_> = chunks.iter().filter(|c| c.text.contains("上海")).collect();
        assert!(!rows.is_empty(), "{chunks:#?}");
        assert!(
            rows.iter()
                .all(|c| !c.text.contains("列0") && c.token_count <= 64)
        );
    }

    #[test]
    fn a_layout_that_does_not_fit_the_text_is_ignored() {
        let mut d = sheet(3, None);
        d.sections[0].table.as_mut().unwrap().rows.pop();
        let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].label, None);
    }

    #[test]
    fn long_text_is_cut_within_the_limit() {
        let text = "句子很长。".repeat(200);
        let d = doc(DocKind::Text, &[(None, &text)]);
        let chunks = split(&d, &SplitSettings::Auto, &Chars).unwrap();
        assert!(chunks.len() > 3);
        assert!(chunks.iter().all(|c| c.token_count <= AUTO_MAX_TOKENS));
    }

    #[test]
    fn custom_separator_splits_first() {
        let d = doc(DocKind::Text, &[(None, "问一\n答一###问二\n答二###")]);
        let s = SplitSettings::Custom {
            separator: "###".into(),
            max_tokens: 100,
            overlap_tokens: 0,
        };
        let chunks = split(&d, &s, &Chars).unwrap();
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["问一\n答一", "问二\n答二"]);
        assert_eq!(chunks[1].start_byte, "问一\n答一###".len());
    }

    #[test]
    fn offsets_point_at_the_trimmed_text() {
        // Found by fuzz/clean_split (fuzz/regressions/clean_split/): the offsets were the
        // untrimmed segment's, one space off after "###".
        let d = doc(DocKind::Text, &[(None, "问一### 问二 ###\u{3000}问三")]);
        let s = SplitSettings::Custom {
            separator: "###".into(),
            max_tokens: 100,
            overlap_tokens: 0,
        };
        let chunks = split(&d, &s, &Chars).unwrap();
        let text = &d.sections[0].text;
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["问一", "问二", "问三"]);
        for c in &chunks {
            assert_eq!(&text[c.start_byte..c.end_byte], c.text);
        }
    }

    #[test]
    fn escaped_newline_separator_is_understood() {
        let d = doc(DocKind::Text, &[(None, "a\n\nb")]);
        let s = SplitSettings::Custom {
            separator: "\\n\\n".into(),
            max_tokens: 100,
            overlap_tokens: 0,
        };
        assert_eq!(split(&d, &s, &Chars).unwrap().len(), 2);
    }

    #[test]
    fn bad_settings_are_rejected_with_the_reason() {
        let s = SplitSettings::Custom {
            separator: "\n".into(),
            max_tokens: 5000,
            overlap_tokens: 0,
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("max_tokens must be between"), "{err}");
        let s = SplitSettings::Custom {
            separator: "\n".into(),
            max_tokens: 100,
            overlap_tokens: 80,
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn settings_parse_from_json() {
        let s: SplitSettings = serde_json::from_str(r#"{"mode":"auto"}"#).unwrap();
        assert_eq!(s, SplitSettings::Auto);
        let s: SplitSettings = serde_json::from_str(
            r#"{"mode":"custom","separator":"\n","max_tokens":128,"overlap_tokens":16}"#,
        )
        .unwrap();
        assert!(matches!(
            s,
            SplitSettings::Custom {
                max_tokens: 128,
                ..
            }
        ));
    }
}
