//! Bots: create and edit a draft, publish it as a version, hand out API keys, and read
//! back recorded conversations.
//!
//! Settings arrive as JSON. Creating a bot merges the body over the defaults and editing
//! one merges the body over the current draft, both as a JSON merge patch (RFC 7396):
//! `{"retrieval": {"top_k": 5}}` changes one field and keeps the rest, `null` resets a
//! field to its default. Unlike the stored form, the API refuses unknown fields, so a
//! misspelt setting is an error instead of silently doing nothing.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::secrets::SecretBox;
use super::tools;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::bot_tools::{BotTool, HttpTool, ToolHeader};
use crate::store::bots::{BotRow, BotSettings, BotVersion, NoRecallMode};
use crate::store::conversations::{Channel, ConversationRow, MessageRow};
use crate::store::keys::KeyRow;

/// The bot service.
#[derive(Debug, Clone)]
pub struct BotService {
    /// Database.
    pub store: Store,
    /// Seals the secrets of the bots' tools.
    pub secrets: Arc<SecretBox>,
}

// Limits on settings, named in the errors that enforce them and served by
// `GET /api/limits` (see `services::limits`).
/// Longest name of a bot or of one of its API keys, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest bot description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Longest persona (the system prompt's own words), in characters.
pub const MAX_PERSONA_CHARS: usize = 8000;
/// Longest opening message, in characters.
pub const MAX_OPENING_CHARS: usize = 2000;
/// Most suggested questions.
pub const MAX_QUESTIONS: usize = 10;
/// Longest suggested question a bot shows under its opening message, in characters (a
/// short prompt to click, not a message: see [`super::chat::MAX_QUESTION_CHARS`]).
pub const MAX_SUGGESTED_QUESTION_CHARS: usize = 200;
/// Longest fixed reply when nothing is found (`no_recall.reply`), in characters.
pub const MAX_REPLY_CHARS: usize = 2000;
/// Most passages given to the model (`retrieval.top_k`).
pub const MAX_TOP_K: usize = 20;
/// Most passage tokens a bot may read for an answer (`retrieval.read_tokens`).
pub const MAX_READ_TOKENS: usize = 4096;
/// Highest sampling temperature (`model.temperature`).
pub const MAX_TEMPERATURE: f32 = 2.0;
/// Longest answer in tokens, for a bot's `model.max_tokens` and for the `max_tokens` a
/// `/v1` client asks for (which is capped to it).
pub const MAX_MAX_TOKENS: u32 = 4096;
/// Most earlier turns given to the model (`model.history_turns`).
pub const MAX_HISTORY_TURNS: u32 = 50;

/// Body of `POST /api/bots/{bot}/keys`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the owner calls the key.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    pub name: String,
}

/// A new key: the only time the key itself is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyCreated {
    /// Key id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The key.
    pub key: String,
    /// Its first characters, as lists show them.
    pub prefix: String,
    /// Creation time.
    pub created_at: String,
}

/// A recorded conversation with its messages, in order.
#[derive(Debug, Clone)]
pub struct RecordedConversation {
    /// The conversation.
    pub conversation: ConversationRow,
    /// Its messages, oldest first.
    pub messages: Vec<MessageRow>,
}

