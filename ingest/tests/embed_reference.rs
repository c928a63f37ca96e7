//! The converted multilingual-e5-small model against the reference vectors in
//! shared/MODELS.md §2.5: each vector's first six dimensions and the pairwise cosines.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use ingest::embed::{Embedder, EmbedderConfig, cosine};

mod common;
use common::models_dir;

fn embedder() -> Embedder {
    embedder_releasing_after(0)
}

fn embedder_releasing_after(passage_idle_release_s: u64) -> Embedder {
    let models = models_dir();
    Embedder::load(&EmbedderConfig {
        model_dir: models.join("multilingual-e5-small"),
        ort_library: models.join("onnxruntime/libonnxruntime.so.1.31.1"),
        threads: 2,
        batch_size: 32,
        batch_tokens: 16384,
        passage_idle_release_s,
        remote: None,
    })
    .unwrap()
}

fn close(v: &[f32], reference: &[f32]) -> f32 {
    // Cosine of the first six dims; plus an absolute check so a scaled vector fails too.
    for (a, b) in v.iter().zip(reference) {
        assert!((a - b).abs() < 2e-4, "{v:?} vs {reference:?}");
    }
    cosine(&v[..6], reference)
}

#[test]
fn converted_model_matches_reference_vectors() {
    let e = embedder();
    assert_eq!(e.info().id, "multilingual-e5-small");
    assert_eq!(e.info().dims, 384);
    let q = e.embed_query("如何申请年假？").unwrap();
    let passages = e
        .embed_passages(
            &[
                "员工每年可以享受带薪年假，需提前一周在系统中申请。".to_string(),
                "The cat sat on the mat.".to_string(),
            ],
            |_, _| {},
        )
        .unwrap();
    let (p_zh, p_en) = (&passages[0], &passages[1]);
    assert!(
        close(
            &q,
            &[0.08633, -0.01547, -0.02556, -0.05414, 0.06382, -0.02083]
        ) >= 0.999
    );
    assert!(
        close(
            p_zh,
            &[0.03853, -0.00128, -0.03101, -0.01869, 0.10344, -0.03067]
        ) >= 0.999
    );
    assert!(
        close(
            p_en,
            &[0.04428, 0.01570, 0.02723, -0.06902, 0.07276, -0.04107]
        ) >= 0.999
    );
    assert!((cosine(&q, p_zh) - 0.90090).abs() < 1e-3);
    assert!((cosine(&q, p_en) - 0.67733).abs() < 1e-3);
    assert!((cosine(p_zh, p_en) - 0.65767).abs() < 1e-3);
}

#[test]
fn batching_and_duplicates_do_not_change_vectors() {
    let e = embedder();
    let texts: Vec<String> = [
        "短句。",
        "一个长得多的句子，用来和短句放进同一批里做填充。",
        "短句。",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let batch = e.embed_passages(&texts, |_, _| {}).unwrap();
    let single = e.embed_passages(&texts[1..2], |_, _| {}).unwrap();
    assert!(cosine(&batch[1], &single[0]) > 0.99999);
    assert_eq!(batch[0], batch[2]);
}

#[test]
fn the_passage_model_is_released_when_idle_and_comes_back_the_same() {
    let e = embedder_releasing_after(1);
    // Searching needs the query session only.
    e.embed_query("年假").unwrap();
    assert!(!e.passages_loaded());
    let texts = vec!["员工每年可以享受带薪年假。".to_string()];
    let first = e.embed_passages(&texts, |_, _| {}).unwrap();
    assert!(e.passages_loaded());
    assert!(!e.release_idle(), "released while just used");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    // Held by a caller (a split in progress): not released under it.
    let held = e.tokens().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    assert!(!e.release_idle());
    drop(held);
    assert!(e.release_idle());
    assert!(!e.passages_loaded());
    // The next passage starts it again, with the same vectors.
    let again = e.embed_passages(&texts, |_, _| {}).unwrap();
    assert_eq!(first, again);
    assert!(e.passages_loaded());
    // 0 never releases.
    let keep = embedder();
    keep.embed_passages(&texts, |_, _| {}).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    assert!(!keep.release_idle());
}

#[test]
fn chunks_are_sized_by_the_whole_text_without_special_tokens() {
    let e = embedder();
    let sizer = e.tokens().unwrap();
    let sentence = "员工每年可以享受带薪年假。";
    let one = sizer.count(sentence);
    assert!((1..20).contains(&one), "{one} tokens");
    // Past the model's 512-token window the count must keep growing: a truncating
    // tokenizer would make an oversized chunk look as if it fitted.
    let long = sentence.repeat(100);
    let many = sizer.count(&long);
    assert!(
        many > 512 && many >= 90 * one,
        "{many} tokens for 100 × {one}"
    );
}

#[test]
fn a_missing_model_folder_is_a_clear_error() {
    let models = models_dir();
    let err = Embedder::load(&EmbedderConfig {
        model_dir: PathBuf::from("/nonexistent/model"),
        ort_library: models.join("onnxruntime/libonnxruntime.so.1.31.1"),
        threads: 1,
        batch_size: 8,
        batch_tokens: 1024,
        passage_idle_release_s: 0,
        remote: None,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/model/model.onnx"), "{err}");
}
