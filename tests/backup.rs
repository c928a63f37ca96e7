//! `zhiku backup` while the server serves and writes, then `zhiku restore` into a new data
//! dir (SQLite) or an empty database (PostgreSQL, `pg_dump` and `pg_restore`): the restored
//! server has exactly the snapshot — knowledge, bots, conversations, the uploaded files —
//! with indexes rebuilt from the database that agree with it.

use std::time::Duration;

use serde_json::json;

use crate::common::{Server, TOKEN, cli, cli_with, postgres_database};

#[test]
fn a_backup_taken_while_serving_restores_into_a_working_server() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (kb, bot) = handbook_bot(&server);

    let backups = tempfile::tempdir().unwrap();
    let out = backups.path().join("b1");
    let (ok, text) = cli(data.path(), &["backup", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("backed up 1 documents"), "{text}");
    // Written after the snapshot: not in the restore.
    paste(&server, &kb, LEAVE);

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
    assert_holds_the_backup(&copy, &kb, &bot);
    // The original files came along: the document can be re-processed.
    let file = std::fs::read_dir(restored.path().join("files"))
        .unwrap()
        .count();
    assert_eq!(file, 1);
}

/// A document written after the backup.
const LEAVE: (&str, &str) = ("leave.md", "年假：入职满一年享有五天带薪年假。");

/// Paste `(name, text)` into `kb` and wait until it is indexed; the KB's documents.
fn paste(server: &Server, kb: &str, (name, text): (&str, &str)) -> Vec<serde_json::Value> {
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/documents"),
        json!({"name": name, "text": text}),
    );
    assert_eq!(status, 202, "{body}");
    server.wait_settled(kb, Duration::from_secs(120))
}

/// A knowledge base "handbook" with one travel policy, and a bot "hr" over it that has
/// answered once: (kb, bot).
fn handbook_bot(server: &Server) -> (String, String) {
    let kb = server.create_kb("handbook");
    paste(
        server,
        &kb,
        ("travel.md", "出差住宿标准：一线城市每晚不超过六百元。"),
    );
    let bot = server
        .create_bot(json!({"name": "hr", "knowledge_bases": [kb], "model": {"max_tokens": 4}}));
    let (status, _) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "住宿标准？"}),
    );
    assert_eq!(status, 200);
    (kb, bot)
}

/// The restored server holds what [`handbook_bot`] made, and nothing written after the
/// backup: the one document, searchable, indexes equal to the database, the bot and its
/// conversation.
fn assert_holds_the_backup(copy: &Server, kb: &str, bot: &str) {
    let docs = copy.wait_settled(kb, Duration::from_secs(60));
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
}

/// How many uploaded files the PostgreSQL database at `url` keeps.
fn stored_files(url: &str) -> i64 {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM stored_file")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        count
    })
}

#[test]
fn a_postgres_backup_taken_while_serving_restores_into_an_empty_database() {
    let url = postgres_database();
    let env = [("ZHIKU_DATABASE__URL", url.as_str())];
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &env);
    let (kb, bot) = handbook_bot(&server);

    let backups = tempfile::tempdir().unwrap();
    let out = backups.path().join("b1");
    let out_arg = out.to_str().unwrap();
    let (ok, text) = cli_with(data.path(), &env, &["backup", out_arg]);
    assert!(ok, "{text}");
    assert!(text.contains("backed up 1 documents"), "{text}");
    assert!(out.join("zhiku.pgdump").is_file());
    // Written after the snapshot: not in the restore.
    paste(&server, &kb, LEAVE);

    // Into a database that holds zhiku's tables, or with a SQLite config: refused, and
    // nothing touched.
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, text) = cli_with(elsewhere.path(), &env, &["restore", out_arg]);
    assert!(
        !ok && text.contains("already holds zhiku's tables"),
        "{text}"
    );
    let (ok, text) = cli(elsewhere.path(), &["restore", out_arg]);
    assert!(!ok && text.contains("PostgreSQL deployment"), "{text}");
    assert!(!elsewhere.path().join("zhiku.db").exists());

    let target = postgres_database();
    let target_env = [("ZHIKU_DATABASE__URL", target.as_str())];
    let restored = tempfile::tempdir().unwrap();
    let (ok, text) = cli_with(restored.path(), &target_env, &["restore", out_arg]);
    assert!(ok, "{text}");
    assert_eq!(
        stored_files(&target),
        1,
        "the upload came along in the dump"
    );

    let copy = Server::start_with(restored.path(), &target_env);
    assert_holds_the_backup(&copy, &kb, &bot);
    // New writes on the restored database go on from where the backup stood.
    assert_eq!(paste(&copy, &kb, LEAVE).len(), 2);
    drop(copy);

    // --replace over the original database (its node stopped): back to the backup's state.
    drop(server);
    let (ok, text) = cli_with(data.path(), &env, &["restore", out_arg, "--replace"]);
    assert!(ok, "{text}");
    let server = Server::start_with(data.path(), &env);
    let docs = server.wait_settled(&kb, Duration::from_secs(60));
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["name"], "travel.md", "{docs:?}");
}
