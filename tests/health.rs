//! What an operator sees of a node: `/health` ready on a working server and degraded, with
//! the reason, when the chat model is missing (503, so a load balancer takes the node
//! out); `/metrics` in the Prometheus text format, behind a token, counting requests under
//! their route templates and showing the ingestion queue as it is, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Server, TOKEN, llm_intro_files, postgres_database};

/// One sample line: (name, labels as written, value); `None` for anything else.
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let valid = !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
    valid.then_some((name, labels, value))
}

/// `GET /metrics` with `token`: (status, content type, body).
fn scrape(server: &Server, token: Option<&str>) -> (u16, String, String) {
    let mut request = reqwest::blocking::Client::new().get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, r.text().unwrap())
}

/// Scrape with the admin token and check every line is a comment or a valid sample.
fn metrics(server: &Server) -> String {
    let (status, content_type, text) = scrape(server, Some(TOKEN));
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP ") || line.starts_with("# TYPE ") || sample(line).is_some(),
            "not a Prometheus line: {line:?}"
        );
    }
    text
}

/// The value of the sample `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(sample)
        .find(|(name, labels, _)| match labels.is_empty() {
            true => *name == series,
            false => format!("{name}{{{labels}}}") == series,
        })
        .map(|(_, _, v)| v)
}

/// `GET /health` without a token, or with `token`.
fn health(server: &Server, token: Option<&str>) -> (u16, Value) {
    server.request_as("GET", "/health", token, None)
}

#[test]
fn a_working_node_is_ready_and_its_metrics_count_routes_and_the_queue() {
    let data = tempfile::tempdir().unwrap();
    // One worker taking one document at a time, so uploaded documents wait their turn.
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_INGEST__WORKERS", "1"),
            ("ZHIKU_INGEST__BATCH_MAX_JOBS", "1"),
        ],
    );
    let (status, body) = health(&server, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["reasons"], serde_json::json!([]));
    for check in ["database", "llm", "embedder"] {
        assert_eq!(body["checks"][check]["ok"], true, "{check}: {body}");
    }
    assert_eq!(body["checks"]["database"]["about"], "SQLite");

    // Without a token, or with a wrong one, no metrics.
    assert_eq!(scrape(&server, None).0, 401);
    assert_eq!(scrape(&server, Some("wrong")).0, 401);

    let kb = server.create_kb("metrics");
    for _ in 0..3 {
        assert_eq!(server.get(&format!("/api/kbs/{kb}")).0, 200);
    }
    assert_eq!(server.get("/api/kbs/no-such-kb").0, 404);
    let files = llm_intro_files();
    let (status, body) = server.upload(&kb, &files);
    assert_eq!(status, 202, "{body}");

    // Right after the upload the worker has at most one document (it first loads the
    // passage model, about a second): the others are queued, and every job is counted in
    // exactly one status.
    let text = metrics(&server);
    let depth = value(&text, "zhiku_ingest_queue_depth").unwrap();
    assert!(
        depth >= 1.0,
        "queue depth {depth} right after 5 uploads\n{text}"
    );
    let counted: f64 = ["enqueued", "processing", "succeeded", "failed", "canceled"]
        .iter()
        .map(|s| value(&text, &format!("zhiku_ingest_jobs{{status=\"{s}\"}}")).unwrap())
        .sum();
    assert_eq!(counted, files.len() as f64, "{text}");
    assert_eq!(
        value(&text, "zhiku_ingest_jobs{status=\"enqueued\"}"),
        Some(depth)
    );

    // Requests are counted under their route template, never the path asked.
    let route = |status: &str| {
        value(
            &text,
            &format!(
                "zhiku_http_requests_total{{route=\"/api/kbs/{{kb}}\",method=\"GET\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(route("2xx"), Some(3.0), "{text}");
    assert_eq!(route("4xx"), Some(1.0), "{text}");
    assert!(
        value(
            &text,
            "zhiku_http_request_duration_seconds_count{route=\"/api/kbs/{kb}\",method=\"GET\"}"
        ) == Some(4.0),
        "{text}"
    );
    assert!(
        !text.contains(&kb) && !text.contains("no-such-kb"),
        "{text}"
    );

    // Once the queue has drained, the metrics say so, and the passages were counted.
    let deadline = Instant::now() + Duration::from_secs(300);
    let text = loop {
        let text = metrics(&server);
        if value(&text, "zhiku_ingest_jobs{status=\"succeeded\"}") == Some(files.len() as f64) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never drained:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(value(&text, "zhiku_ingest_queue_depth"), Some(0.0));
    assert_eq!(value(&text, "zhiku_index_lag_chunks"), Some(0.0));
    assert!(value(&text, "zhiku_embeddings_total{kind=\"passage\"}").unwrap() >= 5.0);
    // The local engine's slots: none busy now.
    assert!(value(&text, "zhiku_llm_slots").unwrap() >= 1.0, "{text}");
    assert_eq!(value(&text, "zhiku_llm_slots_busy"), Some(0.0));
    assert_eq!(value(&text, "zhiku_llm_requests_queued"), Some(0.0));

    // A search embeds its question.
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/search"),
        serde_json::json!({"query": "什么是大语言模型", "mode": "semantic"}),
    );
    assert_eq!(status, 200, "{body}");
    let text = metrics(&server);
    assert!(value(&text, "zhiku_embeddings_total{kind=\"query\"}").unwrap() >= 1.0);

    // An answer is counted in tokens and time, and its slot is free again once it is done.
    let bot = server.create_bot(serde_json::json!({
        "name": "counted", "knowledge_bases": [kb], "model": {"max_tokens": 16}
    }));
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        serde_json::json!({"message": "什么是大语言模型？"}),
    );
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = metrics(&server);
        if value(&text, "zhiku_llm_slots_busy") == Some(0.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "the slot stayed busy:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        value(&text, "zhiku_llm_generations_total").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        value(&text, "zhiku_llm_completion_tokens_total").unwrap() >= 1.0,
        "{text}"
    );
    // First token to last: zero only for a one-token answer, so only its presence is sure.
    assert!(
        value(&text, "zhiku_llm_generation_seconds_total").is_some(),
        "{text}"
    );
    assert!(
        value(
            &text,
            "zhiku_http_requests_total{route=\"/api/bots/{bot}/chat\",method=\"POST\",status=\"2xx\"}"
        ) == Some(1.0),
        "{text}"
    );
}

#[test]
fn a_node_without_its_chat_model_is_degraded_and_says_why() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_LLM__MODEL", "no-such-model"),
            ("ZHIKU_HTTP__METRICS_TOKEN", "scrape-only"),
        ],
    );
    let (status, body) = health(&server, None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(
        body["reasons"],
        serde_json::json!(["chat model unavailable"])
    );
    assert_eq!(body["checks"]["llm"]["ok"], false);
    assert_eq!(body["checks"]["database"]["ok"], true);
    // Without the admin token the details (here a file path) are left out.
    assert!(body["checks"]["llm"].get("error").is_none(), "{body}");
    let (status, body) = health(&server, Some(TOKEN));
    assert_eq!(status, 503);
    let error = body["checks"]["llm"]["error"].as_str().unwrap();
    assert!(
        error.contains("no-such-model") && error.contains("not found"),
        "{error}"
    );

    // Everything else still works.
    server.create_kb("still-here");

    // The metrics token opens /metrics, and nothing else.
    let (status, _, text) = scrape(&server, Some("scrape-only"));
    assert_eq!(status, 200, "{text}");
    assert_eq!(value(&text, "zhiku_llm_slots"), Some(0.0), "{text}");
    let (status, _) = server.request_as("GET", "/api/kbs", Some("scrape-only"), None);
    assert_eq!(status, 401);
}

