//! OCR of scans and photos, end to end through `extract`: scanned PDF pages, a text layer
//! pdf-extract can't decode, a text layer of mojibake, an image document, and the failures
//! a user must be told about (a missing language, time limits, the memory cap, OCR off).
//!
//! Needs tesseract (with chi_sim and eng) and pdftoppm, which `scripts/setup` installs.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ingest::Error;
use ingest::extract::{DocKind, ExtractLimits, Extracted, OcrSettings, extract, extract_reporting};

/// `tests/fixtures/docs` of the workspace root, where `extract_fixtures.rs` reads them.
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/docs")
}

fn fixture(name: &str) -> Arc<[u8]> {
    std::fs::read(fixtures_dir().join(name)).unwrap().into()
}

fn with_ocr(ocr: OcrSettings) -> ExtractLimits {
    ExtractLimits {
        ocr,
        ..ExtractLimits::default()
    }
}

/// The text of `page` (all pages for `None`), whitespace removed: OCR's line breaks
/// fall anywhere in a phrase.
fn squashed(doc: &Extracted, page: Option<u32>) -> String {
    doc.sections
        .iter()
        .filter(|s| page.is_none() || s.page == page)
        .flat_map(|s| s.text.chars())
        .filter(|c| !c.is_whitespace())
        .collect()
}

#[test]
fn a_scanned_pdf_is_read_with_its_page_numbers_and_reports_each_page() {
    let reported = std::sync::Mutex::new(Vec::new());
    let doc = extract_reporting(
        "scan.pdf",
        fixture("zh-scanned-no-text.pdf"),
        &ExtractLimits::default(),
        &|read, total| reported.lock().unwrap().push((read, total)),
    )
    .unwrap();
    // One report as each page ends, whichever reading thread ended it.
    let mut reported = reported.into_inner().unwrap();
    reported.sort_unstable();
    assert_eq!(reported, [(1, 3), (2, 3), (3, 3)]);
    assert_eq!(doc.kind, DocKind::Pdf);
    assert_eq!(doc.page_count, Some(3));
    let pages: Vec<Option<u32>> = doc.sections.iter().map(|s| s.page).collect();
    assert_eq!(pages, [Some(1), Some(2), Some(3)]);
    assert!(doc.sections.iter().all(|s| s.ocr));
    let first = &doc.sections[0].text;
    assert!(first.starts_with("行政处罚决定书"), "{first}");
    // The spaces tesseract leaves between Chinese characters are gone in the text itself.
    assert!(first.contains("当事人"), "{first}");
}

#[test]
fn an_undecodable_text_layer_is_read_by_ocr() {
    let doc = extract(
        "letter.pdf",
        fixture("zh-gbk-euc-h-cjk-font.pdf"),
        &ExtractLimits::default(),
    )
    .unwrap();
    assert!(doc.sections.iter().all(|s| s.ocr));
    let first = squashed(&doc, Some(1));
    for phrase in ["浙江菲达环保科技股份有限公司", "上海证券交易所"] {
        assert!(first.contains(phrase), "{phrase} not in {first}");
    }
    let raw = &doc.sections[0].text;
    assert!(raw.contains("上海证券交易所"), "spaces left inside: {raw}");
}

/// Page 1 of the scanned fixture as a PNG at `dpi`, the resolution written into the file
/// (pdftoppm does), as a scanner app saves it.
fn scanned_page_png(dpi: u32) -> Arc<[u8]> {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("page");
    let rendered = Command::new("pdftoppm")
        .args([
            "-f",
            "1",
            "-l",
            "1",
            "-r",
            &dpi.to_string(),
            "-png",
            "-singlefile",
        ])
        .arg(fixtures_dir().join("zh-scanned-no-text.pdf"))
        .arg(&prefix)
        .status()
        .unwrap();
    assert!(rendered.success());
    std::fs::read(prefix.with_extension("png")).unwrap().into()
}

