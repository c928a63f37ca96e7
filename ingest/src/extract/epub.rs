//! EPUB: a zip of XHTML chapters. The package document (`*.opf`, found through
//! `META-INF/container.xml`) lists them in reading order (its spine), which is not the order
//! of the file names. Each chapter is read by the HTML extractor (headings, lists, tables;
//! EPUB 3 footnotes are `<aside epub:type="footnote">`, which it keeps) and becomes one
//! section with its place in the spine as its page, so a citation can say "chapter 3".
//! The navigation document repeats the headings and is skipped.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ooxml::{self, Archive};
use super::{DocKind, ExtractLimits, Extracted, Section, html};
use crate::{Error, Result};

/// One manifest item: where it is and what it is.
struct Item {
    href: String,
    media_type: String,
    is_nav: bool,
}

/// Chapters in spine order, one section each; the title from the package document.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let mut archive = ooxml::open(bytes, "epub", limits)?;
    let container = read(&mut archive, "META-INF/container.xml", limits)?
        .ok_or_else(|| corrupt("META-INF/container.xml is missing".into()))?;
    let package_path = rootfile(&container)?;
    let package = read(&mut archive, &package_path, limits)?
        .ok_or_else(|| corrupt(format!("{package_path} is missing")))?;
    let (items, spine) = manifest_and_spine(&package)?;
    let folder = package_path
        .rsplit_once('/')
        .map_or("", |(folder, _)| folder);
    let chapters: Vec<&Item> = spine
        .iter()
        .filter_map(|id| items.get(id))
        .filter(|item| !item.is_nav && is_html(&item.media_type))
        .collect();
    let mut sections = Vec::with_capacity(chapters.len());
    for (number, item) in chapters.iter().enumerate() {
        let path = resolve(folder, &item.href);
        let Some(xhtml) = read(&mut archive, &path, limits)? else {
            continue;
        };
        let chapter = html::extract(&xhtml);
        sections.push(Section {
            page: Some(u32::try_from(number + 1).unwrap_or(u32::MAX)),
            title: chapter.title,
            text: chapter
                .sections
                .into_iter()
                .map(|s| s.text)
                .collect::<Vec<_>>()
                .join("\n\n"),
            ocr: false,
            table: None,
        });
    }
    let title = ooxml::part_title(&mut archive, &package_path, "epub", limits);
    Ok(Extracted {
        kind: DocKind::Epub,
        page_count: u32::try_from(chapters.len()).ok(),
        sections,
        title,
    })
}

fn corrupt(detail: String) -> Error {
    Error::Corrupt {
        kind: "epub".into(),
        detail,
    }
}

fn read(archive: &mut Archive<'_>, name: &str, limits: &ExtractLimits) -> Result<Option<Vec<u8>>> {
    ooxml::read_entry(archive, name, "epub", limits)
}

fn is_html(media_type: &str) -> bool {
    matches!(media_type, "application/xhtml+xml" | "text/html")
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

/// The package document's path: the first `rootfile` of `container.xml`.
fn rootfile(xml: &[u8]) -> Result<String> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format!("META-INF/container.xml: {e}")))?
        {
            Event::Empty(e) | Event::Start(e) if e.local_name().as_ref() == b"rootfile" => {
                if let Some(path) = attr(&e, b"full-path") {
                    return Ok(path);
                }
            }
            Event::Eof => return Err(corrupt("container.xml names no package document".into())),
            _ => {}
        }
        buf.clear();
    }
}

/// The manifest (id → item) and the spine (ids in reading order).
fn manifest_and_spine(xml: &[u8]) -> Result<(HashMap<String, Item>, Vec<String>)> {
    let mut items = HashMap::new();
    let mut spine = Vec::new();
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| corrupt(format!("package document: {e}")))?
        {
            Event::Empty(e) | Event::Start(e) => match e.local_name().as_ref() {
                b"item" => {
                    if let (Some(id), Some(href)) = (attr(&e, b"id"), attr(&e, b"href")) {
                        let is_nav = attr(&e, b"properties")
                            .is_some_and(|p| p.split_whitespace().any(|p| p == "nav"));
                        let media_type = attr(&e, b"media-type").unwrap_or_default();
                        items.insert(
                            id,
                            Item {
                                href,
                                media_type,
                                is_nav,
                            },
                        );
                    }
                }
                b"itemref" => spine.extend(attr(&e, b"idref")),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok((items, spine))
}

/// An `href` (relative to the package document's folder, percent-encoded) as a zip entry name.
fn resolve(folder: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or(href);
    let mut parts: Vec<String> = folder
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    for piece in href.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(percent_decode(other)),
        }
    }
    parts.join("/")
}

/// `%E7%AC%AC` → the UTF-8 it encodes; anything malformed is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn hrefs_resolve_against_the_package_folder() {
        assert_eq!(resolve("OEBPS", "text/ch1.xhtml"), "OEBPS/text/ch1.xhtml");
        assert_eq!(resolve("", "ch1.xhtml#top"), "ch1.xhtml");
        assert_eq!(
            resolve("OEBPS/pkg", "../Text/%E7%AC%AC1%20章.xhtml"),
            "OEBPS/Text/第1 章.xhtml"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn spine_order_and_the_nav_document() {
        let opf = r#"<package xmlns="http://www.idpf.org/2007/opf"><manifest>
            <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
            <item id="b" href="b.xhtml" media-type="application/xhtml+xml"/>
            <item id="a" href="a.xhtml" media-type="application/xhtml+xml"/>
            <item id="css" href="s.css" media-type="text/css"/></manifest>
            <spine><itemref idref="nav"/><itemref idref="b"/><itemref idref="a"/></spine></package>"#;
        let (items, spine) = manifest_and_spine(opf.as_bytes()).unwrap();
        assert_eq!(spine, ["nav", "b", "a"]);
        assert!(items["nav"].is_nav);
        assert_eq!(items["b"].href, "b.xhtml");
        let container = r#"<container><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
        assert_eq!(rootfile(container.as_bytes()).unwrap(), "OEBPS/content.opf");
    }
}
