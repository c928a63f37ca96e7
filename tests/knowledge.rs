//! A new user's path: create a KB, upload the llm-intro-zh articles, wait for them to be
//! indexed, and ask the 20 development questions — the right article must be in the top 5
//! for at least 18. Also duplicates, bad uploads, chunk edits, disable and delete, and an idle
//! server giving back the passage model's memory.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, Server, fixtures_dir, llm_intro_files};

fn queries() -> Vec<(String, String)> {
    let path = fixtures_dir().join("eval/llm-intro-zh/queries.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["query"].as_str().unwrap().to_string(),
                v["positive_ids"][0].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn upload_index_and_hit_test_llm_intro() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("llm-intro");

    let (status, body) = server.upload(&kb, &llm_intro_files());
    assert_eq!(status, 202, "{body}");
    let docs = body["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 5);
    assert!(
        docs.iter()
            .all(|d| d["status"] == "queued" && d["job_id"].is_i64()),
        "{body}"
    );

    let settled = server.wait_settled(&kb, Duration::from_secs(600));
    for d in &settled {
        assert_eq!(d["status"], "indexed", "{d}");
        assert!(d["chunk_count"].as_i64().unwrap() > 0, "{d}");
    }

    let mut hits = 0;
    let mut misses = Vec::new();
    for (query, positive) in queries() {
        let (status, r) = server.post(
            &format!("/api/kbs/{kb}/search"),
            json!({"query": query, "top_k": 5}),
        );
        assert_eq!(status, 200, "{r}");
        let results = r["results"].as_array().unwrap();
        assert!(results.len() <= 5);
        let first = &results[0];
        assert!(
            first["chunk_id"].is_i64() && first["text"].is_string() && first["score"].is_number(),
            "{first}"
        );
        assert!(r["timings_ms"]["total_ms"].is_number(), "{r}");
        if results
            .iter()
            .any(|x| x["document_name"] == positive.as_str())
        {
            hits += 1;
        } else {
            misses.push(query);
        }
    }
    assert!(
        hits >= 18,
        "right file in the top 5 for only {hits}/20; missed: {misses:?}"
    );

    // Each single retriever answers too, with its own rank and raw score.
    for mode in ["fulltext", "semantic"] {
        let (status, r) = server.post(
            &format!("/api/kbs/{kb}/search"),
            json!({"query": "LangChain 是谁推出的", "mode": mode}),
        );
        assert_eq!(status, 200, "{r}");
        let first = &r["results"][0];
        let (rank, raw) = if mode == "fulltext" {
            ("fulltext", "bm25")
        } else {
            ("semantic", "cosine")
        };
        assert_eq!(first["ranks"][rank], 1, "{first}");
        assert!(first["raw"][raw].is_number(), "{first}");
    }

    // The same file again is reported as a duplicate, not ingested twice.
    let (status, again) = server.upload(&kb, &llm_intro_files()[..1]);
    assert_eq!(status, 202);
    assert_eq!(again["documents"][0]["duplicate"], true, "{again}");
    let (_, list) = server.get(&format!("/api/kbs/{kb}/documents"));
    assert_eq!(list.as_array().unwrap().len(), 5);

    // Disable a document: it never appears in results; enable: it is back.
    let doc01 = settled.iter().find(|d| d["name"] == "01.txt").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let q = json!({"query": "LangChain 这个开源框架最早是谁推出的？", "top_k": 10});
    let names = |r: &Value| -> Vec<String> {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["document_name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, _) = server.patch(
        &format!("/api/kbs/{kb}/documents/{doc01}"),
        json!({"enabled": false}),
    );
    assert_eq!(status, 200);
    let (_, r) = server.post(&format!("/api/kbs/{kb}/search"), q.clone());
    assert!(!names(&r).contains(&"01.txt".to_string()), "{r}");
    server.patch(
        &format!("/api/kbs/{kb}/documents/{doc01}"),
        json!({"enabled": true}),
    );
    let (_, r) = server.post(&format!("/api/kbs/{kb}/search"), q.clone());
    assert!(names(&r).contains(&"01.txt".to_string()), "{r}");

    // Edit a chunk: the new text is found, by both retrievers.
    let (_, chunks) = server.get(&format!("/api/kbs/{kb}/documents/{doc01}/chunks?limit=5"));
    assert!(chunks["total"].as_i64().unwrap() > 5);
    let chunk_id = chunks["chunks"][0]["id"].as_i64().unwrap();
    let (status, edited) = server.patch(
        &format!("/api/kbs/{kb}/documents/{doc01}/chunks/{chunk_id}"),
        json!({"text": "知库的吉祥物是一只会写代码的熊猫，名字叫墨墨。"}),
    );
    assert_eq!(status, 200, "{edited}");
    for mode in ["fulltext", "semantic", "hybrid"] {
        let (_, r) = server.post(
            &format!("/api/kbs/{kb}/search"),
            json!({"query": "知库的吉祥物叫什么名字", "mode": mode, "top_k": 1}),
        );
        assert_eq!(r["results"][0]["chunk_id"], chunk_id, "{mode}: {r}");
    }

    // Delete the document: none of its chunks is retrieved any more.
    assert_eq!(
        server.delete(&format!("/api/kbs/{kb}/documents/{doc01}")),
        204
    );
    let (_, r) = server.post(&format!("/api/kbs/{kb}/search"), q);
    assert!(!names(&r).contains(&"01.txt".to_string()), "{r}");
    let (status, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(status, 200);
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], check["db_chunks"], "{check}");
}

#[test]
fn bad_uploads_get_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("ZHIKU_INGEST__MAX_UPLOAD_BYTES", "200000")]);
    let kb = server.create_kb("bad-files");
    let docs = fixtures_dir().join("docs");
    // What GET /api/limits serves is what the checks below enforce.
    let (status, limits) = server.get("/api/limits");
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["upload_bytes"], 200_000, "{limits}");
    let extensions: Vec<&str> = limits["accepted_types"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["extensions"].as_array().unwrap())
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(extensions.contains(&"pdf") && !extensions.contains(&"ppt"));

    // A PNG renamed to .pdf: 415 with the accepted list, nothing stored.
    let (status, body) =
        server.upload(&kb, &[(docs.join("not-a-pdf.pdf"), "not-a-pdf.pdf".into())]);
    assert_eq!(status, 415, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!("accepted: {}", extensions.join(", "))),
        "{body}"
    );

    // Over the size cap: 413.
    let (status, body) = server.upload(
        &kb,
        &[(
            docs.join("zh-table-land-use-standard.pdf"),
            "big.pdf".into(),
        )],
    );
    assert_eq!(status, 413, "{body}");
    // Far over it (past the request body limit too): still 413, in our error shape.
    let huge = [(
        docs.join("zh-gbk-euc-h-cjk-font.pdf"),
        "huge.pdf".to_string(),
    )];
    let (status, body) = server.upload(&kb, &huge);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");

    // Accepted, then failed in the background with a reason.
    let cases = [
        ("encrypted-user-password.pdf", "password"),
        ("truncated.pdf", "damaged"),
        ("empty.txt", "empty"),
    ];
    let mut files: Vec<_> = cases
        .iter()
        .map(|(f, _)| (docs.join(f), f.to_string()))
        .collect();
    // A scan without a text layer used to fail here; OCR reads it now.
    let scan = "zh-scanned-no-text.pdf";
    files.push((docs.join(scan), scan.to_string()));
    let (status, body) = server.upload(&kb, &files);
    assert_eq!(status, 202, "{body}");
    let settled = server.wait_settled(&kb, Duration::from_secs(120));
    for (file, reason) in cases {
        let d = settled.iter().find(|d| d["name"] == file).unwrap();
        assert_eq!(d["status"], "failed", "{d}");
        let message = d["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{file}: {message}");
    }
    let d = settled.iter().find(|d| d["name"] == scan).unwrap();
    assert_eq!(d["status"], "indexed", "{d}");

    // Pasted text works, and a split preview saves nothing.
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/split-preview"),
        json!({"text": "第一段。\n\n第二段。", "split": {"mode": "custom", "separator": "\\n\\n", "max_tokens": 64}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 2, "{body}");
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/documents"),
        json!({"name": "笔记", "text": "知库支持粘贴文本。"}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["documents"][0]["name"], "笔记.txt");
    let settled = server.wait_settled(&kb, Duration::from_secs(60));
    assert!(
        settled
            .iter()
            .any(|d| d["name"] == "笔记.txt" && d["status"] == "indexed")
    );

    // Bad settings are refused with the reason: one past the split bounds GET /api/limits
    // serves, and no further.
    let split = &limits["split"];
    let (min, max) = (
        split["min_tokens"].as_u64().unwrap(),
        split["max_tokens"].as_u64().unwrap(),
    );
    for (tokens, ok) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/split-preview"),
            json!({"text": "第一段。", "split": {"mode": "custom", "separator": "\n", "max_tokens": tokens}}),
        );
        assert_eq!(status, if ok { 200 } else { 400 }, "{tokens}: {body}");
        if !ok {
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("between {min} and {max}")),
                "{body}"
            );
        }
    }
    // The largest overlap is max_tokens / max_overlap_divisor, rounded down.
    let most = 100 / split["max_overlap_divisor"].as_u64().unwrap();
    for (overlap, ok) in [(most, true), (most + 1, false)] {
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/split-preview"),
            json!({"text": "第一段。", "split": {"mode": "custom", "separator": "\n", "max_tokens": 100, "overlap_tokens": overlap}}),
        );
        assert_eq!(status, if ok { 200 } else { 400 }, "{overlap}: {body}");
        if !ok {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("({most})")),
                "{body}"
            );
        }
    }
    // A KB description and a hit test's top_k, at their limits and one past.
    let chars = limits["kb_description_chars"].as_u64().unwrap() as usize;
    for (length, ok) in [(chars, true), (chars + 1, false)] {
        let (status, body) = server.patch(
            &format!("/api/kbs/{kb}"),
            json!({"description": "述".repeat(length)}),
        );
        assert_eq!(status, if ok { 200 } else { 400 }, "{length}: {body}");
    }
    let top_k = limits["search_top_k_max"].as_u64().unwrap();
    for (k, ok) in [(top_k, true), (top_k + 1, false)] {
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/search"),
            json!({"query": "粘贴", "top_k": k}),
        );
        assert_eq!(status, if ok { 200 } else { 400 }, "{k}: {body}");
        if !ok {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("1 and {top_k}")),
                "{body}"
            );
        }
    }
}

