//! Web pages by URL (issue 21 §3): a page served by a small HTTP server started here, on
//! 127.0.0.1, is fetched, indexed and searchable with its URL; a sync of an unchanged page
//! indexes nothing and a changed one replaces its text; redirects past 5 and bodies past
//! the cap fail their document clearly; a crawl stays on its host and under its page cap;
//! and with `ingest.url_allow_private` off (the default) a loopback URL is refused. A KB's
//! re-sync schedule (run here with a minute of 100 ms) picks up a changed page by itself,
//! leaves an unchanged one unindexed, and marks a page that is gone without dropping its
//! text, on SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Server, fixtures_dir, postgres_database};

/// One answer of the test site.
#[derive(Clone)]
enum Route {
    /// A body with its type and, if any, its ETag (an `If-None-Match` equal to it gets 304).
    Page {
        body: Vec<u8>,
        content_type: &'static str,
        etag: Option<String>,
    },
    /// A 302 to this path.
    Redirect(String),
}

/// A tiny HTTP/1.1 server on 127.0.0.1 whose routes the test changes as it goes.
struct Site {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Route>>>,
}

impl Site {
    fn start() -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let shared = routes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let routes = shared.clone();
                std::thread::spawn(move || answer(stream, &routes));
            }
        });
        Site { port, routes }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn page(
        &self,
        path: &str,
        body: impl Into<Vec<u8>>,
        content_type: &'static str,
        etag: Option<&str>,
    ) {
        self.routes.lock().unwrap().insert(
            path.into(),
            Route::Page {
                body: body.into(),
                content_type,
                etag: etag.map(str::to_string),
            },
        );
    }

    /// Take a page away: it answers 404 from now on.
    fn remove(&self, path: &str) {
        self.routes.lock().unwrap().remove(path);
    }

    fn redirect(&self, path: &str, to: &str) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.into(), Route::Redirect(to.into()));
    }
}

fn answer(stream: TcpStream, routes: &Mutex<HashMap<String, Route>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_string());
        }
    }
    let route = routes.lock().unwrap().get(&path).cloned();
    let (head, body) = match route {
        None => (
            "HTTP/1.1 404 Not Found\r\n".to_string(),
            b"not found".to_vec(),
        ),
        Some(Route::Redirect(to)) => (
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\n"),
            Vec::new(),
        ),
        Some(Route::Page {
            body,
            content_type,
            etag,
        }) => match etag {
            Some(etag) if if_none_match.as_deref() == Some(etag.as_str()) => (
                format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n"),
                Vec::new(),
            ),
            Some(etag) => (
                format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nETag: {etag}\r\n"),
                body,
            ),
            None => (
                format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"),
                body,
            ),
        },
    };
    let mut stream = stream;
    let _ = stream.write_all(
        format!(
            "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = stream.write_all(&body);
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(path)).unwrap()
}

fn add_urls(server: &Server, kb: &str, body: Value) -> Vec<Value> {
    let (status, r) = server.post(&format!("/api/kbs/{kb}/documents"), body);
    assert_eq!(status, 202, "{r}");
    r["documents"].as_array().unwrap().clone()
}

fn document(server: &Server, kb: &str, id: &str) -> Value {
    let (status, d) = server.get(&format!("/api/kbs/{kb}/documents/{id}"));
    assert_eq!(status, 200, "{d}");
    d
}