/// Apply a JSON merge patch (RFC 7396) to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The first field of `patch` that `schema` (the serialized defaults) does not have, as a
/// dotted path, with the fields allowed at that level.
fn unknown_field(patch: &Value, schema: &Value, path: &str) -> Option<(String, String)> {
    let (Value::Object(patch), Value::Object(schema)) = (patch, schema) else {
        return None;
    };
    for (key, value) in patch {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match schema.get(key) {
            None => {
                let known: Vec<&str> = schema.keys().map(String::as_str).collect();
                return Some((here, known.join(", ")));
            }
            Some(inner) => {
                if let Some(found) = unknown_field(value, inner, &here) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// `base` with `body` merged over it, refusing unknown fields and ill-typed values.
pub fn settings_from_json(base: &BotSettings, body: &Value) -> Result<BotSettings> {
    if !body.is_object() {
        return Err(Error::InvalidInput(
            "bot settings must be a JSON object".into(),
        ));
    }
    let schema = to_value(&BotSettings::default())?;
    if let Some((field, known)) = unknown_field(body, &schema, "") {
        return Err(Error::InvalidInput(format!(
            "unknown bot setting '{field}' (expected one of: {known})"
        )));
    }
    if let Some(Value::Array(tools)) = body.get("tools") {
        check_tool_fields(tools)?;
    }
    let mut merged = to_value(base)?;
    merge_patch(&mut merged, body);
    serde_json::from_value(merged)
        .map_err(|e| Error::InvalidInput(format!("invalid bot settings: {e}")))
}

/// Refuse fields a tool (or a header of an HTTP tool) does not have, as for the settings
/// themselves (a misspelt `url` would otherwise leave an empty one).
fn check_tool_fields(tools: &[Value]) -> Result<()> {
    let http = serde_json::to_value(BotTool::Http(HttpTool::default()))
        .map_err(|e| Error::Internal(e.to_string()))?;
    let header =
        serde_json::to_value(ToolHeader::default()).map_err(|e| Error::Internal(e.to_string()))?;
    for (i, tool) in tools.iter().enumerate() {
        let Value::Object(fields) = tool else {
            return Err(Error::InvalidInput(format!(
                "tools[{i}] must be an object with a \"type\" (http, current_time, calculator)"
            )));
        };
        let mut schema = http.clone();
        if fields.get("type").and_then(Value::as_str) != Some("http") {
            schema = json!({"type": ""});
        }
        // The headers are checked one by one below; the parameters are a JSON schema,
        // free in form.
        let mut flat = tool.clone();
        let headers = flat.as_object_mut().and_then(|f| f.remove("headers"));
        if let Some(f) = flat.as_object_mut() {
            f.remove("parameters");
        }
        if let Some((field, known)) = unknown_field(&flat, &schema, &format!("tools[{i}]")) {
            return Err(Error::InvalidInput(format!(
                "unknown tool setting '{field}' (expected one of: {known})"
            )));
        }
        for (j, h) in headers
            .iter()
            .flat_map(|h| h.as_array().into_iter().flatten())
            .enumerate()
        {
            let here = format!("tools[{i}].headers[{j}]");
            if let Some((field, known)) = unknown_field(h, &header, &here) {
                return Err(Error::InvalidInput(format!(
                    "unknown tool setting '{field}' (expected one of: {known})"
                )));
            }
        }
    }
    Ok(())
}

fn to_value(settings: &BotSettings) -> Result<Value> {
    serde_json::to_value(settings).map_err(|e| Error::Internal(e.to_string()))
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(message()))
    }
}

fn check_chars(field: &str, text: &str, max: usize) -> Result<()> {
    check(text.chars().count() <= max, || {
        format!("{field} must be at most {max} characters")
    })
}

/// A name: trimmed, 1 to `max` characters, no control characters.
fn checked_name(what: &str, name: &str, max: usize) -> Result<String> {
    let name = name.trim();
    check(!name.is_empty() && name.chars().count() <= max, || {
        format!("{what} must be 1 to {max} characters")
    })?;
    check(!name.chars().any(char::is_control), || {
        format!("{what} must not contain control characters")
    })?;
    Ok(name.to_string())
}

/// Check the settings that need no database, normalising what can be (trimming).
fn check_settings(mut s: BotSettings) -> Result<BotSettings> {
    s.name = checked_name("name", &s.name, MAX_NAME_CHARS)?;
    check_chars("description", &s.description, MAX_DESCRIPTION_CHARS)?;
    check_chars("persona", &s.persona, MAX_PERSONA_CHARS)?;
    check_chars("opening_message", &s.opening_message, MAX_OPENING_CHARS)?;
    check(s.suggested_questions.len() <= MAX_QUESTIONS, || {
        format!("suggested_questions must have at most {MAX_QUESTIONS} questions")
    })?;
    for q in &mut s.suggested_questions {
        *q = q.trim().to_string();
        check(!q.is_empty(), || {
            "suggested_questions must not contain empty questions".into()
        })?;
        check_chars(
            "each of suggested_questions",
            q,
            MAX_SUGGESTED_QUESTION_CHARS,
        )?;
    }
    let r = &s.retrieval;
    check((1..=MAX_TOP_K).contains(&r.top_k), || {
        format!("retrieval.top_k must be between 1 and {MAX_TOP_K}")
    })?;
    check(r.min_score.is_finite(), || {
        "retrieval.min_score must be a finite number".into()
    })?;
    check(r.read_tokens <= MAX_READ_TOKENS, || {
        format!("retrieval.read_tokens must be at most {MAX_READ_TOKENS} (0: whole passages)")
    })?;
    check(
        s.no_recall
            .min_answerable
            .is_none_or(|m| (0.0..=1.0).contains(&m)),
        || "no_recall.min_answerable must be between 0 and 1 (0: no check)".into(),
    )?;
    check_chars("no_recall.reply", &s.no_recall.reply, MAX_REPLY_CHARS)?;
    check(
        s.no_recall.mode != NoRecallMode::Fixed || !s.no_recall.reply.trim().is_empty(),
        || "no_recall.reply must not be empty when no_recall.mode is 'fixed'".into(),
    )?;
    let m = &s.model;
    check((0.0..=MAX_TEMPERATURE).contains(&m.temperature), || {
        format!("model.temperature must be between 0 and {MAX_TEMPERATURE}")
    })?;
    check((1..=MAX_MAX_TOKENS).contains(&m.max_tokens), || {
        format!("model.max_tokens must be between 1 and {MAX_MAX_TOKENS}")
    })?;
    check(m.history_turns <= MAX_HISTORY_TURNS, || {
        format!("model.history_turns must be at most {MAX_HISTORY_TURNS}")
    })?;
    tools::check_tools(&s.tools)?;
    Ok(s)
}

impl BotService {
    /// Check settings and normalise them: names trimmed, knowledge bases given by id or
    /// name resolved to their ids (each once, in the order given).
    pub async fn validate(&self, settings: BotSettings) -> Result<BotSettings> {
        let mut s = check_settings(settings)?;
        let mut ids: Vec<String> = Vec::with_capacity(s.knowledge_bases.len());
        for kb in &s.knowledge_bases {
            let row = match self.store.kb(kb).await {
                Ok(row) => row,
                Err(Error::NotFound { .. }) => {
                    return Err(Error::InvalidInput(format!(
                        "knowledge_bases: knowledge base '{kb}' does not exist"
                    )));
                }
                Err(e) => return Err(e),
            };
            if !ids.contains(&row.kb_id) {
                ids.push(row.kb_id);
            }
        }
        s.knowledge_bases = ids;
        Ok(s)
    }

    /// All bots.
    pub async fn list(&self) -> Result<Vec<BotRow>> {
        self.store.list_bots().await
    }

    /// One bot by id or name.
    pub async fn bot(&self, id_or_name: &str) -> Result<BotRow> {
        self.store.bot(id_or_name).await
    }

    /// Create a bot from settings.
    pub async fn create(&self, settings: BotSettings) -> Result<BotRow> {
        let mut settings = self.validate(settings).await?;
        tools::seal_secrets(&mut settings.tools, &[], &self.secrets)?;
        self.store.create_bot(&settings).await
    }

    /// Create a bot from a JSON body: the defaults with the body merged over them.
    pub async fn create_from_json(&self, body: &Value) -> Result<BotRow> {
        self.create(settings_from_json(&BotSettings::default(), body)?)
            .await
    }

    /// Edit a bot's draft with a JSON merge patch.
    pub async fn patch(&self, id_or_name: &str, patch: &Value) -> Result<BotRow> {
        let bot = self.store.bot(id_or_name).await?;
        let mut settings = self
            .validate(settings_from_json(&bot.draft, patch)?)
            .await?;
        tools::seal_secrets(&mut settings.tools, &bot.draft.tools, &self.secrets)?;
        self.store.update_bot_draft(&bot.bot_id, &settings).await
    }

    /// Delete a bot with its versions, keys and conversations.
    pub async fn delete(&self, id_or_name: &str) -> Result<()> {
        let bot = self.store.bot(id_or_name).await?;
        self.store.delete_bot(&bot.bot_id).await
    }

    /// Publish the draft as the next version.
    pub async fn publish(&self, id_or_name: &str) -> Result<BotVersion> {
        let bot = self.store.bot(id_or_name).await?;
        // Checked again: a knowledge base the draft names may have been deleted since.
        self.validate(bot.draft).await?;
        self.store.publish_bot(&bot.bot_id).await
    }

    /// A bot's published versions, newest first.
    pub async fn versions(&self, id_or_name: &str) -> Result<Vec<BotVersion>> {
        let bot = self.store.bot(id_or_name).await?;
        self.store.list_bot_versions(&bot.bot_id).await
    }

    /// A bot's published version and its settings; `None` until it is first published.
    pub async fn published(&self, bot_id: &str) -> Result<Option<(i64, BotSettings)>> {
        self.store.published_bot(bot_id).await
    }

    /// The live key a bearer token is; `None` for an unknown or revoked key.
    pub async fn authenticate_key(&self, token: &str) -> Result<Option<KeyRow>> {
        self.store.authenticate_key(token).await
    }

    /// Make an API key for a bot.
    pub async fn create_key(&self, id_or_name: &str, req: CreateKey) -> Result<KeyCreated> {
        let name = checked_name("key name", &req.name, MAX_NAME_CHARS)?;
        let bot = self.store.bot(id_or_name).await?;
        let (row, key) = self.store.create_bot_key(&bot.bot_id, &name).await?;
        Ok(KeyCreated {
            id: row.key_id,
            name: row.name,
            key,
            prefix: row.prefix,
            created_at: row.created_at,
        })
    }

    /// A bot's keys, without the keys themselves.
    pub async fn keys(&self, id_or_name: &str) -> Result<Vec<KeyRow>> {
        let bot = self.store.bot(id_or_name).await?;
        self.store.list_bot_keys(&bot.bot_id).await
    }

    /// Revoke a key of a bot.
    pub async fn revoke_key(&self, id_or_name: &str, key_id: &str) -> Result<KeyRow> {
        let bot = self.store.bot(id_or_name).await?;
        self.store.revoke_bot_key(&bot.bot_id, key_id).await
    }

    /// A bot's conversations, most recent first.
    pub async fn conversations(
        &self,
        id_or_name: &str,
        channel: Option<Channel>,
        limit: i64,
    ) -> Result<Vec<ConversationRow>> {
        let bot = self.store.bot(id_or_name).await?;
        self.store
            .list_conversations(&bot.bot_id, channel, None, limit)
            .await
    }

    /// The conversations one API key had with a bot on its published channel, most
    /// recent first.
    pub async fn key_conversations(
        &self,
        bot_id: &str,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<ConversationRow>> {
        self.store
            .list_conversations(bot_id, Some(Channel::Published), Some(key_id), limit)
            .await
    }

    /// A conversation with its messages.
    pub async fn conversation(&self, conversation_id: &str) -> Result<RecordedConversation> {
        let conversation = self.store.conversation(conversation_id).await?;
        let messages = self.store.list_messages(conversation_id).await?;
        Ok(RecordedConversation {
            conversation,
            messages,
        })
    }

    /// Delete a conversation.
    pub async fn delete_conversation(&self, conversation_id: &str) -> Result<()> {
        self.store.delete_conversation(conversation_id).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_keeps_what_it_does_not_name() {
        let mut base = BotSettings {
            name: "b".into(),
            ..Default::default()
        };
        base.retrieval.min_score = 0.5;
        let s = settings_from_json(&base, &json!({"retrieval": {"top_k": 5}})).unwrap();
        assert_eq!(s.retrieval.top_k, 5);
        assert_eq!(s.retrieval.min_score, 0.5);
        assert_eq!(s.name, "b");

        // null resets to the default.
        let s = settings_from_json(&s, &json!({"retrieval": {"min_score": null}})).unwrap();
        assert_eq!(s.retrieval.min_score, 0.0);
        assert_eq!(s.retrieval.top_k, 5);

        // Arrays are replaced, not merged.
        let mut t = json!({"a": [1, 2], "b": {"c": 1}});
        merge_patch(&mut t, &json!({"a": [3], "b": {"d": 2}}));
        assert_eq!(t, json!({"a": [3], "b": {"c": 1, "d": 2}}));
    }

    #[test]
    fn unknown_and_ill_typed_settings_are_refused() {
        let base = BotSettings::default();
        let e = settings_from_json(&base, &json!({"retrieval": {"topk": 5}})).unwrap_err();
        assert!(e.to_string().contains("'retrieval.topk'"), "{e}");
        assert!(e.to_string().contains("top_k"), "{e}");
        let e = settings_from_json(&base, &json!({"model": {"max_tokens": "many"}})).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
        let e = settings_from_json(&base, &json!({"no_recall": {"mode": "silent"}})).unwrap_err();
        assert!(e.to_string().contains("fixed"), "{e}");
        assert!(settings_from_json(&base, &json!([1])).is_err());
    }

    #[test]
    fn limits_are_checked() {
        let ok = BotSettings {
            name: "  客服  ".into(),
            ..Default::default()
        };
        assert_eq!(check_settings(ok.clone()).unwrap().name, "客服");
        let bad = |f: fn(&mut BotSettings), what: &str| {
            let mut s = ok.clone();
            f(&mut s);
            let e = check_settings(s).unwrap_err();
            assert!(e.to_string().contains(what), "{what}: {e}");
        };
        bad(|s| s.name = "   ".into(), "name");
        bad(|s| s.name = "x".repeat(65), "name");
        bad(|s| s.persona = "x".repeat(8001), "persona");
        bad(
            |s| s.suggested_questions = vec!["q".into(); 11],
            "suggested_questions",
        );
        bad(
            |s| s.suggested_questions = vec!["x".repeat(201)],
            "suggested_questions",
        );
        bad(|s| s.retrieval.top_k = 0, "top_k");
        bad(|s| s.retrieval.top_k = 21, "top_k");
        bad(|s| s.retrieval.min_score = f32::NAN, "min_score");
        bad(|s| s.retrieval.read_tokens = 5000, "read_tokens");
        bad(|s| s.no_recall.min_answerable = Some(1.5), "min_answerable");
        bad(
            |s| s.no_recall.min_answerable = Some(f32::NAN),
            "min_answerable",
        );
        bad(|s| s.model.temperature = 2.5, "temperature");
        bad(|s| s.model.temperature = f32::NAN, "temperature");
        bad(|s| s.model.max_tokens = 0, "max_tokens");
        bad(|s| s.model.max_tokens = 5000, "max_tokens");
        bad(|s| s.model.history_turns = 51, "history_turns");
        bad(|s| s.no_recall.reply = " ".into(), "no_recall.reply");
    }
}
