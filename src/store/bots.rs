//! The `bot` and `bot_version` tables, and the settings a bot is made of.
//!
//! Settings are stored as JSON. Every struct is `#[serde(default)]` and none denies
//! unknown fields, so rows written by an older or newer zhiku still load: a missing field
//! takes its default, an unknown one is ignored. (The API is stricter; see
//! `services::bots`.)

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::Store;
use super::bot_tools::{self, BotTool};
use crate::error::{Error, Result};
use ingest::on_db;

/// Which retrievers to use (a bot's retrieval setting, and a search request's mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 only.
    Fulltext,
    /// Vectors only.
    Semantic,
    /// Both, fused.
    #[default]
    Hybrid,
}

/// Everything that makes a bot what it is: the draft, and each published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct BotSettings {
    /// Unique name (also the `bot.name` column); required to create a bot.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    pub name: String,
    /// Free text for people choosing a bot.
    #[schema(max_length = 2000)]
    pub description: String,
    /// Instructions put before everything else in the system prompt.
    #[schema(max_length = 8000)]
    pub persona: String,
    /// Shown as the bot's first message of every conversation.
    #[schema(max_length = 2000)]
    pub opening_message: String,
    /// Questions offered to a new user.
    #[schema(max_items = 10)]
    pub suggested_questions: Vec<String>,
    /// Ids of the knowledge bases answers come from (canonical ids, never names).
    pub knowledge_bases: Vec<String>,
    /// How passages are retrieved.
    pub retrieval: RetrievalSettings,
    /// What to do when nothing relevant is retrieved.
    pub no_recall: NoRecallSettings,
    /// Generation settings.
    pub model: ModelSettings,
    /// Search a follow-up that refers back ("它…") together with the earlier questions it
    /// leans on (`prompt::follow_up_context`).
    pub rewrite_query: bool,
    /// Tools the model may call while it answers (HTTP endpoints, built-ins).
    #[schema(max_items = 16)]
    pub tools: Vec<BotTool>,
}

impl Default for BotSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            persona: String::new(),
            opening_message: String::new(),
            suggested_questions: Vec::new(),
            knowledge_bases: Vec::new(),
            retrieval: RetrievalSettings::default(),
            no_recall: NoRecallSettings::default(),
            model: ModelSettings::default(),
            rewrite_query: true,
            tools: Vec::new(),
        }
    }
}

impl BotSettings {
    /// The settings as the API shows them: secrets of tools left out.
    pub fn redacted(mut self) -> Self {
        self.tools = bot_tools::redacted(&self.tools);
        self
    }
}

/// How passages are retrieved for a question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RetrievalSettings {
    /// Retrievers (hybrid by default).
    pub mode: SearchMode,
    /// Passages given to the model.
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: usize,
    /// Passages scoring below this are dropped (meaning per mode: see `services::search`).
    pub min_score: f32,
    /// Show the passages an answer cites.
    pub show_sources: bool,
    /// The model reads at most about this many tokens of passage text in all: the
    /// sentences of the passages that matter most to the question (see
    /// `services::focus`). 0 gives whole chunks.
    #[schema(maximum = 4096)]
    pub read_tokens: usize,
}

/// The default [`RetrievalSettings::read_tokens`]. Three CMRC chunks cut together to 300
/// tokens keep 40 % of their text, and the default 1.5B's answers from them held the gold
/// answer as often as from whole chunks (23 and 22 of 40, docs/benchmarks.md), while the
/// prompt a CPU must read before the first token is about half as long.
pub const DEFAULT_READ_TOKENS: usize = 300;

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            mode: SearchMode::Hybrid,
            top_k: 3,
            min_score: 0.0,
            show_sources: true,
            read_tokens: DEFAULT_READ_TOKENS,
        }
    }
}

/// What to do when retrieval finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoRecallMode {
    /// Answer with [`NoRecallSettings::reply`], without asking the model.
    #[default]
    Fixed,
    /// Let the model answer from its own knowledge.
    Model,
}

/// The no-recall behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct NoRecallSettings {
    /// Fixed reply or the model.
    pub mode: NoRecallMode,
    /// The fixed reply.
    pub reply: String,
    /// Before answering from passages, the model is asked whether they hold the answer;
    /// below this probability of "yes" the bot gives the fixed reply instead of an
    /// answer the passages do not support. It is made only in `fixed` mode (in `model`
    /// mode the bot may answer from the model's own knowledge). A bot without knowledge
    /// bases says it has no live data when asked for some (weather, news, prices) rather
    /// than make them up. 0 turns both off; `null` takes `llm.min_answerable`, which is
    /// chosen for the configured model (the verdict's scale depends on the model).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_answerable: Option<f32>,
}

/// The fixed reply of a new bot when nothing is found.
pub const DEFAULT_NO_RECALL_REPLY: &str = "抱歉，知识库中没有找到与这个问题相关的内容。";

