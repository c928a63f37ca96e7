//! PDF page → greyscale image for OCR, through poppler's `pdftoppm` in a child process
//! (poppler is native code reading untrusted input; see `subprocess` for why a child).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::ocr::PageFailure;
use super::subprocess::{self, ChildError};
use crate::Error;

/// Render 1-based `page` of `pdf` at `dpi` into `<prefix>.pgm` and return that path.
///
/// Greyscale PGM: tesseract binarises anyway, colour only triples the bytes, and PGM needs
/// no compression on either side.
pub(crate) fn render_page(
    pdf: &Path,
    page: u32,
    dpi: u32,
    prefix: &Path,
    deadline: Instant,
    max_memory_bytes: u64,
) -> Result<PathBuf, PageFailure> {
    render_page_with(
        "pdftoppm",
        pdf,
        page,
        dpi,
        prefix,
        deadline,
        max_memory_bytes,
    )
}

/// [`render_page`] with the program named, so a test can name one that isn't installed.
fn render_page_with(
    program: &str,
    pdf: &Path,
    page: u32,
    dpi: u32,
    prefix: &Path,
    deadline: Instant,
    max_memory_bytes: u64,
) -> Result<PathBuf, PageFailure> {
    let page = page.to_string();
    let mut command = Command::new(program);
    command
        .args(["-f", &page, "-l", &page, "-r", &dpi.to_string()])
        .args(["-gray", "-singlefile"])
        .arg(pdf)
        .arg(prefix);
    match subprocess::run(
        command,
        &prefix.with_extension("render.log"),
        deadline,
        max_memory_bytes,
    ) {
        Ok(_) => Ok(prefix.with_extension("pgm")),
        Err(ChildError::NotFound) => Err(PageFailure::Fatal(Error::ToolMissing {
            what: "pdftoppm".into(),
            package: "poppler-utils".into(),
            remedy: super::ocr::OCR_REMEDY.into(),
        })),
        Err(ChildError::TimedOut) => Err(PageFailure::PageTimedOut),
        Err(e) => Err(PageFailure::Page(e.describe("pdftoppm", max_memory_bytes))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pdftoppm_names_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let result = render_page_with(
            "zhiku-no-such-pdftoppm",
            &dir.path().join("x.pdf"),
            1,
            300,
            &dir.path().join("page"),
            deadline,
            0,
        );
        match result {
            Err(PageFailure::Fatal(error @ Error::ToolMissing { .. })) => {
                assert!(error.to_string().contains("poppler-utils"), "{error}")
            }
            other => panic!("expected ToolMissing, got {other:?}"),
        }
    }
}
