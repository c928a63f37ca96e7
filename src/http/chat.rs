//! Chat over server-sent events: the debug chat of a bot's draft (admin token) and the
//! published chat (a bot API key), plus the persona optimiser.
//!
//! Events: `start` `{conversation_id}`, then `token` `{text}` as the answer streams, then
//! `done` with citations, usage, timings (and the retrieval trace in debug), or `error`
//! `{code, message, answer}` when generation fails midway. Closing the connection cancels
//! the answer; what was written so far is recorded as interrupted.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::bot_key::BotKey;
use super::conversations::{ConversationDetail, ConversationView};
use super::error::{AppJson, AppQuery, ErrorBody};
use super::openapi::{SseEvent, TAG_BOTS, TAG_CHAT};
use super::views;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::chat::{ChatEvent, ChatStream, History, Turn};
use crate::store::bots::BotSettings;
use crate::store::conversations::Channel;

/// Admin routes (under the admin guard): debug chat and persona optimisation.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(debug_chat))
        .routes(routes!(optimize_persona))
}

/// Routes for a bot's API key, nested at `/api/chat` (outside the admin guard: each
/// handler takes a [`BotKey`]): the published bot's card, chat and its conversations.
pub fn key_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(card, published_chat))
        .routes(routes!(key_conversations))
        .routes(routes!(key_conversation))
}

/// What the SSE stream of a chat carries (see the module docs).
const SSE_DESCRIPTION: &str = "Server-sent events: `start` {conversation_id}, `token` {text}… \
    then `done` {answer, citations, usage, timings…} or `error` {code, message, answer}";

/// Body of a chat request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ChatBody {
    /// The question.
    #[schema(min_length = 1, max_length = 4000, pattern = r"\S")]
    message: String,
    /// Continue this conversation; a new one when absent.
    conversation_id: Option<String>,
}

/// Ask the bot's draft (debug chat): the `done` event carries the retrieval trace.
#[utoipa::path(post, path = "/bots/{bot}/chat", tag = TAG_BOTS, operation_id = "debug_chat",
    params(("bot" = String, Path, description = "Bot id or name")),
    request_body = ChatBody,
    responses(
        (status = 200, description = SSE_DESCRIPTION, content_type = "text/event-stream", body = SseEvent),
        (status = 429, description = "Every model slot is busy (see Retry-After)", body = ErrorBody),
        (status = 503, description = "The model is not available", body = ErrorBody),
    ))]
async fn debug_chat(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(body): AppJson<ChatBody>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let bot = s.bots.bot(&bot).await?;
    let mut turn = Turn::new(
        bot.bot_id,
        bot.draft,
        body.message,
        History::Stored {
            conversation_id: body.conversation_id,
            channel: Channel::Debug,
            key_id: None,
        },
    );
    turn.trace = true;
    Ok(sse(s.chat.start(turn).await?))
}

/// Ask the published bot; the conversation is recorded for this key.
#[utoipa::path(post, path = "/{bot}", tag = TAG_CHAT, operation_id = "chat",
    params(("bot" = String, Path, description = "Bot id or name")),
    security(("bot_key" = [])),
    request_body = ChatBody,
    responses(
        (status = 200, description = SSE_DESCRIPTION, content_type = "text/event-stream", body = SseEvent),
        (status = 403, description = "The key belongs to another bot", body = ErrorBody),
        (status = 503, description = "The model is not available", body = ErrorBody),
    ))]
async fn published_chat(
    State(s): State<AppState>,
    key: BotKey,
    Path(bot): Path<String>,
    AppJson(body): AppJson<ChatBody>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let (bot_id, _, settings) = published(&s, &key, &bot).await?;
    let turn = Turn::new(
        bot_id,
        settings,
        body.message,
        History::Stored {
            conversation_id: body.conversation_id,
            channel: Channel::Published,
            key_id: Some(key.0.key_id.clone()),
        },
    );
    Ok(sse(s.chat.start(turn).await?))
}

/// The bot a key opens, with its published settings.
pub(crate) async fn published(
    s: &AppState,
    key: &BotKey,
    bot: &str,
) -> Result<(String, i64, BotSettings)> {
    let bot = s.bots.bot(bot).await?;
    key.opens(&bot)?;
    let Some((version, settings)) = s.bots.published(&bot.bot_id).await? else {
        return Err(Error::not_found(format!(
            "a published version of bot '{}' (publish it first)",
            bot.name
        )));
    };
    Ok((bot.bot_id, version, settings))
}

/// What a chat page shows before the first question.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Card {
    /// Bot id.
    id: String,
    /// Name.
    name: String,
    /// Description.
    description: String,
    /// The bot's first message.
    opening_message: String,
    /// Questions offered to a new user.
    suggested_questions: Vec<String>,
    /// The published version answering.
    version: i64,
}

