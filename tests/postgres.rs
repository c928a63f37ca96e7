//! The server on PostgreSQL (`[database] url = "postgres://…"`), in a throw-away cluster
//! the test starts (`ingest::testing`): upload → search → chat with citations, the queue's
//! jobs, a restart that finds everything again, `zhiku doctor` naming the database, and a second
//! node on the same database refused.
//! One node; several nodes on one database are a later step (docs/postgres.md).

use serde_json::json;

use crate::common::{ANSWER_LLM, Server, TOKEN, cli_with};

/// A new database in this test binary's cluster.
fn database() -> String {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ingest::testing::postgres_url())
}

#[test]
fn upload_search_and_chat_on_postgres_and_a_restart_keeps_everything() {
    let url = database();
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("ZHIKU_DATABASE__URL", url.as_str()),
        ("ZHIKU_LLM__MODEL", ANSWER_LLM),
        ("ZHIKU_LLM__CONTEXT_TOKENS", "4096"),
    ];
    let mut server = Server::start_with(data.path(), &env);
    assert!(
        !data.path().join("zhiku.db").exists(),
        "no SQLite file beside a PostgreSQL database"
    );
    let kb = server.llm_intro_kb("llm-intro");
    let (status, jobs) = server.get("/api/jobs?status=succeeded");
    assert_eq!(status, 200, "{jobs}");
    assert!(!jobs.as_array().unwrap().is_empty(), "{jobs}");

    let ask = "LangChain 这个开源框架最早是谁推出的？";
    let (status, found) = server.post(&format!("/api/kbs/{kb}/search"), json!({"query": ask}));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["results"][0]["document_name"], "01.txt", "{found}");

    let bot = server.create_bot(json!({
        "name": "大模型助手",
        "persona": "你是大模型知识助手，回答简洁准确。",
        "knowledge_bases": [kb],
        "model": {"temperature": 0, "max_tokens": 64},
    }));
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": ask}),
    );
    assert_eq!(status, 200, "{events:?}");
    let (_, done) = events
        .iter()
        .find(|(n, _)| n == "done")
        .expect("no done event");
    let cited: Vec<&str> = done["citations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["document_name"].as_str())
        .collect();
    assert!(cited.contains(&"01.txt"), "{done}");
    let conversation = events[0].1["conversation_id"].as_str().unwrap().to_string();
    let key = server.publish_with_key(&bot);

    // A second node on the same database is refused while this one runs (several nodes
    // are a later step).
    let other = tempfile::tempdir().unwrap();
    let (ok, refused) = cli_with(other.path(), &env, &["kb", "list"]);
    assert!(!ok && refused.contains("another zhiku node"), "{refused}");

    // A restart on the same database: the indexes catch up from it, the conversation,
    // the published bot and its key are all there.
    server.kill();
    let server = Server::start_with(data.path(), &env);
    let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["bm25_matches"], true, "{check}");
    let (status, recorded) = server.get(&format!("/api/conversations/{conversation}"));
    assert_eq!(status, 200, "{recorded}");
    assert_eq!(
        recorded["messages"].as_array().unwrap().len(),
        2,
        "{recorded}"
    );
    let (status, card) = server.request_as("GET", &format!("/api/chat/{bot}"), Some(&key), None);
    assert_eq!(status, 200, "{card}");
    let (status, found) = server.post(&format!("/api/kbs/{kb}/search"), json!({"query": ask}));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["results"][0]["document_name"], "01.txt", "{found}");
    drop(server);

    // The CLI on the same settings: doctor names the database, backup refuses clearly.
    let (ok, doctor) = cli_with(data.path(), &env, &["doctor"]);
    assert!(ok, "{doctor}");
    assert!(doctor.contains("database         PostgreSQL "), "{doctor}");
    let out = tempfile::tempdir().unwrap();
    let (ok, backup) = cli_with(
        data.path(),
        &env,
        &["backup", out.path().join("b").to_str().unwrap()],
    );
    assert!(!ok && backup.contains("pg_dump"), "{backup}");
}

#[test]
fn a_database_that_cannot_be_reached_stops_the_start_with_the_reason() {
    let data = tempfile::tempdir().unwrap();
    // Nothing listens on port 1; the password must not be printed.
    let env = [(
        "ZHIKU_DATABASE__URL",
        "postgres://zhiku:hunter2@127.0.0.1:1/zhiku",
    )];
    let (ok, out) = cli_with(data.path(), &env, &["kb", "list"]);
    assert!(!ok, "{out}");
    assert!(out.contains("could not connect to PostgreSQL"), "{out}");
    assert!(!out.contains("hunter2"), "the password was printed: {out}");
}