impl Default for NoRecallSettings {
    fn default() -> Self {
        Self {
            mode: NoRecallMode::Fixed,
            reply: DEFAULT_NO_RECALL_REPLY.into(),
            min_answerable: None,
        }
    }
}

/// Generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ModelSettings {
    /// Sampling temperature.
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: f32,
    /// Longest answer, in tokens.
    #[schema(minimum = 1, maximum = 4096)]
    pub max_tokens: u32,
    /// Earlier question-and-answer pairs given to the model.
    #[schema(maximum = 50)]
    pub history_turns: u32,
    /// An answer from passages opens with the sentence of theirs closest to the question,
    /// word for word, with its marker (`services::prompt::quote_opening`); the model goes
    /// on freely after it. Enforced by the local engine only.
    pub quote_first: bool,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            temperature: 0.3,
            max_tokens: 512,
            history_turns: 4,
            quote_first: true,
        }
    }
}

/// A bot with its draft and the version in force (the API shows it as `http::bots`'s
/// view). `published_version` and `published_at` are `None` until the first publish;
/// `unpublished_changes` is true when the draft differs from the version in force (always
/// true before the first publish).
#[derive(Debug, Clone)]
pub struct BotRow {
    /// Id (UUID).
    pub bot_id: String,
    /// Unique name.
    pub name: String,
    /// The settings being edited.
    pub draft: BotSettings,
    /// The version in force.
    pub published_version: Option<i64>,
    /// When that version was published.
    pub published_at: Option<String>,
    /// Whether the draft differs from the published version.
    pub unpublished_changes: bool,
    /// Creation time.
    pub created_at: String,
    /// Last change to the draft or the published version.
    pub updated_at: String,
}

/// A published version.
#[derive(Debug, Clone)]
pub struct BotVersion {
    /// Its bot.
    pub bot_id: String,
    /// Version number, from 1.
    pub version: i64,
    /// The settings frozen in it.
    pub settings: BotSettings,
    /// When.
    pub published_at: String,
}

#[derive(FromRow)]
struct RawBot {
    bot_id: String,
    name: String,
    draft_json: String,
    published_version: Option<i64>,
    published_json: Option<String>,
    published_at: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(FromRow)]
struct RawVersion {
    bot_id: String,
    version: i64,
    settings_json: String,
    published_at: String,
}

const SELECT: &str = "SELECT b.bot_id, b.name, b.draft_json, b.published_version,
        v.settings_json AS published_json, v.published_at AS published_at,
        b.created_at, b.updated_at
   FROM bot b
   LEFT JOIN bot_version v ON v.bot_id = b.bot_id AND v.version = b.published_version";

/// Settings JSON we wrote ourselves; failing to read it back is a bug, not bad input.
fn parse_settings(json: &str) -> Result<BotSettings> {
    serde_json::from_str(json).map_err(|e| Error::Internal(format!("stored bot settings: {e}")))
}

fn settings_json(settings: &BotSettings) -> Result<String> {
    serde_json::to_string(settings).map_err(|e| Error::Internal(e.to_string()))
}

impl TryFrom<RawBot> for BotRow {
    type Error = Error;
    fn try_from(b: RawBot) -> Result<Self> {
        let draft = parse_settings(&b.draft_json)?;
        let unpublished_changes = match &b.published_json {
            Some(json) => parse_settings(json)? != draft,
            None => true,
        };
        Ok(Self {
            bot_id: b.bot_id,
            name: b.name,
            draft,
            published_version: b.published_version,
            published_at: b.published_at,
            unpublished_changes,
            created_at: b.created_at,
            updated_at: b.updated_at,
        })
    }
}

impl TryFrom<RawVersion> for BotVersion {
    type Error = Error;
    fn try_from(v: RawVersion) -> Result<Self> {
        Ok(Self {
            settings: parse_settings(&v.settings_json)?,
            bot_id: v.bot_id,
            version: v.version,
            published_at: v.published_at,
        })
    }
}

fn name_taken(e: sqlx::Error, name: &str) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::Conflict(format!("a bot named '{name}' already exists"))
        }
        _ => e.into(),
    }
}

impl Store {
    /// Insert a bot with `settings` as its draft; a taken name is a conflict. The caller
    /// has validated the settings.
    pub async fn create_bot(&self, settings: &BotSettings) -> Result<BotRow> {
        let id = uuid::Uuid::new_v4().to_string();
        on_db!(
            &self.pool,
            "INSERT INTO bot (bot_id, name, draft_json) VALUES (?, ?, ?)",
            |e, q| sqlx::query(q)
                .bind(&id)
                .bind(&settings.name)
                .bind(settings_json(settings)?)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        )
        .map_err(|e| name_taken(e, &settings.name))?;
        self.bot(&id).await
    }

    /// All bots, by name.
    pub async fn list_bots(&self) -> Result<Vec<BotRow>> {
        let rows: Vec<RawBot> = on_db!(&self.pool, format!("{SELECT} ORDER BY b.name"), |e, q| {
            sqlx::query_as(q).fetch_all(e).await
        })?;
        rows.into_iter().map(BotRow::try_from).collect()
    }

