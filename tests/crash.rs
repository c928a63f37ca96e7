//! kill -9 the server while it ingests a folder, start it again: every document ends
//! indexed exactly once, with the same chunk counts as an uninterrupted run, and BM25 and
//! the vector index agree with the database (SQLite, or PostgreSQL on the second pass).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Server, llm_intro_files, mixed_folder};

fn counts(docs: &[Value]) -> BTreeMap<String, i64> {
    docs.iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["chunk_count"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn kill_during_ingestion_loses_and_duplicates_nothing() {
    // Reference: an uninterrupted run.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = {
        let server = Server::start(reference_dir.path());
        let kb = server.create_kb("crash");
        assert_eq!(server.upload(&kb, &mixed_folder()).0, 202);
        counts(&server.wait_settled(&kb, Duration::from_secs(600)))
    };

    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let kb = server.create_kb("crash");
    assert_eq!(server.upload(&kb, &mixed_folder()).0, 202);
    // Kill while something is processing and something has been indexed.
    let started = Instant::now();
    loop {
        let (_, docs) = server.get(&format!("/api/kbs/{kb}/documents?limit=100"));
        let docs = docs.as_array().unwrap().clone();
        let indexed = docs.iter().filter(|d| d["status"] == "indexed").count();
        if indexed >= 2 || started.elapsed() > Duration::from_secs(300) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    // What a crash between a file and its row, or mid-write, leaves in files/: removed
    // at the next start once an hour old; a younger one may be an upload on its way.
    let files = data.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for (name, age) in [
        ("left-by-a-crash", "2 hours ago"),
        ("cut-off.part", "2 hours ago"),
        ("on-its-way", "now"),
    ] {
        std::fs::write(files.join(name), b"no document").unwrap();
        let touched = std::process::Command::new("touch")
            .args(["-d", age])
            .arg(files.join(name))
            .status()
            .unwrap();
        assert!(touched.success());
    }

    let server = Server::start(data.path());
    let docs = server.wait_settled(&kb, Duration::from_secs(600));
    assert_eq!(docs.len(), reference.len());
    assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");
    assert_eq!(counts(&docs), reference);
    let swept = Instant::now();
    while files.join("left-by-a-crash").exists() || files.join("cut-off.part").exists() {
        assert!(
            swept.elapsed() < Duration::from_secs(30),
            "orphan files not removed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(files.join("on-its-way").exists());
    let (status, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(status, 200);
    let total: i64 = reference.values().sum();
    assert_eq!(check["db_chunks"], total, "{check}");
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], total, "{check}");
}

#[test]
fn damaged_indexes_are_rebuilt_from_the_database_at_start() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let kb = server.create_kb("repair");
    assert_eq!(server.upload(&kb, &llm_intro_files()).0, 202);
    let docs = server.wait_settled(&kb, Duration::from_secs(600));
    let total: i64 = docs
        .iter()
        .map(|d| d["chunk_count"].as_i64().unwrap())
        .sum();
    server.kill();

    // Garbage where tantivy keeps its commit, and the vector graph gone.
    let kb_dir = data.path().join("kbs").join(&kb);
    let generation = std::fs::read_to_string(kb_dir.join("CURRENT")).unwrap_or_else(|_| "0".into());
    let gen_dir = kb_dir.join(format!("gen-{}", generation.trim()));
    std::fs::write(gen_dir.join("bm25/meta.json"), b"{ not json").unwrap();
    let _ = std::fs::remove_dir_all(gen_dir.join("vectors"));

    let server = Server::start(data.path());
    let (status, r) = server.post(
        &format!("/api/kbs/{kb}/search"),
        serde_json::json!({"query": "LangChain 这个开源框架最早是谁推出的？"}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["results"][0]["document_name"], "01.txt", "{r}");
    let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["db_chunks"], total, "{check}");
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], total, "{check}");
}