/// The published bot's card: what a chat page shows before the first question.
#[utoipa::path(get, path = "/{bot}", tag = TAG_CHAT, operation_id = "bot_card",
    params(("bot" = String, Path, description = "Bot id or name")),
    security(("bot_key" = [])),
    responses(
        (status = 200, description = "The card", body = Card),
        (status = 403, description = "The key belongs to another bot", body = ErrorBody),
    ))]
async fn card(
    State(s): State<AppState>,
    key: BotKey,
    Path(bot): Path<String>,
) -> Result<Json<Card>> {
    let (id, version, settings) = published(&s, &key, &bot).await?;
    Ok(Json(Card {
        id,
        name: settings.name,
        description: settings.description,
        opening_message: settings.opening_message,
        suggested_questions: settings.suggested_questions,
        version,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many, newest first (clamped to 1..200).
    #[param(default = 50)]
    limit: Option<i64>,
}

/// This key's conversations with the published bot, newest first.
#[utoipa::path(get, path = "/{bot}/conversations", tag = TAG_CHAT, operation_id = "list_key_conversations",
    params(("bot" = String, Path, description = "Bot id or name"), ListQuery),
    security(("bot_key" = [])),
    responses(
        (status = 200, description = "Conversations", body = Vec<ConversationView>),
        (status = 403, description = "The key belongs to another bot", body = ErrorBody),
    ))]
async fn key_conversations(
    State(s): State<AppState>,
    key: BotKey,
    Path(bot): Path<String>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<Vec<ConversationView>>> {
    let (bot_id, _, _) = published(&s, &key, &bot).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    Ok(Json(views(
        s.bots
            .key_conversations(&bot_id, &key.0.key_id, limit)
            .await?,
    )))
}

/// One of this key's conversations, with its messages.
#[utoipa::path(get, path = "/{bot}/conversations/{id}", tag = TAG_CHAT, operation_id = "show_key_conversation",
    params(("bot" = String, Path, description = "Bot id or name"), ("id" = String, Path, description = "Conversation id")),
    security(("bot_key" = [])),
    responses(
        (status = 200, description = "The conversation", body = ConversationDetail),
        (status = 403, description = "The key belongs to another bot", body = ErrorBody),
    ))]
async fn key_conversation(
    State(s): State<AppState>,
    key: BotKey,
    Path((bot, id)): Path<(String, String)>,
) -> Result<Json<ConversationDetail>> {
    let (bot_id, _, _) = published(&s, &key, &bot).await?;
    let detail = s.bots.conversation(&id).await?;
    let c = &detail.conversation;
    if c.bot_id != bot_id || c.key_id.as_deref() != Some(key.0.key_id.as_str()) {
        return Err(Error::not_found(format!("conversation '{id}'")));
    }
    Ok(Json(detail.into()))
}

/// Turn a started answer into SSE.
fn sse(stream: ChatStream) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ChatStream {
        conversation_id,
        mut events,
    } = stream;
    let body = async_stream::stream! {
        yield Ok(json_event("start", &json!({"conversation_id": conversation_id})));
        while let Some(event) = events.recv().await {
            match event {
                ChatEvent::Token(text) => yield Ok(json_event("token", &json!({"text": text}))),
                ChatEvent::ToolCall(call) | ChatEvent::ToolRun(call) => yield Ok(json_event("tool_call", &call)),
                ChatEvent::ToolResult(step) => yield Ok(json_event("tool_result", &step)),
                ChatEvent::Done(outcome) => yield Ok(json_event("done", &outcome)),
                ChatEvent::Failed { answer, message, code } => yield Ok(json_event(
                    "error",
                    &json!({"code": code, "message": message, "answer": answer}),
                )),
            }
        }
    };
    Sse::new(body).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}

/// Body of `POST /api/bots/{bot}/optimize-persona`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OptimizeBody {
    /// The persona to improve; the draft's when absent.
    persona: Option<String>,
}

/// The suggestion; nothing is saved until the user accepts it (a PATCH of the draft).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Suggestion {
    /// The persona improved.
    original: String,
    /// The suggestion.
    persona: String,
    /// How long it took.
    timings_ms: u64,
}

/// Ask the model for a better persona; nothing is saved.
#[utoipa::path(post, path = "/bots/{bot}/optimize-persona", tag = TAG_BOTS, operation_id = "optimize_persona",
    params(("bot" = String, Path, description = "Bot id or name")),
    request_body = OptimizeBody,
    responses(
        (status = 200, description = "The suggestion", body = Suggestion),
        (status = 429, description = "Every model slot is busy (see Retry-After)", body = ErrorBody),
        (status = 502, description = "The model failed", body = ErrorBody),
        (status = 503, description = "The model is not available", body = ErrorBody),
    ))]
async fn optimize_persona(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(body): AppJson<OptimizeBody>,
) -> Result<Json<Suggestion>> {
    let started = std::time::Instant::now();
    let bot = s.bots.bot(&bot).await?;
    let original = body.persona.unwrap_or(bot.draft.persona);
    let persona = s
        .chat
        .suggest_persona(&original, &bot.name, &bot.draft.description)
        .await?;
    Ok(Json(Suggestion {
        original,
        persona,
        timings_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}
