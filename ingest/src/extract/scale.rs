//! An image uploaded as a document, scaled down to the resolution tesseract reads best.
//!
//! Tesseract read 300 dpi page images worse than the same images scaled to 200 dpi (CER 2.5 %
//! against 1.7 % over 16 pages, docs/benchmarks.md, "OCR of 300 dpi images"); scanned PDFs
//! are already rendered at `OcrSettings::dpi`, but an image file is read as it comes. So an
//! image whose file says it is well above that resolution is scaled down to it first, with
//! GraphicsMagick (`gm`) in a child process under the page's deadline and memory cap, like
//! every other program OCR runs on untrusted input. An image without a resolution in it,
//! or at 72 dpi as phones write, is read as it is: its text size is unknown, and
//! tesseract estimates it. Scaling is an improvement, not a requirement: without `gm`, or
//! when `gm` fails on the file, the original is read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::ocr::PageFailure;
use super::subprocess::{self, ChildError};

/// Images are scaled when their resolution is more than this many times the target: a
/// 240 dpi scan is close enough to 200 that resampling it would cost more than it helps.
const SCALE_ABOVE: f64 = 1.25;

/// Resolutions above this are taken as a wrong value in the file, not a real scan.
const MOST_DPI: f64 = 1200.0;

/// The image's resolution in dots per inch from `gm identify -format "%x %y %U\n"` output
/// (its first frame), or `None` when the file gives none ("Undefined" units).
fn parse_resolution(identify: &str) -> Option<f64> {
    let first = identify.lines().find(|l| !l.trim().is_empty())?;
    let mut fields = first.split_whitespace();
    let x: f64 = fields.next()?.parse().ok()?;
    let y: f64 = fields.next()?.parse().ok()?;
    let per_inch = match fields.next()? {
        "PixelsPerInch" => 1.0,
        "PixelsPerCentimeter" => 2.54,
        _ => return None,
    };
    // A scan with different horizontal and vertical resolutions is scaled by the lower.
    let dpi = x.min(y) * per_inch;
    (dpi.is_finite() && dpi > 0.0).then_some(dpi)
}

/// The factor to scale an image of `dpi` by to reach `target` dpi; `None` when it should be
/// read as it is (unknown, close to the target or below it, or implausibly high).
fn scale_factor(dpi: Option<f64>, target: u32) -> Option<f64> {
    let dpi = dpi?;
    let target = f64::from(target);
    (dpi > target * SCALE_ABOVE && dpi <= MOST_DPI).then(|| target / dpi)
}

/// `image` scaled down to `target` dpi in `dir` when its file says it is well above that
/// (the path of the copy, which keeps every frame of a TIFF); `None` to read the original.
/// Only the deadline passing is an error: the original would not be read in time either.
pub(crate) fn scaled_for_ocr(
    image: &Path,
    dir: &Path,
    target: u32,
    deadline: Instant,
    max_memory_bytes: u64,
) -> Result<Option<PathBuf>, PageFailure> {
    scaled_with("gm", image, dir, target, deadline, max_memory_bytes)
}

/// [`scaled_for_ocr`] with the program named, so a test can name one that isn't installed.
fn scaled_with(
    program: &str,
    image: &Path,
    dir: &Path,
    target: u32,
    deadline: Instant,
    max_memory_bytes: u64,
) -> Result<Option<PathBuf>, PageFailure> {
    let info = dir.join("identify.txt");
    let mut identify = Command::new(program);
    // `%x %y %U`: the resolution and its unit, one line per frame (30 ms for a 300 dpi A4
    // page: nothing next to reading it).
    identify
        .args(["identify", "-format", "%x %y %U\n"])
        .arg(image);
    let factor = match subprocess::run(identify, &info, deadline, max_memory_bytes) {
        Ok(_) => {
            let text = std::fs::read_to_string(&info).unwrap_or_default();
            scale_factor(parse_resolution(&text), target)
        }
        Err(e) => return skip(e, program, max_memory_bytes),
    };
    let Some(factor) = factor else {
        return Ok(None);
    };
    // TIFF keeps every frame of a multi-page scan, and alpha; 8 bits a sample, since a
    // 16-bit file would stay 16-bit otherwise.
    let out = dir.join("scaled.tif");
    let mut convert = Command::new(program);
    convert
        .arg("convert")
        .arg(image)
        // A triangle (bilinear) filter: in the benchmark it read better than box averaging
        // and than Lanczos, which sharpens the edges the anti-aliasing softened.
        .args(["-filter", "Triangle", "-resize"])
        .arg(format!("{:.4}%", factor * 100.0))
        .args(["-units", "PixelsPerInch", "-density"])
        .arg(format!("{target}x{target}"))
        .args(["-depth", "8"])
        .arg(&out);
    match subprocess::run(
        convert,
        &dir.join("convert.txt"),
        deadline,
        max_memory_bytes,
    ) {
        Ok(_) => Ok(Some(out)),
        Err(e) => skip(e, program, max_memory_bytes),
    }
}

