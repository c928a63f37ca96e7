use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::*;
use crate::services::fetch::TOOL_KEYS;
use crate::store::bot_tools::{HttpMethod, HttpTool, ToolHeader};

/// A stand-in API on loopback: weather by city (wants an API key), orders by id, a slow
/// route, and an echo of a POSTed body.
async fn stand_in_api() -> String {
    let app = Router::new()
        .route(
            "/weather/{city}",
            get(
                |Path(city): Path<String>,
                 Query(q): Query<std::collections::HashMap<String, String>>,
                 headers: HeaderMap| async move {
                    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("k-123") {
                        return (axum::http::StatusCode::UNAUTHORIZED, "bad key").into_response();
                    }
                    Json(json!({"city": city, "temp_c": 21, "units": q.get("units")}))
                        .into_response()
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/echo",
            post(|Json(body): Json<Value>| async move { Json(body) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

use axum::response::IntoResponse;

fn service(allow_private: bool) -> ToolService {
    ToolService {
        fetcher: Fetcher {
            max_bytes: 10_000,
            timeout: Duration::from_millis(1_000),
            allow_private,
            keys: TOOL_KEYS,
        },
        secrets: Arc::new(SecretBox::with_key("test")),
        max_result_chars: 200,
        max_calls_per_answer: 6,
        max_rounds: 3,
    }
}

fn http_tool(name: &str, method: HttpMethod, url: String, headers: Vec<ToolHeader>) -> BotTool {
    BotTool::Http(HttpTool {
        name: name.into(),
        description: format!("{name} for tests"),
        method,
        url,
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        headers,
    })
}

#[tokio::test]
async fn tools_run_together_and_a_failing_one_is_a_result() {
    let base = stand_in_api().await;
    let tools_service = service(true);
    let mut tools = vec![
        http_tool(
            "weather",
            HttpMethod::Get,
            format!("{base}/weather/{{city}}"),
            vec![ToolHeader {
                name: "X-Api-Key".into(),
                value: Some("k-123".into()),
                secret: true,
                sealed: None,
            }],
        ),
        http_tool("slow", HttpMethod::Get, format!("{base}/slow"), vec![]),
        http_tool("echo", HttpMethod::Post, format!("{base}/echo"), vec![]),
        BotTool::Calculator,
    ];
    check_tools(&tools).unwrap();
    seal_secrets(&mut tools, &[], &tools_service.secrets).unwrap();
    let calls = [
        ToolCall::new("weather", r#"{"city": "北京", "units": "metric"}"#),
        ToolCall::new("slow", "{}"),
        ToolCall::new("echo", r#"{"city": "上海", "n": 2}"#),
        ToolCall::new("calculator", r#"{"expression": "2*21"}"#),
        ToolCall::new("nothing", "{}"),
    ];
    let started = Instant::now();
    let steps = tools_service.run_all(&tools, &calls).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "calls ran together"
    );
    assert!(steps[0].ok, "{:?}", steps[0]);
    assert_eq!(
        steps[0].result,
        r#"{"city":"北京","temp_c":21,"units":"metric"}"#
    );
    assert!(!steps[1].ok);
    assert!(
        steps[1].result.contains("tools.timeout_ms"),
        "{}",
        steps[1].result
    );
    assert_eq!(steps[2].result, r#"{"city":"上海","n":2}"#);
    assert_eq!(steps[3].result, "2*21 = 42");
    assert!(
        steps[4].result.contains("no tool named"),
        "{}",
        steps[4].result
    );
    assert_eq!(steps[0].id, calls[0].id);
}

#[tokio::test]
async fn a_secret_is_stored_sealed_and_kept_when_resent_without_a_value() {
    let base = stand_in_api().await;
    let tools_service = service(true);
    let key = |value: Option<&str>| ToolHeader {
        name: "X-Api-Key".into(),
        value: value.map(str::to_string),
        secret: true,
        sealed: Some("xc1:forged".into()),
    };
    let url = format!("{base}/weather/{{city}}");
    let mut stored = vec![http_tool(
        "weather",
        HttpMethod::Get,
        url.clone(),
        vec![key(Some("k-123"))],
    )];
    seal_secrets(&mut stored, &[], &tools_service.secrets).unwrap();
    let BotTool::Http(http) = &stored[0] else {
        panic!()
    };
    assert_eq!(http.headers[0].value, None);
    let sealed = http.headers[0].sealed.clone().unwrap();
    assert!(!sealed.contains("k-123") && sealed != "xc1:forged");
    let shown = serde_json::to_string(&crate::store::bot_tools::redacted(&stored)).unwrap();
    assert!(
        !shown.contains(&sealed) && !shown.contains("k-123"),
        "{shown}"
    );

    // Saved again as the API showed it: the stored secret stays and still works.
    let mut resent = vec![http_tool(
        "weather",
        HttpMethod::Get,
        url.clone(),
        vec![key(None)],
    )];
    seal_secrets(&mut resent, &stored, &tools_service.secrets).unwrap();
    let steps = tools_service
        .run_all(&resent, &[ToolCall::new("weather", r#"{"city":"广州"}"#)])
        .await;
    assert!(steps[0].ok, "{:?}", steps[0]);

    // A new tool's secret without a value is refused.
    let mut fresh = vec![http_tool("other", HttpMethod::Get, url, vec![key(None)])];
    let e = seal_secrets(&mut fresh, &stored, &tools_service.secrets).unwrap_err();
    assert!(e.to_string().contains("has no value"), "{e}");
}

#[tokio::test]
async fn a_tool_cannot_reach_a_private_address_unless_allowed() {
    let base = stand_in_api().await;
    let tools = vec![http_tool(
        "weather",
        HttpMethod::Get,
        format!("{base}/weather/{{city}}"),
        vec![],
    )];
    let steps = service(false)
        .run_all(&tools, &[ToolCall::new("weather", r#"{"city":"x"}"#)])
        .await;
    assert!(!steps[0].ok);
    assert!(
        steps[0].result.contains("tools.allow_private"),
        "{}",
        steps[0].result
    );
    // Allowed, the stand-in answers 401 without the key: a result the model reads.
    let steps = service(true)
        .run_all(&tools, &[ToolCall::new("weather", r#"{"city":"x"}"#)])
        .await;
    assert!(!steps[0].ok);
    assert!(
        steps[0].result.starts_with("error: HTTP 401"),
        "{}",
        steps[0].result
    );
}

#[test]
fn tools_are_checked_when_saved() {
    let ok = http_tool(
        "weather",
        HttpMethod::Get,
        "https://api.example.com/w/{city}".into(),
        vec![],
    );
    check_tools(std::slice::from_ref(&ok)).unwrap();
    let cases = [
        (vec![ok.clone(), ok.clone()], "two tools are named"),
        (
            vec![http_tool(
                "w",
                HttpMethod::Get,
                "https://x.example/{town}".into(),
                vec![],
            )],
            "not one of its parameters",
        ),
        (
            vec![http_tool(
                "w",
                HttpMethod::Get,
                "file:///etc/passwd".into(),
                vec![],
            )],
            "only http and https",
        ),
        (
            vec![http_tool(
                "bad name",
                HttpMethod::Get,
                "https://x.example/".into(),
                vec![],
            )],
            "tool name",
        ),
        (
            vec![http_tool(
                "w",
                HttpMethod::Get,
                "https://x.example/".into(),
                vec![ToolHeader {
                    name: "Bad Header".into(),
                    ..ToolHeader::default()
                }],
            )],
            "not a header name",
        ),
    ];
    for (tools, want) in cases {
        let e = check_tools(&tools).unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn a_long_result_is_cut_and_says_so() {
    let text = "长".repeat(300);
    let cut_text = cut(&text, 200);
    assert!(cut_text.starts_with(&"长".repeat(200)));
    assert!(cut_text.ends_with("(cut at 200 characters)"));
}