#[test]
fn an_image_is_a_document() {
    // A PNG made the way a scanner app would: page 1 of the scan, rendered at 200 dpi.
    let png = scanned_page_png(200);
    let doc = extract("拍照.png", png, &ExtractLimits::default()).unwrap();
    assert_eq!(doc.kind, DocKind::Image);
    assert_eq!(doc.page_count, Some(1));
    assert_eq!(doc.sections.len(), 1);
    assert_eq!(doc.sections[0].page, Some(1));
    assert!(doc.sections[0].ocr);
    let text = squashed(&doc, None);
    assert!(text.contains("行政处罚决定书"), "{text}");
}

#[test]
fn a_300_dpi_image_is_scaled_down_and_read_under_the_page_limit() {
    // The same page as a 300 dpi PNG (pdftoppm writes the resolution into the file), as a
    // flatbed scanner saves it: scaled to 200 dpi by GraphicsMagick before tesseract.
    let png = scanned_page_png(300);
    let doc = extract("扫描.png", png.clone(), &ExtractLimits::default()).unwrap();
    assert_eq!(doc.kind, DocKind::Image);
    assert_eq!(doc.sections.len(), 1);
    let text = squashed(&doc, None);
    assert!(text.contains("行政处罚决定书"), "{text}");
    // Scaling runs under the page's limit like the reading: over it, the image fails with
    // the page's reason, not later.
    let per_page = with_ocr(OcrSettings {
        page_timeout_ms: 1,
        ..OcrSettings::default()
    });
    match extract("扫描.png", png, &per_page) {
        Err(Error::Ocr(detail)) => assert!(detail.contains("longer than 1 ms"), "{detail}"),
        other => panic!("expected Ocr, got {other:?}"),
    }
}

#[test]
fn a_300_dpi_tiff_keeps_every_page_when_scaled() {
    // The two-page 200 dpi fixture made a 300 dpi scan: the scaled copy must keep both.
    let dir = tempfile::tempdir().unwrap();
    let tiff = dir.path().join("scan-300.tif");
    let made = Command::new("gm")
        .arg("convert")
        .arg(fixtures_dir().join("zh-scan-2p.tif"))
        .args([
            "-resize",
            "150%",
            "-units",
            "PixelsPerInch",
            "-density",
            "300x300",
        ])
        .arg(&tiff)
        .status()
        .unwrap();
    assert!(made.success());
    let bytes: Arc<[u8]> = std::fs::read(&tiff).unwrap().into();
    let doc = extract("扫描.tif", bytes, &ExtractLimits::default()).unwrap();
    assert_eq!(doc.sections.len(), 2, "{:?}", doc.sections);
    assert!(squashed(&doc, Some(1)).contains("行政处罚决定书"));
    assert!(squashed(&doc, Some(2)).contains("以上行为有手册备案资料"));
}

#[test]
fn a_missing_language_names_its_package() {
    let limits = with_ocr(OcrSettings {
        languages: "chi_sim+zzz_notalang".into(),
        ..OcrSettings::default()
    });
    let result = extract("scan.pdf", fixture("zh-scanned-no-text.pdf"), &limits);
    match result {
        Err(error @ Error::ToolMissing { .. }) => {
            assert!(
                error.to_string().contains("tesseract-ocr-zzz-notalang"),
                "{error}"
            );
        }
        other => panic!("expected ToolMissing, got {other:?}"),
    }
}

