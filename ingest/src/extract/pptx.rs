//! PPTX: one section per slide, its number as the page, so citations can say "slide 3".
//!
//! A slide's text is its shapes' paragraphs in document order, a table's rows one line
//! each with cells joined by ` | ` (as DOCX tables), then the speaker notes, which often
//! hold what the presenter actually says. Slide order is the presentation's `sldIdLst`,
//! not the part names (`slide10.xml` may be shown second). Fields (slide numbers, dates)
//! are chrome and left out.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ooxml::{self, Archive, resolve_ref};
use super::rows::one_line;
use super::{DocKind, ExtractLimits, Extracted, Section};
use crate::{Error, Result};

/// The relationship type of a slide's notes (its rels' `Type` ends with this).
const NOTES_TYPE_SUFFIX: &str = "/notesSlide";

/// Slides in presentation order, each with its notes.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let mut archive = ooxml::open(bytes, "pptx", limits)?;
    let presentation = read(&mut archive, "ppt/presentation.xml", limits)?
        .ok_or_else(|| corrupt("ppt/presentation.xml is missing".into()))?;
    let targets = relationships(&mut archive, "ppt/presentation.xml", limits)?;
    let slides: Vec<String> = slide_ids(&presentation)?
        .iter()
        .filter_map(|id| targets.get(id))
        .map(|(_, target)| target.clone())
        .collect();
    let mut sections = Vec::with_capacity(slides.len());
    for (number, slide) in slides.iter().enumerate() {
        let Some(xml) = read(&mut archive, slide, limits)? else {
            continue;
        };
        let mut text = shape_text(&xml, slide)?;
        let notes = relationships(&mut archive, slide, limits)?
            .into_values()
            .find(|(kind, _)| kind.ends_with(NOTES_TYPE_SUFFIX));
        if let Some((_, notes)) = notes
            && let Some(xml) = read(&mut archive, &notes, limits)?
        {
            let notes = shape_text(&xml, &notes)?;
            if !notes.trim().is_empty() {
                text.push_str("\n\n");
                text.push_str(&notes);
            }
        }
        sections.push(Section {
            page: Some(u32::try_from(number + 1).unwrap_or(u32::MAX)),
            title: None,
            text,
            ocr: false,
            table: None,
        });
    }
    let title = ooxml::core_title(&mut archive, "pptx", limits);
    Ok(Extracted {
        kind: DocKind::Pptx,
        page_count: u32::try_from(slides.len()).ok(),
        sections,
        title,
    })
}

fn corrupt(detail: String) -> Error {
    Error::Corrupt {
        kind: "pptx".into(),
        detail,
    }
}

fn read(archive: &mut Archive<'_>, name: &str, limits: &ExtractLimits) -> Result<Option<Vec<u8>>> {
    ooxml::read_entry(archive, name, "pptx", limits)
}

fn attr(e: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| String::from_utf8(a.value.into_owned()).ok())
}

/// The `r:id`s of `p:sldIdLst`, in presentation order.
fn slide_ids(xml: &[u8]) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format!("ppt/presentation.xml: {e}")))?
        {
            Event::Empty(e) | Event::Start(e) if e.local_name().as_ref() == b"sldId" => {
                // `id` is the slide's number, `r:id` the relationship: the prefixed one.
                let relationship = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == b"id" && a.key.prefix().is_some());
                ids.extend(relationship.and_then(|a| String::from_utf8(a.value.into_owned()).ok()));
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(ids)
}

