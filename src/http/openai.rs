//! The OpenAI-compatible API under `/v1`: published bots are the models (a bot's id is its
//! model id; its API key is the Bearer token), so any OpenAI client or tool can talk to a
//! bot. Answers carry their citations in an extra `citations` field, and whether the
//! passages support them in `grounded` and `grounding_score`.
//!
//! - `GET /v1/models`, `GET /v1/models/{id}`: the key's bot (the admin token lists every
//!   published bot) and the embedding model.
//! - `POST /v1/chat/completions`: stream or not; earlier messages are the history, system
//!   messages add to the bot's persona. Nothing is recorded (the API is stateless).
//!   `tools` are offered to the model as OpenAI offers them (`tool_choice`,
//!   `parallel_tool_calls`); a reply that calls them has `tool_calls` and the finish
//!   reason `tool_calls`, and the caller's `tool` messages carry the results back.
//! - `POST /v1/embeddings`: the embedding model (float or base64); `input_type`
//!   (`passage`, the default, or `query`) picks e5's prefix.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{bearer, is_admin};
use super::bot_key::BotKey;
use super::chat::published;
use super::error::{AppJson, ErrorBody};
use super::openapi::{SseEvent, TAG_OPENAI};
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::llm::{ChatMessage, FinishReason, Role, ToolCall, ToolChoice, ToolSpec, ToolUse};
use crate::services::chat::{ChatEvent, ChatOutcome, History, Turn};
use crate::services::embeddings::Embedded;

/// Routes under `/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(models))
        .routes(routes!(model))
        .routes(routes!(chat_completions))
        .routes(routes!(embeddings))
        .fallback(|| async { Error::not_found("API route") })
}

/// Who is calling `/v1`: a bot key, or the admin.
enum Caller {
    Key(BotKey),
    Admin,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if is_admin(state, bearer(&parts.headers).unwrap_or_default()) {
            return Ok(Caller::Admin);
        }
        BotKey::from_request_parts(parts, state)
            .await
            .map(Caller::Key)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn model_card(id: &str, name: &str) -> Value {
    json!({"id": id, "object": "model", "created": unix_now(), "owned_by": "zhiku", "name": name})
}

async fn model_cards(s: &AppState, caller: &Caller) -> Result<Vec<Value>> {
    let mut cards = Vec::new();
    match caller {
        Caller::Key(key) => {
            let bot = s.bots.bot(&key.0.bot_id).await?;
            if bot.published_version.is_some() {
                cards.push(model_card(&bot.bot_id, &bot.name));
            }
        }
        Caller::Admin => {
            for bot in s.bots.list().await? {
                if bot.published_version.is_some() {
                    cards.push(model_card(&bot.bot_id, &bot.name));
                }
            }
        }
    }
    let embedding = &s.embeddings.info().id;
    cards.push(model_card(embedding, embedding));
    Ok(cards)
}

/// The models this caller may use: the key's bot (every published bot for the admin
/// token) and the embedding model.
#[utoipa::path(get, path = "/models", tag = TAG_OPENAI, operation_id = "list_models",
    security(("bot_key" = []), ("admin_token" = [])),
    responses((status = 200, description = "`{object: list, data: [{id, object: model, created, owned_by, name}]}`",
        body = Object)))]
async fn models(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>> {
    Ok(Json(
        json!({"object": "list", "data": model_cards(&s, &caller).await?}),
    ))
}

/// One model this caller may use.
#[utoipa::path(get, path = "/models/{id}", tag = TAG_OPENAI, operation_id = "show_model",
    params(("id" = String, Path, description = "Model id: a bot id or the embedding model")),
    security(("bot_key" = []), ("admin_token" = [])),
    responses((status = 200, description = "`{id, object: model, created, owned_by, name}`", body = Object)))]
