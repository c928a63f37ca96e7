//! Shared pieces of the fuzz targets: a character token counter, the panic policy, and
//! the checks every chunk list must pass.

use std::collections::HashSet;
use std::panic;
use std::sync::{Mutex, Once};

use ingest::extract::Extracted;
use ingest::split::{ChunkDraft, TokenCount};

/// One token per character, like the crate's own tests: the splitter's logic does not
/// depend on which counter it gets, and the e5 tokenizer would make every run 10× slower.
pub struct Chars;

impl TokenCount for Chars {
    fn count(&self, text: &str) -> usize {
        text.chars().count()
    }
}

/// Name of the thread `ingest::extract` parses on (`guard::run_guarded("extract", …)`).
const GUARD_THREAD: &str = "extract";

/// Install (once) a panic hook on top of libFuzzer's, which aborts on *every* panic, even
/// one that is caught later.
///
/// A panic raised by a third-party parser (pdf-extract, lopdf, zip, calamine, quick-xml…)
/// on the guard's thread is what `extract`'s `catch_unwind` is there for: it becomes
/// `Error::Panicked` and the fuzzer goes on (each distinct location is printed once).
/// Any other panic is a finding and aborts: a panic in our own code (`ingest/src/`), even
/// under the guard, and any panic on the fuzzer's thread, i.e. one that escaped the guard
/// or came from clean/split, which run unguarded in the server's pipeline.
pub fn install_panic_policy() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let aborting = panic::take_hook();
        let seen: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        panic::set_hook(Box::new(move |info| {
            let on_guard = std::thread::current().name() == Some(GUARD_THREAD);
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let ours = location.contains("ingest/src/");
            if on_guard && !ours {
                if seen.lock().is_ok_and(|mut s| s.insert(location.clone())) {
                    eprintln!("[fuzz] tolerated third-party panic under the guard at {location}");
                }
                return;
            }
            aborting(info);
        }));
    });
}

/// What every split must satisfy: ordinals 0, 1, 2…; offsets inside the section, on char
/// boundaries and pointing at exactly the chunk's text (a table's chunk: at its rows, the
/// text being the table's header lines and then those rows); no empty or untrimmed chunk;
/// the token count the counter gives.
pub fn check_chunks(doc: &Extracted, chunks: &[ChunkDraft]) {
    let mut next_section = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.ordinal as usize, i, "ordinals must be 0, 1, 2…");
        assert!(!chunk.text.is_empty(), "empty chunk {i}");
        assert_eq!(chunk.text.trim(), chunk.text, "untrimmed chunk {i}");
        assert_eq!(chunk.token_count, Chars.count(&chunk.text));
        assert!(chunk.start_byte <= chunk.end_byte, "chunk {i}: start > end");
        // The chunk's section: the first one, from where the last chunk was, whose text
        // has the chunk at its offsets (sections are walked in order).
        let found = doc.sections[next_section..].iter().position(|s| {
            s.page == chunk.page
                && s.text
                    .get(chunk.start_byte..chunk.end_byte)
                    .is_some_and(|at| {
                        at == chunk.text
                            || s.table.as_ref().is_some_and(|t| {
                                let header = s.text.split('\n').take(t.header_lines);
                                let header = header.collect::<Vec<_>>().join("\n");
                                chunk
                                    .text
                                    .strip_prefix(header.as_str())
                                    .and_then(|rest| rest.strip_prefix('\n'))
                                    == Some(at)
                            })
                    })
        });
        match found {
            Some(at) => next_section += at,
            None => panic!(
                "chunk {i} ({:?}, bytes {}..{}) is not at its offsets in any section from {next_section}",
                chunk.text, chunk.start_byte, chunk.end_byte
            ),
        }
    }
}