fn chunk_texts(server: &Server, kb: &str, id: &str) -> Vec<(i64, String)> {
    let (status, r) = server.get(&format!("/api/kbs/{kb}/documents/{id}/chunks"));
    assert_eq!(status, 200, "{r}");
    r["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_i64().unwrap(),
                c["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const ALBATROSS: &str = "漂泊信天翁是体型最大的一种信天翁";
const TOKENS: &str = "Token化:为了将文字表示成数字";

#[test]
fn pages_by_url_are_fetched_synced_and_crawled() {
    let site = Site::start();
    site.page(
        "/article.html",
        fixture("docs/zh-article.html"),
        "text/html; charset=utf-8",
        Some("\"v1\""),
    );
    site.page(
        "/plain.html",
        fixture("docs/zh-article.html"),
        "text/html",
        None,
    );
    // 5 redirects reach the page; 6 are one too many.
    for n in 2..=6 {
        site.redirect(&format!("/hop/{n}"), &format!("/hop/{}", n - 1));
    }
    site.redirect("/hop/1", "/plain.html");
    site.page("/big.txt", vec![b'a'; 300_000], "text/plain", None);

    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_INGEST__URL_ALLOW_PRIVATE", "true"),
            ("ZHIKU_INGEST__MAX_FETCH_BYTES", "200000"),
        ],
    );
    let (_, limits) = server.get("/api/limits");
    assert_eq!(limits["web"]["fetch_bytes"], 200_000, "{limits}");
    assert_eq!(limits["web"]["redirects"], 5, "{limits}");
    let kb = server.create_kb("web");

    let added = add_urls(
        &server,
        &kb,
        json!({"urls": [
            site.url("/article.html"),
            site.url("/hop/5"),
            site.url("/hop/6"),
            site.url("/big.txt"),
            site.url("/missing.html"),
        ]}),
    );
    assert_eq!(added.len(), 5);
    assert!(added.iter().all(|d| d["status"] == "queued"), "{added:?}");
    let id = |i: usize| added[i]["id"].as_str().unwrap().to_string();
    // The same URL again is a duplicate, as the same file is.
    let again = add_urls(&server, &kb, json!({"urls": [site.url("/article.html")]}));
    assert_eq!(again[0]["duplicate"], true, "{again:?}");
    assert_eq!(again[0]["id"], added[0]["id"]);

    server.wait_settled(&kb, Duration::from_secs(300));
    let article = document(&server, &kb, &id(0));
    assert_eq!(article["status"], "indexed", "{article}");
    assert_eq!(article["source_url"], site.url("/article.html"));
    assert_eq!(article["kind"], "html");
    assert!(article["fetched_at"].is_string(), "{article}");
    let redirected = document(&server, &kb, &id(1));
    assert_eq!(
        redirected["status"], "indexed",
        "5 redirects are allowed: {redirected}"
    );
    let too_many = document(&server, &kb, &id(2));
    assert_eq!(too_many["status"], "failed", "{too_many}");
    assert_eq!(too_many["error"]["code"], "fetch_failed", "{too_many}");
    assert!(
        too_many["error"]["message"]
            .as_str()
            .unwrap()
            .contains("redirected more than 5 times"),
        "{too_many}"
    );
    let big = document(&server, &kb, &id(3));
    assert_eq!(big["status"], "failed", "{big}");
    assert_eq!(big["error"]["code"], "too_large", "{big}");
    assert!(
        big["error"]["message"]
            .as_str()
            .unwrap()
            .contains("200000 bytes"),
        "{big}"
    );
    let missing = document(&server, &kb, &id(4));
    assert_eq!(missing["status"], "failed", "{missing}");
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{missing}"
    );

    // Searchable, and the result carries the page's URL for the citation's link.
    let (status, r) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "漂泊信天翁的翼展有多长", "top_k": 3}),
    );
    assert_eq!(status, 200, "{r}");
    let first = &r["results"][0];
    assert!(
        first["text"].as_str().unwrap().contains("漂泊信天翁"),
        "{r}"
    );
    assert!(
        first["source_url"]
            .as_str()
            .unwrap()
            .starts_with(&site.url("/")),
        "{r}"
    );

    // Sync, unchanged (304 on the ETag): nothing is indexed again.
    let before = chunk_texts(&server, &kb, &id(0));
    assert!(
        before.iter().any(|(_, t)| t.contains(ALBATROSS)),
        "{before:?}"
    );
    let (status, sync) = server.post(
        &format!("/api/kbs/{kb}/documents/{}/sync", id(0)),
        json!({}),
    );
    assert_eq!(status, 200, "{sync}");
    assert_eq!(sync["changed"], false, "{sync}");
    assert!(sync["job_id"].is_null(), "{sync}");
    assert_eq!(sync["document"]["status"], "indexed");
    assert!(sync["document"]["checked_at"].is_string(), "{sync}");
    assert_eq!(chunk_texts(&server, &kb, &id(0)), before);
    // Unchanged without an ETag: the same bytes are recognised by their hash.
    let (status, sync) = server.post(
        &format!("/api/kbs/{kb}/documents/{}/sync", id(1)),
        json!({}),
    );
    assert_eq!((status, &sync["changed"]), (200, &json!(false)), "{sync}");

    // Changed: the new text is found and the old text is gone.
    site.page(
        "/article.html",
        fixture("docs/llm-intro-zh/03.txt"),
        "text/plain; charset=utf-8",
        Some("\"v2\""),
    );
    let (status, sync) = server.post(
        &format!("/api/kbs/{kb}/documents/{}/sync", id(0)),
        json!({}),
    );
    assert_eq!(status, 200, "{sync}");
    assert_eq!(sync["changed"], true, "{sync}");
    assert!(sync["job_id"].is_i64(), "{sync}");
    server.wait_settled(&kb, Duration::from_secs(300));
    let synced = document(&server, &kb, &id(0));
    assert_eq!(synced["status"], "indexed", "{synced}");
    assert_eq!(synced["kind"], "text", "{synced}");
    let after = chunk_texts(&server, &kb, &id(0));
    assert!(after.iter().any(|(_, t)| t.contains(TOKENS)), "{after:?}");
    assert!(
        !after.iter().any(|(_, t)| t.contains("信天翁")),
        "{after:?}"
    );
    let (_, r) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": TOKENS, "mode": "fulltext", "top_k": 5}),
    );
    assert_eq!(r["results"][0]["document_id"], json!(id(0)), "{r}");
    // An uploaded document has nothing to sync.
    let (status, pasted) = server.post(
        &format!("/api/kbs/{kb}/documents"),
        json!({"name": "note.txt", "text": "一条笔记"}),
    );
    assert_eq!(status, 202, "{pasted}");
    let note = pasted["documents"][0]["id"].as_str().unwrap();
    server.wait_settled(&kb, Duration::from_secs(120));
    let (status, e) = server.post(&format!("/api/kbs/{kb}/documents/{note}/sync"), json!({}));
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to sync"),
        "{e}"
    );

    // A crawl: same host only, at most max_pages pages, max_depth links deep.
    let other_host = format!("http://localhost:{}/site/elsewhere.html", site.port);
    site.page(
        "/site/index.html",
        format!(
            r#"<html><body><h1>站点首页</h1><p>欢迎来到测试站点的首页。</p>
            <a href="{other_host}">别处</a> <a href="a.html">甲</a> <a href="/site/b.html#top">乙</a>
            <a href="d.html">丁</a></body></html>"#
        ),
        "text/html",
        None,
    );
    for (page, text) in [
        ("a", "甲页讲的是苹果。"),
        ("b", "乙页讲的是香蕉。"),
        ("d", "丁页讲的是葡萄。"),
    ] {
        site.page(
            &format!("/site/{page}.html"),
            format!(
                r#"<html><body><p>{text}</p><a href="deep-{page}.html">更深</a></body></html>"#
            ),
            "text/html",
            None,
        );
        site.page(
            &format!("/site/deep-{page}.html"),
            format!("<p>{page} 的下一层</p>"),
            "text/html",
            None,
        );
    }
    site.page("/site/elsewhere.html", "<p>别的主机</p>", "text/html", None);
    let crawl_kb = server.create_kb("crawl");
    let started = add_urls(
        &server,
        &crawl_kb,
        json!({"urls": [site.url("/site/index.html")], "crawl": {"max_depth": 1, "max_pages": 3}}),
    );
    assert_eq!(started.len(), 1);
    let docs = server.wait_settled(&crawl_kb, Duration::from_secs(300));
    let mut urls: Vec<&str> = docs
        .iter()
        .map(|d| d["source_url"].as_str().unwrap())
        .collect();
    urls.sort_unstable();
    assert_eq!(
        urls,
        [
            site.url("/site/a.html"),
            site.url("/site/b.html"),
            site.url("/site/index.html")
        ],
        "{docs:?}"
    );
    assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");

    // A sitemap adds the pages it lists on its own host.
    site.page(
        "/sitemap.xml",
        format!(
            r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <url><loc>{}</loc></url><url><loc>{other_host}</loc></url><url><loc>{}</loc></url></urlset>"#,
            site.url("/site/deep-a.html"),
            site.url("/site/deep-b.html")
        ),
        "application/xml",
        None,
    );
    let map_kb = server.create_kb("sitemap");
    let listed = add_urls(
        &server,
        &map_kb,
        json!({"urls": [site.url("/sitemap.xml")]}),
    );
    let mut names: Vec<&str> = listed.iter().map(|d| d["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let host = format!("127.0.0.1:{}", site.port);
    assert_eq!(
        names,
        [
            format!("{host}/site/deep-a.html"),
            format!("{host}/site/deep-b.html")
        ],
        "{listed:?}"
    );
}

#[test]
fn a_loopback_url_is_refused_by_default() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("web");
    for url in [
        "http://127.0.0.1:9/page.html",
        "http://localhost:9/",
        "http://[::1]:9/",
    ] {
        let (status, e) = server.post(&format!("/api/kbs/{kb}/documents"), json!({"urls": [url]}));
        assert_eq!(status, 400, "{url}: {e}");
        assert_eq!(e["error"]["code"], "url_refused", "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("private address"),
            "{e}"
        );
    }
    let (status, e) = server.post(
        &format!("/api/kbs/{kb}/documents"),
        json!({"urls": ["file:///etc/passwd"]}),
    );
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("url_refused")),
        "{e}"
    );
    // Nothing was stored.
    let (_, docs) = server.get(&format!("/api/kbs/{kb}/documents"));
    assert_eq!(docs, json!([]));
}