async fn model(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    model_cards(&s, &caller)
        .await?
        .into_iter()
        .find(|card| card["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| Error::not_found(format!("model '{id}'")))
}

/// `POST /v1/chat/completions` body: the fields zhiku uses; others OpenAI defines are
/// accepted and ignored, as OpenAI's own server does for fields a model does not support.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct CompletionBody {
    /// The bot's id (or name).
    model: String,
    /// The conversation; it must end with a user message.
    #[schema(min_items = 1)]
    messages: Vec<InMessage>,
    /// Answer as server-sent events.
    #[serde(default)]
    stream: bool,
    /// Streaming options.
    stream_options: Option<StreamOptions>,
    /// Longest answer in tokens (the bot's setting when absent; at most `max_tokens_max` of
    /// `GET /api/limits` are used).
    #[schema(minimum = 1)]
    max_tokens: Option<u32>,
    /// Same as `max_tokens`, which it overrides.
    #[schema(minimum = 1)]
    max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    #[schema(minimum = 0.0, maximum = 2.0)]
    temperature: Option<f32>,
    /// Sampling seed.
    seed: Option<i64>,
    /// Stop strings (the first four are used).
    stop: Option<Stop>,
    /// Answers wanted: only 1 is supported.
    #[schema(minimum = 1, maximum = 1)]
    n: Option<u32>,
    /// Functions the model may call (at most 128).
    tools: Option<Vec<InTool>>,
    /// `auto` (the default with tools), `none`, `required`, or
    /// `{"type": "function", "function": {"name": …}}`.
    #[schema(value_type = Object)]
    tool_choice: Option<Value>,
    /// Whether one reply may call several tools (default true).
    parallel_tool_calls: Option<bool>,
}

/// One of `tools`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct InTool {
    /// Only `function`.
    #[serde(rename = "type")]
    kind: String,
    function: InFunction,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct InFunction {
    /// Letters, digits, `_` and `-`, at most 64.
    name: String,
    #[serde(default)]
    description: String,
    /// A JSON schema of an object.
    #[schema(value_type = Object)]
    parameters: Option<Value>,
}

/// The request's tools, checked; `None` when it offers none.
fn tool_use(
    tools: Option<Vec<InTool>>,
    choice: Option<Value>,
    parallel: Option<bool>,
) -> Result<Option<ToolUse>> {
    let tools = tools.unwrap_or_default();
    let choice = match choice {
        None => None,
        Some(Value::String(word)) => Some(match word.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(Error::InvalidInput(format!(
                    "tool_choice must be auto, none, required or a function, not '{other}'"
                )));
            }
        }),
        Some(Value::Object(named)) => match named["function"]["name"].as_str() {
            Some(name) => Some(ToolChoice::Function(name.to_string())),
            None => {
                return Err(Error::InvalidInput(
                    "tool_choice must name the function: {\"type\": \"function\", \"function\": {\"name\": …}}".into(),
                ));
            }
        },
        Some(_) => {
            return Err(Error::InvalidInput(
                "tool_choice must be a string or an object".into(),
            ));
        }
    };
    if tools.is_empty()
        && matches!(
            choice,
            None | Some(ToolChoice::None) | Some(ToolChoice::Auto)
        )
    {
        return Ok(None);
    }
    let specs = tools
        .into_iter()
        .map(|tool| {
            if tool.kind != "function" {
                return Err(Error::InvalidInput(format!(
                    "tools[].type must be 'function', not '{}'",
                    tool.kind
                )));
            }
            let f = tool.function;
            ToolSpec::new(&f.name, &f.description, f.parameters)
        })
        .collect::<Result<Vec<_>>>()?;
    ToolUse::new(
        specs,
        choice.unwrap_or(ToolChoice::Auto),
        parallel.unwrap_or(true),
    )
    .map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct StreamOptions {
    /// Send a last chunk with the token counts.
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct InMessage {
    /// system, developer, user, assistant or tool.
    role: String,
    /// The text.
    #[serde(default)]
    content: Option<Content>,
    /// An assistant message's calls.
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default)]
    tool_call_id: Option<String>,
}

/// A message's content: a string, or parts of which the text ones are read.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Value>),
}

