//! Small documents do not wait for big ones: a big CSV is embedded in slices, and a note
//! uploaded meanwhile is indexed between two of them. A server told to stop while a big
//! document embeds stops at the end of a slice and puts the document back in the queue.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Server;

/// A CSV of `rows` distinct order lines (a few hundred passages per 1,000 rows).
fn orders_csv(dir: &Path, rows: usize) -> PathBuf {
    let cities = ["北京", "上海", "广州", "深圳", "杭州", "成都"];
    let mut text = String::from("订单号,客户,城市,产品,数量,金额,备注\n");
    for i in 0..rows {
        text.push_str(&format!(
            "A-{i:06},客户{},{},产品{},{},{}.00,第{i}行\n",
            i % 997,
            cities[i % 6],
            i % 131,
            i % 17 + 1,
            (i * 37) % 10_000
        ));
    }
    let path = dir.join("orders.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn job(server: &Server, id: &Value) -> Value {
    let (status, job) = server.get(&format!("/api/jobs/{id}"));
    assert_eq!(status, 200, "{job}");
    job
}

/// Wait until the job has embedded some passages (it is between slices from then on).
fn wait_embedding(server: &Server, id: &Value, deadline: Duration) -> Value {
    let started = Instant::now();
    loop {
        let job = job(server, id);
        if job["passages_done"].as_i64().unwrap_or(0) > 0 {
            return job;
        }
        assert!(
            job["status"] == "processing" || job["status"] == "enqueued",
            "{job}"
        );
        assert!(started.elapsed() < deadline, "not embedding yet: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_note_is_indexed_while_a_big_csv_is_still_embedding() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    // One worker: the note cannot simply take another worker, it must come between slices.
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_INGEST__WORKERS", "1"),
            ("ZHIKU_INGEST__EMBED_SLICE_PASSAGES", "32"),
        ],
    );
    let kb = server.create_kb("fair");
    let (status, body) = server.upload(
        &kb,
        &[(orders_csv(files.path(), 6_000), "orders.csv".into())],
    );
    assert_eq!(status, 202, "{body}");
    let big = body["documents"][0].clone();
    let embedding = wait_embedding(&server, &big["job_id"], Duration::from_secs(60));
    let total = embedding["passages_total"].as_i64().unwrap();
    assert!(total > 100, "{embedding}");

    let note = files.path().join("memo.txt");
    std::fs::write(&note, "明天下午三点在三楼会议室开周会。\n").unwrap();
    let (status, body) = server.upload(&kb, &[(note, "memo.txt".into())]);
    assert_eq!(status, 202, "{body}");
    let memo = body["documents"][0]["id"].as_str().unwrap().to_string();
    let uploaded = Instant::now();
    loop {
        let (_, doc) = server.get(&format!("/api/kbs/{kb}/documents/{memo}"));
        if doc["status"] == "indexed" {
            break;
        }
        assert_ne!(doc["status"], "failed", "{doc}");
        assert!(
            uploaded.elapsed() < Duration::from_secs(30),
            "the note waited: {doc}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = uploaded.elapsed();
    let still = job(&server, &big["job_id"]);
    eprintln!("the note waited {waited:?}; the CSV then: {still}");
    assert_eq!(still["status"], "processing", "{still}");
    assert_eq!(still["stage"], "embed", "{still}");
    assert!(still["passages_done"].as_i64().unwrap() < total, "{still}");
    assert!(still["eta_seconds"].as_f64().unwrap() > 0.0, "{still}");
    let (_, doc) = server.get(&format!(
        "/api/kbs/{kb}/documents/{}",
        big["id"].as_str().unwrap()
    ));
    assert!(doc["eta_seconds"].as_f64().is_some(), "{doc}");
}

#[test]
fn a_server_stopping_mid_embedding_stops_within_a_slice_and_requeues_the_document() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    // Small slices: the stop waits for the slice being embedded, and the server gives its
    // workers 10 s. 32 passages took longer than that once, with the whole integration
    // suite sharing the two cores; 8 leave room for four times the load.
    let mut server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_INGEST__WORKERS", "1"),
            ("ZHIKU_INGEST__EMBED_SLICE_PASSAGES", "8"),
        ],
    );
    let kb = server.create_kb("stop");
    let (status, body) = server.upload(
        &kb,
        &[(orders_csv(files.path(), 6_000), "orders.csv".into())],
    );
    assert_eq!(status, 202, "{body}");
    let big = body["documents"][0].clone();
    wait_embedding(&server, &big["job_id"], Duration::from_secs(60));

    let stopping = Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let exited = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(20),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = stopping.elapsed();
    eprintln!("stopped in {took:?}");
    assert!(exited.success(), "{exited:?}");
    // Give the log reader a moment to see the last lines.
    std::thread::sleep(Duration::from_millis(200));
    let logs = server.logs();
    assert!(
        logs.contains("embedding stopped between two slices"),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("zhiku::server") && l.trim_end().ends_with(" stopped")),
        "no worker was left behind, so the server says it stopped: {logs}"
    );

    // Queued again as if never claimed: the stop is no fault of the document, so it spends
    // none of its attempts, and the next start runs it.
    let (rt, mut db) = crate::common::open_db(data.path());
    let (status, attempts): (String, i64) = rt
        .block_on(
            sqlx::query_as("SELECT status, attempts FROM ingest_job WHERE job_id = ?")
                .bind(big["job_id"].as_i64().unwrap())
                .fetch_one(&mut db),
        )
        .unwrap();
    assert_eq!((status.as_str(), attempts), ("enqueued", 0));
    let (doc_status,): (String,) = rt
        .block_on(
            sqlx::query_as("SELECT status FROM document WHERE document_id = ?")
                .bind(big["id"].as_str().unwrap())
                .fetch_one(&mut db),
        )
        .unwrap();
    assert_eq!(doc_status, "queued");
}
