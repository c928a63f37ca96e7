//! OCR settings and the one tesseract invocation zhiku uses (`scripts/ocr_bench.py` runs
//! the same command, so its figures hold for what users get).
//!
//! Tesseract runs through its CLI in a child process (see `subprocess`): a crash or an
//! allocation failure in leptonica or tesseract on a hostile image ends the child, and an
//! overrun can be killed, which a linked library on a thread would not allow.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::misread::{east_asian_alone, read_again, replaces};
use super::subprocess::{self, ChildError};
use crate::{Error, Result};

/// What to do about a missing OCR program: OCR is optional, the rest of ingestion is not.
pub(crate) const OCR_REMEDY: &str = "install it or turn OCR off";

/// `--oem 1`: the LSTM engine only (the legacy engine has no `chi_sim` data in Debian's
/// packages). `--psm 3`: automatic page segmentation without orientation detection. On
/// the benchmark's one-column pages `--psm 6` (one block) was better on clean pages and
/// worse on phone photos (docs/benchmarks.md, "OCR"); real documents have columns and
/// tables, which only automatic segmentation reads in order.
const ENGINE_ARGS: &[&str] = &["--oem", "1", "--psm", "3"];

/// OCR settings, per knowledge base: which languages to read and the limits each page's
/// rendering and recognition run under.
///
/// The defaults come from `scripts/ocr_bench.py` (docs/benchmarks.md, "OCR").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OcrSettings {
    /// Whether scans, photos and PDF pages without a usable text layer are OCR'd at all.
    /// Off, such pages are skipped, and a document with nothing else (a scan, an image)
    /// fails with [`Error::NoText`].
    pub enabled: bool,
    /// Tesseract languages joined with `+`, most likely first (`chi_sim+eng`,
    /// `chi_tra+eng`, `eng`). Each needs its Debian package (`tesseract-ocr-chi-sim` …).
    pub languages: String,
    /// Resolution PDF pages are rendered at for OCR, and that image files well above it
    /// are scaled down to (`scale`). 200 read Chinese best in docs/benchmarks.md ("OCR"):
    /// a lower error rate than 150, 300 and 400 for 11.5 pt and 8 pt text alike, and faster
    /// than 300.
    pub dpi: u32,
    /// Wall-clock limit for one page (rendering and recognition together).
    pub page_timeout_ms: u64,
    /// Wall-clock limit for all of one document's OCR; past it the document fails with
    /// [`Error::TimedOut`].
    pub document_timeout_ms: u64,
    /// Address-space cap for each child process (pdftoppm, tesseract), in bytes.
    pub max_memory_bytes: u64,
    /// How many pages of one document are read at once (one tesseract process each,
    /// single-threaded).
    pub parallel_pages: usize,
}

impl Default for OcrSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            languages: "chi_sim+eng".to_owned(),
            dpi: 200,
            page_timeout_ms: 60_000,
            document_timeout_ms: 15 * 60_000,
            // A 300 dpi page needs about 120 MB (tesseract with chi_sim+eng, one thread);
            // the room above is for large photos, and the cap stops decompression bombs.
            max_memory_bytes: 1024 * 1024 * 1024,
            parallel_pages: 2,
        }
    }
}

