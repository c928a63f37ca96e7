//! The server on PostgreSQL (`[database] url = "postgres://…"`), in a throw-away cluster
//! the test starts (`ingest::testing`): upload → search → chat with citations, the queue's
//! jobs, a restart that finds everything again, `zhiku doctor` naming the database, and a second
//! node on the same database refused unless `database.several_nodes` allows it. Three nodes
//! on one database: one killed while it ingests twenty documents, the others take its jobs
//! over, a bot made on one answers on another, the killed one catches up. Three
//! nodes on one database: what one writes is searchable on the others within seconds,
//! and every node's indexes equal the database, any node reads the files uploaded to
//! another from the database, and a key's rate limit counts on all of them together. A
//! node without an admin token in its config refuses to start. PostgreSQL stopped and
//! started again while two nodes ingest: nothing lost or doubled.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{
    ANSWER_LLM, Server, TOKEN, cli_with, llm_intro_files, mixed_folder, postgres_database,
    serve_command,
};

#[test]
fn upload_search_and_chat_on_postgres_and_a_restart_keeps_everything() {
    let url = postgres_database();
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
    let cited = cited_documents(&events);
    assert!(cited.iter().any(|d| d == "01.txt"), "{events:?}");
    let conversation = events[0].1["conversation_id"].as_str().unwrap().to_string();
    let key = server.publish_with_key(&bot);

    // A second node on the same database is refused while this one runs, unless
    // `database.several_nodes` allows it (on by choice, on every node).
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

    // The CLI on the same settings: doctor names the database.
    let (ok, doctor) = cli_with(data.path(), &env, &["doctor"]);
    assert!(ok, "{doctor}");
    assert!(doctor.contains("database         PostgreSQL "), "{doctor}");
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
    let url = postgres_database();
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

/// Settings of nodes on the database at `url` that share its queue, with short leases and
/// small batches: shorter than the shipped 30 s / 10 s only to keep the tests short
/// (nothing depends on timing but the deadlines, which are generous), and small batches so
/// that a node finishes some documents while it holds others.
fn ingesting_nodes(url: &str) -> [(&'static str, &str); 6] {
    [
        ("ZHIKU_DATABASE__URL", url),
        ("ZHIKU_DATABASE__SEVERAL_NODES", "true"),
        ("ZHIKU_INGEST__JOB_LEASE_MS", "4000"),
        ("ZHIKU_INGEST__JOB_HEARTBEAT_MS", "1000"),
        ("ZHIKU_INGEST__BATCH_MAX_JOBS", "2"),
        ("ZHIKU_INGEST__WORKERS", "1"),
    ]
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

/// The documents an answer's `done` event cites.
fn cited_documents(events: &[(String, serde_json::Value)]) -> Vec<String> {
    let (_, done) = events
        .iter()
        .find(|(n, _)| n == "done")
        .expect("no done event");
    done["citations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["document_name"].as_str().map(str::to_string))
        .collect()
}

/// Twenty documents: the mixed folder (text, Markdown, HTML, GBK, CSV, Word) and ten
/// short inspection notes, one per room, written into `dir` (`note-01.md`…).
fn twenty_documents(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    const ROOMS: [&str; 10] = [
        "锅炉房",
        "配电室",
        "冷库",
        "仓库",
        "食堂",
        "停车场",
        "机房",
        "实验室",
        "档案室",
        "会议室",
    ];
    let mut files = mixed_folder();
    for (i, room) in ROOMS.iter().enumerate() {
        let name = format!("note-{:02}.md", i + 1);
        let text = format!(
            "# {room}巡检记录\n\n{room}今天巡检一切正常，{room}的温度是 {} 摄氏度。\n",
            3 + 2 * i
        );
        std::fs::write(dir.join(&name), text).unwrap();
        files.push((dir.join(&name), name));
    }
    files
}

/// Three nodes on one PostgreSQL, each with its own data directory. Node A ingests twenty
/// mixed documents and is killed (-9) while it holds jobs; nodes B and C, started
/// meanwhile, leave A's jobs alone while A lives, take them over once A's leases run out,
/// and finish every document: each indexed once, its chunks live exactly once in the
/// database, B's and C's indexes equal to it. A bot made on C answers on B with citations
/// from the documents uploaded on A. A started again catches up.
///
/// The uploaded files are in the database (`database.files`, "database" by default on
/// PostgreSQL): B and C read the files of the jobs they take over from there, and no data
/// directory ever holds one.
#[test]
fn a_killed_nodes_jobs_are_finished_by_the_others_each_document_once() {
    let url = postgres_database();
    let dirs = [(); 4].map(|_| tempfile::tempdir().unwrap());
    let (a_dir, b_dir, c_dir) = (&dirs[0], &dirs[1], &dirs[2]);
    let env = ingesting_nodes(&url);
    let (rt, db) = pool(&url);
    let mut a = Server::start_with(a_dir.path(), &env);
    let a_node = std::fs::read_to_string(a_dir.path().join("node_id")).unwrap();
    let kb = a.create_kb("fleet");
    let files = twenty_documents(dirs[3].path());
    let (status, body) = a.upload(&kb, &files);
    assert_eq!(status, 202, "{body}");

    // A holds a job; B and C start beside it and take none of A's at their start.
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
    // B answers the chat below: the model whose answers are right.
    let answering = [
        &env[..],
        &[
            ("ZHIKU_LLM__MODEL", ANSWER_LLM),
            ("ZHIKU_LLM__CONTEXT_TOKENS", "4096"),
        ],
    ]
    .concat();
    let b = Server::start_with(b_dir.path(), &answering);
    let c = Server::start_with(c_dir.path(), &env);
    let others = [b_dir, c_dir].map(|d| std::fs::read_to_string(d.path().join("node_id")).unwrap());
    assert!(!others.contains(&a_node));

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

    // B and C finish everything, A's interrupted jobs included.
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
        assert!(
            owner.as_ref().is_some_and(|o| others.contains(o)),
            "job {id}: {after:?}"
        );
        assert!(*attempts >= 2, "job {id} ran again: {after:?}");
    }
    assert_each_document_once(&rt, &db, &settled);
    let nodes = [("B", &b), ("C", &c)];
    on_every_node(&nodes, "indexes equal to the database", |n| {
        index_check(n, &kb)["consistent"] == true
    });
    assert_eq!(index_check(&b, &kb), index_check(&c, &kb));

    // A bot made on C answers on B from what A ingested, with citations.
    let bot = c.create_bot(json!({
        "name": "值班助手",
        "knowledge_bases": [kb],
        "model": {"temperature": 0, "max_tokens": 32},
    }));
    let (status, events) = b.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "冷库今天的温度是多少？"}),
    );
    assert_eq!(status, 200, "{events:?}");
    let cited = cited_documents(&events);
    assert!(cited.iter().any(|d| d == "note-03.md"), "{events:?}");

    // A, started again on its data dir, catches up with what B and C wrote.
    let a = Server::start_with(a_dir.path(), &env);
    on_every_node(&[("A", &a)], "A's indexes equal to the database", |n| {
        index_check(n, &kb)["consistent"] == true
    });
    assert_eq!(index_check(&a, &kb), index_check(&b, &kb));
    for dir in [a_dir, b_dir, c_dir] {
        assert!(
            !dir.path().join("files").exists(),
            "no file on a node's disk: {}",
            dir.path().display()
        );
    }
}

