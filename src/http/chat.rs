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
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::bot_key::BotKey;
use super::bots::service;
use super::error::AppJson;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::services::chat::{ChatEvent, ChatStream, History, Turn};
use crate::store::bots::BotSettings;
use crate::store::conversations::{Channel, ConversationRow};

/// Admin routes (under the admin guard): debug chat and persona optimisation.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/bots/{bot}/chat", post(debug_chat))
        .route("/bots/{bot}/optimize-persona", post(optimize_persona))
}

/// Routes for a bot's API key, nested at `/api/chat` (outside the admin guard: each
/// handler takes a [`BotKey`]): the published bot's card, chat and its conversations.
pub fn key_router() -> Router<AppState> {
    Router::new()
        .route("/{bot}", get(card).post(published_chat))
        .route("/{bot}/conversations", get(key_conversations))
        .route("/{bot}/conversations/{id}", get(key_conversation))
}

/// Body of a chat request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatBody {
    /// The question.
    message: String,
    /// Continue this conversation; a new one when absent.
    conversation_id: Option<String>,
}

async fn debug_chat(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(body): AppJson<ChatBody>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let bot = service(&s).bot(&bot).await?;
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
    Ok(sse(s.chat().start(turn).await?))
}

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
    Ok(sse(s.chat().start(turn).await?))
}

/// The bot a key opens, with its published settings.
pub(crate) async fn published(
    s: &AppState,
    key: &BotKey,
    bot: &str,
) -> Result<(String, i64, BotSettings)> {
    let bot = service(s).bot(bot).await?;
    key.opens(&bot)?;
    let Some((version, settings)) = s.store.published_bot(&bot.bot_id).await? else {
        return Err(Error::not_found(format!(
            "a published version of bot '{}' (publish it first)",
            bot.name
        )));
    };
    Ok((bot.bot_id, version, settings))
}

/// What a chat page shows before the first question.
#[derive(Debug, Serialize)]
struct Card {
    id: String,
    name: String,
    description: String,
    opening_message: String,
    suggested_questions: Vec<String>,
    version: i64,
}

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

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn key_conversations(
    State(s): State<AppState>,
    key: BotKey,
    Path(bot): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ConversationRow>>> {
    let (bot_id, _, _) = published(&s, &key, &bot).await?;
    Ok(Json(
        s.store
            .list_conversations(
                &bot_id,
                Some(Channel::Published),
                Some(&key.0.key_id),
                q.limit.unwrap_or(50).clamp(1, 200),
            )
            .await?,
    ))
}

async fn key_conversation(
    State(s): State<AppState>,
    key: BotKey,
    Path((bot, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>> {
    let (bot_id, _, _) = published(&s, &key, &bot).await?;
    let detail = service(&s).conversation(&id).await?;
    let c = &detail.conversation;
    if c.bot_id != bot_id || c.key_id.as_deref() != Some(key.0.key_id.as_str()) {
        return Err(Error::not_found(format!("conversation '{id}'")));
    }
    Ok(Json(
        serde_json::to_value(detail).map_err(|e| Error::Internal(e.to_string()))?,
    ))
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
                ChatEvent::Done(outcome) => yield Ok(json_event("done", &outcome)),
                ChatEvent::Failed { answer, message } => yield Ok(json_event(
                    "error",
                    &json!({"code": "llm_failed", "message": message, "answer": answer}),
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptimizeBody {
    /// The persona to improve; the draft's when absent.
    persona: Option<String>,
}

/// The suggestion; nothing is saved until the user accepts it (a PATCH of the draft).
#[derive(Debug, Serialize)]
struct Suggestion {
    original: String,
    persona: String,
    timings_ms: u64,
}

async fn optimize_persona(
    State(s): State<AppState>,
    Path(bot): Path<String>,
    AppJson(body): AppJson<OptimizeBody>,
) -> Result<Json<Suggestion>> {
    let started = std::time::Instant::now();
    let bot = service(&s).bot(&bot).await?;
    let original = body.persona.unwrap_or(bot.draft.persona);
    let persona = s
        .chat()
        .suggest_persona(&original, &bot.name, &bot.draft.description)
        .await?;
    Ok(Json(Suggestion {
        original,
        persona,
        timings_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}