    /// A bot by id or by name.
    pub async fn bot(&self, id_or_name: &str) -> Result<BotRow> {
        let row: RawBot = on_db!(
            &self.pool,
            format!("{SELECT} WHERE b.bot_id = ?1 OR b.name = ?1 LIMIT 1"),
            |e, q| sqlx::query_as(q).bind(id_or_name).fetch_optional(e).await
        )?
        .ok_or_else(|| Error::not_found(format!("bot '{id_or_name}'")))?;
        row.try_into()
    }

    /// Replace a bot's draft (and its name, which the draft carries).
    pub async fn update_bot_draft(&self, bot_id: &str, settings: &BotSettings) -> Result<BotRow> {
        let done = on_db!(&self.pool, "UPDATE bot SET name = ?, draft_json = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE bot_id = ?", |e, q| sqlx::query(q).bind(&settings.name).bind(settings_json(settings)?).bind(bot_id).execute(e).await.map(|r| r.rows_affected()))
        .map_err(|e| name_taken(e, &settings.name))?;
        if done == 0 {
            return Err(Error::not_found(format!("bot '{bot_id}'")));
        }
        self.bot(bot_id).await
    }

    /// Delete a bot with its versions, keys and conversations.
    pub async fn delete_bot(&self, bot_id: &str) -> Result<()> {
        let done = on_db!(&self.pool, "DELETE FROM bot WHERE bot_id = ?", |e, q| {
            sqlx::query(q)
                .bind(bot_id)
                .execute(e)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(Error::not_found(format!("bot '{bot_id}'")));
        }
        Ok(())
    }

    /// Freeze the draft as the next version and put it in force.
    pub async fn publish_bot(&self, bot_id: &str) -> Result<BotVersion> {
        // Two publishes at once must not both take version n + 1 (the second would fail on
        // bot_version's primary key). One write transaction, and on PostgreSQL the bot's
        // row locked while it computes the next number: a second publish waits for the
        // first to commit, then reads its version (read committed takes a fresh snapshot
        // per statement). SQLite's write transaction already runs one publish at a time.
        let mut tx = self.begin_write().await?;
        let (draft_json,): (String,) = on_db!(
            &mut tx,
            format!(
                "SELECT draft_json FROM bot WHERE bot_id = ?{}",
                self.backend().row_lock()
            ),
            |e, q| sqlx::query_as(q).bind(bot_id).fetch_optional(e).await
        )?
        .ok_or_else(|| Error::not_found(format!("bot '{bot_id}'")))?;
        let raw: RawVersion = on_db!(&mut tx, "INSERT INTO bot_version (bot_id, version, settings_json)
             VALUES (?1, (SELECT COALESCE(MAX(version), 0) + 1 FROM bot_version WHERE bot_id = ?1), ?2)
             RETURNING bot_id, version, settings_json, published_at", |e, q| sqlx::query_as(q).bind(bot_id).bind(&draft_json).fetch_one(e).await)?;
        on_db!(&mut tx, "UPDATE bot SET published_version = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE bot_id = ?", |e, q| sqlx::query(q).bind(raw.version).bind(bot_id).execute(e).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        raw.try_into()
    }

    /// The version in force and its settings; `None` until the bot is published.
    pub async fn published_bot(&self, bot_id: &str) -> Result<Option<(i64, BotSettings)>> {
        let row: Option<(i64, String)> = on_db!(
            &self.pool,
            "SELECT v.version, v.settings_json FROM bot b
               JOIN bot_version v ON v.bot_id = b.bot_id AND v.version = b.published_version
              WHERE b.bot_id = ?",
            |e, q| sqlx::query_as(q).bind(bot_id).fetch_optional(e).await
        )?;
        row.map(|(version, json)| Ok((version, parse_settings(&json)?)))
            .transpose()
    }

    /// A bot's published versions, newest first.
    pub async fn list_bot_versions(&self, bot_id: &str) -> Result<Vec<BotVersion>> {
        let rows: Vec<RawVersion> = on_db!(
            &self.pool,
            "SELECT bot_id, version, settings_json, published_at FROM bot_version
              WHERE bot_id = ? ORDER BY version DESC",
            |e, q| sqlx::query_as(q).bind(bot_id).fetch_all(e).await
        )?;
        rows.into_iter().map(BotVersion::try_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_fills_defaults() {
        let s: BotSettings =
            serde_json::from_str(r#"{"name": "b", "retrieval": {"top_k": 5}}"#).unwrap();
        assert_eq!(s.retrieval.top_k, 5);
        assert_eq!(s.retrieval.mode, SearchMode::Hybrid);
        assert!(s.retrieval.show_sources);
        assert!(s.rewrite_query);
        assert_eq!(s.no_recall.reply, DEFAULT_NO_RECALL_REPLY);
        assert_eq!(s.model.max_tokens, 512);
    }

    #[test]
    fn default_matches_empty_json() {
        let s: BotSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, BotSettings::default());
    }
}
