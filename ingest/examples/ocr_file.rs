//! One file through extraction with zhiku's default OCR settings, its text printed: what
//! `scripts/ocr_bench.py --zhiku` measures, so the benchmark reads pages the way zhiku does
//! (the image path, the PDF rendering, the re-read of misread pages) rather than a copy of
//! it.
//!
//! ```text
//! cargo build --release --locked --workspace --example ocr_file
//! ocr_file FILE [--dpi N]
//! ```
//!
//! `--dpi` sets the resolution scanned PDF pages are rendered at (`OcrSettings::dpi`).
//! Sections are printed in order, separated by form feeds.

use std::path::PathBuf;

use ingest::extract::ExtractLimits;
use ingest::{Error, Result};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut limits = ExtractLimits::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dpi" => {
                limits.ocr.dpi = args
                    .next()
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| Error::InvalidSettings("--dpi takes a number".into()))?;
            }
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    let file =
        file.ok_or_else(|| Error::InvalidSettings("usage: ocr_file FILE [--dpi N]".into()))?;
    limits.ocr.validate()?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extracted = ingest::extract::extract(&name, std::fs::read(&file)?.into(), &limits)?;
    let texts: Vec<&str> = extracted.sections.iter().map(|s| s.text.as_str()).collect();
    println!("{}", texts.join("\u{0c}"));
    Ok(())
}
