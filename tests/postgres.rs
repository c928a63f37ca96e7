//! The server on PostgreSQL (`[database] url = "postgres://…"`), in a throw-away cluster
//! the test starts (`ingest::testing`): upload → search → chat with citations, the queue's
//! jobs, a restart that finds everything again, `zhiku doctor` naming the database, and a second
//! node on the same database refused unless `database.several_nodes` allows it. Two nodes
//! on one database: one killed while it ingests, the other takes its jobs over. A node
//! without an admin token in its config refuses to start.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{ANSWER_LLM, Server, TOKEN, cli_with, mixed_folder, serve_command};

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

    // A second node on the same database is refused while this one runs, unless
    // `database.several_nodes` allows it (their indexes do not follow each other yet).
    let other = tempfile::tempdir().unwrap();
    let (ok, refused) = cli_with(other.path(), &env, &["kb", "list"]);
    assert!(!ok && refused.contains("another zhiku node"), "{refused}");
    let mut several = env.to_vec();
    several.push(("ZHIKU_DATABASE__SEVERAL_NODES", "true"));
    let (ok, listed) = cli_with(other.path(), &several, &["kb", "list"]);
    assert!(ok && listed.contains("llm-intro"), "{listed}");

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

#[test]
fn a_node_without_an_admin_token_in_its_config_refuses_to_start() {
    let url = database();
    let data = tempfile::tempdir().unwrap();
    let out = serve_command(data.path(), &[("ZHIKU_DATABASE__URL", url.as_str())])
        .env_remove("ZHIKU_ADMIN_TOKEN")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("ZHIKU_ADMIN_TOKEN"), "{text}");
    assert!(
        !data.path().join("admin_token").exists(),
        "no token made per node"
    );
}

/// A connection pool on the test database, with the runtime that drives it, for checks
/// under the API.
fn pool(url: &str) -> (tokio::runtime::Runtime, sqlx::PgPool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(sqlx::PgPool::connect(url)).unwrap();
    (rt, pool)
}

/// (status, attempts, lease_owner) of every job, by id.
fn jobs(
    rt: &tokio::runtime::Runtime,
    db: &sqlx::PgPool,
) -> Vec<(i64, String, i64, Option<String>)> {
    rt.block_on(
        sqlx::query_as(
            "SELECT job_id, status, attempts, lease_owner FROM ingest_job ORDER BY job_id",
        )
        .fetch_all(db),
    )
    .unwrap()
}

/// Poll `done` every 100 ms until it holds; panics with `what` after `deadline`.
fn wait_for(deadline: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < deadline,
            "not within {deadline:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two nodes on one PostgreSQL, each with its own data directory. Node A ingests a folder
/// and is killed (-9) while it holds jobs; node B, started meanwhile, leaves A's jobs alone
/// while A lives, takes them over once A's leases run out, and finishes every document:
/// each indexed once, its chunks live exactly once in the database.
///
/// Uploaded files live in the data directory of the node that took them (files shared
/// between nodes are a later step), so B's `files` is a link to A's: the shared directory
/// a fleet would mount.
#[test]
fn a_killed_nodes_jobs_are_finished_by_another_node_each_document_once() {
    let url = database();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir_all(a_dir.path().join("files")).unwrap();
    std::os::unix::fs::symlink(a_dir.path().join("files"), b_dir.path().join("files")).unwrap();
    let env = [
        ("ZHIKU_DATABASE__URL", url.as_str()),
        ("ZHIKU_DATABASE__SEVERAL_NODES", "true"),
        // Shorter than the shipped 30 s / 10 s only to keep the test short; nothing below
        // depends on timing but the deadlines, which are generous.
        ("ZHIKU_INGEST__JOB_LEASE_MS", "4000"),
        ("ZHIKU_INGEST__JOB_HEARTBEAT_MS", "1000"),
        // Small batches, so that A finishes some documents before it is killed and holds
        // others when it is.
        ("ZHIKU_INGEST__BATCH_MAX_JOBS", "2"),
        ("ZHIKU_INGEST__WORKERS", "1"),
    ];
    let (rt, db) = pool(&url);
    let mut a = Server::start_with(a_dir.path(), &env);
    let a_node = std::fs::read_to_string(a_dir.path().join("node_id")).unwrap();
    let kb = a.create_kb("fleet");
    let files = mixed_folder();
    let (status, body) = a.upload(&kb, &files);
    assert_eq!(status, 202, "{body}");

    // A holds a job; B starts beside it and takes none of A's at its start.
    let held_by_a = |jobs: &[(i64, String, i64, Option<String>)]| -> Vec<i64> {
        jobs.iter()
            .filter(|(_, status, _, owner)| {
                status == "processing" && owner.as_deref() == Some(a_node.as_str())
            })
            .map(|(id, ..)| *id)
            .collect()
    };
    wait_for(Duration::from_secs(300), "A processing a job", || {
        !held_by_a(&jobs(&rt, &db)).is_empty()
    });
    let b = Server::start_with(b_dir.path(), &env);
    let b_node = std::fs::read_to_string(b_dir.path().join("node_id")).unwrap();
    assert_ne!(a_node, b_node);

    // Kill A while it holds a job (after at least one document is done, if it gets there).
    let started = Instant::now();
    let mut killed_holding = Vec::new();
    while killed_holding.is_empty() {
        let now = jobs(&rt, &db);
        let held = held_by_a(&now);
        let done = now.iter().filter(|(_, s, ..)| s == "succeeded").count();
        if !held.is_empty() && (done > 0 || started.elapsed() > Duration::from_secs(120)) {
            a.kill();
            killed_holding = held;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "A held no job to be killed with: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // B finishes everything, A's interrupted jobs included.
    let settled = b.wait_settled(&kb, Duration::from_secs(900));
    assert_eq!(settled.len(), files.len());
    assert!(
        settled.iter().all(|d| d["status"] == "indexed"),
        "{settled:?}"
    );
    let after = jobs(&rt, &db);
    assert!(after.iter().all(|(_, s, ..)| s == "succeeded"), "{after:?}");
    assert_eq!(after.len(), files.len(), "one job per document: {after:?}");
    for id in &killed_holding {
        let (_, _, attempts, owner) = after.iter().find(|(j, ..)| j == id).unwrap();
        assert_eq!(
            owner.as_deref(),
            Some(b_node.as_str()),
            "job {id}: {after:?}"
        );
        assert!(*attempts >= 2, "job {id} ran again: {after:?}");
    }

    // Each document's chunks live exactly once: as many as it counts, each ordinal once.
    let live: Vec<(String, i64, i64)> = rt
        .block_on(
            sqlx::query_as(
                "SELECT document_id, COUNT(*), COUNT(DISTINCT ordinal) FROM chunk
                 WHERE is_deleted = FALSE GROUP BY document_id",
            )
            .fetch_all(&db),
        )
        .unwrap();
    let live: BTreeMap<String, (i64, i64)> =
        live.into_iter().map(|(d, n, o)| (d, (n, o))).collect();
    for doc in &settled {
        let id = doc["id"].as_str().unwrap();
        let count = doc["chunk_count"].as_i64().unwrap();
        assert!(count > 0, "{doc}");
        assert_eq!(live.get(id), Some(&(count, count)), "{doc}");
    }
    assert_eq!(live.len(), files.len());
}
