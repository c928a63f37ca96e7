//! Where a chunk lies and how it was read reach the user (issue 21): a spreadsheet's
//! chunks carry their sheet and rows (`label`) and a scan's chunks `ocr: true`, in the
//! chunk list, in hit testing, and in a bot's citations (debug chat, the recorded
//! conversation and `/v1`), where the sheet and rows stand in for a page. A knowledge
//! base reads its scans in its own OCR languages, and a scan being read shows its pages.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ANSWER_LLM, Server, TOKEN, fixtures_dir};

const SHEET: &str = "zh-stock-merged.xlsx";
const SCAN: &str = "zh-scanned-no-text.pdf";

/// Every chunk of the document called `name` in `docs`.
fn chunks_of(server: &Server, kb: &str, docs: &[Value], name: &str) -> Vec<Value> {
    let doc = docs.iter().find(|d| d["name"] == name).unwrap();
    assert_eq!(doc["status"], "indexed", "{doc}");
    let (status, page) = server.get(&format!(
        "/api/kbs/{kb}/documents/{}/chunks?limit=100",
        doc["id"].as_str().unwrap()
    ));
    assert_eq!(status, 200, "{page}");
    page["chunks"].as_array().unwrap().clone()
}

fn search(server: &Server, kb: &str, query: &str) -> Vec<Value> {
    let (status, r) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": query, "top_k": 3}),
    );
    assert_eq!(status, 200, "{r}");
    r["results"].as_array().unwrap().clone()
}

#[test]
fn sheet_rows_and_ocr_marks_reach_chunks_search_and_citations() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_LLM__MODEL", ANSWER_LLM),
            ("ZHIKU_LLM__CONTEXT_TOKENS", "4096"),
        ],
    );
    let kb = server.create_kb("labels");
    let docs = fixtures_dir().join("docs");
    let files = [SHEET, SCAN].map(|f| (docs.join(f), f.to_string()));
    let (status, body) = server.upload(&kb, &files);
    assert_eq!(status, 202, "{body}");
    let settled = server.wait_settled(&kb, Duration::from_secs(300));

    // The chunk list: each sheet's rows, no OCR mark; the scan's chunks marked, by page.
    let sheet = chunks_of(&server, &kb, &settled, SHEET);
    let labels: Vec<&str> = sheet.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["库存 第3–9行", "说明 第1行"], "{sheet:?}");
    assert!(sheet.iter().all(|c| c["ocr"] == false), "{sheet:?}");
    let scan = chunks_of(&server, &kb, &settled, SCAN);
    assert!(!scan.is_empty());
    for c in &scan {
        assert_eq!(c["ocr"], true, "{c}");
        assert!(c["label"].is_null(), "{c}");
        assert!(c["page"].as_i64().unwrap() >= 1, "{c}");
    }

    // Hit testing says the same.
    let hits = search(&server, &kb, "深圳仓 扫地机器人 库存数量");
    assert_eq!(hits[0]["document_name"], SHEET, "{hits:?}");
    assert_eq!(hits[0]["label"], "库存 第3–9行", "{hits:?}");
    assert_eq!(hits[0]["ocr"], false, "{hits:?}");
    let hits = search(&server, &kb, "行政处罚决定书");
    assert_eq!(hits[0]["document_name"], SCAN, "{hits:?}");
    assert_eq!(hits[0]["ocr"], true, "{hits:?}");

    // A bot cites the sheet by its rows.
    let bot = server.create_bot(json!({
        "name": "库存助手",
        "knowledge_bases": [kb],
        "no_recall": {"min_answerable": 0},
        "model": {"temperature": 0, "max_tokens": 48},
    }));
    let question = "深圳仓的扫地机器人库存有多少台？";
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": question}),
    );
    assert_eq!(status, 200, "{events:?}");
    let (_, done) = events.iter().find(|(name, _)| name == "done").unwrap();
    let cites_the_rows = |citations: &Value| {
        citations.as_array().unwrap().iter().any(|c| {
            c["document_name"] == SHEET && c["label"] == "库存 第3–9行" && c["page"].is_null()
        })
    };
    assert!(cites_the_rows(&done["citations"]), "{done}");
    let passage = done["trace"]["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["document_name"] == SHEET)
        .unwrap();
    assert_eq!(passage["label"], "库存 第3–9行", "{passage}");

    // The recorded conversation keeps it: the passages the model read and the citations.
    let conversation = events[0].1["conversation_id"].as_str().unwrap();
    let (status, recorded) = server.get(&format!("/api/conversations/{conversation}"));
    assert_eq!(status, 200, "{recorded}");
    let messages = recorded["messages"].as_array().unwrap();
    let read = messages[0]["context"]["passages"].as_array().unwrap();
    assert!(
        read.iter()
            .any(|p| p["document_name"] == SHEET && p["label"] == "库存 第3–9行"),
        "{recorded}"
    );
    assert!(
        cites_the_rows(&messages[1]["context"]["citations"]),
        "{recorded}"
    );

    // And so does the OpenAI API's answer.
    let key = server.publish_with_key(&bot);
    let (status, completion) = server.request_as(
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(json!({"model": bot, "messages": [{"role": "user", "content": question}]})),
    );
    assert_eq!(status, 200, "{completion}");
    assert!(cites_the_rows(&completion["citations"]), "{completion}");
}

