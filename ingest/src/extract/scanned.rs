//! OCR of a document: the PDF pages that have no usable text layer, or an image file.
//!
//! Every page gets its own time limit, and the document one overall; pages are read
//! `parallel_pages` at a time, each by a single-threaded tesseract. A page that fails is
//! reported and skipped, like a PDF page the parser can't read; a missing program, a
//! missing language or the document's time limit stops the whole document.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::Section;
use super::ocr::{OcrSettings, PageFailure, recognise};
use super::render::render_page;
use super::scale;
use crate::{Error, Result};

/// What OCR made of a document.
#[derive(Debug, Default)]
pub(crate) struct OcrOutcome {
    /// Text per page, in page order, marked `ocr`.
    pub(crate) sections: Vec<Section>,
    /// Pages that could not be read, and why (for the log, and for the error when no page
    /// yielded anything).
    pub(crate) failures: Vec<String>,
}

/// OCR 1-based `pages` of a PDF: render each with pdftoppm at `settings.dpi`, read it
/// with tesseract. `on_page(read, total)` is called as each page ends, read or not (from
/// the reading threads), so a person watching a long scan sees it advance.
pub(crate) fn read_pdf_pages(
    pdf: &[u8],
    pages: &[u32],
    settings: &OcrSettings,
    on_page: &(dyn Fn(usize, usize) + Sync),
) -> Result<OcrOutcome> {
    let clock = Clock::start(settings);
    let dir = tempfile::Builder::new().prefix("zhiku-ocr-").tempdir()?;
    let pdf_path = dir.path().join("document.pdf");
    std::fs::write(&pdf_path, pdf)?;
    let render_and_read = |page: u32| -> Result<String, PageFailure> {
        let deadline = clock.page_deadline();
        let prefix = dir.path().join(format!("page-{page}"));
        let image = render_page(
            &pdf_path,
            page,
            settings.dpi,
            &prefix,
            deadline,
            settings.max_memory_bytes,
        )?;
        let text = recognise(
            &image,
            &prefix.with_extension("txt"),
            Some(settings.dpi),
            settings,
            deadline,
        );
        // Rendered pages are large (about 4 MB at 200 dpi); don't keep them all at once.
        let _ = std::fs::remove_file(&image);
        text
    };
    let ended = AtomicUsize::new(0);
    // Past the document's deadline every page would start a child only to kill it: that
    // ends the document instead (a fatal failure stops the workers).
    let read_one = |page: u32| -> Result<String, PageFailure> {
        if clock.is_over() {
            return Err(PageFailure::Fatal(clock.timed_out()));
        }
        let result = match render_and_read(page) {
            Err(PageFailure::PageTimedOut) if clock.is_over() => {
                Err(PageFailure::Fatal(clock.timed_out()))
            }
            other => other,
        };
        on_page(ended.fetch_add(1, Ordering::Relaxed) + 1, pages.len());
        result
    };
    let mut results = in_parallel(pages, settings.parallel_pages, read_one);
    // A fatal failure decides the outcome whichever page met it; the pages after it were
    // not attempted.
    if let Some(at) = results
        .iter()
        .position(|r| matches!(r, Some(Err(PageFailure::Fatal(_)))))
        && let Some(Err(PageFailure::Fatal(error))) = results[at].take()
    {
        return Err(error);
    }
    let mut outcome = OcrOutcome::default();
    for (&page, result) in pages.iter().zip(results) {
        match result {
            Some(Ok(text)) => outcome.sections.push(Section {
                page: Some(page),
                title: None,
                text,
                ocr: true,
                table: None,
            }),
            Some(Err(failure)) => outcome
                .failures
                .push(clock.page_failure(failure, &format!("page {page}"))?),
            None => outcome
                .failures
                .push(format!("page {page}: the OCR worker stopped unexpectedly")),
        }
    }
    Ok(outcome)
}

