//! The OpenAPI 3.1 description of the HTTP API. Each handler carries a `#[utoipa::path]`
//! and each resource router registers its handlers with `utoipa_axum::routes!`, so the
//! axum router and its description are built together from one list: a route cannot be
//! served without being described. Served at `GET /openapi.json`, printed by
//! `zhiku openapi`.
//!
//! What every operation shares (the error shape, the 401 of a guarded route, the 500 any
//! route may give) is added here once, in [`complete`], instead of on forty handlers.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Spec, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

/// The security scheme of the admin token (everything under `/api` but `/api/chat`).
/// Annotations name schemes with literals (utoipa wants them); the tests check they agree.
pub const ADMIN_TOKEN: &str = "admin_token";
/// The security scheme of a bot's API key (`/api/chat` and `/v1`).
pub const BOT_KEY: &str = "bot_key";
/// The security scheme of the metrics token (`/metrics`, which the admin token opens too).
pub const METRICS_TOKEN: &str = "metrics_token";

/// Tag of the knowledge-base routes.
pub const TAG_KBS: &str = "knowledge bases";
/// Tag of the document, chunk and upload routes.
pub const TAG_DOCUMENTS: &str = "documents";
/// Tag of the ingestion queue.
pub const TAG_JOBS: &str = "jobs";
/// Tag of the bot routes (settings, versions, keys, debug chat).
pub const TAG_BOTS: &str = "bots";
/// Tag of the recorded conversations.
pub const TAG_CONVERSATIONS: &str = "conversations";
/// Tag of a published bot's chat, opened by its API key.
pub const TAG_CHAT: &str = "chat";
/// Tag of the OpenAI-compatible API.
pub const TAG_OPENAI: &str = "openai";
/// Tag of operations about the server itself.
pub const TAG_SERVER: &str = "server";

/// One server-sent event of a chat stream, as a client's SSE parser reads it.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "a description for the OpenAPI document, never built"
)]
pub struct SseEvent {
    /// `start`, `token`, `done` or `error` (absent on `/v1`, whose events are all data).
    event: Option<String>,
    /// JSON text; on `/v1` a `chat.completion.chunk`, and `[DONE]` last.
    data: String,
}

/// The document's fixed parts; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "zhiku",
        description = "Local-first knowledge-base bots: documents in, cited answers out. \
            Every error answers `{\"error\": {code, message, type, param}}`."
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = TAG_KBS, description = "Knowledge bases and hit testing"),
        (name = TAG_DOCUMENTS, description = "Uploads, documents, chunks (each placed by its page, or a table's sheet and rows, and marked when read by OCR) and split previews"),
        (name = TAG_JOBS, description = "The ingestion queue"),
        (name = TAG_BOTS, description = "Bots: draft, publish, versions, API keys, debug chat"),
        (name = TAG_CONVERSATIONS, description = "Recorded conversations"),
        (name = TAG_CHAT, description = "A published bot's chat, opened by its API key"),
        (name = TAG_OPENAI, description = "OpenAI-compatible API: published bots are the models"),
        (name = TAG_SERVER, description = "The server itself"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut Spec) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (config `admin_token`, or the one the server wrote \
                         to the data dir at first start).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            BOT_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "One of a bot's API keys (`POST /api/bots/{bot}/keys`); it opens that bot only.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            METRICS_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The metrics token (config `http.metrics_token`); it opens `/metrics` only.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every operation of `api` takes the admin token: the guard in `http::router` sits on the
/// whole router, so its description does too.
pub fn require_admin(api: &mut Spec) {
    for operation in operations(api) {
        operation.security = Some(vec![SecurityRequirement::new(
            ADMIN_TOKEN,
            Vec::<String>::new(),
        )]);
    }
}

/// Add the responses every operation shares, where its annotation did not give them.
pub fn complete(api: &mut Spec) {
    for (path, item) in api.paths.paths.iter_mut() {
        let has_path_params = path.contains('{');
        for operation in operations_of(item) {
            let schemes: Vec<String> = operation
                .security
                .iter()
                .flatten()
                .filter_map(|r| serde_json::to_value(r).ok())
                .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                .flatten()
                .collect();
            let has_body = operation.request_body.is_some();
            let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut add = |status: &str, description: &str| {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(description));
            };
            if has_body || has_params {
                add("400", "Invalid input (bad JSON, parameter or value)");
            }
            if !schemes.is_empty() {
                add("401", "Missing or wrong bearer token");
            }
            if has_path_params {
                add("404", "No such resource");
            }
            if has_body {
                add("413", "The body is over the size limit");
            }
            if schemes.iter().any(|s| s == BOT_KEY) {
                add("429", "Too many requests with this key (see Retry-After)");
            }
            add("500", "Internal error (details in the server log)");
        }
    }
}

/// An error answer with our JSON shape.
pub fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn operations(api: &mut Spec) -> impl Iterator<Item = &mut Operation> {
    api.paths.paths.values_mut().flat_map(operations_of)
}