/// On PostgreSQL the same checks and counts run on the other backend.
#[test]
fn on_postgres_the_database_check_and_the_queue_counts_work_too() {
    let url = postgres_database();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("ZHIKU_DATABASE__URL", url.as_str())]);
    let (status, body) = health(&server, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["database"]["about"], "PostgreSQL");
    let kb = server.create_kb("pg-metrics");
    let (status, body) = server.upload(&kb, &llm_intro_files()[..1]);
    assert_eq!(status, 202, "{body}");
    server.wait_settled(&kb, Duration::from_secs(300));
    let text = metrics(&server);
    assert_eq!(
        value(&text, "zhiku_ingest_jobs{status=\"succeeded\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "zhiku_ingest_queue_depth"), Some(0.0));
    assert_eq!(value(&text, "zhiku_index_lag_chunks"), Some(0.0));
}

/// A remote chat model is available when its server answers `GET /models` with the key:
/// here another zhiku serving a published bot over `/v1`.
#[test]
fn a_remote_chat_model_is_checked_by_asking_its_server() {
    let data_a = tempfile::tempdir().unwrap();
    let a = Server::start(data_a.path());
    let upstream = a.create_bot(serde_json::json!({"name": "upstream"}));
    let key = a.publish_with_key(&upstream);
    let remote_url = a.url("/v1");
    let remote = |url: &str, key: &str| {
        let data = tempfile::tempdir().unwrap();
        let server = Server::start_with(
            data.path(),
            &[
                ("ZHIKU_LLM__BACKEND", "remote"),
                ("ZHIKU_LLM__REMOTE_URL", url),
                ("ZHIKU_LLM__REMOTE_API_KEY", key),
                ("ZHIKU_LLM__REMOTE_MODEL", &upstream),
            ],
        );
        (server, data)
    };

    let (b, _data_b) = remote(&remote_url, &key);
    let (status, body) = health(&b, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["llm"]["about"], format!("remote {upstream}"));

    let (wrong_key, _data_c) = remote(&remote_url, "zk-not-a-key");
    let (status, body) = health(&wrong_key, Some(TOKEN));
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["reasons"],
        serde_json::json!(["chat model unavailable"])
    );
    let error = body["checks"]["llm"]["error"].as_str().unwrap();
    assert!(error.contains("refuses llm.remote_api_key"), "{error}");

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (nobody, _data_d) = remote(&format!("http://127.0.0.1:{port}/v1"), &key);
    let (status, body) = health(&nobody, Some(TOKEN));
    assert_eq!(status, 503, "{body}");
    let error = body["checks"]["llm"]["error"].as_str().unwrap();
    assert!(error.contains("cannot be reached"), "{error}");
}