#[test]
fn time_limits_hold() {
    let scan = fixture("zh-scanned-no-text.pdf");
    // Every page over its own limit: each is skipped, so the document fails with why.
    let per_page = with_ocr(OcrSettings {
        page_timeout_ms: 1,
        ..OcrSettings::default()
    });
    match extract("scan.pdf", scan.clone(), &per_page) {
        Err(Error::Ocr(detail)) => assert!(detail.contains("longer than 1 ms"), "{detail}"),
        other => panic!("expected Ocr, got {other:?}"),
    }
    // The document's limit ends the whole document.
    let whole = with_ocr(OcrSettings {
        document_timeout_ms: 1,
        ..OcrSettings::default()
    });
    let started = std::time::Instant::now();
    let result = extract("scan.pdf", scan, &whole);
    assert!(
        matches!(result, Err(Error::TimedOut { limit_ms: 1 })),
        "{result:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn the_memory_cap_is_applied() {
    // 64 MiB is far below what tesseract needs to load chi_sim.
    let limits = with_ocr(OcrSettings {
        max_memory_bytes: 64 * 1024 * 1024,
        ..OcrSettings::default()
    });
    match extract("scan.pdf", fixture("zh-scanned-no-text.pdf"), &limits) {
        Err(Error::Ocr(detail)) => assert!(detail.contains("64 MiB memory cap"), "{detail}"),
        other => panic!("expected Ocr, got {other:?}"),
    }
}

#[test]
fn with_ocr_off_scans_fail_as_before() {
    let off = with_ocr(OcrSettings {
        enabled: false,
        ..OcrSettings::default()
    });
    let scan = extract("scan.pdf", fixture("zh-scanned-no-text.pdf"), &off);
    assert!(matches!(scan, Err(Error::NoText)), "{scan:?}");
    let letter = extract("letter.pdf", fixture("zh-gbk-euc-h-cjk-font.pdf"), &off);
    assert!(matches!(letter, Err(Error::Panicked { .. })), "{letter:?}");
    let report = extract(
        "report.pdf",
        fixture("zh-quarterly-report-22p.pdf"),
        &ExtractLimits::default(),
    )
    .unwrap();
    assert!(report.sections.iter().all(|s| !s.ocr));
}

/// A one-page PDF showing `text` in Helvetica 36 pt, whose font's ToUnicode map sends every
/// character to the Private Use Area: the page looks right, its text layer is mojibake.
fn pdf_with_a_mojibake_layer(text: &str) -> Vec<u8> {
    let cmap = "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
                /CMapName /Mojibake def /CMapType 2 def\n\
                1 begincodespacerange <00> <FF> endcodespacerange\n\
                1 beginbfrange <20> <7E> <E020> endbfrange\n\
                endcmap CMapName currentdict /CMap defineresource pop end end";
    let content = format!("BT /F1 36 Tf 30 60 Td ({text}) Tj ET");
    let objects = [
        "<</Type/Catalog/Pages 2 0 R>>".to_owned(),
        "<</Type/Pages/Kids[3 0 R]/Count 1>>".to_owned(),
        "<</Type/Page/Parent 2 0 R/MediaBox[0 0 500 150]/Contents 4 0 R\
         /Resources<</Font<</F1 5 0 R>>>>>>"
            .to_owned(),
        format!(
            "<</Length {}>>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<</Type/Font/Subtype/Type1/BaseFont/Helvetica/ToUnicode 6 0 R>>".to_owned(),
        format!("<</Length {}>>\nstream\n{cmap}\nendstream", cmap.len()),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

#[test]
fn a_mojibake_text_layer_is_replaced_by_ocr() {
    let pdf = pdf_with_a_mojibake_layer("Scanned page 2024");
    let off = with_ocr(OcrSettings {
        enabled: false,
        ..OcrSettings::default()
    });
    // What the text layer says, OCR off: private-use characters only, so it is dropped.
    let layer = extract("m.pdf", pdf.clone().into(), &off);
    assert!(matches!(layer, Err(Error::NoText)), "{layer:?}");
    let doc = extract("m.pdf", pdf.into(), &ExtractLimits::default()).unwrap();
    assert_eq!(doc.sections.len(), 1);
    assert!(doc.sections[0].ocr);
    // Without case: the page is drawn in whichever font the machine substitutes for the
    // PDF's Helvetica, and with URW's (which GraphicsMagick's dependencies install)
    // tesseract reads "scanned".
    assert!(
        squashed(&doc, Some(1))
            .to_lowercase()
            .contains("scannedpage2024"),
        "{:?}",
        doc.sections[0].text
    );
}
