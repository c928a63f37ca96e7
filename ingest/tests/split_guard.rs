//! Cleaning and splitting are guarded like extraction: embedded binary is dropped before
//! the tokenizer sees it, and a time limit fails a document instead of pinning a worker.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use ingest::extract::extract;
use ingest::pipeline::SourceDocument;

mod common;
use common::pipeline;

fn source(name: &str, text: String) -> SourceDocument {
    SourceDocument {
        name: name.into(),
        bytes: text.into_bytes().into(),
        split: Default::default(),
        clean: Default::default(),
        ocr_languages: None,
    }
}

/// What Typora or Obsidian export: a note with a screenshot pasted inline, 5.3 MB of it
/// one base64 "word". The tokenizer spent more than eight minutes on such a file.
#[test]
fn a_markdown_file_with_an_inline_base64_image_splits_in_well_under_a_second() {
    let pipeline = pipeline(Duration::from_secs(60));
    // Warm the tokenizer, so the timing below is the split's own.
    pipeline
        .chunk(&source("warm.md", "# 预热\n\n一句话。".into()))
        .unwrap();
    let image: String = (0..4_000_000u32)
        .map(|i| {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            alphabet[(i.wrapping_mul(2_654_435_761) >> 26) as usize] as char
        })
        .collect();
    let note = format!(
        "# 报销流程\n\n出差回来五个工作日内提交报销单。\n\n![截图](data:image/png;base64,{image}==)\n\n## 审批\n\n部门经理审批后交财务。\n\n附件原文：\n\n{}\n",
        &image[..1_300_000]
    );
    assert!(note.len() > 5_000_000);
    let started = Instant::now();
    let (_, chunks) = pipeline.chunk(&source("note.md", note)).unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(800), "took {elapsed:?}");
    let text: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert!(text.contains("部门经理审批后交财务"), "{text}");
    assert!(!text.contains("base64"), "{text}");
    assert!(text.len() < 500, "{} bytes kept", text.len());
}

/// A document whose cleaning and splitting outlast the limit fails with a reason that
/// says so, and the caller gets it back at the limit, not when the tokenizer is done.
#[test]
fn splitting_past_the_time_limit_fails_the_document() {
    let pipeline = pipeline(Duration::from_millis(50));
    pipeline
        .chunk(&source("warm.md", "# 预热\n\n一句话。".into()))
        .unwrap();
    let long = source(
        "long.txt",
        "员工出差回来五个工作日内提交报销单，部门经理审批后交财务。\n\n".repeat(20_000),
    );
    let extracted = extract(&long.name, long.bytes.clone(), &pipeline.limits).unwrap();
    let started = Instant::now();
    let error = pipeline.clean_and_split(extracted, &long).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.code(), "timed_out");
    assert!(
        error
            .to_string()
            .contains("cleaning and splitting took longer than 50 ms"),
        "{error}"
    );
}