impl OcrSettings {
    /// Check the settings before use: [`Error::InvalidSettings`] for a language list that
    /// isn't `name+name…` (letters, digits, `_`), a DPI outside 72–600 or zero limits.
    pub fn validate(&self) -> Result<()> {
        let language_ok =
            |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !self.languages.split('+').all(language_ok) {
            return Err(Error::InvalidSettings(format!(
                "OCR languages {:?}: expected tesseract names joined with '+', e.g. chi_sim+eng",
                self.languages
            )));
        }
        if !(72..=600).contains(&self.dpi) {
            return Err(Error::InvalidSettings(format!(
                "OCR dpi {} is outside 72–600",
                self.dpi
            )));
        }
        if self.page_timeout_ms == 0 || self.document_timeout_ms == 0 || self.parallel_pages == 0 {
            return Err(Error::InvalidSettings(
                "OCR time limits and parallel_pages must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// How long `tesseract --list-langs` may take (it reads a directory listing).
const LIST_LANGUAGES_TIMEOUT: Duration = Duration::from_secs(10);

/// The languages tesseract has data for (`tesseract --list-langs`), sorted, without `osd`
/// (orientation detection data, not a language). [`Error::ToolMissing`] when tesseract is
/// not installed.
pub fn installed_languages() -> Result<Vec<String>> {
    let dir = tempfile::Builder::new().prefix("zhiku-ocr-").tempdir()?;
    let out = dir.path().join("languages.txt");
    let mut command = Command::new("tesseract");
    command.arg("--list-langs");
    let deadline = Instant::now() + LIST_LANGUAGES_TIMEOUT;
    let stderr = match subprocess::run(command, &out, deadline, 0) {
        Ok(stderr) => stderr,
        Err(ChildError::NotFound) => {
            return Err(Error::ToolMissing {
                what: "tesseract".into(),
                package: "tesseract-ocr".into(),
                remedy: OCR_REMEDY.into(),
            });
        }
        Err(e) => {
            return Err(Error::Ocr(format!(
                "cannot list the installed languages: {}",
                e.describe("tesseract", 0)
            )));
        }
    };
    // Tesseract 4 wrote the list to stderr, 5 writes it to stdout.
    let stdout = std::fs::read_to_string(&out)?;
    Ok(parse_language_list(&format!("{stdout}\n{stderr}")))
}

/// The language names of `tesseract --list-langs` output: every line after the heading
/// that is a bare name.
fn parse_language_list(listing: &str) -> Vec<String> {
    let mut names: Vec<String> = listing
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && *l != "osd" && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(str::to_owned)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Check `languages` (`chi_sim+eng`) for a knowledge base: well formed, and each installed;
/// [`Error::InvalidSettings`] names the missing ones, the installed ones and the package to
/// install, [`Error::ToolMissing`] says that tesseract itself is missing.
pub fn check_languages(languages: &str) -> Result<()> {
    OcrSettings {
        languages: languages.to_owned(),
        ..OcrSettings::default()
    }
    .validate()?;
    let installed = installed_languages()?;
    let missing: Vec<&str> = languages
        .split('+')
        .filter(|l| !installed.iter().any(|i| i == l))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<String> = missing
        .iter()
        .map(|l| format!("tesseract-ocr-{}", l.replace('_', "-")))
        .collect();
    Err(Error::InvalidSettings(format!(
        "OCR language {} is not installed (installed: {}); install {} or choose an installed one",
        missing.join(", "),
        installed.join(", "),
        packages.join(", ")
    )))
}

/// Why a page could not be read.
#[derive(Debug)]
pub(crate) enum PageFailure {
    /// Nothing else will work either (a program or language is missing): stop the document.
    Fatal(Error),
    /// This page only; the message says why.
    Page(String),
    /// The page's own time limit passed.
    PageTimedOut,
}

/// Recognise the text of `image` (any format leptonica reads: PNG, JPEG, TIFF with all its
/// pages, WebP, BMP, PNM), writing tesseract's output to `out`. `dpi` is the image's
/// resolution when we know it (rendered pages); tesseract estimates it otherwise.
///
/// The text is tesseract's, pages separated by form feeds, with the spaces it puts between
/// Chinese characters removed ([`join_cjk`]) and the lines the page wrapped joined again
/// ([`join_wrapped_lines`]). A reading with Chinese text taken for Latin capitals is read
/// again with the Chinese languages alone ([`misread`](super::misread)), within the same
/// deadline, and kept when it has far fewer capitals.
pub(crate) fn recognise(
    image: &Path,
    out: &Path,
    dpi: Option<u32>,
    settings: &OcrSettings,
    deadline: Instant,
) -> Result<String, PageFailure> {
    let languages = &settings.languages;
    let mut text = recognise_with("tesseract", image, out, dpi, languages, settings, deadline)?;
    if let Some(capitals) = read_again(&text)
        && let Some(asian) = east_asian_alone(languages)
    {
        // A second reading that fails or runs out of time leaves the first.
        if let Ok(again) = recognise_with("tesseract", image, out, dpi, &asian, settings, deadline)
            && replaces(&again, capitals)
        {
            text = again;
        }
    }
    Ok(join_wrapped_lines(&text))
}

/// One tesseract run in `languages`, with the program named so that a test can name one
/// that isn't installed: its text with [`join_cjk`] applied.
fn recognise_with(
    program: &str,
    image: &Path,
    out: &Path,
    dpi: Option<u32>,
    languages: &str,
    settings: &OcrSettings,
    deadline: Instant,
) -> Result<String, PageFailure> {
    let mut command = Command::new(program);
    command
        .arg(image)
        .arg("stdout")
        .args(["-l", languages])
        .args(ENGINE_ARGS);
    if let Some(dpi) = dpi {
        command.args(["--dpi", &dpi.to_string()]);
    }
    // One thread per process: on 2 cores one tesseract with its default OpenMP threads read
    // 0.12 pages/s, two single-threaded ones 0.29 (docs/benchmarks.md, "OCR"); pages
    // are read in parallel instead (`parallel_pages`).
    command.env("OMP_THREAD_LIMIT", "1");
    let missing = |language: String| {
        PageFailure::Fatal(Error::ToolMissing {
            what: format!("tesseract language data '{language}'"),
            package: format!("tesseract-ocr-{}", language.replace('_', "-")),
            remedy: OCR_REMEDY.into(),
        })
    };
    match subprocess::run(command, out, deadline, settings.max_memory_bytes) {
        // With one of several languages missing tesseract goes on with the others and
        // succeeds; reading Chinese as English would index nonsense, so that is an error too.
        Ok(stderr) => {
            if let Some(language) = missing_language(&stderr) {
                return Err(missing(language));
            }
        }
        Err(ChildError::NotFound) => {
            return Err(PageFailure::Fatal(Error::ToolMissing {
                what: "tesseract".into(),
                package: "tesseract-ocr".into(),
                remedy: OCR_REMEDY.into(),
            }));
        }
        Err(ChildError::TimedOut) => return Err(PageFailure::PageTimedOut),
        Err(ChildError::Failed { stderr, .. }) if missing_language(&stderr).is_some() => {
            return Err(missing(missing_language(&stderr).unwrap_or_default()));
        }
        Err(e) => {
            return Err(PageFailure::Page(
                e.describe("tesseract", settings.max_memory_bytes),
            ));
        }
    }
    let text =
        std::fs::read(out).map_err(|e| PageFailure::Page(format!("tesseract output: {e}")))?;
    Ok(join_cjk(&String::from_utf8_lossy(&text)))
}

/// The language tesseract could not load, from its stderr ("Failed loading language 'xyz'").
fn missing_language(stderr: &str) -> Option<String> {
    let after = stderr.split("Failed loading language '").nth(1)?;
    let name = after.split('\'').next()?;
    (!name.is_empty()).then(|| name.to_lowercase())
}

/// Characters between which Chinese and Japanese text has no spaces.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{2FDF}'     // radicals
        | '\u{3000}'..='\u{303F}'   // CJK punctuation (、。「」…)
        | '\u{3040}'..='\u{30FF}'   // kana
        | '\u{3400}'..='\u{4DBF}'   // extension A
        | '\u{4E00}'..='\u{9FFF}'   // unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // compatibility ideographs
        | '\u{FE30}'..='\u{FE4F}'   // compatibility forms
        | '\u{FF00}'..='\u{FF60}'   // full-width forms (，：（）)
        | '\u{20000}'..='\u{3134F}' // extensions B–G
    )
}

/// Remove the spaces tesseract puts between CJK characters ("行 政 处 罚" → "行政处罚"),
/// which would otherwise split words for search and look wrong in citations. Spaces next
/// to Latin letters or digits stay ("第 3 条" keeps them; they are harmless and sometimes
/// separate real words).
pub(crate) fn join_cjk(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == '\u{3000}' {
            let run_end = chars[i..]
                .iter()
                .position(|&c| c != ' ' && c != '\u{3000}')
                .map_or(chars.len(), |n| i + n);
            let before = i.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(run_end).copied();
            if !(before.is_some_and(is_cjk) && after.is_some_and(is_cjk)) {
                out.extend(&chars[i..run_end]);
            }
            i = run_end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Join the lines a printed page wrapped, which tesseract writes as they were printed.
///
/// Chinese wraps anywhere, even inside a word or a name ("碓\n井姬"), and a line break
/// there splits the word for search (jieba cuts at it) and leaves a break in the middle of
/// sentences of the chunk a reader sees. A line is taken as wrapped when it is about as
/// wide as the widest line of its paragraph (tesseract separates paragraphs and blocks by
/// blank lines) and the next line continues the paragraph; a short line (a heading, the
/// end of a paragraph) keeps its break. The break goes where either side is CJK, and
/// becomes a space between two Latin words or numbers.
pub(crate) fn join_wrapped_lines(text: &str) -> String {
    // Display width: a CJK character is as wide as two Latin ones.
    let width = |line: &str| -> usize { line.chars().map(|c| if is_cjk(c) { 2 } else { 1 }).sum() };
    let mut out = String::with_capacity(text.len());
    for (p, page) in text.split('\u{0c}').enumerate() {
        if p > 0 {
            out.push('\u{0c}');
        }
        let lines: Vec<&str> = page.split('\n').collect();
        let mut i = 0;
        while i < lines.len() {
            // A paragraph: the run of non-blank lines from `i`.
            let end = lines[i..]
                .iter()
                .position(|l| l.trim().is_empty())
                .map_or(lines.len(), |n| i + n);
            if end == i {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(lines[i]);
                i += 1;
                continue;
            }
            let widest = lines[i..end]
                .iter()
                .map(|l| width(l.trim_end()))
                .max()
                .unwrap_or(0);
            if i > 0 {
                out.push('\n');
            }
            for j in i..end {
                let line = lines[j];
                if j == i {
                    out.push_str(line);
                    continue;
                }
                let previous = lines[j - 1].trim_end();
                // 85 %: a wrapped line ends where the next character would not fit, a few
                // characters short of the widest at most.
                let wrapped = width(previous) * 100 >= widest * 85;
                let before = previous.chars().last();
                let after = line.trim_start().chars().next();
                if !wrapped {
                    out.push('\n');
                    out.push_str(line);
                } else if before.is_some_and(is_cjk) || after.is_some_and(is_cjk) {
                    out.truncate(out.trim_end().len());
                    out.push_str(line.trim_start());
                } else {
                    out.truncate(out.trim_end().len());
                    out.push(' ');
                    out.push_str(line.trim_start());
                }
            }
            i = end;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn spaces_between_chinese_characters_go() {
        assert_eq!(join_cjk("行 政 处 罚 决 定 书"), "行政处罚决定书");
        assert_eq!(join_cjk("当事人 ： 哈尔滨"), "当事人：哈尔滨");
        assert_eq!(join_cjk("创新一路 1299 号"), "创新一路 1299 号");
        assert_eq!(
            join_cjk("OCR of 中 文 and English"),
            "OCR of 中文 and English"
        );
        assert_eq!(join_cjk("行\n政"), "行\n政");
        assert_eq!(join_cjk(" 中 "), " 中 ");
    }

    #[test]
    fn lines_the_page_wrapped_are_joined_and_short_lines_keep_their_break() {
        let page = "行政处罚决定书\n\n当事人：哈尔滨某某公司，住所位于哈尔滨市\n南岗区朝阳路一号。经查，该公司于2024年\n3月违规。\n附件一\n\n\u{0c}第二页的文字写到了行的末尾处\n就继续。\n";
        assert_eq!(
            join_wrapped_lines(page),
            "行政处罚决定书\n\n当事人：哈尔滨某某公司，住所位于哈尔滨市南岗区朝阳路一号。经查，该公司于2024年3月违规。\n附件一\n\n\u{0c}第二页的文字写到了行的末尾处就继续。\n"
        );
        assert_eq!(
            join_wrapped_lines("The scanned page wraps this\nsentence here.\nEnd"),
            "The scanned page wraps this sentence here.\nEnd"
        );
        assert_eq!(
            join_wrapped_lines("第一章 总则\n第一条 为了规范差旅费管理，制定本办法。"),
            "第一章 总则\n第一条 为了规范差旅费管理，制定本办法。"
        );
    }

    #[test]
    fn the_language_list_is_read_without_its_heading_and_osd() {
        let listing = "List of available languages in \"/usr/share/tesseract-ocr/5/tessdata/\" (4):\n\
                       chi_sim\nchi_tra\neng\nosd\n";
        assert_eq!(parse_language_list(listing), ["chi_sim", "chi_tra", "eng"]);
    }

    #[test]
    fn a_language_that_is_not_installed_is_refused_with_what_is() {
        // Needs tesseract with its English data, as `scripts/setup` installs it.
        let error = check_languages("eng+xx_nonexistent")
            .unwrap_err()
            .to_string();
        assert!(error.contains("xx_nonexistent is not installed"), "{error}");
        assert!(error.contains("tesseract-ocr-xx-nonexistent"), "{error}");
        assert!(error.contains("eng"), "{error}");
        let error = check_languages("chi sim").unwrap_err().to_string();
        assert!(error.contains("expected tesseract names"), "{error}");
    }

    #[test]
    fn a_missing_language_is_found_in_stderr() {
        let stderr = "Error opening data file /x/tessdata/chi_tra.traineddata | \
                      Failed loading language 'chi_tra' | Tesseract couldn't load any languages!";
        assert_eq!(missing_language(stderr).as_deref(), Some("chi_tra"));
        assert_eq!(missing_language("Segmentation fault"), None);
    }

    #[test]
    fn a_missing_tesseract_names_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("x.png");
        std::fs::write(&image, b"\x89PNG\r\n\x1a\n").unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let result = recognise_with(
            "zhiku-no-such-tesseract",
            &image,
            &dir.path().join("out.txt"),
            None,
            "chi_sim+eng",
            &OcrSettings::default(),
            deadline,
        );
        match result {
            Err(PageFailure::Fatal(error @ Error::ToolMissing { .. })) => {
                assert_eq!(error.code(), "tool_missing");
                assert!(error.to_string().contains("tesseract-ocr"), "{error}");
            }
            other => panic!("expected ToolMissing, got {other:?}"),
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(OcrSettings::default().validate().is_ok());
        for languages in ["", "chi_sim+", "eng;rm -rf", "-l"] {
            let s = OcrSettings {
                languages: languages.into(),
                ..OcrSettings::default()
            };
            assert!(s.validate().is_err(), "{languages:?}");
        }
        let s = OcrSettings {
            dpi: 10,
            ..OcrSettings::default()
        };
        assert!(s.validate().is_err());
    }
}
