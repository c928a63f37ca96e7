//! A KB built with one embedding model, opened with another: a clear error naming the fix,
//! then `zhiku reindex --re-embed` rebuilds it and search works again. A kill -9 part-way
//! through the re-embedding or the rebuild leaves the old state or the new one, whole.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{
    Server, copy_deployment, llm_intro_files, models_dir, query_rows, zhiku_command,
};

/// A model folder with e5-small's files under another id. A different passage prefix gives
/// vectors that differ from e5-small's, so a mix of the two would show.
fn other_model(dir: &Path, id: &str, passage_prefix: &str) {
    let source = models_dir().join("multilingual-e5-small");
    for f in [
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "config.json",
    ] {
        std::os::unix::fs::symlink(source.join(f), dir.join(f)).unwrap();
    }
    let meta =
        json!({"id": id, "dims": 384, "query_prefix": "query: ", "passage_prefix": passage_prefix});
    std::fs::write(dir.join("zhiku-model.json"), meta.to_string()).unwrap();
}

/// `zhiku reindex --kb handbook --re-embed` with `model`, started (not waited for).
fn re_embed(data: &Path, model: &Path) -> Command {
    let mut cmd = zhiku_command(data, &[]);
    cmd.args(["reindex", "--kb", "handbook", "--re-embed"])
        .env("ZHIKU_EMBEDDING__THREADS", "2")
        .env("ZHIKU_EMBEDDING__MODEL", model);
    cmd
}

/// The KB's model and every chunk's vector, read straight from the database.
fn stored_vectors(data: &Path) -> (String, BTreeMap<i64, Vec<f32>>) {
    let models: Vec<(String,)> = query_rows(data, "SELECT embedding_model FROM kb");
    let rows: Vec<(i64, Vec<u8>)> = query_rows(
        data,
        "SELECT chunk_id, embedding FROM chunk WHERE NOT is_deleted",
    );
    let vectors = rows
        .into_iter()
        .map(|(id, b)| {
            let v = b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (id, v)
        })
        .collect();
    (models[0].0.clone(), vectors)
}

/// Vectors staged by a re-embedding in progress.
fn staged_rows(data: &Path) -> i64 {
    let counts: Vec<(i64,)> = query_rows(data, "SELECT COUNT(*) FROM chunk_vector_staging");
    counts[0].0
}

/// Whether two vector sets are the same up to batching noise (a different prefix moves
/// e5's vectors by far more than this).
fn same_vectors(a: &BTreeMap<i64, Vec<f32>>, b: &BTreeMap<i64, Vec<f32>>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(id, va)| {
            b.get(id).is_some_and(|vb| {
                va.len() == vb.len() && va.iter().zip(vb).all(|(x, y)| (x - y).abs() < 2e-3)
            })
        })
}