/// The text of every chunk of the document called `name`, joined.
fn text_of(server: &Server, kb: &str, name: &str) -> String {
    let (_, docs) = server.get(&format!("/api/kbs/{kb}/documents"));
    chunks_of(server, kb, docs.as_array().unwrap(), name)
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_kb_reads_scans_in_its_ocr_languages_and_shows_the_pages_read() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());

    // A language tesseract does not have is refused, naming what it has.
    let (status, body) = server.post(
        "/api/kbs",
        json!({"name": "typo", "ocr_languages": "chi_sim+xx_nonexistent"}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_settings", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("xx_nonexistent is not installed") && message.contains("chi_sim"),
        "{message}"
    );

    let default = server.create_kb("default-ocr");
    let (_, view) = server.get(&format!("/api/kbs/{default}"));
    assert_eq!(view["ocr_languages"], "chi_sim+eng", "{view}");
    let (status, english) = server.post(
        "/api/kbs",
        json!({"name": "english-ocr", "ocr_languages": "eng"}),
    );
    assert_eq!(status, 201, "{english}");
    assert_eq!(english["ocr_languages"], "eng", "{english}");
    let english = english["id"].as_str().unwrap().to_string();
    let (status, body) = server.patch(
        &format!("/api/kbs/{english}"),
        json!({"ocr_languages": "english"}),
    );
    assert_eq!(status, 400, "{body}");
    let (_, view) = server.get(&format!("/api/kbs/{english}"));
    assert_eq!(
        view["ocr_languages"], "eng",
        "a refused change changes nothing: {view}"
    );

    // The same scan in both; while the default KB reads it, its pages show.
    let scan = [(fixtures_dir().join("docs").join(SCAN), SCAN.to_string())];
    for kb in [&english, &default] {
        let (status, body) = server.upload(kb, &scan);
        assert_eq!(status, 202, "{body}");
    }
    let mut seen = Vec::new();
    let started = Instant::now();
    loop {
        let (_, docs) = server.get(&format!("/api/kbs/{default}/documents"));
        let d = &docs[0];
        if d["status"] == "indexed" || d["status"] == "failed" {
            break;
        }
        if d["stage"] == "ocr" {
            seen.push((d["ocr_pages_done"].clone(), d["ocr_pages_total"].clone()));
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{docs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!seen.is_empty(), "the OCR stage was never shown");
    for (done, total) in &seen {
        assert_eq!(total, 3, "{seen:?}");
        assert!((1..=3).contains(&done.as_i64().unwrap()), "{seen:?}");
    }
    server.wait_settled(&english, Duration::from_secs(300));

    let heading = "行政处罚决定书";
    let chinese = text_of(&server, &default, SCAN);
    assert!(chinese.contains(heading), "{chinese}");
    let latin = text_of(&server, &english, SCAN);
    assert!(
        !latin.contains(heading),
        "read as English, the Chinese heading cannot come out: {latin}"
    );
}
