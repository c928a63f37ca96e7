//! `zhiku migrate --to postgres://…`: an SQLite deployment built through the server (a KB
//! with a Chinese text, a Markdown guide and a spreadsheet, a bot with a published version
//! and a key, conversations) copied into an empty PostgreSQL database, then served from it
//! on a fresh data dir: the same search results, the bot answers with its old key, the
//! conversations are listed, the files are in the database, new uploads work; then on the
//! old data dir, whose indexes were built over SQLite. Every way migrate must refuse is
//! tried too.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Server, TOKEN, cli, cli_with, fixtures_dir, postgres_database};

/// The chunk ids a search returns, in order.
fn search_ids(server: &Server, kb: &str, query: &str) -> Vec<i64> {
    let (status, found) = server.post(&format!("/api/kbs/{kb}/search"), json!({"query": query}));
    assert_eq!(status, 200, "{found}");
    found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["chunk_id"].as_i64().unwrap())
        .collect()
}

const QUERIES: [&str; 4] = [
    "LangChain 这个开源框架最早是谁推出的？",
    "大模型",
    "智能音箱 销量",
    "安装",
];

#[test]
fn an_sqlite_deployment_migrated_to_postgres_serves_the_same() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("handbook");
    let docs = fixtures_dir().join("docs");
    let (status, body) = server.upload(
        &kb,
        &[
            (docs.join("llm-intro-zh/01.txt"), "01.txt".into()),
            (docs.join("zh-guide.md"), "zh-guide.md".into()),
            (docs.join("zh-sales.xlsx"), "zh-sales.xlsx".into()),
        ],
    );
    assert_eq!(status, 202, "{body}");
    let listed = server.wait_settled(&kb, Duration::from_secs(300));
    assert!(
        listed.iter().all(|d| d["status"] == "indexed"),
        "{listed:?}"
    );
    let bot = server
        .create_bot(json!({"name": "hr", "knowledge_bases": [kb], "model": {"max_tokens": 8}}));
    let (status, _) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "大模型是什么？"}),
    );
    assert_eq!(status, 200);
    let key = server.publish_with_key(&bot);
    let (status, _) = server.chat(
        &format!("/api/chat/{bot}"),
        &key,
        json!({"message": "LangChain 是谁推出的？"}),
    );
    assert_eq!(status, 200);
    let before: Vec<Vec<i64>> = QUERIES
        .iter()
        .map(|q| search_ids(&server, &kb, q))
        .collect();
    assert!(before.iter().all(|ids| !ids.is_empty()), "{before:?}");
    let (_, conversations) = server.get(&format!("/api/bots/{bot}/conversations"));
    let conversations = conversations.as_array().unwrap().len();
    assert!(conversations >= 1);

    // Refused: while the server runs, into what is not PostgreSQL, from a deployment
    // already on PostgreSQL, into a database that cannot be reached.
    let url = postgres_database();
    let (ok, out) = cli(data.path(), &["migrate", "--to", &url]);
    assert!(!ok && out.contains("another zhiku process"), "{out}");
    drop(server);
    let (ok, out) = cli(data.path(), &["migrate", "--to", "mysql://x@localhost/db"]);
    assert!(!ok && out.contains("not a PostgreSQL url"), "{out}");
    let (ok, out) = cli_with(
        data.path(),
        &[("ZHIKU_DATABASE__URL", url.as_str())],
        &["migrate", "--to", &url],
    );
    assert!(!ok && out.contains("already PostgreSQL"), "{out}");
    let (ok, out) = cli(
        data.path(),
        &[
            "migrate",
            "--to",
            "postgres://zhiku:hunter2@127.0.0.1:1/zhiku",
        ],
    );
    assert!(!ok && out.contains("could not connect"), "{out}");
    assert!(!out.contains("hunter2"), "the password was printed: {out}");

    let started = Instant::now();
    let (ok, out) = cli(data.path(), &["migrate", "--to", &url, "--json"]);
    assert!(ok, "{out}");
    eprintln!("migrate took {:?}", started.elapsed());
    // stdout (the JSON) comes first, any log lines after it.
    let report: Value = serde_json::Deserializer::from_str(&out[out.find('{').unwrap()..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["files_copied"], 3, "{report}");
    assert!(
        report["missing_files"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let rows = |table: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .unwrap_or_else(|| panic!("{table} not copied: {report}"))["rows"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(rows("kb"), 1);
    assert_eq!(rows("document"), 3);
    assert_eq!(rows("stored_file"), 3);
    assert!(rows("document_table") >= 1, "{report}");
    assert!(rows("chunk") >= 3 && rows("message") >= 4, "{report}");
    assert_eq!(rows("bot_version"), 1);
    assert_eq!(rows("bot_key"), 1);
    assert_eq!(report["skipped"][0]["table"], "key_rate", "{report}");
    // A second run into the now full database is refused, and names what it holds.
    let (ok, out) = cli(data.path(), &["migrate", "--to", &url]);
    assert!(!ok && out.contains("already holds data"), "{out}");
    // What a person reads: a line per table and a summary; files left in a directory are
    // said to be so.
    let other = postgres_database();
    let (ok, out) = cli(
        data.path(),
        &["migrate", "--to", &other, "--files", "directory"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("copied document_table"), "{out}");
    assert!(out.contains("verified (every row read back)"), "{out}");
    assert!(out.contains("not copied: key_rate"), "{out}");
    assert!(out.contains("files: left in"), "{out}");

    // Served from PostgreSQL on a fresh data dir: indexes rebuilt from the database.
    let fresh = tempfile::tempdir().unwrap();
    let env = [("ZHIKU_DATABASE__URL", url.as_str())];
    let server = Server::start_with(fresh.path(), &env);
    let after: Vec<Vec<i64>> = QUERIES
        .iter()
        .map(|q| search_ids(&server, &kb, q))
        .collect();
    assert_eq!(before, after, "the same chunks, in the same order");
    let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], check["db_chunks"], "{check}");
    let (_, listed) = server.get(&format!("/api/bots/{bot}/conversations"));
    assert_eq!(listed.as_array().unwrap().len(), conversations, "{listed}");
    let (status, events) = server.chat(
        &format!("/api/chat/{bot}"),
        &key,
        json!({"message": "大模型是什么？"}),
    );
    assert_eq!(status, 200, "{events:?}");
    assert!(events.iter().any(|(n, _)| n == "done"), "{events:?}");

    // The files are in the database, byte for byte what was uploaded.
    let stored: Vec<(String, Vec<u8>)> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_as(
            "SELECT d.sha256, f.bytes FROM document d JOIN stored_file f ON f.path = d.file_path",
        )
        .fetch_all(&mut db)
        .await
        .unwrap()
    });
    assert_eq!(stored.len(), 3);
    for (sha, bytes) in &stored {
        assert_eq!(&hex::encode(Sha256::digest(bytes)), sha);
    }

    // New writes after the migration: an upload is indexed beside the copied chunks.
    let (status, body) = server.upload(&kb, &[(docs.join("zh-faq.csv"), "zh-faq.csv".into())]);
    assert_eq!(status, 202, "{body}");
    let listed = server.wait_settled(&kb, Duration::from_secs(300));
    assert_eq!(listed.len(), 4);
    assert!(
        listed.iter().all(|d| d["status"] == "indexed"),
        "{listed:?}"
    );
    let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], check["db_chunks"], "{check}");
    let latest: Vec<Vec<i64>> = QUERIES
        .iter()
        .map(|q| search_ids(&server, &kb, q))
        .collect();
    drop(server);

    // The old data dir on PostgreSQL: its indexes, built over SQLite, carry the same chunk
    // ids and seqs, so they catch up with what was written since and agree with the
    // database.
    let same = Server::start_with(data.path(), &env);
    let (_, check) = same.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], check["db_chunks"], "{check}");
    let there: Vec<Vec<i64>> = QUERIES.iter().map(|q| search_ids(&same, &kb, q)).collect();
    assert_eq!(latest, there);
}
