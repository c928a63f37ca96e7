//! Reading an evaluation set: `corpus.jsonl` (`{"id","title","text"}` per line) and
//! `queries.jsonl` (`{"id","query","answers":[…],"positive_ids":[…]}` per line), the format
//! of `shared/data/eval`. Every problem names the file and the line, because these files
//! are written by hand or by scripts and a bad line is the usual way a run goes wrong.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// One passage of the corpus; it becomes one document of the knowledge base.
#[derive(Debug, Clone, Deserialize)]
pub struct CorpusRecord {
    /// What queries name in `positive_ids`.
    pub id: String,
    /// Article title (indexed only with `--titles`).
    #[serde(default)]
    pub title: String,
    /// The passage (empty when `file` holds the document).
    #[serde(default)]
    pub text: String,
    /// A document file instead of `text` (PDF, DOCX, CSV…), relative to the corpus file's
    /// folder; resolved by [`load_corpus`]. It is uploaded as it is, so the set measures
    /// the text zhiku extracts from it, as a user's bot reads it.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// One question with what counts as a right answer.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryRecord {
    /// Query id.
    pub id: String,
    /// The question.
    pub query: String,
    /// Gold answers (any one found in a bot's answer is a hit).
    #[serde(default)]
    pub answers: Vec<String>,
    /// Corpus ids (or, with `--kb`, document names or ids) that answer it.
    pub positive_ids: Vec<String>,
    /// Earlier questions of the same conversation, oldest first: with `--answers` the bot
    /// answers each of them first, and `query` is asked as their follow-up (which may say
    /// "它" for what they named). Retrieval figures search `query` as it is written.
    #[serde(default)]
    pub history: Vec<String>,
}

/// Parse a JSON-lines file; blank lines are skipped.
fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let line =
            line.map_err(|e| Error::InvalidInput(format!("{}:{line_no}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| {
            Error::InvalidInput(format!("{}:{line_no}: malformed line: {e}", path.display()))
        })?;
        out.push(record);
    }
    Ok(out)
}

/// Read corpus files (the corpus, then any distractors); ids must be unique across them.
pub fn load_corpus(paths: &[&Path]) -> Result<Vec<CorpusRecord>> {
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        let mut part: Vec<CorpusRecord> = read_jsonl(path)?;
        let folder = path.parent().unwrap_or(Path::new(""));
        for (i, r) in part.iter_mut().enumerate() {
            let has_text = !r.text.trim().is_empty();
            if r.id.trim().is_empty() || has_text == r.file.is_some() {
                return Err(Error::InvalidInput(format!(
                    "{}: record {} needs an id and either a text or a file",
                    path.display(),
                    i + 1
                )));
            }
            if let Some(file) = r.file.as_mut() {
                *file = folder.join(&*file);
                if !file.is_file() {
                    return Err(Error::InvalidInput(format!(
                        "{}: record {}: no file {}",
                        path.display(),
                        i + 1,
                        file.display()
                    )));
                }
            }
            if !seen.insert(r.id.clone()) {
                return Err(Error::InvalidInput(format!(
                    "{}: corpus id '{}' appears twice",
                    path.display(),
                    r.id
                )));
            }
        }
        records.extend(part);
    }
    if records.is_empty() {
        return Err(Error::InvalidInput("the corpus is empty".into()));
    }
    Ok(records)
}

/// Read the queries, keeping the first `limit` when given.
pub fn load_queries(path: &Path, limit: Option<usize>) -> Result<Vec<QueryRecord>> {
    let mut queries: Vec<QueryRecord> = read_jsonl(path)?;
    for q in &queries {
        if q.query.trim().is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: query '{}' has no question text",
                path.display(),
                q.id
            )));
        }
        if q.positive_ids.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: query '{}' has no positive_ids",
                path.display(),
                q.id
            )));
        }
    }
    if let Some(n) = limit {
        queries.truncate(n);
    }
    if queries.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no queries to evaluate",
            path.display()
        )));
    }
    Ok(queries)
}

/// Fail when a query names a positive that `known` does not contain: its recall would be
/// silently zero, which reads as bad retrieval rather than a wrong file.
pub fn check_positives(queries: &[QueryRecord], known: &HashSet<String>) -> Result<()> {
    let missing: Vec<String> = queries
        .iter()
        .flat_map(|q| {
            q.positive_ids
                .iter()
                .filter(|id| !known.contains(*id))
                .map(move |id| format!("{} → {id}", q.id))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
    Err(Error::InvalidInput(format!(
        "{} positive id(s) are not in the corpus (query → id): {}{}",
        missing.len(),
        shown.join(", "),
        if missing.len() > 5 { ", …" } else { "" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn malformed_line_is_named_by_number() {
        let f = file("{\"id\":\"q1\",\"query\":\"a\",\"positive_ids\":[\"d\"]}\n\n{oops\n");
        let e = load_queries(f.path(), None).unwrap_err().to_string();
        assert!(e.contains(":3: malformed line"), "{e}");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let e = load_queries(Path::new("/no/such/queries.jsonl"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/queries.jsonl"), "{e}");
    }

    #[test]
    fn limit_keeps_the_first_queries() {
        let f = file(
            "{\"id\":\"q1\",\"query\":\"a\",\"positive_ids\":[\"d\"]}\n\
             {\"id\":\"q2\",\"query\":\"b\",\"positive_ids\":[\"d\"]}\n",
        );
        let q = load_queries(f.path(), Some(1)).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].id, "q1");
    }

    #[test]
    fn a_record_holds_a_text_or_names_a_file_beside_the_corpus() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.csv"), "问题,答案\n").unwrap();
        let corpus = dir.path().join("corpus.jsonl");
        std::fs::write(
            &corpus,
            "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"b\",\"file\":\"policy.csv\"}\n",
        )
        .unwrap();
        let records = load_corpus(&[&corpus]).unwrap();
        assert_eq!(records[0].file, None);
        assert_eq!(records[1].file, Some(dir.path().join("policy.csv")));

        for (line, why) in [
            ("{\"id\":\"c\",\"file\":\"gone.pdf\"}", "no file"),
            (
                "{\"id\":\"c\",\"text\":\"x\",\"file\":\"policy.csv\"}",
                "either a text or a file",
            ),
            ("{\"id\":\"c\"}", "either a text or a file"),
        ] {
            std::fs::write(&corpus, format!("{line}\n")).unwrap();
            let e = load_corpus(&[&corpus]).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("record 1"), "{e}");
        }
    }

    #[test]
    fn duplicate_corpus_ids_and_unknown_positives_are_refused() {
        let c = file("{\"id\":\"d\",\"text\":\"x\"}\n{\"id\":\"d\",\"text\":\"y\"}\n");
        let e = load_corpus(&[c.path()]).unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");

        let q = vec![QueryRecord {
            id: "q1".into(),
            query: "a".into(),
            answers: vec![],
            positive_ids: vec!["nope".into()],
            history: vec![],
        }];
        let known = HashSet::from(["d".to_string()]);
        let e = check_positives(&q, &known).unwrap_err().to_string();
        assert!(e.contains("q1 → nope"), "{e}");
    }
}
