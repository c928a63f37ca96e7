//! Bots over HTTP: create with a KB, read, merge-patch, list; bad settings refused with
//! the reason; publish versions; API keys shown once, listed without the key, revoked;
//! delete; and every bot route behind the admin token; bot tools, and a sheet queried as a
//! table.

use serde_json::{Value, json};

use std::time::Duration;

use crate::common::{self, Server};

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn bots_drafts_versions_and_keys() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("bot-kb");

    // Create: the KB may be named; it is stored by id. Unset settings take defaults.
    let (status, bot) = server.post(
        "/api/bots",
        json!({"name": "客服", "persona": "你是知库的客服。", "knowledge_bases": ["bot-kb"]}),
    );
    assert_eq!(status, 201, "{bot}");
    let id = bot["id"].as_str().unwrap().to_string();
    let draft = &bot["draft"];
    assert_eq!(draft["name"], "客服");
    assert_eq!(draft["knowledge_bases"], json!([kb]));
    assert_eq!(draft["retrieval"]["mode"], "hybrid");
    assert_eq!(draft["retrieval"]["top_k"], 3);
    assert_eq!(draft["retrieval"]["show_sources"], true);
    assert_eq!(draft["no_recall"]["mode"], "fixed");
    assert!(
        draft["no_recall"]["reply"]
            .as_str()
            .unwrap()
            .contains("抱歉")
    );
    assert_eq!(draft["model"]["max_tokens"], 512);
    assert_eq!(draft["model"]["history_turns"], 4);
    assert_eq!(draft["rewrite_query"], true);
    assert!(bot["published_version"].is_null(), "{bot}");

    // Read by id and by name.
    for key in [id.as_str(), "客服"] {
        let (status, got) = server.get(&format!("/api/bots/{key}"));
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["id"], id.as_str());
    }

    // A merge patch changes what it names and keeps the rest.
    let (status, patched) = server.patch(
        &format!("/api/bots/{id}"),
        json!({"retrieval": {"top_k": 5}, "model": {"temperature": 0.7}}),
    );
    assert_eq!(status, 200, "{patched}");
    let d = &patched["draft"];
    assert_eq!(d["retrieval"]["top_k"], 5);
    assert_eq!(d["retrieval"]["mode"], "hybrid");
    assert_eq!(d["retrieval"]["show_sources"], true);
    assert!((d["model"]["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    assert_eq!(d["model"]["max_tokens"], 512);
    assert_eq!(d["persona"], "你是知库的客服。");
    assert_eq!(d["knowledge_bases"], json!([kb]));

    // Renaming through the draft renames the bot.
    let (status, renamed) = server.patch(&format!("/api/bots/{id}"), json!({"name": "客服2"}));
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "客服2");
    let (status, _) = server.get("/api/bots/客服2");
    assert_eq!(status, 200);

    // Bad settings: 4xx naming what is wrong; nothing changes.
    let (status, body) = server.post(
        "/api/bots",
        json!({"name": "other", "knowledge_bases": ["no-such-kb"]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("no-such-kb"), "{body}");
    let (status, body) = server.patch(
        &format!("/api/bots/{id}"),
        json!({"knowledge_bases": [kb, "missing-kb"]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("missing-kb"), "{body}");
    let (status, body) = server.patch(
        &format!("/api/bots/{id}"),
        json!({"retrieval": {"top_k": 0}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("top_k"), "{body}");
    let (status, body) = server.patch(
        &format!("/api/bots/{id}"),
        json!({"retrieval": {"topk": 5}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("retrieval.topk"), "{body}");
    let (status, body) = server.post("/api/bots", json!({"description": "no name"}));
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("name"), "{body}");
    let (_, unchanged) = server.get(&format!("/api/bots/{id}"));
    assert_eq!(unchanged["draft"]["retrieval"]["top_k"], 5);

    // Names are unique.
    let (status, body) = server.post("/api/bots", json!({"name": "客服2"}));
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("客服2"), "{body}");
    let (status, second) = server.post("/api/bots", json!({"name": "second"}));
    assert_eq!(status, 201, "{second}");
    let (status, body) = server.patch("/api/bots/second", json!({"name": "客服2"}));
    assert_eq!(status, 409, "{body}");

    // The list has both, with their published version.
    let (status, list) = server.get("/api/bots");
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["second", "客服2"]);
    assert!(list[1]["published_version"].is_null());

    // Publish: version 1, then 2; the bot shows the version in force.
    let (status, v1) = server.post(&format!("/api/bots/{id}/publish"), json!({}));
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["bot_id"], id.as_str());
    assert!(v1["published_at"].is_string(), "{v1}");
    let (_, got) = server.get(&format!("/api/bots/{id}"));
    assert_eq!(got["published_version"], 1);
    assert_eq!(got["unpublished_changes"], false, "{got}");
    server.patch(
        &format!("/api/bots/{id}"),
        json!({"opening_message": "你好！"}),
    );
    let (_, got) = server.get(&format!("/api/bots/{id}"));
    assert_eq!(got["unpublished_changes"], true, "{got}");
    let (status, v2) = server.post(&format!("/api/bots/{id}/publish"), json!({}));
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["version"], 2);
    let (status, versions) = server.get(&format!("/api/bots/{id}/versions"));
    assert_eq!(status, 200, "{versions}");
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["settings"]["opening_message"], "你好！");
    assert_eq!(versions[1]["settings"]["opening_message"], "");
    let (_, list) = server.get("/api/bots");
    assert_eq!(list[1]["published_version"], 2, "{list}");

    // A key is shown once; the list has its prefix and never the key or its hash.
    let (status, created) = server.post(&format!("/api/bots/{id}/keys"), json!({"name": "ci"}));
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("zk-") && key.len() == 43, "{created}");
    let prefix = created["prefix"].as_str().unwrap();
    assert!(
        key.starts_with(prefix) && prefix.len() < key.len(),
        "{created}"
    );
    let key_id = created["id"].as_str().unwrap();
    let (status, keys) = server.get(&format!("/api/bots/{id}/keys"));
    assert_eq!(status, 200, "{keys}");
    let listed = &keys.as_array().unwrap()[0];
    assert_eq!(listed["id"], key_id);
    assert_eq!(listed["prefix"], prefix);
    assert_eq!(listed["name"], "ci");
    assert!(listed["revoked_at"].is_null(), "{listed}");
    let text = keys.to_string();
    assert!(!text.contains(key), "the key leaked: {text}");
    assert!(
        listed.get("key").is_none() && listed.get("key_hash").is_none(),
        "{listed}"
    );
    let (status, body) = server.post(&format!("/api/bots/{id}/keys"), json!({"name": " "}));
    assert_eq!(status, 400, "{body}");

    // Revoke: still listed, as revoked. Another bot's key id is not found.
    assert_eq!(
        server.delete(&format!("/api/bots/second/keys/{key_id}")),
        404
    );
    assert_eq!(server.delete(&format!("/api/bots/{id}/keys/{key_id}")), 204);
    let (_, keys) = server.get(&format!("/api/bots/{id}/keys"));
    assert!(keys[0]["revoked_at"].is_string(), "{keys}");
    assert_eq!(server.delete(&format!("/api/bots/{id}/keys/nope")), 404);

    // No conversations yet; a bad channel is refused with the good ones.
    let (status, convs) = server.get(&format!("/api/bots/{id}/conversations?channel=debug"));
    assert_eq!(status, 200, "{convs}");
    assert_eq!(convs, json!([]));
    let (status, body) = server.get(&format!("/api/bots/{id}/conversations?channel=web"));
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("published"), "{body}");
    let (status, _) = server.get("/api/conversations/nope");
    assert_eq!(status, 404);

    // Delete: gone, with its keys and versions.
    assert_eq!(server.delete(&format!("/api/bots/{id}")), 204);
    let (status, body) = server.get(&format!("/api/bots/{id}"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(server.delete(&format!("/api/bots/{id}")), 404);
    let (status, _) = server.get(&format!("/api/bots/{id}/keys"));
    assert_eq!(status, 404);
    let (_, list) = server.get("/api/bots");
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn bot_routes_require_the_admin_token() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (status, bot) = server.post("/api/bots", json!({"name": "guarded"}));
    assert_eq!(status, 201, "{bot}");
    let id = bot["id"].as_str().unwrap();
    let routes = [
        ("GET", "/api/bots".to_string()),
        ("POST", "/api/bots".to_string()),
        ("GET", format!("/api/bots/{id}")),
        ("PATCH", format!("/api/bots/{id}")),
        ("DELETE", format!("/api/bots/{id}")),
        ("POST", format!("/api/bots/{id}/publish")),
        ("GET", format!("/api/bots/{id}/versions")),
        ("GET", format!("/api/bots/{id}/keys")),
        ("POST", format!("/api/bots/{id}/keys")),
        ("DELETE", format!("/api/bots/{id}/keys/x")),
        ("GET", format!("/api/bots/{id}/conversations")),
        ("GET", "/api/conversations/x".to_string()),
        ("DELETE", "/api/conversations/x".to_string()),
    ];
    let http = reqwest::blocking::Client::new();
    for (method, path) in &routes {
        for token in [None, Some("wrong-token")] {
            let mut req = http
                .request(method.parse().unwrap(), server.url(path))
                .json(&json!({"name": "x"}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {token:?}");
            let body: Value = r.json().unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    // The bot survived every unauthorised DELETE and was not renamed.
    let (status, got) = server.get(&format!("/api/bots/{id}"));
    assert_eq!(status, 200);
    assert_eq!(got["name"], "guarded");
}

/// `GET /api/limits` (no token) says what the server enforces: one past each limit it
/// serves is refused with that limit in the message, and the limit itself is taken.
#[test]
fn the_served_limits_are_the_enforced_ones() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (status, limits) = server.request_as("GET", "/api/limits", None, None);
    assert_eq!(status, 200, "{limits}");
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"));
    let bot = &limits["bot"];
    // The CLI prints the same.
    let (ok, printed) = crate::common::cli(data.path(), &["limits"]);
    assert!(ok, "{printed}");
    let printed: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(printed, limits);

    // Suggested questions: short prompts, with their own limit.
    let at = n(&bot["suggested_question_chars"]) as usize;
    let (status, body) = server.post(
        "/api/bots",
        json!({"name": "limits", "suggested_questions": ["问".repeat(at)]}),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (status, body) = server.patch(
        &format!("/api/bots/{id}"),
        json!({"suggested_questions": ["问".repeat(at + 1)]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains(&at.to_string()), "{body}");

    // Numbers the bot editor bounds.
    for (path, field, max) in [
        ("retrieval", "read_tokens", n(&bot["read_tokens_max"])),
        ("retrieval", "top_k", n(&bot["top_k_max"])),
        ("model", "max_tokens", n(&bot["max_tokens_max"])),
        ("model", "history_turns", n(&bot["history_turns_max"])),
    ] {
        let (status, body) = server.patch(&format!("/api/bots/{id}"), json!({path: {field: max}}));
        assert_eq!(status, 200, "{path}.{field} = {max}: {body}");
        let (status, body) =
            server.patch(&format!("/api/bots/{id}"), json!({path: {field: max + 1}}));
        assert_eq!(status, 400, "{path}.{field} = {}: {body}", max + 1);
        assert!(message(&body).contains(&max.to_string()), "{body}");
    }

    // Tools: as many as the limit, not one more.
    let tools_max = n(&bot["tools_max"]) as usize;
    let tools = |count: usize| -> Vec<Value> {
        (0..count)
            .map(|i| json!({"type": "http", "name": format!("t{i}"), "description": "d", "url": "https://a.example/"}))
            .collect()
    };
    let (status, body) = server.patch(
        &format!("/api/bots/{id}"),
        json!({"tools": tools(tools_max)}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.patch(
        &format!("/api/bots/{id}"),
        json!({"tools": tools(tools_max + 1)}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).contains(&format!("at most {tools_max} tools")),
        "{body}"
    );

    // A chat message one character too long is refused before anything runs.
    let chars = n(&limits["question_chars"]) as usize;
    let (status, events) = server.chat(
        &format!("/api/bots/{id}/chat"),
        crate::common::TOKEN,
        json!({"message": "问".repeat(chars + 1)}),
    );
    assert_eq!(status, 400, "{events:?}");
    assert!(
        message(&events[0].1).contains(&format!("at most {chars} characters")),
        "{events:?}"
    );

    // The split bounds and accepted types are checked in `knowledge::`; here only their shape.
    let split = &limits["split"];
    assert!(n(&split["min_tokens"]) < n(&split["auto_tokens"]));
    assert!(n(&split["auto_tokens"]) <= n(&split["max_tokens"]));
    assert!(!limits["accepted_types"].as_array().unwrap().is_empty());
}

#[test]
fn bot_tools_are_saved_with_their_secrets_sealed_and_never_shown() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let weather = json!({
        "type": "http",
        "name": "get_weather",
        "description": "某城市今天的天气",
        "method": "GET",
        "url": "https://api.example.com/weather/{city}",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "headers": [
            {"name": "X-Api-Key", "value": "sk-live-s3cret-42", "secret": true},
            {"name": "Accept", "value": "application/json"}
        ]
    });
    let (status, bot) = server.post(
        "/api/bots",
        json!({"name": "天气", "tools": [weather, {"type": "calculator"}]}),
    );
    assert_eq!(status, 201, "{bot}");
    let id = bot["id"].as_str().unwrap().to_string();
    let shown = |bot: &Value| {
        let text = bot.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("sealed"),
            "{text}"
        );
        bot["draft"]["tools"].clone()
    };
    let tools = shown(&bot);
    assert_eq!(
        tools[0]["headers"][0],
        json!({"name": "X-Api-Key", "value": null, "secret": true})
    );
    assert_eq!(tools[0]["headers"][1]["value"], "application/json");
    assert_eq!(tools[1], json!({"type": "calculator"}));

    // The tools sent back as shown (the secret without its value) keep the secret.
    let (status, patched) = server.patch(&format!("/api/bots/{id}"), json!({"tools": tools}));
    assert_eq!(status, 200, "{patched}");
    shown(&patched);
    let (status, version) = server.post(&format!("/api/bots/{id}/publish"), json!({}));
    assert_eq!(status, 200, "{version}");
    assert!(!version.to_string().contains("s3cret"), "{version}");
    // At rest the key is encrypted: the database file does not hold it.
    let db = std::fs::read(data.path().join("zhiku.db")).unwrap();
    let wal = std::fs::read(data.path().join("zhiku.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(17).any(|w| w == b"sk-live-s3cret-42"));
    }

    // An OpenAPI document gives tools to add; what is not one says why.
    let document = serde_json::to_string(&json!({
        "openapi": "3.0.3",
        "servers": [{"url": "https://shop.example.com"}],
        "paths": {"/orders/{id}": {"get": {"operationId": "getOrder", "summary": "订单状态",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]}}}
    }))
    .unwrap();
    let (status, imported) = server.post("/api/tools/openapi", json!({ "document": document }));
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["tools"][0]["name"], "getOrder");
    assert_eq!(
        imported["tools"][0]["url"],
        "https://shop.example.com/orders/{id}"
    );
    let (status, body) = server.post("/api/tools/openapi", json!({"document": "swagger: '2.0'"}));
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("OpenAPI 3"), "{body}");

    // Bad tools are refused with the reason.
    let renamed = {
        let mut t = tools[0].clone();
        t["name"] = json!("new_tool");
        t
    };
    for (tools, want) in [
        (
            json!([{"type": "http", "name": "x", "urll": "https://a.example/"}]),
            "unknown tool setting 'tools[0].urll'",
        ),
        (json!([{"type": "time_machine"}]), "invalid bot settings"),
        (json!([renamed]), "secret header 'X-Api-Key' has no value"),
        (
            json!([{"type": "calculator"}, {"type": "calculator"}]),
            "two tools are named 'calculator'",
        ),
        (
            json!([{"type": "http", "name": "x", "description": "d", "url": "http://a.example/{id}"}]),
            "not one of its parameters",
        ),
    ] {
        let (status, body) = server.patch(&format!("/api/bots/{id}"), json!({"tools": tools}));
        assert_eq!(status, 400, "{body}");
        assert!(message(&body).contains(want), "{want}: {body}");
    }
}

#[test]
fn a_question_over_a_sheet_makes_the_bot_query_its_table() {
    let data = tempfile::tempdir().unwrap();
    // The model that writes SQL (the plumbing model's once ran past max_tokens inside
    // the string, so no call was complete).
    let server = Server::start_with(data.path(), &[("ZHIKU_LLM__MODEL", common::ANSWER_LLM)]);
    let kb = server.create_kb("销售");
    let sheet = common::fixtures_dir().join("docs/zh-sales.xlsx");
    let (status, body) = server.upload(&kb, &[(sheet, "zh-sales.xlsx".into())]);
    assert_eq!(status, 202, "{body}");
    // As long as the other suites' waits: they share the machine's two cores.
    let docs = server.wait_settled(&kb, Duration::from_secs(300));
    assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");
    let bot = server.create_bot(json!({
        "name": "销售表",
        "knowledge_bases": [kb],
        "tools": [{"type": "table_query"}],
        "model": {"max_tokens": 160, "temperature": 0}
    }));
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        common::TOKEN,
        json!({"message": "2024年第一季度智能音箱一共卖了多少台？"}),
    );
    assert_eq!(status, 200, "{events:?}");
    // The best passage is the sheet: the model must query it, and the server runs the
    // query.
    let calls: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e == "tool_call")
        .map(|(_, d)| d)
        .collect();
    assert!(!calls.is_empty(), "{events:?}");
    assert_eq!(calls[0]["function"]["name"], "table_query", "{events:?}");
    let sql =
        serde_json::from_str::<Value>(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(sql["sql"].is_string(), "{sql}");
    let results: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e == "tool_result")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(results.len(), calls.len(), "{events:?}");
    assert_eq!(results[0]["name"], "table_query");
    let (_, done) = events.iter().find(|(e, _)| e == "done").expect("done");
    assert_eq!(done["tool_steps"][0]["name"], "table_query", "{done}");
}
