//! Hostile and broken uploads: each ends failed with a reason or indexed safely, nothing is
//! written outside the data dir, the server keeps answering health checks throughout, and
//! its memory stays bounded (the peak is printed).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Server, fixtures_dir};

/// A DOCX whose document.xml inflates to `inflated_bytes` of the same character.
fn zip_bomb(path: &PathBuf, inflated_bytes: usize) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>").unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    let block = vec![b'a'; 1 << 20];
    for _ in 0..inflated_bytes / block.len() {
        zip.write_all(&block).unwrap();
    }
    zip.finish().unwrap();
}

fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// A PDF of `objects` (object i + 1 is `objects[i]`; 1 is the catalog) with a correct
/// cross-reference table, so the parser reaches the objects themselves.
fn pdf(objects: &[String]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// One page saying hello (objects 3–5), under a page tree (object 2) of `kids`.
fn hello_pdf(kids: &str, count: usize, page_extra: &str, more: &[String]) -> Vec<u8> {
    let stream = "BT /F1 12 Tf 20 100 Td (hello from a hostile pdf) Tj ET";
    let mut objects = vec![
        "<</Type/Catalog/Pages 2 0 R>>".to_string(),
        format!("<</Type/Pages/Kids[{kids}]/Count {count}>>"),
        format!(
            "<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]/Contents 4 0 R\
             /Resources<</Font<</F1 5 0 R>>>>{page_extra}>>"
        ),
        format!("<</Length {}>>\nstream\n{stream}\nendstream", stream.len()),
        "<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>".to_string(),
    ];
    objects.extend_from_slice(more);
    pdf(&objects)
}

/// Polls /health every 100 ms from its own thread; `stop` returns the slowest answer and
/// fails the test if any check failed.
struct HealthWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Duration>,
}

impl HealthWatch {
    fn start(base: &str) -> HealthWatch {
        let base = base.to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let mut slowest = Duration::ZERO;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = http
                        .get(format!("{base}/health"))
                        .send()
                        .map(|r| r.status() == 200)
                        .unwrap_or(false);
                    assert!(ok, "health check failed during the attack");
                    slowest = slowest.max(t.elapsed());
                    std::thread::sleep(Duration::from_millis(100));
                }
                slowest
            }
        });
        HealthWatch { stop, thread }
    }

    fn stop(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

#[test]
fn hostile_files_fail_with_reasons_and_the_server_stays_up() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("hostile");
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name.replace('/', "_"));
        std::fs::write(&path, bytes).unwrap();
        (path, name.to_string())
    };
    let bomb = dir.path().join("bomb.docx");
    zip_bomb(&bomb, 400 << 20);
    let files = vec![
        (bomb, "bomb.docx".to_string()),
        file("nul.txt", b"\0\0\0start\0middle\0end\0\0"),
        file(
            "invalid-utf8.txt",
            &[
                0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc,
            ],
        ),
        file(
            "../../escaped.txt",
            "路径穿越的文件名不能把文件写到数据目录之外。".as_bytes(),
        ),
        file(
            "one-line.txt",
            "这是一行没有换行的很长的文字，".repeat(8_000).as_bytes(),
        ),
        (
            fixtures_dir().join("docs/not-a-pdf.pdf"),
            "image-as.txt".to_string(),
        ),
        (
            fixtures_dir().join("docs/truncated.pdf"),
            "truncated.pdf".to_string(),
        ),
        // Objects nested 200,000 deep: a recursive parser would overflow its stack and
        // take the whole process down (no catch_unwind stops that).
        file(
            "deep-arrays.pdf",
            &hello_pdf(
                "3 0 R",
                1,
                "/Deep 6 0 R",
                &[format!("{}{}", "[".repeat(200_000), "]".repeat(200_000))],
            ),
        ),
        file(
            "deep-dicts.pdf",
            &hello_pdf(
                "3 0 R",
                1,
                "/Deep 6 0 R",
                &[format!(
                    "{}1{}",
                    "<</A ".repeat(100_000),
                    ">>".repeat(100_000)
                )],
            ),
        ),
        // A page tree claiming 200,000 pages, all the same page object.
        file(
            "many-pages.pdf",
            &hello_pdf(&"3 0 R ".repeat(200_000), 200_000, "", &[]),
        ),
        // A page tree that is its own child.
        file("cyclic-pages.pdf", &hello_pdf("2 0 R 3 0 R", 2, "", &[])),
    ];

    // Health answers all along while these are processed.
    let health = HealthWatch::start(&server.base);
    for f in &files {
        let (status, body) = server.upload(&kb, std::slice::from_ref(f));
        assert!(status == 202 || status == 415, "{}: {status} {body}", f.1);
    }
    // 100 MB of one line: over the upload cap, refused with 413 before it is stored.
    let huge = file("huge.txt", &vec![b'x'; 100 << 20]);
    let (status, body) = server.upload(&kb, &[huge]);
    assert_eq!(status, 413, "{body}");

    let docs = server.wait_settled(&kb, Duration::from_secs(300));
    let slowest = health.stop();
    let by_name = |name: &str| -> Option<&Value> { docs.iter().find(|d| d["name"] == name) };
    for d in &docs {
        let status = d["status"].as_str().unwrap();
        assert!(status == "indexed" || status == "failed", "{d}");
        if status == "failed" {
            assert!(
                d["error"]["message"].as_str().is_some_and(|m| m.len() > 5)
                    || d["error_message"].as_str().is_some_and(|m| m.len() > 5),
                "failed without a reason: {d}"
            );
        }
    }
    assert_eq!(
        by_name("bomb.docx").unwrap()["status"],
        "failed",
        "{docs:?}"
    );
    assert_eq!(by_name("truncated.pdf").unwrap()["status"], "failed");
    assert_eq!(by_name("one-line.txt").unwrap()["status"], "indexed");
    assert!(by_name("image-as.txt").is_none_or(|d| d["status"] == "failed"));
    // The traversal name is only a display name: nothing landed outside the data dir.
    assert!(!data.path().parent().unwrap().join("escaped.txt").exists());
    assert!(!dir.path().parent().unwrap().join("escaped.txt").exists());
    for d in &docs {
        println!(
            "  {} → {} {}",
            d["name"],
            d["status"],
            d["error"]["message"].as_str().unwrap_or_default()
        );
    }
    let peak = peak_rss_mb(server.child.id());
    println!("hostile uploads: slowest health check {slowest:?}, server peak RSS {peak} MB");
    assert!(slowest < Duration::from_secs(2), "health took {slowest:?}");
    assert!(peak < 3_000, "peak RSS {peak} MB");
}

