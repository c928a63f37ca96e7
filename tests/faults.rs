//! Faults from outside: model files missing or damaged, a full disk, a database locked by
//! another process. Each gives a clear error, and nothing already stored is lost.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Server, llm_intro_files, models_dir, open_db, serve_command};

/// Wait for a `zhiku serve` that must fail to start; its log.
fn failed_start(mut cmd: Command) -> String {
    let mut child: Child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("zhiku serve did not stop");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A KB with one indexed document: what a fault must not lose. Returns (kb, chunk count).
fn seeded(data: &Path) -> (String, i64) {
    let server = Server::start(data);
    let kb = server.create_kb("keep");
    assert_eq!(server.upload(&kb, &llm_intro_files()[..1]).0, 202);
    let docs = server.wait_settled(&kb, Duration::from_secs(300));
    (kb, docs[0]["chunk_count"].as_i64().unwrap())
}

/// The seeded document is still there, indexed, found, and the indexes agree with SQLite.
fn still_whole(server: &Server, kb: &str, chunks: i64) {
    let docs = server.wait_settled(kb, Duration::from_secs(600));
    let kept = docs.iter().find(|d| d["name"] == "01.txt").unwrap();
    assert_eq!(kept["status"], "indexed", "{kept}");
    assert_eq!(kept["chunk_count"], chunks, "{kept}");
    for d in &docs {
        assert!(
            d["status"] == "indexed" || !d["error"].is_null(),
            "a document neither indexed nor failed with a reason: {d}"
        );
    }
    let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], check["db_chunks"], "{check}");
    let (status, found) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "LangChain 这个开源框架最早是谁推出的？"}),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["results"][0]["document_name"], "01.txt", "{found}");
}

fn integrity_ok(data: &Path) {
    let (rt, mut db) = open_db(data);
    let (verdict,): (String,) = rt
        .block_on(sqlx::query_as("PRAGMA integrity_check").fetch_one(&mut db))
        .unwrap();
    assert_eq!(verdict, "ok");
}

#[test]
fn missing_or_damaged_model_files_give_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let (kb, chunks) = seeded(data.path());

    // The embedding model: the server does not start, and says which file and the fix.
    let log = failed_start(serve_command(
        data.path(),
        &[("ZHIKU_EMBEDDING__MODEL", "/nonexistent/e5")],
    ));
    assert!(log.contains("/nonexistent/e5/model.onnx"), "{log}");
    assert!(log.contains("./scripts/run"), "{log}");
    let damaged = tempfile::tempdir().unwrap();
    let source = models_dir().join("multilingual-e5-small");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if name == "model.onnx" {
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(damaged.path().join(name), &bytes[..bytes.len() / 3]).unwrap();
        } else {
            std::os::unix::fs::symlink(&path, damaged.path().join(name)).unwrap();
        }
    }
    let log = failed_start(serve_command(
        data.path(),
        &[("ZHIKU_EMBEDDING__MODEL", damaged.path().to_str().unwrap())],
    ));
    assert!(log.contains("may be damaged"), "{log}");

    // The chat model: the server starts, chat says why it can't answer, the rest works.
    let gguf = damaged.path().join("chat.gguf");
    let bytes = std::fs::read(models_dir().join("llm/smollm2-135m-instruct-q4_1.gguf")).unwrap();
    std::fs::write(&gguf, &bytes[..bytes.len() / 2]).unwrap();
    let server = Server::start_with(data.path(), &[("ZHIKU_LLM__MODEL", gguf.to_str().unwrap())]);
    let bot = server.create_bot(json!({"name": "hr", "knowledge_bases": [kb]}));
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        crate::common::TOKEN,
        json!({"message": "LangChain 是谁推出的？"}),
    );
    assert_eq!(status, 503, "{events:?}");
    assert_eq!(
        events[0].1["error"]["code"], "model_unavailable",
        "{events:?}"
    );
    still_whole(&server, &kb, chunks);
    drop(server);
    integrity_ok(data.path());
}

