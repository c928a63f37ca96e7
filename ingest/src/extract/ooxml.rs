//! The zip container DOCX, XLSX and PPTX share (and ODF and EPUB too): size caps and the
//! document's title.
//!
//! A small upload can expand to gigabytes (a zip bomb), so the central directory's entry
//! count and declared sizes are checked before anything is inflated, and reads are capped
//! again while inflating because declared sizes can lie.

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::ExtractLimits;
use crate::{Error, Result};

/// A zip archive over the upload's bytes.
pub(crate) type Archive<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Open the archive and check its entry count and declared uncompressed size.
pub(crate) fn open<'a>(bytes: &'a [u8], kind: &str, limits: &ExtractLimits) -> Result<Archive<'a>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(kind, &e))?;
    if archive.len() > limits.max_archive_entries {
        return Err(Error::TooLarge {
            detail: format!(
                "the {kind} holds {} zip entries; the limit is {}",
                archive.len(),
                limits.max_archive_entries
            ),
        });
    }
    let mut declared_bytes: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| corrupt(kind, &e))?;
        declared_bytes = declared_bytes.saturating_add(entry.size());
    }
    if declared_bytes > limits.max_uncompressed_bytes {
        return Err(too_large(kind, declared_bytes, limits));
    }
    Ok(archive)
}

/// Inflate every entry into a sink, counting real bytes, so a lying directory can't get a
/// bomb past [`open`]. Used before handing the archive to a parser we can't cap (calamine).
pub(crate) fn check_inflated_size(
    archive: &mut Archive<'_>,
    kind: &str,
    limits: &ExtractLimits,
) -> Result<()> {
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|e| corrupt(kind, &e))?;
        let budget = limits.max_uncompressed_bytes - total;
        total += std::io::copy(
            &mut entry.take(budget.saturating_add(1)),
            &mut std::io::sink(),
        )
        .map_err(|e| Error::Corrupt {
            kind: kind.to_owned(),
            detail: e.to_string(),
        })?;
        if total > limits.max_uncompressed_bytes {
            return Err(too_large(kind, total, limits));
        }
    }
    Ok(())
}

/// Read one entry, at most `max_uncompressed_bytes` of it. `Ok(None)` if it doesn't exist.
pub(crate) fn read_entry(
    archive: &mut Archive<'_>,
    name: &str,
    kind: &str,
    limits: &ExtractLimits,
) -> Result<Option<Vec<u8>>> {
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(corrupt(kind, &e)),
    };
    let mut bytes = Vec::new();
    entry
        .take(limits.max_uncompressed_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Corrupt {
            kind: kind.to_owned(),
            detail: format!("{name}: {e}"),
        })?;
    if bytes.len() as u64 > limits.max_uncompressed_bytes {
        return Err(too_large(kind, bytes.len() as u64, limits));
    }
    Ok(Some(bytes))
}

/// `dc:title` from `docProps/core.xml`, if there is one.
pub(crate) fn core_title(
    archive: &mut Archive<'_>,
    kind: &str,
    limits: &ExtractLimits,
) -> Option<String> {
    part_title(archive, "docProps/core.xml", kind, limits)
}

/// The first `title` element (`dc:title`) of an XML part: OOXML's core properties, ODF's
/// `meta.xml`, an EPUB's package document.
pub(crate) fn part_title(
    archive: &mut Archive<'_>,
    part: &str,
    kind: &str,
    limits: &ExtractLimits,
) -> Option<String> {
    let xml = read_entry(archive, part, kind, limits).ok()??;
    let mut reader = Reader::from_reader(xml.as_slice());
    let mut buf = Vec::new();
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) if e.local_name().as_ref() == b"title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == b"title" => break,
            Event::Text(t) if in_title => title.push_str(&t.decode().ok()?),
            Event::GeneralRef(r) if in_title => title.push_str(&resolve_ref(&r)),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

/// The text of `&amp;`, `&#x4E2D;` and the like (quick-xml reports them apart from text).
pub(crate) fn resolve_ref(reference: &quick_xml::events::BytesRef<'_>) -> String {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        return c.to_string();
    }
    let name = reference.decode().unwrap_or_default();
    quick_xml::escape::resolve_xml_entity(&name).map_or_else(|| format!("&{name};"), str::to_owned)
}

fn corrupt(kind: &str, e: &zip::result::ZipError) -> Error {
    Error::Corrupt {
        kind: kind.to_owned(),
        detail: e.to_string(),
    }
}

fn too_large(kind: &str, bytes: u64, limits: &ExtractLimits) -> Error {
    Error::TooLarge {
        detail: format!(
            "the {kind} expands to more than {bytes} bytes; the limit is {} bytes",
            limits.max_uncompressed_bytes
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn caps_entries_and_size() {
        let limits = ExtractLimits {
            max_archive_entries: 2,
            max_uncompressed_bytes: 1000,
            ..ExtractLimits::default()
        };
        let many = zip_of(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
        assert!(matches!(
            open(&many, "docx", &limits),
            Err(Error::TooLarge { .. })
        ));
        let big = zip_of(&[("a", &[b'x'; 2000])]);
        assert!(matches!(
            open(&big, "docx", &limits),
            Err(Error::TooLarge { .. })
        ));
        let ok = zip_of(&[("a", &[b'x'; 600])]);
        let mut archive = open(&ok, "docx", &limits).unwrap();
        check_inflated_size(&mut archive, "xlsx", &limits).unwrap();
        assert_eq!(
            read_entry(&mut archive, "a", "docx", &limits)
                .unwrap()
                .unwrap()
                .len(),
            600
        );
        assert!(
            read_entry(&mut archive, "missing", "docx", &limits)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn reads_the_core_title() {
        let core = "<cp:coreProperties xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><dc:title>制度 &amp; 流程</dc:title></cp:coreProperties>";
        let bytes = zip_of(&[("docProps/core.xml", core.as_bytes())]);
        let limits = ExtractLimits::default();
        let mut archive = open(&bytes, "docx", &limits).unwrap();
        assert_eq!(
            core_title(&mut archive, "docx", &limits).as_deref(),
            Some("制度 & 流程")
        );
    }
}