impl Content {
    fn text(&self) -> Result<String> {
        match self {
            Content::Text(t) => Ok(t.clone()),
            Content::Parts(parts) => {
                let mut out = Vec::new();
                for part in parts {
                    match part["type"].as_str() {
                        Some("text") => out.push(part["text"].as_str().unwrap_or_default()),
                        other => {
                            return Err(Error::InvalidInput(format!(
                                "the model reads text only: message content parts of type {} are not supported",
                                other.unwrap_or("(none)")
                            )));
                        }
                    }
                }
                Ok(out.join("\n"))
            }
        }
    }
}

/// An OpenAI message list taken apart.
struct SplitMessages {
    /// The last user message.
    question: String,
    /// The messages before it.
    history: Vec<ChatMessage>,
    /// System messages, joined.
    extra_system: String,
    /// The calls and tool results after the question.
    tool_steps: Vec<ChatMessage>,
}

/// The question, earlier turns, extra system text and tool steps of an OpenAI message
/// list.
fn split_messages(messages: &[InMessage]) -> Result<SplitMessages> {
    let mut system = Vec::new();
    let mut history = Vec::new();
    for m in messages {
        let text = m
            .content
            .as_ref()
            .map(Content::text)
            .transpose()?
            .unwrap_or_default();
        let mut message = match m.role.as_str() {
            "system" | "developer" => {
                system.push(text);
                continue;
            }
            "user" => ChatMessage::new(Role::User, text),
            "assistant" => ChatMessage::new(Role::Assistant, text),
            "tool" => {
                let Some(id) = m.tool_call_id.clone() else {
                    return Err(Error::InvalidInput(
                        "a tool message needs the tool_call_id of the call it answers".into(),
                    ));
                };
                let mut result = ChatMessage::new(Role::Tool, text);
                result.tool_call_id = Some(id);
                result
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "messages[].role must be system, user, assistant or tool, not '{other}'"
                )));
            }
        };
        if let Some(calls) = &m.tool_calls {
            if message.role != Role::Assistant {
                return Err(Error::InvalidInput(
                    "only assistant messages carry tool_calls".into(),
                ));
            }
            message.tool_calls = calls.clone();
        }
        history.push(message);
    }
    let Some(asked) = history.iter().rposition(|m| m.role == Role::User) else {
        return Err(Error::InvalidInput(
            "messages must hold a user message".into(),
        ));
    };
    let tool_steps = history.split_off(asked + 1);
    let answered = tool_steps.last().is_none_or(|m| m.role == Role::Tool);
    if !answered || tool_steps.iter().any(|m| !m.is_tool_step()) {
        return Err(Error::InvalidInput(
            "messages must end with a user message, or with tool results after the assistant's tool_calls".into(),
        ));
    }
    let question = history.pop().map(|m| m.content).unwrap_or_default();
    Ok(SplitMessages {
        question,
        history,
        extra_system: system.join("\n\n"),
        tool_steps,
    })
}

/// Ask a published bot, OpenAI style; answers carry an extra `citations` field.
#[utoipa::path(post, path = "/chat/completions", tag = TAG_OPENAI, operation_id = "create_chat_completion",
    security(("bot_key" = [])),
    request_body = inline(CompletionBody),
    responses(
        (status = 200, description = "A `chat.completion`, or with `stream: true` `chat.completion.chunk` events ending with `[DONE]`",
            content((Object = "application/json"), (SseEvent = "text/event-stream"))),
        (status = 403, description = "The key belongs to another bot", body = ErrorBody),
        (status = 404, description = "No such published bot", body = ErrorBody),
        (status = 502, description = "The model failed", body = ErrorBody),
        (status = 503, description = "The model is not available", body = ErrorBody),
    ))]
