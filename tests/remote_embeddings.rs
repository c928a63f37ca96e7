//! `[embedding] backend = "remote"`: a second zhiku embeds on the first one's
//! `/v1/embeddings` (local ONNX there). Its documents are indexed and found, with the
//! vectors the local backend gives for the same chunks; when the embedding server goes
//! away, a document fails with a message that names it, `/health` says so, and once the
//! server is back the document can be uploaded again and is indexed.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Server, TOKEN, cli_with, llm_intro_files, open_db};

/// Each chunk's text and vector, read from the data dir's SQLite.
fn chunk_vectors(data: &Path) -> HashMap<String, Vec<f32>> {
    let (rt, mut db) = open_db(data);
    let rows: Vec<(String, Vec<u8>)> = rt
        .block_on(
            sqlx::query_as("SELECT text, embedding FROM chunk WHERE is_deleted = 0")
                .fetch_all(&mut db),
        )
        .unwrap();
    rt.block_on(sqlx::Connection::close(db)).unwrap();
    rows.into_iter()
        .map(|(text, b)| {
            let v = b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (text, v)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Poll `/health` until its status is `want` (a check's outcome is reused for 10 s).
fn wait_health(server: &Server, want: u16) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (status, body) = server.get("/health");
        if status == want {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/health still {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_second_zhiku_embeds_on_the_first_and_survives_its_absence() {
    let data_a = tempfile::tempdir().unwrap();
    let a = Server::start(data_a.path());
    let data_b = tempfile::tempdir().unwrap();
    let url = a.url("/v1");
    let remote = [
        ("ZHIKU_EMBEDDING__BACKEND", "remote"),
        ("ZHIKU_EMBEDDING__URL", url.as_str()),
        ("ZHIKU_EMBEDDING__API_KEY", TOKEN),
        // The other zhiku adds e5's prefixes itself.
        ("ZHIKU_EMBEDDING__PREFIXES", "input_type"),
        ("ZHIKU_EMBEDDING__RETRIES", "1"),
        ("ZHIKU_EMBEDDING__RETRY_BACKOFF_MS", "100"),
    ];

    // A wrong key: doctor names the backend, the URL and the refusal.
    let wrong_key: Vec<(&str, &str)> = remote
        .iter()
        .map(|&(k, v)| match k {
            "ZHIKU_EMBEDDING__API_KEY" => (k, "zk-not-a-key"),
            _ => (k, v),
        })
        .collect();
    let (ok, text) = cli_with(data_b.path(), &wrong_key, &["doctor"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "embedding        remote multilingual-e5-small at {url}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{url}/embeddings answered 401 Unauthorized"))
            && text.contains("embedding.api_key"),
        "{text}"
    );

    let b = Server::start_with(data_b.path(), &remote);
    let body = wait_health(&b, 200);
    assert_eq!(
        body["checks"]["embedder"]["about"], "remote multilingual-e5-small (384 dimensions)",
        "{body}"
    );

    // The same document indexed by both: locally on A, through A's /v1 on B.
    let files = &llm_intro_files()[2..3];
    let kb_a = a.create_kb("local");
    let kb_b = b.create_kb("remote");
    let (_, kb) = b.get(&format!("/api/kbs/{kb_b}"));
    assert_eq!(kb["embedding_model"], "multilingual-e5-small", "{kb}");
    for (server, kb) in [(&a, &kb_a), (&b, &kb_b)] {
        let (status, body) = server.upload(kb, files);
        assert_eq!(status, 202, "{body}");
        let docs = server.wait_settled(kb, Duration::from_secs(120));
        assert_eq!(docs[0]["status"], "indexed", "{docs:?}");
    }
    let (status, found) = b.post(
        &format!("/api/kbs/{kb_b}/search"),
        json!({"query": "什么是大语言模型", "mode": "semantic"}),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["results"][0]["document_name"], "03.txt", "{found}");

    // The local tokenizer sized B's chunks, so the chunks are the same, and so are their
    // vectors.
    let local = chunk_vectors(data_a.path());
    let remote_vectors = chunk_vectors(data_b.path());
    assert_eq!(local.len(), remote_vectors.len());
    for (text, v) in &remote_vectors {
        let cos = cosine(v, &local[text]);
        assert!(cos > 0.999, "cosine {cos} for {text:?}");
    }

    // The embedding server goes away: /health degrades, a new document fails with the
    // URL after the queue's attempts (the error is transient, so it is run again).
    let bind = a.base.trim_start_matches("http://").to_string();
    drop(a);
    let body = wait_health(&b, 503);
    assert_eq!(
        body["reasons"],
        json!(["embedding model unavailable"]),
        "{body}"
    );
    let error = body["checks"]["embedder"]["error"].as_str().unwrap();
    assert!(
        error.contains("the embedding server") && error.contains(&url),
        "{error}"
    );

    let second = &llm_intro_files()[4..5];
    let (status, body) = b.upload(&kb_b, second);
    assert_eq!(status, 202, "{body}");
    let docs = b.wait_settled(&kb_b, Duration::from_secs(60));
    let failed = docs.iter().find(|d| d["name"] == "05.txt").unwrap();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "embedding_server", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{url}/embeddings cannot be reached")),
        "{failed}"
    );
    let (_, jobs) = b.get("/api/jobs?limit=5");
    let job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["document_id"] == failed["id"])
        .unwrap();
    assert_eq!(job["error_code"], "embedding_server", "{job}");
    assert_eq!(job["attempts"], 3, "run again by the queue: {job}");
    // A semantic search cannot embed its question: 502 with the URL.
    let (status, found) = b.post(
        &format!("/api/kbs/{kb_b}/search"),
        json!({"query": "什么是大语言模型", "mode": "semantic"}),
    );
    assert_eq!(status, 502, "{found}");
    assert!(
        found["error"]["message"].as_str().unwrap().contains(&url),
        "{found}"
    );

    // Back: health recovers and the document, uploaded again, is indexed.
    let data_a2 = data_a;
    let _a = Server::start_with(data_a2.path(), &[("ZHIKU_BIND", bind.as_str())]);
    wait_health(&b, 200);
    let id = failed["id"].as_str().unwrap();
    assert_eq!(b.delete(&format!("/api/kbs/{kb_b}/documents/{id}")), 204);
    let (status, body) = b.upload(&kb_b, second);
    assert_eq!(status, 202, "{body}");
    let docs = b.wait_settled(&kb_b, Duration::from_secs(120));
    assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");
}
