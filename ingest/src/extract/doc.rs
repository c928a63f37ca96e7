//! DOC (Word 97–2003): read by `antiword` in a child process.
//!
//! Why antiword (Debian package `antiword`), measured on `zh-travel-policy.doc` (LibreOffice's
//! Word 97 export of `zh-travel-policy.docx`): antiword, catdoc and LibreOffice headless all
//! gave every one of its 435 characters; antiword keeps table rows as rows (`|cell|cell|`)
//! and, like our DOCX reader, leaves out headers and footers, where catdoc prints the page
//! chrome into the text and LibreOffice's text export puts each table cell on a line of its
//! own. antiword costs 0.6 MB installed and about 2 ms and 2 MB per document; LibreOffice
//! (writer, no GUI) is 58 packages, over 200 MB, 25 s to install and 1.3–1.6 s and 215 MB
//! per document, for headings and list bullets antiword drops (their text is kept).
//!
//! A child process, like OCR: a C parser meeting a hostile file crashes or loops there, under
//! a deadline and a memory cap, not in the server.

use std::process::Command;
use std::time::{Duration, Instant};

use super::subprocess::{self, ChildError};
use super::{DocKind, ExtractLimits, Extracted, Section};
use crate::{Error, Result};

/// antiword holds a document's text and tables in memory; real files need a few MB.
const MAX_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// The program and the Debian package that has it.
const PROGRAM: &str = "antiword";

/// The text of a `.doc` as one section.
pub(super) fn extract_doc(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    read_with(PROGRAM, bytes, limits)
}

/// [`extract_doc`] with the program named, so a test can name one that isn't installed.
fn read_with(program: &str, bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.doc");
    std::fs::write(&input, bytes)?;
    let out = dir.path().join("out.txt");
    let mut command = Command::new(program);
    // UTF-8 output (Chinese!), and no wrapping: one paragraph, one line.
    command.args(["-m", "UTF-8.txt", "-w", "0"]).arg(&input);
    let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
    match subprocess::run(command, &out, deadline, MAX_MEMORY_BYTES) {
        // "Encrypted documents are not supported": whatever the exit status, the text is
        // not there, and the user must remove the password.
        Ok(stderr) if is_encrypted(&stderr) => return Err(Error::Encrypted),
        Ok(_) => {}
        Err(ChildError::NotFound) => {
            return Err(Error::ToolMissing {
                what: program.into(),
                package: PROGRAM.into(),
                remedy: "install it to read Word 97–2003 (.doc) files".into(),
            });
        }
        Err(ChildError::TimedOut) => {
            return Err(Error::TimedOut {
                limit_ms: limits.timeout_ms,
            });
        }
        Err(ChildError::Failed { stderr, .. }) if is_encrypted(&stderr) => {
            return Err(Error::Encrypted);
        }
        Err(e) => {
            return Err(Error::Corrupt {
                kind: "doc".into(),
                detail: e.describe(PROGRAM, MAX_MEMORY_BYTES),
            });
        }
    }
    if std::fs::metadata(&out)?.len() > limits.max_uncompressed_bytes {
        return Err(Error::TooLarge {
            detail: format!(
                "the doc's text is over {} bytes",
                limits.max_uncompressed_bytes
            ),
        });
    }
    let text = String::from_utf8_lossy(&std::fs::read(&out)?).into_owned();
    Ok(Extracted {
        kind: DocKind::Doc,
        sections: vec![Section {
            page: None,
            title: None,
            text: tidy(&text),
            ocr: false,
            table: None,
        }],
        page_count: None,
        title: None,
    })
}

/// antiword's complaint about a password-protected file.
fn is_encrypted(stderr: &str) -> bool {
    stderr.contains("Encrypted documents are not supported")
}

/// antiword's text in our shape: table rows `|a   |b   |` become `a | b` (as DOCX rows),
/// and picture placeholders and the rule above the footnotes go (a line of dashes would
/// read as a Markdown heading underline).
fn tidy(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let line = line.trim();
            line.is_empty() || line.chars().any(|c| c != '-')
        })
        .map(|line| {
            let trimmed = line.trim();
            match trimmed
                .strip_prefix('|')
                .and_then(|row| row.strip_suffix('|'))
            {
                Some(row) => row
                    .split('|')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" | "),
                None => trimmed.replace("[pic]", ""),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn table_rows_become_cells_joined_by_bars() {
        assert_eq!(
            tidy(
                "前言\n\n|城市类别    |每晚住宿上限（元）  |\n|一类   |600   |\n[pic]\n-----\n[1]\t注\n"
            ),
            "前言\n\n城市类别 | 每晚住宿上限（元）\n一类 | 600\n\n[1]\t注"
        );
    }

    #[test]
    fn a_missing_antiword_names_its_package() {
        let error =
            read_with("zhiku-no-such-antiword", b"x", &ExtractLimits::default()).unwrap_err();
        assert!(matches!(error, Error::ToolMissing { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "zhiku-no-such-antiword is not installed (Debian package antiword); \
             install it to read Word 97–2003 (.doc) files"
        );
    }

    #[test]
    fn not_a_word_file_is_damaged() {
        match extract_doc(b"PK\x03\x04 not a doc", &ExtractLimits::default()) {
            Err(Error::Corrupt { kind, detail }) => {
                assert_eq!(kind, "doc");
                assert!(detail.contains("antiword"), "{detail}");
            }
            // Without antiword the test can only check the error users get.
            Err(Error::ToolMissing { package, .. }) => assert_eq!(package, "antiword"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