/// Each settled document's chunks live exactly once in the database: as many as it counts,
/// each ordinal once, and no live chunk of any other document.
fn assert_each_document_once(
    rt: &tokio::runtime::Runtime,
    db: &sqlx::PgPool,
    settled: &[serde_json::Value],
) {
    let live: Vec<(String, i64, i64)> = rt
        .block_on(
            sqlx::query_as(
                "SELECT document_id, COUNT(*), COUNT(DISTINCT ordinal) FROM chunk
                 WHERE is_deleted = FALSE GROUP BY document_id",
            )
            .fetch_all(db),
        )
        .unwrap();
    let live: BTreeMap<String, (i64, i64)> =
        live.into_iter().map(|(d, n, o)| (d, (n, o))).collect();
    for doc in settled {
        let id = doc["id"].as_str().unwrap();
        let count = doc["chunk_count"].as_i64().unwrap();
        assert!(count > 0, "{doc}");
        assert_eq!(live.get(id), Some(&(count, count)), "{doc}");
    }
    assert_eq!(live.len(), settled.len());
}

/// PostgreSQL stopped (`-m fast`: every connection cut, open transactions rolled back) for
/// a few seconds while two nodes ingest a folder, then started again: the nodes reconnect
/// by themselves and finish every document, each indexed once, and their indexes equal
/// the database. The cluster is this test's own, so that the other tests' databases stay
/// up.
#[test]
fn a_database_restart_mid_ingestion_loses_and_doubles_nothing() {
    let cluster = ingest::testing::PgCluster::start().unwrap();
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(cluster.fresh_database())
        .unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = ingesting_nodes(&url);
    let a = Server::start_with(a_dir.path(), &env);
    let b = Server::start_with(b_dir.path(), &env);
    let kb = a.create_kb("restart");
    let files = mixed_folder();
    let (status, body) = a.upload(&kb, &files);
    assert_eq!(status, 202, "{body}");

    // Stop the database while the nodes hold jobs, after some documents are done.
    let (rt, db) = pool(&url);
    wait_for(
        Duration::from_secs(300),
        "jobs running and one done",
        || {
            let now = jobs(&rt, &db);
            now.iter().any(|(_, s, ..)| s == "processing")
                && now.iter().any(|(_, s, ..)| s == "succeeded")
        },
    );
    rt.block_on(db.close());
    cluster.stop().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    cluster.start_server().unwrap();

    let settled = b.wait_settled(&kb, Duration::from_secs(900));
    assert_eq!(settled.len(), files.len());
    assert!(
        settled.iter().all(|d| d["status"] == "indexed"),
        "{settled:?}"
    );
    let (rt, db) = pool(&url);
    let after = jobs(&rt, &db);
    assert!(after.iter().all(|(_, s, ..)| s == "succeeded"), "{after:?}");
    assert_eq!(after.len(), files.len(), "one job per document: {after:?}");
    assert_each_document_once(&rt, &db, &settled);
    for node in [&a, &b] {
        wait_for(
            Duration::from_secs(60),
            "the node's indexes equal the database",
            || index_check(node, &kb)["consistent"] == true,
        );
        wait_for(Duration::from_secs(60), "the node ready again", || {
            node.get("/health").0 == 200
        });
    }
}

