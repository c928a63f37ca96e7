//! Access limits a user would notice: a bot key past its requests per minute gets 429 with
//! Retry-After (other keys unaffected); CORS is off unless an origin is allowed; an
//! oversize JSON body is refused.

use serde_json::json;

use crate::common::Server;

#[test]
fn keys_are_rate_limited_and_cors_is_off_unless_allowed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_HTTP__KEY_REQUESTS_PER_MINUTE", "3"),
            (
                "ZHIKU_HTTP__CORS_ALLOWED_ORIGINS",
                "[\"http://intranet.example\"]",
            ),
            ("ZHIKU_HTTP__MAX_JSON_BODY_BYTES", "65536"),
        ],
    );
    let a = server.create_bot(json!({"name": "a"}));
    let b = server.create_bot(json!({"name": "b"}));
    let key_a = server.publish_with_key(&a);
    let key_b = server.publish_with_key(&b);
    let http = reqwest::blocking::Client::new();
    let models = |key: &str| {
        http.get(server.url("/v1/models"))
            .bearer_auth(key)
            .send()
            .unwrap()
    };
    for _ in 0..3 {
        assert_eq!(models(&key_a).status(), 200);
    }
    let limited = models(&key_a);
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = limited.json().unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(
        models(&key_b).status(),
        200,
        "another key has its own budget"
    );

    // CORS: the allowed origin gets the headers, another origin does not.
    let preflight = |origin: &str| {
        http.request(reqwest::Method::OPTIONS, server.url("/v1/chat/completions"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
            .unwrap()
    };
    let allowed = preflight("http://intranet.example");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("http://intranet.example")
    );
    assert!(
        preflight("http://evil.example")
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // A JSON body over the limit is refused before it is read whole.
    let big = "字".repeat(40_000);
    let r = http
        .post(server.url("/api/kbs"))
        .bearer_auth(crate::common::TOKEN)
        .json(&json!({"name": "x", "description": big}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[test]
fn cors_is_off_by_default() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let r = reqwest::blocking::Client::new()
        .get(server.url("/health"))
        .header("Origin", "http://anywhere.example")
        .send()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

/// With debug logging on (what a user turns on to troubleshoot), neither the admin token,
/// a bot key (valid or not) nor the remote model's API key appears in the log.
#[test]
fn secrets_never_reach_the_log() {
    let debug = [("ZHIKU_LOG", "debug")];
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &debug);
    let bot = server.create_bot(serde_json::json!({"name": "audit", "model": {"max_tokens": 8}}));
    let key = server.publish_with_key(&bot);
    let wrong = "zk-this-is-not-a-real-key-0123456789";
    let ask = serde_json::json!({"message": "hi"});
    assert_eq!(
        server
            .chat(&format!("/api/chat/{bot}"), &key, ask.clone())
            .0,
        200
    );
    assert_eq!(server.chat(&format!("/api/chat/{bot}"), wrong, ask).0, 401);
    let (status, _) = server.request_as(
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(serde_json::json!({"model": bot, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})),
    );
    assert_eq!(status, 200);

    // A second server that uses the first as its remote model, with the key as its
    // remote API key.
    let relay_data = tempfile::tempdir().unwrap();
    let remote_url = server.url("/v1");
    let relay = Server::start_with(
        relay_data.path(),
        &[
            ("ZHIKU_LOG", "debug"),
            ("ZHIKU_LLM__BACKEND", "remote"),
            ("ZHIKU_LLM__REMOTE_URL", &remote_url),
            ("ZHIKU_LLM__REMOTE_API_KEY", &key),
            ("ZHIKU_LLM__REMOTE_MODEL", &bot),
        ],
    );
    let relayed =
        relay.create_bot(serde_json::json!({"name": "relayed", "model": {"max_tokens": 8}}));
    let (status, events) = relay.chat(
        &format!("/api/bots/{relayed}/chat"),
        crate::common::TOKEN,
        serde_json::json!({"message": "hi"}),
    );
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");

    for (name, log) in [("server", server.logs()), ("relay", relay.logs())] {
        assert!(log.contains("DEBUG"), "{name}: debug logging was not on");
        for (what, secret) in [
            ("admin token", crate::common::TOKEN),
            ("bot key", &key),
            ("wrong key", wrong),
        ] {
            assert!(!log.contains(secret), "{name}: the {what} is in the log");
        }
    }
}