/// Ten kills at seeded random moments, each on a fresh data dir: uploads in flight, one
/// document deleted just before. After the restart every document is indexed once with
/// the reference chunk count, the indexes agree with the database, and the deleted document is
/// never retrieved.
#[test]
fn kill_at_random_moments_with_ten_seeds() {
    use rand::{Rng, SeedableRng};
    let files: Vec<_> = mixed_folder().into_iter().take(7).collect();
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = {
        let server = Server::start(reference_dir.path());
        let kb = server.create_kb("crash");
        assert_eq!(server.upload(&kb, &files).0, 202);
        counts(&server.wait_settled(&kb, Duration::from_secs(600)))
    };
    let deleted_text = "这份文件在崩溃之前被删除了，任何搜索都不应该再找到它：紫色长颈鹿计划。";
    for seed in 1..=10u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let data = tempfile::tempdir().unwrap();
        let mut server = Server::start(data.path());
        let kb = server.create_kb("crash");
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/documents"),
            serde_json::json!({"name": "deleted.md", "text": deleted_text}),
        );
        assert_eq!(status, 202, "{body}");
        server.wait_settled(&kb, Duration::from_secs(120));
        let doc = body["documents"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(
            server.delete(&format!("/api/kbs/{kb}/documents/{doc}")),
            204
        );
        assert_eq!(server.upload(&kb, &files).0, 202);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..4_000)));
        server.kill();

        let server = Server::start(data.path());
        let docs = server.wait_settled(&kb, Duration::from_secs(600));
        assert!(
            docs.iter().all(|d| d["status"] == "indexed"),
            "seed {seed}: {docs:?}"
        );
        assert_eq!(counts(&docs), reference, "seed {seed}");
        let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
        let total: i64 = reference.values().sum();
        assert_eq!(check["db_chunks"], total, "seed {seed}: {check}");
        assert_eq!(check["bm25_matches"], true, "seed {seed}: {check}");
        assert_eq!(check["vector_hits"], total, "seed {seed}: {check}");
        for mode in ["fulltext", "semantic", "hybrid"] {
            let (_, found) = server.post(
                &format!("/api/kbs/{kb}/search"),
                serde_json::json!({"query": "紫色长颈鹿计划", "mode": mode, "top_k": 20}),
            );
            let names: Vec<&str> = found["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["document_name"].as_str().unwrap())
                .collect();
            assert!(
                !names.contains(&"deleted.md"),
                "seed {seed} {mode}: {names:?}"
            );
        }
    }
}

/// kill -9 while a chunk is being edited over and over: after the restart the chunk holds
/// one whole version (the last acknowledged one or the one in flight), the indexes agree
/// with the database, and search finds that version's text and no earlier one.
#[test]
fn kill_during_chunk_edits_leaves_one_whole_version() {
    use rand::{Rng, SeedableRng};
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let kb = server.create_kb("edits");
    let files = llm_intro_files();
    assert_eq!(server.upload(&kb, &files[..1]).0, 202);
    let docs = server.wait_settled(&kb, Duration::from_secs(300));
    let doc = docs[0]["id"].as_str().unwrap().to_string();
    let (_, page) = server.get(&format!("/api/kbs/{kb}/documents/{doc}/chunks?limit=1"));
    let chunk = page["chunks"][0]["id"].as_i64().unwrap();
    let version = |i: usize| format!("第{i}版编辑：紫藤校验码 zhikuedit{i}x 的内容。");

    for seed in 1..=3u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let url = server.url(&format!("/api/kbs/{kb}/documents/{doc}/chunks/{chunk}"));
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let editor = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut acknowledged = None;
            for i in (seed as usize * 1000).. {
                let sent = http
                    .patch(&url)
                    .bearer_auth(crate::common::TOKEN)
                    .json(&serde_json::json!({"text": version(i)}))
                    .send();
                match sent {
                    Ok(r) if r.status().is_success() => {
                        if acknowledged.is_none() {
                            let _ = first_tx.send(());
                        }
                        acknowledged = Some(i)
                    }
                    Ok(r) => panic!("edit {i}: {}", r.status()),
                    Err(_) => return acknowledged,
                }
            }
            acknowledged
        });
        // The first edit after a start loads the passage model (a second or more on a busy
        // machine); the kill is timed from the first acknowledged edit, so it lands while
        // edits stream.
        first_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("no edit acknowledged within 120 s");
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2_000)));
        server.kill();
        let acknowledged = editor.join().unwrap().expect("no edit was acknowledged");

        server = Server::start(data.path());
        let (_, page) = server.get(&format!("/api/kbs/{kb}/documents/{doc}/chunks?limit=1"));
        let text = page["chunks"][0]["text"].as_str().unwrap().to_string();
        let held = [acknowledged, acknowledged + 1]
            .into_iter()
            .find(|&i| text == version(i))
            .unwrap_or_else(|| panic!("seed {seed}: {text:?} after edit {acknowledged}"));
        let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
        assert_eq!(check["bm25_matches"], true, "seed {seed}: {check}");
        assert_eq!(
            check["vector_hits"], check["db_chunks"],
            "seed {seed}: {check}"
        );
        let hits = |query: String| {
            let (_, found) = server.post(
                &format!("/api/kbs/{kb}/search"),
                serde_json::json!({"query": query, "mode": "fulltext"}),
            );
            found["results"].as_array().unwrap().len()
        };
        assert_eq!(hits(format!("zhikuedit{held}x")), 1, "seed {seed}");
        assert_eq!(hits(format!("zhikuedit{}x", held - 1)), 0, "seed {seed}");
    }
}