/// The names of the documents a node's search returns for `query`.
fn found_on(node: &Server, kb: &str, query: &str) -> Vec<String> {
    let (status, found) = node.post(&format!("/api/kbs/{kb}/search"), json!({"query": query}));
    assert_eq!(status, 200, "{found}");
    found["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["document_name"].as_str().map(str::to_string))
        .collect()
}

/// Poll every node until `done(node)` holds on each; returns how long each took.
fn on_every_node(
    nodes: &[(&str, &Server)],
    what: &str,
    mut done: impl FnMut(&Server) -> bool,
) -> Vec<(String, Duration)> {
    let started = Instant::now();
    let mut took = Vec::new();
    for (name, node) in nodes {
        wait_for(
            Duration::from_secs(20),
            &format!("{what} on {name}"),
            || done(node),
        );
        took.push((name.to_string(), started.elapsed()));
    }
    took
}

/// A node's index-check, the parts that must agree with the database.
fn index_check(node: &Server, kb: &str) -> serde_json::Value {
    let (status, check) = node.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(status, 200, "{check}");
    json!({
        "db_chunks": check["db_chunks"],
        "bm25_docs": check["bm25_docs"],
        "vector_hits": check["vector_hits"],
        "bm25_matches": check["bm25_matches"],
        "consistent": check["bm25_matches"] == true
            && check["vector_missing"].as_array().is_some_and(|m| m.is_empty())
            && check["vector_hits"] == check["db_chunks"],
    })
}

/// Three nodes on one PostgreSQL, each with its own indexes. Every node has the KB open
/// (a search) before anything is written to it, so what they find later came through
/// the index replica's catch-up (notification or poll), not through opening the KB. A
/// document uploaded on A is searchable on B and C within seconds (the delays are
/// printed); a document deleted on B, a chunk disabled on C and a chunk edited on A are
/// followed by every node; every node's index-check agrees with the database; a KB made
/// on B gets indexes on A and C, and once deleted on C they go everywhere. Any node may
/// take an upload's job: it reads the file from the database, and no node's data
/// directory holds one. A key made on A is limited across the three nodes together.
#[test]
fn three_nodes_follow_each_others_writes() {
    let url = postgres_database();
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let env = [
        ("ZHIKU_DATABASE__URL", url.as_str()),
        ("ZHIKU_DATABASE__SEVERAL_NODES", "true"),
        ("ZHIKU_INGEST__WORKERS", "1"),
        ("ZHIKU_HTTP__KEY_REQUESTS_PER_MINUTE", "4"),
    ];
    let a = Server::start_with(dirs[0].path(), &env);
    let b = Server::start_with(dirs[1].path(), &env);
    let c = Server::start_with(dirs[2].path(), &env);
    let nodes = [("A", &a), ("B", &b), ("C", &c)];

    let kb = a.create_kb("replicas");
    for (_, node) in &nodes {
        assert!(found_on(node, &kb, "大模型").is_empty());
    }
    let base: Vec<_> = llm_intro_files().into_iter().take(2).collect();
    let (status, body) = a.upload(&kb, &base);
    assert_eq!(status, 202, "{body}");
    let docs = a.wait_settled(&kb, Duration::from_secs(300));
    assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");
    on_every_node(&nodes, "the first documents", |n| {
        found_on(n, &kb, "大模型").len() >= 2
    });

    // A new document: searchable everywhere soon after it is indexed (by whichever node
    // took its job; the others through their replicas).
    let probe_dir = tempfile::tempdir().unwrap();
    let probe = probe_dir.path().join("replica-probe.txt");
    let phrase = "副本探针：银杏湖畔的七号气象站记录了罕见的冰雹";
    std::fs::write(&probe, format!("{phrase}。\n\n{phrase}，持续十二分钟。\n")).unwrap();
    let (status, body) = a.upload(&kb, &[(probe, "replica-probe.txt".into())]);
    assert_eq!(status, 202, "{body}");
    wait_for(Duration::from_secs(120), "the probe indexed", || {
        let (_, docs) = a.get(&format!("/api/kbs/{kb}/documents?limit=100"));
        docs.as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "replica-probe.txt" && d["status"] == "indexed")
    });
    let delays = on_every_node(&nodes, "the probe searchable", |n| {
        found_on(n, &kb, phrase).first().map(String::as_str) == Some("replica-probe.txt")
    });
    eprintln!("a new document was searchable after (from indexed): {delays:?}");

    // A document deleted on B, a chunk disabled on C, a chunk edited on A.
    let by_name = |name: &str| -> String {
        let (_, docs) = b.get(&format!("/api/kbs/{kb}/documents?limit=100"));
        docs.as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (first, second) = (by_name(&base[0].1), by_name(&base[1].1));
    assert_eq!(b.delete(&format!("/api/kbs/{kb}/documents/{first}")), 204);
    let (status, chunks) = c.get(&format!("/api/kbs/{kb}/documents/{second}/chunks"));
    assert_eq!(status, 200, "{chunks}");
    let chunks = chunks["chunks"].as_array().unwrap().clone();
    assert!(chunks.len() >= 2, "{chunks:?}");
    let path = |chunk: &serde_json::Value| {
        format!("/api/kbs/{kb}/documents/{second}/chunks/{}", chunk["id"])
    };
    let (status, body) = c.patch(&path(&chunks[0]), json!({"enabled": false}));
    assert_eq!(status, 200, "{body}");
    let edited = "副本编辑：北岸渡口的灯塔在午夜改为蓝色信号";
    let (status, body) = a.patch(&path(&chunks[1]), json!({"text": edited}));
    assert_eq!(status, 200, "{body}");
    let delays = on_every_node(&nodes, "the edits followed", |n| {
        let hits = found_on(n, &kb, edited);
        hits.first().map(String::as_str) == Some(base[1].1.as_str())
            && !found_on(n, &kb, "大模型").contains(&base[0].1)
    });
    eprintln!("deletes and edits were followed after: {delays:?}");

    // Every node's indexes agree with the database, and so with each other.
    let mut checks = Vec::new();
    on_every_node(&nodes, "index-check consistent", |n| {
        index_check(n, &kb)["consistent"] == true
    });
    for (name, node) in &nodes {
        let check = index_check(node, &kb);
        eprintln!("index-check on {name}: {check}");
        checks.push(check);
    }
    assert!(checks.iter().all(|c| *c == checks[0]), "{checks:?}");

    // A KB made on B: its indexes appear on A and C (the poll opens it); deleted on C,
    // they go from every node's disk.
    let other = b.create_kb("made-on-b");
    let kb_dir = |d: &tempfile::TempDir| d.path().join("kbs").join(&other);
    wait_for(
        Duration::from_secs(20),
        "the new KB's indexes everywhere",
        || dirs.iter().all(|d| kb_dir(d).exists()),
    );
    assert_eq!(c.delete(&format!("/api/kbs/{other}")), 204);
    wait_for(
        Duration::from_secs(20),
        "the deleted KB's indexes gone",
        || dirs.iter().all(|d| !kb_dir(d).exists()),
    );

    // Caught up everywhere: no node is degraded by replica lag.
    for (name, node) in &nodes {
        let (_, health) = node.get("/health");
        let reasons = health["reasons"].to_string();
        assert!(!reasons.contains("replica"), "{name}: {health}");
    }
    for d in &dirs {
        assert!(!d.path().join("files").exists(), "{}", d.path().display());
    }

    key_is_limited_across_nodes(&url, &nodes, 4);
}

/// A key made on the first node is refused with 429 once `per_minute` requests have
/// reached the nodes in all, spread over them, with a Retry-After up to the minute's end.
fn key_is_limited_across_nodes(url: &str, nodes: &[(&str, &Server)], per_minute: usize) {
    let bot = nodes[0].1.create_bot(json!({"name": "limited"}));
    let key = nodes[0].1.publish_with_key(&bot);
    // The count is per minute of the database's clock: start early in one, so that the
    // requests below fall in the same minute.
    let (rt, db) = pool(url);
    let (left,): (i64,) = rt
        .block_on(sqlx::query_as("SELECT 60 - unixepoch() % 60").fetch_one(&db))
        .unwrap();
    if left < 10 {
        std::thread::sleep(Duration::from_secs(left.unsigned_abs() + 1));
    }
    let http = reqwest::blocking::Client::new();
    let models = |node: &Server| {
        http.get(node.url("/v1/models"))
            .bearer_auth(&key)
            .send()
            .unwrap()
    };
    for i in 0..per_minute {
        let (name, node) = nodes[i % nodes.len()];
        assert_eq!(models(node).status(), 200, "request {i} on {name}");
    }
    for (name, node) in nodes {
        let refused = models(node);
        assert_eq!(
            refused.status(),
            429,
            "on {name}: the key's limit is shared"
        );
        let retry: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
}