#[test]
fn a_full_disk_refuses_cleanly_and_loses_nothing() {
    use rand::{Rng, SeedableRng};
    let data = tempfile::tempdir().unwrap();
    let (kb, chunks) = seeded(data.path());

    // Every file the server writes is limited to 1 MiB from here on.
    let server = Server::start_with_file_limit(data.path(), 1024);
    let big = data.path().join("big.txt");
    std::fs::write(&big, "大模型的知识。".repeat(60_000)).unwrap();
    let (status, body) = server.upload(&kb, &[(big, "big.txt".into())]);
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{body}"
    );

    // Pasted documents until the database cannot grow: each is accepted or refused with
    // 507, and the server keeps answering reads.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let alphabet: Vec<char> = "知识库检索增强生成向量文档模型训练数据语言问题答案"
        .chars()
        .collect();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let text: String = (0..12_000)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/documents"),
            json!({"name": format!("filler-{i}.md"), "text": text}),
        );
        assert!(status == 202 || status == 507, "{status}: {body}");
        statuses.push(status);
        let (status, _) = server.get("/health");
        assert_eq!(status, 200);
    }
    // Wait until the writes hit the limit (or, if they never do, everything settles).
    let full =
        |log: &str| log.contains("disk is full") || log.contains("could not write to the disk");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, docs) = server.get(&format!("/api/kbs/{kb}/documents?limit=100"));
        let docs = docs.as_array().cloned().unwrap_or_default();
        let settled = docs
            .iter()
            .all(|d| d["status"] == "indexed" || d["status"] == "failed");
        if settled || full(&server.logs()) || Instant::now() > deadline {
            break;
        }
        let (status, _) = server.post(
            &format!("/api/kbs/{kb}/search"),
            json!({"query": "LangChain", "mode": "fulltext"}),
        );
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        full(&server.logs()) || statuses.contains(&507),
        "the limit was never reached: {statuses:?}"
    );
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
    drop(server);

    // Space is back: everything resumes; the seeded document is whole, every other one
    // is indexed or failed with its reason, and the database is intact.
    integrity_ok(data.path());
    let server = Server::start(data.path());
    still_whole(&server, &kb, chunks);
    let (status, _) = server.post(
        &format!("/api/kbs/{kb}/documents"),
        json!({"name": "after.md", "text": "磁盘空间恢复之后的新文档可以正常上传。"}),
    );
    assert_eq!(status, 202);
    still_whole(&server, &kb, chunks);
}

#[test]
fn a_locked_database_gives_clear_errors_and_no_damage() {
    let data = tempfile::tempdir().unwrap();
    let (kb, chunks) = seeded(data.path());

    // Another process holds the write lock until told to let go.
    let hold = || {
        let path = data.path().to_path_buf();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let (rt, mut db) = open_db(&path);
            rt.block_on(sqlx::query("BEGIN EXCLUSIVE").execute(&mut db))
                .unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            rt.block_on(sqlx::query("ROLLBACK").execute(&mut db))
                .unwrap();
        });
        locked_rx.recv().unwrap();
        (release_tx, holder)
    };

    // Locked at start: the server can't start, and says why.
    let (release, holder) = hold();
    let log = failed_start(serve_command(data.path(), &[]));
    assert!(log.contains("locked by another process"), "{log}");
    release.send(()).unwrap();
    holder.join().unwrap();

    // Locked while serving: writes wait, then get 503 with the reason; reads keep working;
    // once the lock is gone, writes work again.
    let server = Server::start(data.path());
    let (release, holder) = hold();
    let (status, body) = server.post("/api/kbs", json!({"name": "while-locked"}));
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked by another process"),
        "{body}"
    );
    let (status, _) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "LangChain"}),
    );
    assert_eq!(status, 200);
    release.send(()).unwrap();
    holder.join().unwrap();
    let (status, body) = server.post("/api/kbs", json!({"name": "after-lock"}));
    assert_eq!(status, 201, "{body}");
    still_whole(&server, &kb, chunks);
    drop(server);
    integrity_ok(data.path());
}