/// RSS of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[test]
fn an_idle_server_gives_back_the_passage_models_memory_and_still_ingests() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[("ZHIKU_EMBEDDING__PASSAGE_IDLE_RELEASE_S", "2")],
    );
    let pid = server.child.id();
    let kb = server.llm_intro_kb("idle");
    let after_ingest = rss_mib(pid);

    // Searching needs the query session only, so it does not bring the passage model back.
    let released_at = std::time::Instant::now();
    while !server.logs().contains("passage model released") {
        assert!(
            released_at.elapsed() < Duration::from_secs(60),
            "not released: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, r) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "大语言模型", "top_k": 3}),
    );
    assert_eq!(status, 200, "{r}");
    // The allocator hands freed pages back from a background thread within about a
    // second; a person watching the process sees it fall within a few.
    let searched_at = std::time::Instant::now();
    let mut idle = rss_mib(pid);
    while idle + 300 >= after_ingest && searched_at.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        idle = rss_mib(pid);
    }
    assert!(
        idle + 300 < after_ingest,
        "RSS {after_ingest} MiB after ingesting, {idle} MiB idle"
    );

    // The next document loads it again and is indexed as usual.
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/documents"),
        json!({"name": "leave.txt", "text": "员工每年可以享受十五天带薪年假，需提前一周申请。"}),
    );
    assert_eq!(status, 202, "{body}");
    let docs = server.wait_settled(&kb, Duration::from_secs(120));
    assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");
    let (_, r) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "年假需要提前多久申请", "mode": "semantic", "top_k": 1}),
    );
    assert_eq!(r["results"][0]["document_name"], "leave.txt", "{r}");
}

