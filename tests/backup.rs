//! `zhiku backup` while the server serves and writes, then `zhiku restore` into a new data
//! dir: the restored server has exactly the snapshot — knowledge, bots, conversations —
//! with indexes rebuilt from SQLite that agree with it.

use std::time::Duration;

use serde_json::json;

use crate::common::{Server, TOKEN, cli};

#[test]
fn a_backup_taken_while_serving_restores_into_a_working_server() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("handbook");
    let paste = |name: &str, text: &str| {
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/documents"),
            json!({"name": name, "text": text}),
        );
        assert_eq!(status, 202, "{body}");
        server.wait_settled(&kb, Duration::from_secs(120));
    };
    paste("travel.md", "出差住宿标准：一线城市每晚不超过六百元。");
    let bot = server
        .create_bot(json!({"name": "hr", "knowledge_bases": [kb], "model": {"max_tokens": 4}}));
    let (status, _) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "住宿标准？"}),
    );
    assert_eq!(status, 200);

    let backups = tempfile::tempdir().unwrap();
    let out = backups.path().join("b1");
    let (ok, text) = cli(data.path(), &["backup", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("backed up 1 documents"), "{text}");
    // Written after the snapshot: not in the restore.
    paste("leave.md", "年假：入职满一年享有五天带薪年假。");

    // Restoring over a running server's data dir is refused, and touches nothing.
    let (ok, text) = cli(
        data.path(),
        &["restore", out.to_str().unwrap(), "--replace"],
    );
    assert!(!ok && text.contains("another zhiku process"), "{text}");
    let (ok, text) = cli(data.path(), &["backup", out.to_str().unwrap()]);
    assert!(!ok && text.contains("not empty"), "{text}");

    let restored = tempfile::tempdir().unwrap();
    let (ok, text) = cli(restored.path(), &["restore", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    let (ok, text) = cli(restored.path(), &["restore", out.to_str().unwrap()]);
    assert!(!ok && text.contains("--replace"), "{text}");

    let copy = Server::start(restored.path());
    let docs = copy.wait_settled(&kb, Duration::from_secs(60));
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["status"], "indexed");
    let (status, found) = copy.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "住宿标准"}),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["results"][0]["document_name"], "travel.md", "{found}");
    let (_, check) = copy.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], check["db_chunks"], "{check}");
    let (status, restored_bot) = copy.get(&format!("/api/bots/{bot}"));
    assert_eq!(status, 200);
    assert_eq!(restored_bot["name"], "hr");
    let (_, conversations) = copy.get(&format!("/api/bots/{bot}/conversations"));
    assert_eq!(
        conversations.as_array().unwrap().len(),
        1,
        "{conversations}"
    );
    // The original files came along: the document can be re-processed.
    let file = std::fs::read_dir(restored.path().join("files"))
        .unwrap()
        .count();
    assert_eq!(file, 1);
}