async fn chat_completions(
    State(s): State<AppState>,
    key: BotKey,
    AppJson(body): AppJson<CompletionBody>,
) -> Result<Response> {
    if body.n.is_some_and(|n| n != 1) {
        return Err(Error::InvalidInput("only n = 1 is supported".into()));
    }
    if let Some(t) = body.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(Error::InvalidInput(
            "temperature must be between 0 and 2".into(),
        ));
    }
    let max_tokens = body.max_completion_tokens.or(body.max_tokens);
    if max_tokens == Some(0) {
        return Err(Error::InvalidInput("max_tokens must be at least 1".into()));
    }
    let split = split_messages(&body.messages)?;
    let tools = tool_use(body.tools, body.tool_choice, body.parallel_tool_calls)?;
    let (bot_id, version, settings) = published(&s, &key, &body.model).await?;
    // Changes when the bot is republished, as OpenAI's changes with the backend.
    let fingerprint = format!("zhiku-v{version}");
    let mut turn = Turn::new(
        bot_id.clone(),
        settings,
        split.question,
        History::Given {
            extra_system: split.extra_system,
            messages: split.history,
        },
    );
    turn.tools = tools;
    turn.tool_steps = split.tool_steps;
    turn.max_tokens = max_tokens.map(|m| m.min(crate::services::bots::MAX_MAX_TOKENS));
    turn.temperature = body.temperature;
    turn.seed = body.seed.map(|s| s as u32);
    turn.stop = match body.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v.into_iter().take(4).collect(),
    };
    let started = s.chat.start(turn).await?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();
    let mut events = started.events;
    if !body.stream {
        let mut answer = String::new();
        while let Some(event) = events.recv().await {
            match event {
                ChatEvent::Token(t) => answer.push_str(&t),
                // The outcome lists the calls.
                // The bot's own tools run inside the answer; the caller sees the answer.
                ChatEvent::ToolCall(_) | ChatEvent::ToolRun(_) | ChatEvent::ToolResult(_) => {}
                ChatEvent::Done(outcome) => {
                    return Ok(
                        Json(completion(&id, created, &bot_id, &fingerprint, &outcome))
                            .into_response(),
                    );
                }
                ChatEvent::Failed { message, code, .. } => {
                    return Err(if code == "overloaded" {
                        Error::Busy(message)
                    } else {
                        Error::Llm(message)
                    });
                }
            }
        }
        return Err(Error::Llm("the answer ended without finishing".into()));
    }
    let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": bot_id,
               "system_fingerprint": fingerprint,
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let stream = async_stream::stream! {
        yield data(&chunk(json!({"role": "assistant", "content": ""}), None));
        let mut calls = 0;
        while let Some(event) = events.recv().await {
            match event {
                ChatEvent::Token(t) => yield data(&chunk(json!({"content": t}), None)),
                ChatEvent::ToolCall(call) => {
                    // As OpenAI streams a call: its id and name first, then the arguments.
                    yield data(&chunk(json!({"tool_calls": [{"index": calls, "id": call.id, "type": "function",
                        "function": {"name": call.name, "arguments": ""}}]}), None));
                    yield data(&chunk(json!({"tool_calls": [{"index": calls,
                        "function": {"arguments": call.arguments}}]}), None));
                    calls += 1;
                }
                ChatEvent::ToolRun(_) | ChatEvent::ToolResult(_) => {}
                ChatEvent::Done(outcome) => {
                    let mut last = chunk(json!({}), Some(finish_reason(outcome.finish_reason)));
                    add_evidence(&mut last, &outcome);
                    yield data(&last);
                    if include_usage {
                        let mut usage = chunk(json!({}), None);
                        usage["choices"] = json!([]);
                        usage["usage"] = usage_json(&outcome);
                        yield data(&usage);
                    }
                }
                ChatEvent::Failed { message, code, .. } => {
                    yield data(&json!({"error": {"message": message, "type": "server_error", "param": null, "code": code}}));
                }
            }
        }
        yield Ok(Event::default().data("[DONE]"));
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn data(value: &Value) -> std::result::Result<Event, Infallible> {
    Ok(Event::default().data(value.to_string()))
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

fn usage_json(outcome: &ChatOutcome) -> Value {
    json!({
        "prompt_tokens": outcome.usage.prompt_tokens,
        "completion_tokens": outcome.usage.completion_tokens,
        "total_tokens": outcome.usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": outcome.usage.cached_prompt_tokens},
    })
}

fn completion(
    id: &str,
    created: u64,
    model: &str,
    fingerprint: &str,
    outcome: &ChatOutcome,
) -> Value {
    let mut message =
        json!({"role": "assistant", "content": outcome.answer, "refusal": null, "annotations": []});
    if !outcome.tool_calls.is_empty() {
        message["tool_calls"] = json!(outcome.tool_calls);
        if outcome.answer.is_empty() {
            message["content"] = Value::Null;
        }
    }
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(outcome.finish_reason),
        }],
        "usage": usage_json(outcome),
    });
    add_evidence(&mut body, outcome);
    body
}