fn operations_of(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// Every operation the server answers. A route added or removed without its
    /// description (or the other way round) fails `the_spec_lists_every_route`.
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/health"),
        ("get", "/metrics"),
        ("get", "/api/kbs"),
        ("post", "/api/kbs"),
        ("get", "/api/kbs/{kb}"),
        ("patch", "/api/kbs/{kb}"),
        ("delete", "/api/kbs/{kb}"),
        ("post", "/api/kbs/{kb}/search"),
        ("get", "/api/kbs/{kb}/index-check"),
        ("get", "/api/kbs/{kb}/documents"),
        ("post", "/api/kbs/{kb}/documents"),
        ("post", "/api/kbs/{kb}/documents/{doc}/sync"),
        ("get", "/api/kbs/{kb}/documents/{doc}"),
        ("patch", "/api/kbs/{kb}/documents/{doc}"),
        ("delete", "/api/kbs/{kb}/documents/{doc}"),
        ("get", "/api/kbs/{kb}/documents/{doc}/chunks"),
        ("patch", "/api/kbs/{kb}/documents/{doc}/chunks/{chunk}"),
        ("delete", "/api/kbs/{kb}/documents/{doc}/chunks/{chunk}"),
        ("post", "/api/kbs/{kb}/split-preview"),
        ("get", "/api/jobs"),
        ("get", "/api/jobs/{id}"),
        ("get", "/api/bots"),
        ("post", "/api/bots"),
        ("get", "/api/bots/{bot}"),
        ("patch", "/api/bots/{bot}"),
        ("delete", "/api/bots/{bot}"),
        ("post", "/api/bots/{bot}/publish"),
        ("get", "/api/bots/{bot}/versions"),
        ("get", "/api/bots/{bot}/keys"),
        ("post", "/api/bots/{bot}/keys"),
        ("delete", "/api/bots/{bot}/keys/{key_id}"),
        ("post", "/api/bots/{bot}/chat"),
        ("post", "/api/bots/{bot}/optimize-persona"),
        ("post", "/api/tools/openapi"),
        ("get", "/api/bots/{bot}/conversations"),
        ("get", "/api/conversations/{id}"),
        ("delete", "/api/conversations/{id}"),
        ("get", "/api/chat/{bot}"),
        ("post", "/api/chat/{bot}"),
        ("get", "/api/chat/{bot}/conversations"),
        ("get", "/api/chat/{bot}/conversations/{id}"),
        ("get", "/api/limits"),
        ("get", "/v1/models"),
        ("get", "/v1/models/{id}"),
        ("post", "/v1/chat/completions"),
        ("post", "/v1/embeddings"),
    ];

    fn spec() -> Value {
        let text = crate::http::openapi_spec().to_json().unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn operations(spec: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                out.push((method.clone(), path.clone(), operation));
            }
        }
        out
    }

    #[test]
    fn the_spec_lists_every_route() {
        let spec = spec();
        assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
        let described: BTreeSet<(String, String)> = operations(&spec)
            .into_iter()
            .map(|(m, p, _)| (m, p))
            .collect();
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(described, served);
    }

    /// Resource routers register handlers with `routes!` only: a plain `.route()` would
    /// serve a path the description does not know.
    #[test]
    fn resource_routers_only_register_described_handlers() {
        let sources = [
            ("bots.rs", include_str!("bots.rs")),
            ("chat.rs", include_str!("chat.rs")),
            ("conversations.rs", include_str!("conversations.rs")),
            ("documents.rs", include_str!("documents.rs")),
            ("jobs.rs", include_str!("jobs.rs")),
            ("knowledge.rs", include_str!("knowledge.rs")),
            ("limits.rs", include_str!("limits.rs")),
            ("openai.rs", include_str!("openai.rs")),
            ("tools.rs", include_str!("tools.rs")),
        ];
        for (name, source) in sources {
            assert!(
                !source.contains(".route("),
                "{name} registers a route outside routes!()"
            );
        }
    }

    #[test]
    fn operations_have_ids_security_and_error_shapes() {
        let spec = spec();
        let mut ids = BTreeSet::new();
        for (method, path, operation) in operations(&spec) {
            let id = operation["operationId"].as_str().unwrap().to_string();
            assert!(ids.insert(id.clone()), "operationId {id} is used twice");
            let schemes: Vec<&str> = operation["security"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .flat_map(|r| r.as_object().unwrap().keys())
                        .map(String::as_str)
                        .collect()
                })
                .unwrap_or_default();
            let expected: &[&str] = if path == "/health" || path == "/api/limits" {
                &[]
            } else if path == "/metrics" {
                &[super::METRICS_TOKEN, super::ADMIN_TOKEN]
            } else if path.starts_with("/api/chat/") || path == "/v1/chat/completions" {
                &[super::BOT_KEY]
            } else if path.starts_with("/v1/") {
                &[super::BOT_KEY, super::ADMIN_TOKEN]
            } else {
                &[super::ADMIN_TOKEN]
            };
            assert_eq!(schemes, expected, "{method} {path}");
            if !expected.is_empty() {
                let unauthorized = &operation["responses"]["401"]["content"]["application/json"];
                assert_eq!(
                    unauthorized["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
            }
        }
        for scheme in [super::ADMIN_TOKEN, super::BOT_KEY, super::METRICS_TOKEN] {
            assert_eq!(
                spec["components"]["securitySchemes"][scheme]["scheme"],
                "bearer"
            );
        }
        let error = &spec["components"]["schemas"]["ErrorDetail"]["properties"];
        for field in ["code", "message", "type", "param"] {
            assert!(error.get(field).is_some(), "error field {field}");
        }
    }

    /// utoipa takes only literals for bounds, so the description repeats some limits: they
    /// must say what the services enforce (and `GET /api/limits` serves).
    #[test]
    fn schema_bounds_are_the_enforced_limits() {
        use crate::services::bots as b;
        use crate::services::web_pages as w;
        let spec = spec();
        let schemas = &spec["components"]["schemas"];
        let cases: &[(&str, &str, &str, f64)] = &[
            ("BotSettings", "name", "maxLength", b::MAX_NAME_CHARS as f64),
            ("CreateKey", "name", "maxLength", b::MAX_NAME_CHARS as f64),
            (
                "BotSettings",
                "description",
                "maxLength",
                b::MAX_DESCRIPTION_CHARS as f64,
            ),
            (
                "BotSettings",
                "persona",
                "maxLength",
                b::MAX_PERSONA_CHARS as f64,
            ),
            (
                "BotSettings",
                "opening_message",
                "maxLength",
                b::MAX_OPENING_CHARS as f64,
            ),
            (
                "BotSettings",
                "suggested_questions",
                "maxItems",
                b::MAX_QUESTIONS as f64,
            ),
            ("RetrievalSettings", "top_k", "maximum", b::MAX_TOP_K as f64),
            (
                "RetrievalSettings",
                "read_tokens",
                "maximum",
                b::MAX_READ_TOKENS as f64,
            ),
            (
                "ModelSettings",
                "temperature",
                "maximum",
                b::MAX_TEMPERATURE as f64,
            ),
            (
                "ModelSettings",
                "max_tokens",
                "maximum",
                b::MAX_MAX_TOKENS as f64,
            ),
            (
                "ModelSettings",
                "history_turns",
                "maximum",
                b::MAX_HISTORY_TURNS as f64,
            ),
            (
                "ChatBody",
                "message",
                "maxLength",
                crate::services::chat::MAX_QUESTION_CHARS as f64,
            ),
            (
                "CreateKb",
                "name",
                "maxLength",
                crate::services::knowledge::MAX_KB_NAME_CHARS as f64,
            ),
            (
                "UpdateKb",
                "name",
                "maxLength",
                crate::services::knowledge::MAX_KB_NAME_CHARS as f64,
            ),
            (
                "CreateKb",
                "description",
                "maxLength",
                crate::services::knowledge::MAX_KB_DESCRIPTION_CHARS as f64,
            ),
            (
                "UpdateKb",
                "description",
                "maxLength",
                crate::services::knowledge::MAX_KB_DESCRIPTION_CHARS as f64,
            ),
            (
                "SearchRequest",
                "top_k",
                "maximum",
                crate::services::search::MAX_TOP_K as f64,
            ),
            (
                "CrawlSettings",
                "max_depth",
                "maximum",
                f64::from(w::MAX_CRAWL_DEPTH),
            ),
            (
                "CrawlSettings",
                "max_pages",
                "maximum",
                f64::from(w::MAX_CRAWL_PAGES),
            ),
        ];
        for (schema, field, key, limit) in cases {
            let found = schemas[schema]["properties"][field][key].as_f64();
            assert_eq!(found, Some(*limit), "{schema}.{field}.{key}");
        }
        // Its split and clean settings are flattened in, which makes it an `allOf`.
        let urls = schemas["WebPages"]["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|part| part["properties"].get("urls"))
            .unwrap();
        assert_eq!(
            urls["maxItems"].as_f64(),
            Some(w::MAX_URLS_PER_REQUEST as f64)
        );
        // `/v1`'s body is described inline, not as a component.
        let completion = &spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"];
        assert_eq!(
            completion["temperature"]["maximum"].as_f64(),
            Some(f64::from(b::MAX_TEMPERATURE))
        );
    }

    #[test]
    fn chat_streams_are_described_as_server_sent_events() {
        let spec = spec();
        for (path, method) in [
            ("/api/bots/{bot}/chat", "post"),
            ("/api/chat/{bot}", "post"),
            ("/v1/chat/completions", "post"),
        ] {
            let content = &spec["paths"][path][method]["responses"]["200"]["content"];
            assert!(content.get("text/event-stream").is_some(), "{path}");
        }
    }
}