/// A part's relationships: id → (type, target part name resolved against the part's folder).
fn relationships(
    archive: &mut Archive<'_>,
    part: &str,
    limits: &ExtractLimits,
) -> Result<HashMap<String, (String, String)>> {
    let (folder, file) = part.rsplit_once('/').unwrap_or(("", part));
    let Some(xml) = read(archive, &format!("{folder}/_rels/{file}.rels"), limits)? else {
        return Ok(HashMap::new());
    };
    let mut found = HashMap::new();
    let mut reader = Reader::from_reader(xml.as_slice());
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format!("{part} relationships: {e}")))?
        {
            Event::Empty(e) | Event::Start(e) if e.local_name().as_ref() == b"Relationship" => {
                if let (Some(id), Some(kind), Some(target)) =
                    (attr(&e, b"Id"), attr(&e, b"Type"), attr(&e, b"Target"))
                {
                    found.insert(id, (kind, resolve(folder, &target)));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(found)
}

/// A relationship target (`slides/slide1.xml`, `../notesSlides/notesSlide1.xml`,
/// `/ppt/slides/slide1.xml`) as a part name.
fn resolve(folder: &str, target: &str) -> String {
    let mut parts: Vec<&str> = match target.strip_prefix('/') {
        Some(_) => Vec::new(),
        None => folder.split('/').filter(|p| !p.is_empty()).collect(),
    };
    for piece in target.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Walks a slide (or notes) part and collects its lines.
#[derive(Default)]
struct Shapes {
    lines: Vec<String>,
    paragraph: String,
    in_text: bool,
    /// The open table's row, and its cell while one is open.
    row: Option<Vec<String>>,
    cell: Option<String>,
}

impl Shapes {
    fn start(&mut self, e: &BytesStart<'_>) {
        match e.local_name().as_ref() {
            b"p" => self.paragraph.clear(),
            b"t" => self.in_text = true,
            b"tr" => self.row = Some(Vec::new()),
            b"tc" => self.cell = Some(String::new()),
            _ => {}
        }
    }

    fn end(&mut self, local: &[u8]) {
        match local {
            b"t" => self.in_text = false,
            b"p" => {
                let paragraph = std::mem::take(&mut self.paragraph);
                match self.cell.as_mut() {
                    Some(cell) => {
                        if !cell.is_empty() && !paragraph.is_empty() {
                            cell.push(' ');
                        }
                        cell.push_str(&paragraph);
                    }
                    None => self.lines.push(paragraph),
                }
            }
            b"tc" => {
                if let (Some(cell), Some(row)) = (self.cell.take(), self.row.as_mut()) {
                    row.push(one_line(&cell));
                }
            }
            b"tr" => {
                if let Some(row) = self.row.take() {
                    self.lines.push(row.join(" | "));
                }
            }
            _ => {}
        }
    }
}

/// The text of a slide or notes part: paragraphs one per line, table rows one per line.
fn shape_text(xml: &[u8], part: &str) -> Result<String> {
    let mut shapes = Shapes::default();
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format!("{part}: {e}")))?;
        match event {
            // Fields are slide numbers, dates and the like; a Fallback repeats its Choice.
            Event::Start(e) if matches!(e.local_name().as_ref(), b"fld" | b"Fallback") => {
                let end = e.to_end().into_owned();
                reader
                    .read_to_end_into(end.name(), &mut Vec::new())
                    .map_err(|e| corrupt(format!("{part}: {e}")))?;
            }
            Event::Start(e) => shapes.start(&e),
            Event::Empty(e) if e.local_name().as_ref() == b"br" => shapes.paragraph.push('\n'),
            Event::End(e) => shapes.end(e.local_name().as_ref()),
            Event::Text(t) if shapes.in_text => shapes
                .paragraph
                .push_str(&t.decode().map_err(|e| corrupt(format!("{part}: {e}")))?),
            Event::GeneralRef(r) if shapes.in_text => shapes.paragraph.push_str(&resolve_ref(&r)),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(shapes.lines.join("\n"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_against_the_part_folder() {
        assert_eq!(resolve("ppt", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert_eq!(
            resolve("ppt/slides", "../notesSlides/notesSlide1.xml"),
            "ppt/notesSlides/notesSlide1.xml"
        );
        assert_eq!(
            resolve("ppt", "/ppt/slides/slide2.xml"),
            "ppt/slides/slide2.xml"
        );
    }

    #[test]
    fn shapes_tables_and_fields() {
        let xml = r#"<p:sld xmlns:a="a" xmlns:p="p"><p:cSld><p:spTree>
            <p:sp><p:txBody><a:p><a:r><a:t>标题 &amp; 副标题</a:t></a:r></a:p>
              <a:p><a:r><a:t>第一行</a:t></a:r><a:br/><a:r><a:t>第二行</a:t></a:r></a:p>
              <a:p><a:fld type="slidenum"><a:t>7</a:t></a:fld></a:p></p:txBody></p:sp>
            <p:graphicFrame><a:graphic><a:graphicData><a:tbl>
              <a:tr><a:tc><a:txBody><a:p><a:r><a:t>城市</a:t></a:r></a:p></a:txBody></a:tc>
                    <a:tc><a:txBody><a:p><a:r><a:t>上限</a:t></a:r></a:p></a:txBody></a:tc></a:tr>
              <a:tr><a:tc><a:txBody><a:p><a:r><a:t>北京</a:t></a:r></a:p></a:txBody></a:tc>
                    <a:tc><a:txBody><a:p><a:r><a:t>600</a:t></a:r></a:p></a:txBody></a:tc></a:tr>
            </a:tbl></a:graphicData></a:graphic></p:graphicFrame>
            </p:spTree></p:cSld></p:sld>"#;
        assert_eq!(
            shape_text(xml.as_bytes(), "slide").unwrap(),
            "标题 & 副标题\n第一行\n第二行\n\n城市 | 上限\n北京 | 600"
        );
    }
}