/// OCR an image file (every frame of a multi-page TIFF); frame `n` becomes page `n`. An
/// image whose file gives a resolution well above `settings.dpi` is scaled down to it first
/// ([`scale`]).
pub(crate) fn read_image(image: &[u8], settings: &OcrSettings) -> Result<OcrOutcome> {
    let clock = Clock::start(settings);
    let dir = tempfile::Builder::new().prefix("zhiku-ocr-").tempdir()?;
    let path = dir.path().join("image");
    std::fs::write(&path, image)?;
    // A TIFF may hold any number of pages and tesseract reads them in one run, so only the
    // document's limit applies to it; any other image is one page.
    let deadline = if is_tiff(image) {
        clock.document_deadline
    } else {
        clock.page_deadline()
    };
    let mut outcome = OcrOutcome::default();
    // A 300 dpi scan reads better scaled down to the resolution PDF pages are rendered at
    // (`scale`); the scaled copy has that resolution in it, which tesseract then uses.
    let scaled = scale::scaled_for_ocr(
        &path,
        dir.path(),
        settings.dpi,
        deadline,
        settings.max_memory_bytes,
    );
    let read = scaled.and_then(|scaled| {
        let (image, dpi) = match &scaled {
            Some(scaled) => (scaled.as_path(), Some(settings.dpi)),
            None => (path.as_path(), None),
        };
        recognise(image, &dir.path().join("out.txt"), dpi, settings, deadline)
    });
    match read {
        Ok(text) => {
            // Tesseract ends every page with a form feed.
            let text = text.strip_suffix('\u{0c}').unwrap_or(&text);
            for (i, frame) in text.split('\u{0c}').enumerate() {
                outcome.sections.push(Section {
                    page: Some(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                    title: None,
                    text: frame.to_owned(),
                    ocr: true,
                    table: None,
                });
            }
        }
        Err(failure) => outcome
            .failures
            .push(clock.page_failure(failure, "the image")?),
    }
    Ok(outcome)
}

fn is_tiff(bytes: &[u8]) -> bool {
    bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*")
}

/// The document's OCR deadline and the page limit.
struct Clock {
    document_deadline: Instant,
    document_limit_ms: u64,
    page_limit: Duration,
}

impl Clock {
    fn start(settings: &OcrSettings) -> Self {
        let now = Instant::now();
        Self {
            document_deadline: now + Duration::from_millis(settings.document_timeout_ms),
            document_limit_ms: settings.document_timeout_ms,
            page_limit: Duration::from_millis(settings.page_timeout_ms),
        }
    }

    /// A page's deadline: its own limit from now, or the document's if that comes first.
    fn page_deadline(&self) -> Instant {
        (Instant::now() + self.page_limit).min(self.document_deadline)
    }

    /// Whether the document's deadline has passed.
    fn is_over(&self) -> bool {
        Instant::now() >= self.document_deadline
    }

    /// The error of a document whose OCR ran past its deadline.
    fn timed_out(&self) -> Error {
        Error::TimedOut {
            limit_ms: self.document_limit_ms,
        }
    }

    /// A page's failure as a message, or the document's error when it ends the document
    /// (a missing program or language, or the document's deadline).
    fn page_failure(&self, failure: PageFailure, what: &str) -> Result<String> {
        match failure {
            PageFailure::Fatal(error) => Err(error),
            PageFailure::PageTimedOut if self.is_over() => Err(self.timed_out()),
            PageFailure::PageTimedOut => Ok(format!(
                "{what}: OCR took longer than {} ms",
                self.page_limit.as_millis()
            )),
            PageFailure::Page(detail) => Ok(format!("{what}: {detail}")),
        }
    }
}

/// Run `work` on every item with `workers` threads; results in item order. A fatal
/// failure (or the document deadline) stops the other workers from starting new items,
/// whose results are then `None`.
fn in_parallel<F>(
    items: &[u32],
    workers: usize,
    work: F,
) -> Vec<Option<Result<String, PageFailure>>>
where
    F: Fn(u32) -> Result<String, PageFailure> + Sync,
{
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut results: Vec<Option<Result<String, PageFailure>>> =
        items.iter().map(|_| None).collect();
    thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.clamp(1, items.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&item) = items.get(i) else { break };
                        let result = work(item);
                        if matches!(result, Err(PageFailure::Fatal(_))) {
                            stop.store(true, Ordering::Relaxed);
                        }
                        done.push((i, result));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            // Our own code on these threads doesn't panic; if it ever did, the pages it
            // held stay `None` and the document fails rather than the worker.
            if let Ok(done) = handle.join() {
                for (i, result) in done {
                    results[i] = Some(result);
                }
            }
        }
    });
    results
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn parallel_results_keep_their_order() {
        let pages: Vec<u32> = (1..=9).collect();
        let results = in_parallel(&pages, 3, |p| Ok(format!("page {p}")));
        let texts: Vec<String> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(texts[0], "page 1");
        assert_eq!(texts[8], "page 9");
    }

    #[test]
    fn a_fatal_failure_stops_the_rest() {
        let pages: Vec<u32> = (1..=50).collect();
        let results = in_parallel(&pages, 1, |p| {
            if p == 2 {
                Err(PageFailure::Fatal(Error::NoText))
            } else {
                Ok(String::new())
            }
        });
        assert!(matches!(results[1], Some(Err(PageFailure::Fatal(_)))));
        assert!(results[2..].iter().all(Option::is_none));
    }
}