/// A `gm` run that did not give a usable answer: read the original, unless the deadline
/// passed.
fn skip(
    error: ChildError,
    program: &str,
    max_memory_bytes: u64,
) -> Result<Option<PathBuf>, PageFailure> {
    match error {
        ChildError::TimedOut => Err(PageFailure::PageTimedOut),
        ChildError::NotFound => {
            tracing::debug!("{program} is not installed: images are read at their own resolution");
            Ok(None)
        }
        e => {
            tracing::debug!(
                "image not scaled for OCR: {}",
                e.describe(program, max_memory_bytes)
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn the_resolution_is_read_in_either_unit_and_only_when_given() {
        assert_eq!(parse_resolution("300 300 PixelsPerInch\n"), Some(300.0));
        let per_cm = parse_resolution("\n118.11 118.11 PixelsPerCentimeter\n").unwrap();
        assert!((per_cm - 300.0).abs() < 0.01, "{per_cm}");
        // A multi-page TIFF: the first frame's.
        assert_eq!(
            parse_resolution("400 300 PixelsPerInch\n200 200 PixelsPerInch\n"),
            Some(300.0)
        );
        // No resolution in the file (gm says 72 with undefined units).
        assert_eq!(parse_resolution("72 72 Undefined\n"), None);
        assert_eq!(parse_resolution(""), None);
        assert_eq!(parse_resolution("0 0 PixelsPerInch"), None);
        assert_eq!(parse_resolution("nan nan PixelsPerInch"), None);
    }

    #[test]
    fn only_images_well_above_the_target_are_scaled() {
        let factor = scale_factor(Some(300.0), 200).unwrap();
        assert!((factor - 2.0 / 3.0).abs() < 1e-9, "{factor}");
        assert_eq!(scale_factor(Some(600.0), 200), Some(200.0 / 600.0));
        // Close to the target, at it, below it (a phone's 72 dpi), unknown, implausible.
        for dpi in [
            Some(240.0),
            Some(200.0),
            Some(150.0),
            Some(72.0),
            None,
            Some(4800.0),
        ] {
            assert_eq!(scale_factor(dpi, 200), None, "{dpi:?}");
        }
        // The target follows the settings: at 300, a 300 dpi image is read as it is.
        assert_eq!(scale_factor(Some(300.0), 300), None);
    }

    #[test]
    fn a_300_dpi_image_is_scaled_to_200_and_a_72_dpi_one_is_not() {
        // Needs GraphicsMagick, as `scripts/setup` installs it; it also makes the images.
        let dir = tempfile::tempdir().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let make = |name: &str, dpi: u32| {
            let path = dir.path().join(name);
            let status = Command::new("gm")
                .args([
                    "convert",
                    "-size",
                    "300x600",
                    "xc:white",
                    "-units",
                    "PixelsPerInch",
                ])
                .args(["-density", &format!("{dpi}x{dpi}")])
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success());
            path
        };
        let scan = make("scan.png", 300);
        let scaled = scaled_for_ocr(&scan, dir.path(), 200, deadline, 1 << 30)
            .unwrap()
            .unwrap();
        let identify = Command::new("gm")
            .args(["identify", "-format", "%w %h %x %U"])
            .arg(&scaled)
            .output()
            .unwrap();
        let identify = String::from_utf8_lossy(&identify.stdout);
        assert_eq!(identify.trim(), "200 400 200 PixelsPerInch");
        let photo = make("photo.jpg", 72);
        let kept = scaled_for_ocr(&photo, dir.path(), 200, deadline, 1 << 30).unwrap();
        assert!(kept.is_none(), "{kept:?}");
    }

    #[test]
    fn without_gm_the_original_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("x.png");
        std::fs::write(&image, b"\x89PNG\r\n\x1a\n").unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let scaled = scaled_with("zhiku-no-such-gm", &image, dir.path(), 200, deadline, 0);
        assert!(matches!(scaled, Ok(None)), "{scaled:?}");
    }
}