/// zhiku's fields beside OpenAI's (clients ignore fields they don't know): the cited
/// passages, whether the passages support the answer, and whether it was a no-recall
/// reply.
fn add_evidence(body: &mut Value, outcome: &ChatOutcome) {
    body["citations"] = json!(outcome.citations);
    body["grounded"] = json!(outcome.grounded);
    body["grounding_score"] = json!(outcome.grounding_score);
    body["no_recall"] = json!(outcome.no_recall);
}

/// `POST /v1/embeddings` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct EmbeddingBody {
    /// One text or a list of up to 2048.
    input: EmbeddingInput,
    /// The embedding model's id (see `GET /v1/models`).
    model: String,
    /// `float` (the default) or `base64` (little-endian f32s).
    encoding_format: Option<String>,
    /// Must be the model's dimensions when given.
    dimensions: Option<usize>,
    /// `passage` (the default) or `query`: picks the model's prefix.
    input_type: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

/// Inputs per request.
const MAX_EMBEDDING_INPUTS: usize = 2048;

/// Embed texts with the server's embedding model.
#[utoipa::path(post, path = "/embeddings", tag = TAG_OPENAI, operation_id = "create_embeddings",
    security(("bot_key" = []), ("admin_token" = [])),
    request_body = inline(EmbeddingBody),
    responses(
        (status = 200, description = "`{object: list, data: [{object: embedding, index, embedding}], model, usage}`", body = Object),
        (status = 404, description = "Not this server's embedding model", body = ErrorBody),
    ))]
async fn embeddings(
    State(s): State<AppState>,
    _caller: Caller,
    AppJson(body): AppJson<EmbeddingBody>,
) -> Result<Json<Value>> {
    let info = s.embeddings.info().clone();
    if body.model != info.id {
        return Err(Error::not_found(format!(
            "embedding model '{}' (this server embeds with '{}')",
            body.model, info.id
        )));
    }
    // The official clients ask for base64 (little-endian f32s) by default.
    let as_base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(Error::InvalidInput(format!(
                "encoding_format must be float or base64, not '{other}'"
            )));
        }
    };
    if body.dimensions.is_some_and(|d| d != info.dims) {
        return Err(Error::InvalidInput(format!(
            "dimensions must be {} for {}",
            info.dims, info.id
        )));
    }
    let inputs = match body.input {
        EmbeddingInput::One(t) => vec![t],
        EmbeddingInput::Many(v) => v,
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(Error::InvalidInput(format!(
            "input must hold 1 to {MAX_EMBEDDING_INPUTS} texts"
        )));
    }
    if inputs.iter().any(|t| t.is_empty()) {
        return Err(Error::InvalidInput("input texts must not be empty".into()));
    }
    let as_query = match body.input_type.as_deref() {
        None | Some("passage") | Some("document") => false,
        Some("query") => true,
        Some(other) => {
            return Err(Error::InvalidInput(format!(
                "input_type must be passage or query, not '{other}'"
            )));
        }
    };
    let Embedded { vectors, tokens } = s.embeddings.embed(inputs, as_query).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| {
            let embedding = if as_base64 {
                let bytes: Vec<u8> = embedding.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(embedding)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": info.id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}