/// 10,000 tiny files in 50 uploads of 200: every one ends indexed exactly once, the queue
/// keeps moving while health checks answer, and any one of them can be found.
#[test]
#[ignore = "needs the machine to itself: ./scripts/test runs it alone, after the parallel suites"]
fn ten_thousand_tiny_files_are_all_indexed() {
    const FILES: usize = 10_000;
    const PER_UPLOAD: usize = 200;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("tiny");
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(PathBuf, String)> = (0..FILES)
        .map(|i| {
            let name = format!("note-{i:05}.txt");
            let path = dir.path().join(&name);
            std::fs::write(&path, format!("第{i}号便签：编号 tiny{i:05} 的内容。")).unwrap();
            (path, name)
        })
        .collect();
    let health = HealthWatch::start(&server.base);
    let started = Instant::now();
    for batch in files.chunks(PER_UPLOAD) {
        let (status, body) = server.upload(&kb, batch);
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["documents"].as_array().unwrap().len(), batch.len());
    }
    let uploaded_s = started.elapsed().as_secs_f64();
    // Settled when no job of the KB is waiting or running.
    let deadline = Duration::from_secs(1_200);
    loop {
        let (_, info) = server.get(&format!("/api/kbs/{kb}"));
        let (_, queued) = server.get("/api/jobs?status=enqueued&limit=1");
        let (_, running) = server.get("/api/jobs?status=processing&limit=1");
        if queued.as_array().unwrap().is_empty() && running.as_array().unwrap().is_empty() {
            assert_eq!(info["document_count"], FILES, "{info}");
            assert_eq!(info["chunk_count"], FILES, "{info}");
            break;
        }
        assert!(started.elapsed() < deadline, "not settled: {info}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let settled_s = started.elapsed().as_secs_f64();
    let slowest = health.stop();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for offset in (0..FILES).step_by(1000) {
        let (_, page) = server.get(&format!(
            "/api/kbs/{kb}/documents?limit=1000&offset={offset}"
        ));
        for d in page.as_array().unwrap() {
            *statuses
                .entry(d["status"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(statuses.get("indexed"), Some(&FILES), "{statuses:?}");
    let (_, hit) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "tiny07321", "mode": "fulltext", "top_k": 1}),
    );
    assert_eq!(
        hit["results"][0]["document_name"], "note-07321.txt",
        "{hit}"
    );
    let (_, check) = server.get(&format!("/api/kbs/{kb}/index-check"));
    assert_eq!(check["db_chunks"], FILES, "{check}");
    assert_eq!(check["bm25_matches"], true, "{check}");
    assert_eq!(check["vector_hits"], FILES, "{check}");
    let peak = peak_rss_mb(server.child.id());
    println!(
        "10,000 tiny files: uploaded in {uploaded_s:.0} s, all indexed after {settled_s:.0} s \
         ({:.0} documents/s), slowest health check {slowest:?}, peak RSS {peak} MB",
        FILES as f64 / settled_s
    );
    assert!(slowest < Duration::from_secs(2), "health took {slowest:?}");
}