/// kill -9 `zhiku reindex --re-embed` once vectors are being staged, and at moments spread
/// over the rest of its run (swap, index rebuild). Each time the database holds one model's vectors, all of them,
/// the server starts and serves that state, and a second run completes, resuming what was
/// staged.
#[test]
fn kill_during_re_embed_and_rebuild_leaves_old_or_new_state() {
    let base = tempfile::tempdir().unwrap();
    let mut server = Server::start(base.path());
    let kb = server.create_kb("handbook");
    assert_eq!(server.upload(&kb, &llm_intro_files()).0, 202);
    server.wait_settled(&kb, Duration::from_secs(300));
    server.kill();
    let (old_model, old) = stored_vectors(base.path());

    let other = tempfile::tempdir().unwrap();
    other_model(other.path(), "e5-small-noprefix", "");
    let env = [("ZHIKU_EMBEDDING__MODEL", other.path().to_str().unwrap())];

    // Reference: an uninterrupted run, timed.
    let reference = tempfile::tempdir().unwrap();
    copy_deployment(base.path(), reference.path());
    let started = Instant::now();
    let out = re_embed(reference.path(), other.path()).output().unwrap();
    let full_run = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    let (new_model, new) = stored_vectors(reference.path());
    assert_eq!(new_model, "e5-small-noprefix");
    assert!(!same_vectors(&old, &new), "the two models must differ");

    let mut resumed = 0;
    // 0.0: as soon as the first page of vectors is staged.
    for fraction in [0.0, 0.5, 0.8, 0.95] {
        let data = tempfile::tempdir().unwrap();
        copy_deployment(base.path(), data.path());
        let mut child = re_embed(data.path(), other.path()).spawn().unwrap();
        if fraction == 0.0 {
            while staged_rows(data.path()) == 0 {
                assert!(child.try_wait().unwrap().is_none(), "the run ended unseen");
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            std::thread::sleep(full_run.mul_f64(fraction));
        }
        let _ = child.kill();
        let _ = child.wait();

        let (model, vectors) = stored_vectors(data.path());
        if model == old_model {
            assert!(
                same_vectors(&vectors, &old),
                "{fraction}: old model, mixed vectors"
            );
        } else {
            assert_eq!(model, new_model);
            assert!(
                same_vectors(&vectors, &new),
                "{fraction}: new model, mixed vectors"
            );
        }

        // The server serves that state: the old one refuses semantic search with the fix,
        // the new one searches with complete indexes (repaired at start if the kill came
        // between the swap and the rebuild).
        let server = Server::start_with(data.path(), &env);
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/search"),
            json!({"query": "LangChain 这个开源框架最早是谁推出的？"}),
        );
        if model == old_model {
            assert_eq!(status, 409, "{fraction}: {body}");
        } else {
            assert_eq!(status, 200, "{fraction}: {body}");
            let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
            assert_eq!(check["bm25_matches"], true, "{fraction}: {check}");
            assert_eq!(
                check["vector_hits"], check["db_chunks"],
                "{fraction}: {check}"
            );
        }
        let (status, _) = server.post(
            &format!("/api/kbs/{kb}/search"),
            json!({"query": "LangChain", "mode": "fulltext"}),
        );
        assert_eq!(status, 200, "{fraction}");
        drop(server);

        // Running it again completes the change.
        let out = re_embed(data.path(), other.path()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{fraction}: {out:?}");
        if stdout.contains("staged by an interrupted run") {
            resumed += 1;
        }
        let (model, vectors) = stored_vectors(data.path());
        assert_eq!(model, new_model);
        assert!(same_vectors(&vectors, &new), "{fraction}: after the re-run");
        let server = Server::start_with(data.path(), &env);
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/search"),
            json!({"query": "LangChain 这个开源框架最早是谁推出的？"}),
        );
        assert_eq!(status, 200, "{fraction}: {body}");
        assert_eq!(body["results"][0]["document_name"], "01.txt", "{body}");
        let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
        assert_eq!(check["bm25_matches"], true, "{fraction}: {check}");
        assert_eq!(
            check["vector_hits"], check["db_chunks"],
            "{fraction}: {check}"
        );
    }
    assert!(resumed > 0, "no kill landed in the re-embedding");
}

#[test]
fn model_change_is_refused_until_reindex_re_embed() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let kb = server.create_kb("handbook");
    assert_eq!(server.upload(&kb, &llm_intro_files()[..2]).0, 202);
    server.wait_settled(&kb, Duration::from_secs(300));
    server.kill();

    // "Another" model: the same files under another id.
    let other = tempfile::tempdir().unwrap();
    other_model(other.path(), "e5-small-copy", "passage: ");
    let model = other.path().to_str().unwrap();
    let env = [("ZHIKU_EMBEDDING__MODEL", model)];

    let mut server = Server::start_with(data.path(), &env);
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "LangChain"}),
    );
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("zhiku reindex --kb handbook --re-embed"),
        "{message}"
    );
    // Full-text search needs no vectors and keeps working meanwhile.
    let (status, _) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "LangChain", "mode": "fulltext"}),
    );
    assert_eq!(status, 200);
    server.kill();

    let out = zhiku_command(data.path(), &[])
        .args(["reindex", "--kb", "handbook", "--re-embed"])
        .env("ZHIKU_EMBEDDING__MODEL", model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("re-embedded with e5-small-copy"),
        "{stdout}"
    );

    let server = Server::start_with(data.path(), &env);
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "LangChain 这个开源框架最早是谁推出的？"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["document_name"], "01.txt", "{body}");
    let (_, info) = server.get(&format!("/api/kbs/{kb}"));
    assert_eq!(info["embedding_model"], "e5-small-copy");
    let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], check["db_chunks"], "{check}");
}
