//! JSON and JSON Lines: records → `key.path: value` lines.
//!
//! A JSON export is usually a list of records (FAQ entries, tickets, products). Each record
//! becomes its own section, numbered as its page (the array item, or the line of a JSONL
//! file), so a citation can point at the record it came from. Inside a record every
//! string, number and boolean is written with the path of keys that leads to it, because a
//! bare value ("600") means nothing once the record is cut into chunks.
//!
//! Nesting is bounded by serde_json's recursion limit (128 levels: deeper input is refused
//! as damaged), and because paths repeat for every value, the rendered text is capped at
//! [`ExtractLimits::max_uncompressed_bytes`] like an expanding zip.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::decode::decode;
use super::{DocKind, ExtractLimits, Extracted, Section};
use crate::{Error, Result};

/// A JSON document: one section per item of a top-level array, else one section.
pub(super) fn extract_json(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let (text, _) = decode(bytes, None);
    let value: Value = serde_json::from_str(&text).map_err(|e| corrupt("json", &e))?;
    let records: Vec<(Option<u32>, Value)> = match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| (Some(number(i)), item))
            .collect(),
        other => vec![(None, other)],
    };
    let paged = records.first().is_some_and(|(page, _)| page.is_some());
    let count = records.len();
    Ok(Extracted {
        kind: DocKind::Json,
        sections: render_records(records, limits)?,
        page_count: paged.then(|| number(count.saturating_sub(1))),
        title: None,
    })
}

/// JSON Lines: one section per non-blank line, the line number as its page.
pub(super) fn extract_jsonl(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted> {
    let (text, _) = decode(bytes, None);
    let mut records = Vec::new();
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        lines = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| Error::Corrupt {
            kind: "jsonl".into(),
            detail: format!("line {}: {e}", i + 1),
        })?;
        records.push((Some(number(i)), value));
    }
    Ok(Extracted {
        kind: DocKind::Jsonl,
        sections: render_records(records, limits)?,
        page_count: Some(number(lines.saturating_sub(1))),
        title: None,
    })
}

/// A JSON value that keeps its keys in the file's order (serde_json's `Value` sorts them
/// unless the crate-wide `preserve_order` feature is on, and a record reads best as written:
/// the question before its answer).
#[derive(Debug)]
enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so serde_json never gives one.
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(field) = map.next_entry()? {
            fields.push(field);
        }
        Ok(Value::Object(fields))
    }
}

/// A 0-based index as a 1-based page number.
fn number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn corrupt(kind: &str, e: &serde_json::Error) -> Error {
    Error::Corrupt {
        kind: kind.to_owned(),
        detail: e.to_string(),
    }
}

/// Each record's lines as a section, stopping once the text outgrows the limit.
fn render_records(
    records: Vec<(Option<u32>, Value)>,
    limits: &ExtractLimits,
) -> Result<Vec<Section>> {
    let mut total: u64 = 0;
    let mut sections = Vec::with_capacity(records.len());
    for (page, value) in records {
        let mut lines = Lines::default();
        lines.value("", &value);
        let text = lines.out.join("\n");
        total = total.saturating_add(text.len() as u64);
        if total > limits.max_uncompressed_bytes {
            return Err(Error::TooLarge {
                detail: format!(
                    "the JSON's text grows past {} bytes with its key paths",
                    limits.max_uncompressed_bytes
                ),
            });
        }
        sections.push(Section {
            page,
            title: None,
            text,
            ocr: false,
            table: None,
        });
    }
    Ok(sections)
}

/// The `path: value` lines of one record.
#[derive(Default)]
struct Lines {
    out: Vec<String>,
}

impl Lines {
    fn value(&mut self, path: &str, value: &Value) {
        match value {
            // Nothing to say about an absent value.
            Value::Null => {}
            Value::String(s) if s.trim().is_empty() => {}
            Value::String(s) => self.leaf(path, s),
            Value::Bool(b) => self.leaf(path, &b.to_string()),
            Value::Number(n) => self.leaf(path, &n.to_string()),
            // A list of plain values (tags, aliases) reads best on one line.
            Value::Array(items) if items.iter().all(is_scalar) => {
                let joined: Vec<String> = items.iter().filter_map(scalar_text).collect();
                if !joined.is_empty() {
                    self.leaf(path, &joined.join(", "));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(&format!("{path}[{i}]"), item);
                }
            }
            Value::Object(fields) => {
                for (key, item) in fields {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.value(&child, item);
                }
            }
        }
    }

    fn leaf(&mut self, path: &str, text: &str) {
        self.out.push(if path.is_empty() {
            text.to_owned()
        } else {
            format!("{path}: {text}")
        });
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn limits() -> ExtractLimits {
        ExtractLimits::default()
    }

    #[test]
    fn records_become_sections_of_key_paths() {
        let json = r#"[
            {"问题": "如何报销？", "答案": {"步骤": ["填写单据", "上传发票"], "时限": 30},
             "启用": true, "备注": null, "附件": [{"名称": "模板", "页数": 2}]},
            {"问题": "住宿标准？", "上限": 600.5}
        ]"#;
        let doc = extract_json(json.as_bytes(), &limits()).unwrap();
        assert_eq!(doc.kind, DocKind::Json);
        assert_eq!(doc.page_count, Some(2));
        let pages: Vec<_> = doc.sections.iter().map(|s| s.page).collect();
        assert_eq!(pages, [Some(1), Some(2)]);
        assert_eq!(
            doc.sections[0].text,
            "问题: 如何报销？\n答案.步骤: 填写单据, 上传发票\n答案.时限: 30\n启用: true\n\
             附件[0].名称: 模板\n附件[0].页数: 2"
        );
        assert_eq!(doc.sections[1].text, "问题: 住宿标准？\n上限: 600.5");
    }

    #[test]
    fn an_object_is_one_section_and_a_scalar_stands_alone() {
        let doc = extract_json(br#"{"a": {"b": "c"}}"#, &limits()).unwrap();
        assert_eq!(doc.sections.len(), 1);
        assert_eq!(doc.sections[0].page, None);
        assert_eq!(doc.sections[0].text, "a.b: c");
        assert_eq!(
            extract_json(br#""hello""#, &limits()).unwrap().sections[0].text,
            "hello"
        );
    }

    #[test]
    fn jsonl_lines_are_pages_and_a_bad_line_is_named() {
        let doc = extract_jsonl(b"{\"q\": 1}\n\n{\"q\": 2}\n", &limits()).unwrap();
        let pages: Vec<_> = doc
            .sections
            .iter()
            .map(|s| (s.page, s.text.as_str()))
            .collect();
        assert_eq!(pages, [(Some(1), "q: 1"), (Some(3), "q: 2")]);
        match extract_jsonl(b"{\"q\": 1}\n{oops\n", &limits()) {
            Err(Error::Corrupt { kind, detail }) => {
                assert_eq!(kind, "jsonl");
                assert!(detail.starts_with("line 2:"), "{detail}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn deep_nesting_and_runaway_paths_are_refused() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            extract_json(deep.as_bytes(), &limits()),
            Err(Error::Corrupt { .. })
        ));
        let small = ExtractLimits {
            max_uncompressed_bytes: 100,
            ..ExtractLimits::default()
        };
        let key = "k".repeat(60);
        let wide = format!("{{\"{key}\": {{\"{key}\": [{{\"a\":1}},{{\"a\":2}}]}}}}");
        assert!(matches!(
            extract_json(wide.as_bytes(), &small),
            Err(Error::TooLarge { .. })
        ));
    }
}
