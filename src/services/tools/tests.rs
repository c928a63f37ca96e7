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
use crate::services::testing::Fixture;
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

/// The tools' service over a fixture's store and empty knowledge base.
async fn service(allow_private: bool) -> (Fixture, ToolService) {
    let f = Fixture::new().await;
    let store = f.store.clone();
    let service = ToolService {
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
        tables: Arc::new(super::TableQueries::new(store, 30, 2_000)),
        search: f.search.clone(),
    };
    (f, service)
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
    let (_dir, tools_service) = service(true).await;
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
    let steps = tools_service
        .run_all(&tools, &calls, &Scope::default())
        .await;
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
    let (_dir, tools_service) = service(true).await;
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
        .run_all(
            &resent,
            &[ToolCall::new("weather", r#"{"city":"广州"}"#)],
            &Scope::default(),
        )
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
    let (_dir, tools_service) = service(false).await;
    let steps = tools_service
        .run_all(
            &tools,
            &[ToolCall::new("weather", r#"{"city":"x"}"#)],
            &Scope::default(),
        )
        .await;
    assert!(!steps[0].ok);
    assert!(
        steps[0].result.contains("tools.allow_private"),
        "{}",
        steps[0].result
    );
    // Allowed, the stand-in answers 401 without the key: a result the model reads.
    let (_dir, tools_service) = service(true).await;
    let steps = tools_service
        .run_all(
            &tools,
            &[ToolCall::new("weather", r#"{"city":"x"}"#)],
            &Scope::default(),
        )
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

/// A KB with one indexed spreadsheet document: sheet 订单 (日期, 地区, 销售额).
async fn kb_with_sheet(store: &crate::store::Store) -> (String, String) {
    use crate::store::backends::{doc, kb};
    use ingest::extract::{DocKind, Extracted, Section, TableLines};
    let k = store.insert_kb(&kb("sales")).await.unwrap();
    store
        .insert_document(&doc("d1", &k.kb_id, "s1"))
        .await
        .unwrap();
    let text = "日期 | 地区 | 销售额\n2024-01-05 | 华东 | 1,200\n2024-01-09 | 华南 | 800.5\n2024-02-01 | 华东 | 300";
    let sheet = Extracted {
        kind: DocKind::Xlsx,
        sections: vec![Section {
            page: None,
            title: Some("订单".into()),
            text: text.into(),
            ocr: false,
            table: Some(TableLines {
                header_lines: 1,
                rows: vec![1, 2, 3, 4],
            }),
        }],
        page_count: None,
        title: None,
    };
    let tables = ingest::tables::tables_of(&sheet, "sales.xlsx", 1_000);
    let v = [0.5_f32, -1.0];
    store
        .replace_document_content(
            None,
            "d1",
            "xlsx",
            None,
            &[crate::store::backends::chunk(0, text, &v)],
            &tables,
        )
        .await
        .unwrap();
    store
        .set_document_status("d1", "indexed", None)
        .await
        .unwrap();
    (k.kb_id, "d1".into())
}

#[tokio::test]
async fn a_table_query_counts_sums_and_refuses_anything_but_one_select() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&dir.path().join("t.sqlite"))
        .await
        .unwrap();
    // At most 2 rows back, 300 ms a query.
    let (_other, service) = service(true).await;
    let service = ToolService {
        tables: Arc::new(super::TableQueries::new(store.clone(), 2, 300)),
        ..service
    };
    let (kb, _doc) = kb_with_sheet(&store).await;
    let kbs = Scope {
        kb_ids: vec![kb],
        ..Scope::default()
    };
    let tools = vec![BotTool::TableQuery];

    // The model is told the table, its columns and a text column's values.
    let offer = service.offer(&tools, &kbs).await.unwrap().unwrap();
    assert_eq!(offer.table_documents, ["d1"]);
    let description = &offer.tools.tools[0].description;
    assert!(
        description.ends_with(
            "CREATE TABLE 订单 (日期 TEXT /* 日期 YYYY-MM-DD */, 地区 TEXT /* 取值：华东、华南 */, 销售额 REAL); -- 3 行，来自 a.txt 的工作表「订单」\n"
        ),
        "{description}"
    );
    // Without tables, the tool is not offered.
    assert!(
        service
            .offer(&tools, &Scope::default())
            .await
            .unwrap()
            .is_none()
    );

    let run = |sql: &str| {
        let call = ToolCall::new("table_query", serde_json::json!({ "sql": sql }).to_string());
        let (service, tools, kbs) = (&service, &tools, &kbs);
        async move { service.run_all(tools, &[call], kbs).await.remove(0) }
    };
    let sum = run("SELECT SUM(销售额) FROM 订单 WHERE 地区 = '华东'").await;
    assert!(sum.ok, "{}", sum.result);
    assert!(sum.result.ends_with("\n1500"), "{}", sum.result);
    assert_eq!(sum.sources.len(), 1);
    assert_eq!(sum.sources[0].document_name, "a.txt");
    assert_eq!(sum.sources[0].label, "表 订单");
    let months = run("SELECT COUNT(*) AS n FROM 订单 WHERE 日期 LIKE '2024-01%';").await;
    assert!(months.result.ends_with("n\n2"), "{}", months.result);
    let average = run("SELECT AVG(销售额) FROM 订单").await;
    assert!(
        average.result.ends_with("\n766.8333333"),
        "{}",
        average.result
    );
    // At most 2 rows here, and the model is told there are more.
    let all = run("SELECT * FROM 订单").await;
    assert!(all.result.contains("前 2 行"), "{}", all.result);

    for refused in [
        "DELETE FROM 订单",
        "SELECT 1; DROP TABLE 订单",
        "ATTACH DATABASE 'x.db' AS x",
        "PRAGMA query_only = 0",
        "SELECT * FROM 客户",
    ] {
        let step = run(refused).await;
        assert!(!step.ok, "{refused}: {}", step.result);
        assert!(step.result.starts_with("error: "), "{}", step.result);
    }
    // A query that would run for ever is stopped at the time limit.
    let endless = run(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n",
    )
    .await;
    assert!(
        endless.result.contains("table_query_timeout_ms"),
        "{}",
        endless.result
    );
    // The table still answers afterwards.
    assert!(
        run("SELECT COUNT(*) FROM 订单")
            .await
            .result
            .ends_with("\n3")
    );

    // A deleted document's tables are gone at the next query.
    store.delete_document("d1").await.unwrap();
    let gone = run("SELECT COUNT(*) FROM 订单").await;
    assert!(gone.result.contains("hold no tables"), "{}", gone.result);
}