/// A deployment from before spreadsheets were also kept as tables (migration 0012) has
/// its sheets' chunks but no tables, so a bot's `table_query` cannot see them. Upgrading
/// reads those sheets once more: their tables appear, their chunks stay the same, and a
/// text document is left alone.
#[test]
fn sheets_indexed_before_tables_existed_get_their_tables_after_an_upgrade() {
    let data = tempfile::tempdir().unwrap();
    let docs = fixtures_dir().join("docs");
    let uploads = [
        (docs.join("zh-sales.xlsx"), "zh-sales.xlsx".to_string()),
        (docs.join("zh-faq.csv"), "zh-faq.csv".to_string()),
        (docs.join("zh-guide.md"), "zh-guide.md".to_string()),
    ];
    let (kb, before) = {
        let server = Server::start(data.path());
        let kb = server.create_kb("升级");
        let (status, body) = server.upload(&kb, &uploads);
        assert_eq!(status, 202, "{body}");
        let docs = server.wait_settled(&kb, Duration::from_secs(300));
        assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");
        (kb, docs)
    };
    let tables = |sql: &str| -> Vec<(String,)> { common::query_rows(data.path(), sql) };
    let with_tables = tables("SELECT DISTINCT document_id FROM document_table");
    assert_eq!(
        with_tables.len(),
        2,
        "both sheets have tables: {with_tables:?}"
    );
    // As the database of an older version was: no tables, and this migration not run.
    tables("DELETE FROM document_table RETURNING table_id");
    let undone = tables(
        "DELETE FROM _sqlx_migrations WHERE description = 'spreadsheet tables backfill' RETURNING description",
    );
    assert_eq!(undone.len(), 1, "the migration was recorded: {undone:?}");

    let server = Server::start(data.path());
    let after = server.wait_settled(&kb, Duration::from_secs(300));
    let named = |docs: &[Value], name: &str| -> Value {
        docs.iter().find(|d| d["name"] == name).cloned().unwrap()
    };
    for (_, name) in &uploads {
        let (old, new) = (named(&before, name), named(&after, name));
        assert_eq!(new["status"], "indexed", "{new}");
        assert_eq!(
            old["chunk_count"], new["chunk_count"],
            "{name}: {old} {new}"
        );
    }
    let with_tables = tables(
        "SELECT DISTINCT d.name FROM document_table t JOIN document d ON d.document_id = t.document_id ORDER BY d.name",
    );
    let names: Vec<&str> = with_tables.iter().map(|(n,)| n.as_str()).collect();
    assert_eq!(names, ["zh-faq.csv", "zh-sales.xlsx"]);
    // Read again, not uploaded again: the text document had no job, the sheets one more.
    let jobs: Vec<(String, i64)> = common::query_rows(
        data.path(),
        "SELECT d.name, COUNT(*) FROM ingest_job j JOIN document d ON d.document_id = j.document_id GROUP BY d.name ORDER BY d.name",
    );
    assert_eq!(
        jobs,
        [
            ("zh-faq.csv".to_string(), 2),
            ("zh-guide.md".to_string(), 1),
            ("zh-sales.xlsx".to_string(), 2)
        ]
    );
}
