//! What a file really is, decided from its bytes.
//!
//! Names lie (a PNG renamed `.pdf`, a `.txt` that is an executable), so magic bytes decide
//! first; the extension only tells the text formats apart, which have no magic of their own.

use std::io::{Cursor, Read};

use super::image::{IMAGE_EXTENSIONS, is_image};
use super::{DocKind, accepted_list, is_accepted_extension};
use crate::{Error, Result};

/// Extensions whose content is plain text in some syntax.
const TEXT_EXTENSIONS: &[&str] = &[
    "csv", "json", "jsonl", "html", "htm", "md", "markdown", "txt",
];

/// Zip-based formats: a zip that can't be opened under one of these names is damaged.
const ZIP_EXTENSIONS: &[&str] = &["docx", "xlsx", "pptx", "odt", "ods", "epub"];

/// The signature of an OLE compound file (Word, Excel and PowerPoint 97–2003).
const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// OLE formats by the stream each one must hold (names are UTF-16 in the directory).
const OLE_STREAMS: &[(&str, &str)] = &[
    ("doc", "WordDocument"),
    ("xls", "Workbook"),
    ("xls", "Book"),
    ("ppt", "PowerPoint Document"),
];

/// How far into a file a PDF header may start (Acrobat's own tolerance).
const PDF_HEADER_WINDOW: usize = 1024;

/// How much of a text file is looked at to tell text from binary.
const TEXT_SAMPLE_BYTES: usize = 64 * 1024;

/// Decide the kind from the content first (magic bytes), using the file name's extension
/// only to tell text formats apart.
///
/// Errors: [`Error::Empty`] for no bytes or only whitespace; [`Error::Unsupported`] for
/// known binary types, zips that are none of DOCX, XLSX, PPTX, ODT, ODS or EPUB, OLE files
/// that are neither Word nor Excel (PowerPoint 97–2003 among them), binary data and content
/// that contradicts a binary extension (a `.pdf` that isn't a PDF, an image named `.docx`;
/// an image is accepted under an image extension or none); [`Error::Corrupt`] for a
/// zip-based format whose zip directory can't be read.
pub fn detect_kind(file_name: &str, bytes: &[u8]) -> Result<DocKind> {
    let ext = extension(file_name);
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Empty);
    }
    if is_pdf(bytes, ext.as_deref()) {
        return Ok(DocKind::Pdf);
    }
    if is_zip(bytes) {
        return zip_kind(bytes, ext.as_deref());
    }
    if bytes.starts_with(OLE_MAGIC) {
        return ole_kind(bytes, ext.as_deref());
    }
    if is_image(bytes) {
        return match ext.as_deref() {
            None => Ok(DocKind::Image),
            Some(e) if IMAGE_EXTENSIONS.contains(&e) => Ok(DocKind::Image),
            // A picture saved under a document's name is more likely a mistake than a scan.
            Some(_) => Err(unsupported(
                infer::get(bytes).map_or("an image", |t| t.mime_type()),
            )),
        };
    }
    // Text first: some of infer's signatures are two bytes long ("BC" is LLVM bitcode), so a
    // passage titled "BC信用卡杯…" would be refused. Real binaries fail the text test anyway
    // (NULs and control bytes); infer then only names what they are.
    if !looks_like_text(bytes) {
        let detected = infer::get(bytes).map_or("binary data", |t| t.mime_type());
        return Err(unsupported(detected));
    }
    Ok(match ext.as_deref() {
        Some("md" | "markdown") => DocKind::Markdown,
        Some("html" | "htm") => DocKind::Html,
        Some("csv") => DocKind::Csv,
        Some("json") => DocKind::Json,
        Some("jsonl") => DocKind::Jsonl,
        // Text under a binary format's name: a `.pdf` that says "hello" is not a broken PDF.
        Some(e) if is_accepted_extension(e) && !TEXT_EXTENSIONS.contains(&e) => {
            return Err(unsupported("text/plain"));
        }
        _ if starts_like_html(body) => DocKind::Html,
        _ => DocKind::Text,
    })
}

fn unsupported(detected: &str) -> Error {
    Error::Unsupported {
        detected: detected.to_owned(),
        accepted: accepted_list(),
    }
}

/// The lowercase extension, if the name has one.
fn extension(file_name: &str) -> Option<String> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let (stem, ext) = base.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_ascii_lowercase())
}