/// Poll `what` until `done` holds for the document, or fail after `deadline`.
fn wait_document(
    server: &Server,
    kb: &str,
    id: &str,
    deadline: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let d = document(server, kb, id);
        if done(&d) {
            return d;
        }
        assert!(
            started.elapsed() < deadline,
            "{what} not seen in {deadline:?}: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_kb_schedule_re_syncs_its_web_pages() {
    schedule_re_syncs_web_pages(None);
}

/// The same on PostgreSQL (a database of its own in the test binary's throw-away
/// cluster): the schedule's statements compare the stored check times as text, which
/// must order the same there.
#[test]
fn a_kb_schedule_re_syncs_its_web_pages_on_postgres() {
    let url = postgres_database();
    schedule_re_syncs_web_pages(Some(&url));
}

/// A KB's schedule on `database` (`None`: the default SQLite file).
fn schedule_re_syncs_web_pages(database: Option<&str>) {
    let site = Site::start();
    site.page(
        "/news.html",
        fixture("docs/zh-article.html"),
        "text/html",
        Some("\"n1\""),
    );
    site.page("/static.html", "<p>这一页从不改变。</p>", "text/html", None);
    site.page(
        "/manual.html",
        "<p>这一页只手动同步。</p>",
        "text/html",
        None,
    );
    let data = tempfile::tempdir().unwrap();
    // A minute of 100 ms: a 5-minute schedule comes round every half second.
    let mut env = vec![
        ("ZHIKU_INGEST__URL_ALLOW_PRIVATE", "true"),
        ("ZHIKU_INGEST__WEB_SYNC_MINUTE_MS", "100"),
    ];
    env.extend(database.map(|url| ("ZHIKU_DATABASE__URL", url)));
    let server = Server::start_with(data.path(), &env);
    let (_, limits) = server.get("/api/limits");
    assert_eq!(limits["web"]["sync_interval_minutes_min"], 5, "{limits}");
    assert_eq!(
        limits["web"]["sync_interval_minutes_max"], 43_200,
        "{limits}"
    );

    let kb = server.create_kb("fresh");
    let (_, view) = server.get(&format!("/api/kbs/{kb}"));
    assert!(
        view["web_sync_interval_minutes"].is_null(),
        "off by default: {view}"
    );
    for bad in [json!(1), json!(43_201), json!(0)] {
        let (status, e) = server.patch(
            &format!("/api/kbs/{kb}"),
            json!({"web_sync_interval_minutes": bad}),
        );
        assert_eq!(status, 400, "{bad}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("between 5 and 43200"),
            "{e}"
        );
    }
    let manual_kb = server.create_kb("manual");
    let added = add_urls(
        &server,
        &kb,
        json!({"urls": [site.url("/news.html"), site.url("/static.html")]}),
    );
    let manual = add_urls(
        &server,
        &manual_kb,
        json!({"urls": [site.url("/manual.html")]}),
    );
    let (news, still) = (
        added[0]["id"].as_str().unwrap().to_string(),
        added[1]["id"].as_str().unwrap().to_string(),
    );
    server.wait_settled(&kb, Duration::from_secs(300));
    server.wait_settled(&manual_kb, Duration::from_secs(300));
    let still_before = document(&server, &kb, &still);
    let manual_id = manual[0]["id"].as_str().unwrap();
    let manual_before = document(&server, &manual_kb, manual_id);

    // The news page changes; the schedule, once on, finds it and indexes it again.
    site.page(
        "/news.html",
        fixture("docs/llm-intro-zh/03.txt"),
        "text/plain; charset=utf-8",
        Some("\"n2\""),
    );
    let (status, view) = server.patch(
        &format!("/api/kbs/{kb}"),
        json!({"web_sync_interval_minutes": 5}),
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["web_sync_interval_minutes"], 5, "{view}");
    let synced = wait_document(
        &server,
        &kb,
        &news,
        Duration::from_secs(300),
        "the changed page indexed again",
        |d| d["status"] == "indexed" && d["kind"] == "text",
    );
    assert!(synced["check_error"].is_null(), "{synced}");
    let text = chunk_texts(&server, &kb, &news);
    assert!(text.iter().any(|(_, t)| t.contains(TOKENS)), "{text:?}");
    assert!(!text.iter().any(|(_, t)| t.contains("信天翁")), "{text:?}");
    // The unchanged page was checked again but not indexed again.
    let still_after = wait_document(
        &server,
        &kb,
        &still,
        Duration::from_secs(60),
        "the unchanged page checked again",
        |d| d["checked_at"].as_str() > still_before["checked_at"].as_str(),
    );
    assert_eq!(
        still_after["job_id"], still_before["job_id"],
        "{still_after}"
    );
    assert_eq!(still_after["status"], "indexed");

    // The page goes away: marked on the document, its text kept, nothing deleted.
    site.remove("/news.html");
    let gone = wait_document(
        &server,
        &kb,
        &news,
        Duration::from_secs(60),
        "the gone page marked",
        |d| !d["check_error"].is_null(),
    );
    assert_eq!(gone["check_error"]["code"], "page_gone", "{gone}");
    assert!(
        gone["check_error"]["message"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{gone}"
    );
    assert_eq!(gone["status"], "indexed", "{gone}");
    assert_eq!(chunk_texts(&server, &kb, &news), text);
    // It comes back: the next check clears the mark.
    site.page(
        "/news.html",
        fixture("docs/llm-intro-zh/03.txt"),
        "text/plain; charset=utf-8",
        Some("\"n2\""),
    );
    wait_document(
        &server,
        &kb,
        &news,
        Duration::from_secs(60),
        "the mark cleared",
        |d| d["check_error"].is_null(),
    );

    // Off again; a KB without a schedule was never checked by it.
    let (status, view) = server.patch(
        &format!("/api/kbs/{kb}"),
        json!({"web_sync_interval_minutes": null}),
    );
    assert_eq!(status, 200, "{view}");
    assert!(view["web_sync_interval_minutes"].is_null(), "{view}");
    let manual_after = document(&server, &manual_kb, manual_id);
    assert_eq!(manual_after["checked_at"], manual_before["checked_at"]);
    // A manual sync of a gone page says so and marks it too.
    site.remove("/manual.html");
    let (status, e) = server.post(
        &format!("/api/kbs/{manual_kb}/documents/{manual_id}/sync"),
        json!({}),
    );
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (502, Some("page_gone")),
        "{e}"
    );
    let marked = document(&server, &manual_kb, manual_id);
    assert_eq!(marked["check_error"]["code"], "page_gone", "{marked}");
    assert_eq!(marked["status"], "indexed", "{marked}");
}

fn links_page(text: &str, hrefs: &[&str]) -> String {
    let links: String = hrefs
        .iter()
        .map(|href| format!(r#"<a href="{href}">{href}</a> "#))
        .collect();
    format!("<html><body><p>{text}</p>{links}</body></html>")
}

fn urlset(urls: &[String]) -> String {
    let entries: String = urls
        .iter()
        .map(|u| format!("<url><loc>{u}</loc></url>"))
        .collect();
    format!(
        r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>"#
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use flate2::write::GzEncoder;
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn source_urls(docs: &[Value]) -> Vec<String> {
    let mut urls: Vec<String> = docs
        .iter()
        .map(|d| d["source_url"].as_str().unwrap().to_string())
        .collect();
    urls.sort_unstable();
    urls
}

#[test]
fn a_re_sync_re_crawls_and_sitemap_indexes_are_read() {
    let site = Site::start();
    site.page(
        "/c/index.html",
        links_page("首页", &["a.html", "b.html"]),
        "text/html",
        None,
    );
    site.page("/c/a.html", "<p>甲页讲苹果。</p>", "text/html", None);
    site.page("/c/b.html", "<p>乙页讲香蕉。</p>", "text/html", None);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("ZHIKU_INGEST__URL_ALLOW_PRIVATE", "true")]);
    let kb = server.create_kb("recrawl");
    let started = add_urls(
        &server,
        &kb,
        json!({"urls": [site.url("/c/index.html")], "crawl": {"max_depth": 1, "max_pages": 4}}),
    );
    let start = started[0]["id"].as_str().unwrap().to_string();
    let docs = server.wait_settled(&kb, Duration::from_secs(300));
    assert_eq!(docs.len(), 3, "{docs:?}");
    let b = docs
        .iter()
        .find(|d| d["source_url"] == site.url("/c/b.html"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The site gains two pages (the cap leaves room for one) and loses one.
    site.page(
        "/c/index.html",
        links_page("首页", &["a.html", "b.html", "c.html", "d.html"]),
        "text/html",
        None,
    );
    site.page("/c/c.html", "<p>丙页讲橘子。</p>", "text/html", None);
    site.page("/c/d.html", "<p>丁页讲葡萄。</p>", "text/html", None);
    site.remove("/c/b.html");
    let (status, sync) = server.post(&format!("/api/kbs/{kb}/documents/{start}/sync"), json!({}));
    assert_eq!(status, 200, "{sync}");
    assert_eq!(sync["changed"], true, "{sync}");
    assert_eq!(sync["pages_added"], 1, "the page cap is 4: {sync}");
    assert_eq!(sync["crawl_pages_checking"], 2, "{sync}");
    let gone = wait_document(
        &server,
        &kb,
        &b,
        Duration::from_secs(60),
        "the removed page marked",
        |d| !d["check_error"].is_null(),
    );
    assert_eq!(gone["check_error"]["code"], "page_gone", "{gone}");
    assert_eq!(gone["status"], "indexed", "kept, not deleted: {gone}");
    assert!(!chunk_texts(&server, &kb, &b).is_empty());
    let docs = server.wait_settled(&kb, Duration::from_secs(300));
    assert_eq!(
        source_urls(&docs),
        [
            site.url("/c/a.html"),
            site.url("/c/b.html"),
            site.url("/c/c.html"),
            site.url("/c/index.html")
        ],
        "{docs:?}"
    );
    assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");

    // A sitemap index: its sitemaps on the same host are read, a gzipped one too.
    for n in 1..=4 {
        site.page(
            &format!("/s/{n}.html"),
            format!("<p>第{n}页。</p>"),
            "text/html",
            None,
        );
    }
    let other_host = format!("http://localhost:{}/maps/elsewhere.xml", site.port);
    site.page(
        "/maps/index.xml",
        format!(
            r#"<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <sitemap><loc>{}</loc></sitemap><sitemap><loc>{}</loc></sitemap>
            <sitemap><loc>{other_host}</loc></sitemap></sitemapindex>"#,
            site.url("/maps/one.xml"),
            site.url("/maps/two.xml.gz")
        ),
        "application/xml",
        None,
    );
    site.page(
        "/maps/one.xml",
        urlset(&[site.url("/s/1.html"), site.url("/s/2.html")]),
        "application/xml",
        None,
    );
    site.page(
        "/maps/two.xml.gz",
        gzip(urlset(&[site.url("/s/3.html")]).as_bytes()),
        "application/gzip",
        None,
    );
    site.page(
        "/maps/elsewhere.xml",
        urlset(&[site.url("/s/4.html")]),
        "application/xml",
        None,
    );
    let map_kb = server.create_kb("maps");
    let listed = add_urls(
        &server,
        &map_kb,
        json!({"urls": [site.url("/maps/index.xml")]}),
    );
    let mut names: Vec<&str> = listed.iter().map(|d| d["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let host = format!("127.0.0.1:{}", site.port);
    assert_eq!(
        names,
        [
            format!("{host}/s/1.html"),
            format!("{host}/s/2.html"),
            format!("{host}/s/3.html")
        ],
        "{listed:?}"
    );
    server.wait_settled(&map_kb, Duration::from_secs(300));

    // The sitemap lists a new page: syncing the first page read from it reads it again.
    site.page(
        "/maps/one.xml",
        urlset(&[
            site.url("/s/1.html"),
            site.url("/s/2.html"),
            site.url("/s/4.html"),
        ]),
        "application/xml",
        None,
    );
    let first = listed[0]["id"].as_str().unwrap();
    let (status, sync) = server.post(
        &format!("/api/kbs/{map_kb}/documents/{first}/sync"),
        json!({}),
    );
    assert_eq!(status, 200, "{sync}");
    assert_eq!(sync["changed"], false, "{sync}");
    assert_eq!(sync["pages_added"], 1, "{sync}");
    let docs = server.wait_settled(&map_kb, Duration::from_secs(300));
    assert_eq!(docs.len(), 4, "{docs:?}");
    assert!(
        source_urls(&docs).contains(&site.url("/s/4.html")),
        "{docs:?}"
    );
}
