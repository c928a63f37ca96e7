//! Hostile and broken uploads: each ends failed with a reason or indexed safely, nothing is
//! written outside the data dir, the server keeps answering health checks throughout, and
//! its memory stays bounded (the peak is printed).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Server, shared_dir};

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
            shared_dir().join("data/docs/not-a-pdf.pdf"),
            "image-as.txt".to_string(),
        ),
        (
            shared_dir().join("data/docs/truncated.pdf"),
            "truncated.pdf".to_string(),
        ),
    ];

    // Health answers all along while these are processed.
    let base = server.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = std::thread::spawn({
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
                assert!(ok, "health check failed during the upload storm");
                slowest = slowest.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(100));
            }
            slowest
        }
    });
    for f in &files {
        let (status, body) = server.upload(&kb, std::slice::from_ref(f));
        assert!(status == 202 || status == 415, "{}: {status} {body}", f.1);
    }
    // 100 MB of one line: over the upload cap, refused with 413 before it is stored.
    let huge = file("huge.txt", &vec![b'x'; 100 << 20]);
    let (status, body) = server.upload(&kb, &[huge]);
    assert_eq!(status, 413, "{body}");

    let docs = server.wait_settled(&kb, Duration::from_secs(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let slowest = watcher.join().unwrap();
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
