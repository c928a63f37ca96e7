//! A KB built with one embedding model, opened with another: a clear error naming the fix,
//! then `zhiku reindex --re-embed` rebuilds it and search works again.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::{Server, TOKEN, llm_intro_files, models_dir};

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
    let source = models_dir().join("multilingual-e5-small");
    for f in [
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "config.json",
    ] {
        std::os::unix::fs::symlink(source.join(f), other.path().join(f)).unwrap();
    }
    std::fs::write(
        other.path().join("zhiku-model.json"),
        r#"{"id": "e5-small-copy", "dims": 384, "query_prefix": "query: ", "passage_prefix": "passage: "}"#,
    )
    .unwrap();
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

    let out = Command::new(env!("CARGO_BIN_EXE_zhiku"))
        .args(["reindex", "--kb", "handbook", "--re-embed"])
        .env("ZHIKU_DATA_DIR", data.path())
        .env("ZHIKU_MODELS_DIR", models_dir())
        .env("ZHIKU_ADMIN_TOKEN", TOKEN)
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
    assert_eq!(check["vector_hits"], check["sqlite_chunks"], "{check}");
}