/// `%PDF-` at the start, after whitespace/BOM/NUL padding, or (unless the name says it is a
/// text format, where the string may just be quoted) after any junk in the first 1 KB.
fn is_pdf(bytes: &[u8], ext: Option<&str>) -> bool {
    let window = bytes.get(..PDF_HEADER_WINDOW + 5).unwrap_or(bytes);
    let Some(at) = window.windows(5).position(|w| w == b"%PDF-") else {
        return false;
    };
    let padding_only = window[..at]
        .iter()
        .all(|b| b.is_ascii_whitespace() || matches!(b, 0 | 0xEF | 0xBB | 0xBF | 0xFE | 0xFF));
    padding_only || !ext.is_some_and(|e| TEXT_EXTENSIONS.contains(&e))
}

fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        || bytes.starts_with(b"PK\x05\x06")
        || bytes.starts_with(b"PK\x07\x08")
}

/// DOCX, XLSX and PPTX are zips told apart by their main part; ODF documents and EPUBs by
/// their `mimetype` entry.
fn zip_kind(bytes: &[u8], ext: Option<&str>) -> Result<DocKind> {
    let mut archive = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(archive) => archive,
        Err(e) => {
            return Err(match ext {
                Some(kind) if ZIP_EXTENSIONS.contains(&kind) => Error::Corrupt {
                    kind: kind.to_owned(),
                    detail: e.to_string(),
                },
                _ => unsupported("application/zip"),
            });
        }
    };
    if archive.index_for_name("word/document.xml").is_some() {
        return Ok(DocKind::Docx);
    } else if archive.index_for_name("xl/workbook.xml").is_some() {
        return Ok(DocKind::Xlsx);
    } else if archive.index_for_name("ppt/presentation.xml").is_some() {
        return Ok(DocKind::Pptx);
    }
    match zip_mimetype(&mut archive).as_deref() {
        Some("application/vnd.oasis.opendocument.text") => Ok(DocKind::Odt),
        Some("application/vnd.oasis.opendocument.spreadsheet") => Ok(DocKind::Ods),
        Some("application/epub+zip") => Ok(DocKind::Epub),
        Some(other) if !other.is_empty() => Err(unsupported(other)),
        _ => Err(unsupported("application/zip")),
    }
}

/// The `mimetype` entry ODF and EPUB put first in the zip (a short line; more is not one).
fn zip_mimetype(archive: &mut zip::ZipArchive<Cursor<&[u8]>>) -> Option<String> {
    let entry = archive.by_name("mimetype").ok()?;
    let mut text = String::new();
    entry.take(100).read_to_string(&mut text).ok()?;
    let text = text.trim();
    text.bytes()
        .all(|b| b.is_ascii_graphic())
        .then(|| text.to_owned())
}

/// Word and Excel 97–2003 files are OLE compound files told apart by their streams. A file
/// can hold another format's stream too (an embedded object), so the extension's own format
/// wins when its stream is there. PowerPoint 97–2003 is refused: catppt, the one small
/// reader Debian has, found no text in a `.ppt` LibreOffice wrote, so it is not trusted.
fn ole_kind(bytes: &[u8], ext: Option<&str>) -> Result<DocKind> {
    let has = |stream: &str| {
        let name: Vec<u8> = stream.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.windows(name.len()).any(|w| w == name.as_slice())
    };
    let found = OLE_STREAMS
        .iter()
        .filter(|(kind, stream)| ext == Some(*kind) && has(stream))
        .chain(OLE_STREAMS.iter().filter(|(_, stream)| has(stream)))
        .map(|(kind, _)| *kind)
        .next();
    match found {
        Some("doc") => Ok(DocKind::Doc),
        Some("xls") => Ok(DocKind::Xls),
        Some(_) => Err(unsupported(
            "application/vnd.ms-powerpoint: PowerPoint 97–2003 is not read; save it as .pptx",
        )),
        None => Err(unsupported("application/x-ole-storage")),
    }
}

/// Text has no NULs (unless it is UTF-16 with a BOM) and almost no C0 control bytes.
fn looks_like_text(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return true;
    }
    if bytes.contains(&0) {
        return false;
    }
    let sample = bytes.get(..TEXT_SAMPLE_BYTES).unwrap_or(bytes);
    let controls = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
        .count();
    controls * 20 <= sample.len()
}

fn starts_like_html(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let head = body
        .get(start..start + 14)
        .unwrap_or(&body[start..])
        .to_ascii_lowercase();
    head.starts_with(b"<!doctype html") || head.starts_with(b"<html")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::io::Write;

    use super::*;

    fn detected(result: Result<DocKind>) -> String {
        match result {
            Err(Error::Unsupported { detected, .. }) => detected,
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    fn zip_with(names: &[&str]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for name in names {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(b"<x/>").unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn pdf_magic_wins_over_the_name() {
        assert_eq!(
            detect_kind("report.txt", b"%PDF-1.7\n...").unwrap(),
            DocKind::Pdf
        );
        assert_eq!(
            detect_kind("x", b"\xEF\xBB\xBF \r\n%PDF-1.4").unwrap(),
            DocKind::Pdf
        );
        assert_eq!(
            detect_kind("x.pdf", b"junk junk %PDF-1.4").unwrap(),
            DocKind::Pdf
        );
        // A note that quotes the header is still a note.
        assert_eq!(
            detect_kind("notes.md", b"PDFs start with %PDF-1.7").unwrap(),
            DocKind::Markdown
        );
    }

    #[test]
    fn zips_are_told_apart_by_their_main_part() {
        assert_eq!(
            detect_kind("a.bin", &zip_with(&["word/document.xml"])).unwrap(),
            DocKind::Docx
        );
        assert_eq!(
            detect_kind("a.docx", &zip_with(&["xl/workbook.xml"])).unwrap(),
            DocKind::Xlsx
        );
        assert_eq!(
            detect_kind("deck", &zip_with(&["ppt/presentation.xml"])).unwrap(),
            DocKind::Pptx
        );
        assert_eq!(
            detected(detect_kind("a.docx", &zip_with(&["a.txt"]))),
            "application/zip"
        );
        assert!(matches!(
            detect_kind("a.docx", b"PK\x03\x04broken"),
            Err(Error::Corrupt { .. })
        ));
        assert_eq!(
            detected(detect_kind("a.zip", b"PK\x03\x04broken")),
            "application/zip"
        );
    }

    #[test]
    fn odf_and_epub_are_told_apart_by_their_mimetype() {
        let zip_of = |mimetype: &str| {
            let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
            writer
                .start_file("mimetype", zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(mimetype.as_bytes()).unwrap();
            writer.finish().unwrap().into_inner()
        };
        let odt = zip_of("application/vnd.oasis.opendocument.text");
        assert_eq!(detect_kind("a.odt", &odt).unwrap(), DocKind::Odt);
        let ods = zip_of("application/vnd.oasis.opendocument.spreadsheet");
        assert_eq!(detect_kind("a", &ods).unwrap(), DocKind::Ods);
        let epub = zip_of("application/epub+zip");
        assert_eq!(detect_kind("book.epub", &epub).unwrap(), DocKind::Epub);
        let odp = zip_of("application/vnd.oasis.opendocument.presentation");
        assert_eq!(
            detected(detect_kind("a.odp", &odp)),
            "application/vnd.oasis.opendocument.presentation"
        );
        assert!(matches!(
            detect_kind("a.epub", b"PK\x03\x04broken"),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn ole_files_are_told_apart_by_their_streams() {
        let ole = |streams: &[&str]| {
            let mut bytes = OLE_MAGIC.to_vec();
            bytes.extend_from_slice(&[0; 56]);
            for stream in streams {
                bytes.extend(stream.encode_utf16().flat_map(u16::to_le_bytes));
                bytes.extend_from_slice(&[0; 8]);
            }
            bytes
        };
        assert_eq!(
            detect_kind("a.doc", &ole(&["WordDocument"])).unwrap(),
            DocKind::Doc
        );
        assert_eq!(
            detect_kind("upload", &ole(&["Workbook"])).unwrap(),
            DocKind::Xls
        );
        // A workbook with an embedded Word object is still a workbook under its own name.
        assert_eq!(
            detect_kind("a.xls", &ole(&["WordDocument", "Workbook"])).unwrap(),
            DocKind::Xls
        );
        let ppt = detected(detect_kind("a.ppt", &ole(&["PowerPoint Document"])));
        assert!(ppt.contains("save it as .pptx"), "{ppt}");
        assert_eq!(
            detected(detect_kind("a.msg", &ole(&["__substg1.0"]))),
            "application/x-ole-storage"
        );
    }

    #[test]
    fn the_sniffers_lists_are_part_of_the_accepted_one() {
        for ext in TEXT_EXTENSIONS
            .iter()
            .chain(IMAGE_EXTENSIONS)
            .chain(ZIP_EXTENSIONS)
        {
            assert!(is_accepted_extension(ext), "{ext}");
        }
        for (ext, _) in OLE_STREAMS.iter().filter(|(ext, _)| *ext != "ppt") {
            assert!(is_accepted_extension(ext), "{ext}");
        }
        assert!(!is_accepted_extension("ppt"));
    }

    #[test]
    fn text_that_starts_like_a_short_signature_is_text() {
        // "BC" is infer's LLVM-bitcode signature; "MZ" a Windows executable's.
        let passage = "BC信用卡杯世界围棋公开赛是围棋比赛。".as_bytes();
        assert_eq!(detect_kind("x.txt", passage).unwrap(), DocKind::Text);
        assert_eq!(
            detect_kind("x.md", b"MZ is a name").unwrap(),
            DocKind::Markdown
        );
    }

    #[test]
    fn binary_types_are_named() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
        assert_eq!(detected(detect_kind("chart.pdf", png)), "image/png");
        assert_eq!(
            detected(detect_kind("x.txt", b"MZ\x90\0\x03\0\0\0")),
            "application/vnd.microsoft.portable-executable"
        );
        assert_eq!(detected(detect_kind("x.txt", b"abc\0def")), "binary data");
        assert_eq!(
            detected(detect_kind("x.txt", &[1u8, 2, 3, 4, 5, 6, b'a'])),
            "binary data"
        );
    }

    #[test]
    fn images_are_documents_under_an_image_name_or_none() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
        assert_eq!(detect_kind("scan.png", png).unwrap(), DocKind::Image);
        assert_eq!(detect_kind("photo.JPG", png).unwrap(), DocKind::Image);
        assert_eq!(detect_kind("upload", png).unwrap(), DocKind::Image);
        assert_eq!(detected(detect_kind("notes.txt", png)), "image/png");
        let jpeg = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0";
        assert_eq!(detect_kind("a.jpeg", jpeg).unwrap(), DocKind::Image);
        assert_eq!(detected(detect_kind("a.png", b"hello")), "text/plain");
    }

    #[test]
    fn text_kinds_come_from_the_extension() {
        assert_eq!(detect_kind("a.MD", b"# hi").unwrap(), DocKind::Markdown);
        assert_eq!(detect_kind("a.markdown", b"hi").unwrap(), DocKind::Markdown);
        assert_eq!(detect_kind("a.htm", b"<p>hi").unwrap(), DocKind::Html);
        assert_eq!(detect_kind("a.csv", b"a,b\n1,2").unwrap(), DocKind::Csv);
        assert_eq!(detect_kind("a.json", b"[1]").unwrap(), DocKind::Json);
        assert_eq!(detect_kind("a.JSONL", b"{}\n{}").unwrap(), DocKind::Jsonl);
        assert_eq!(detected(detect_kind("a.epub", b"hello")), "text/plain");
        assert_eq!(
            detect_kind("a.txt", "你好".as_bytes()).unwrap(),
            DocKind::Text
        );
        assert_eq!(detect_kind("README", b"hi").unwrap(), DocKind::Text);
        assert_eq!(
            detect_kind("page", b"  <!DOCTYPE html><p>x").unwrap(),
            DocKind::Html
        );
        assert_eq!(
            detect_kind("a.txt", b"\xFF\xFEh\0i\0").unwrap(),
            DocKind::Text
        );
        assert_eq!(detected(detect_kind("a.pdf", b"hello")), "text/plain");
    }

    #[test]
    fn nothing_is_empty() {
        assert!(matches!(detect_kind("a.pdf", b""), Err(Error::Empty)));
        assert!(matches!(
            detect_kind("a.txt", b"\xEF\xBB\xBF \r\n\t"),
            Err(Error::Empty)
        ));
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("dir.v2/Report.PDF").as_deref(), Some("pdf"));
        assert_eq!(extension(".bashrc"), None);
        assert_eq!(extension("noext"), None);
    }
}
