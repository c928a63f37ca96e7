//! `GET /api/limits`: the limits the server enforces, for clients to show and check
//! before they ask (no auth: they hold no secrets, and the published chat page needs them).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::openapi::TAG_SERVER;
use crate::app::AppState;
use crate::services::limits::{self, BotLimits, Limits, SplitLimits, WebLimits};

/// The limits the server enforces; requests past them are refused with the same numbers in
/// their error messages.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Limits)]
pub(crate) struct LimitsView {
    /// Longest chat message (a question), in characters, on every channel.
    question_chars: usize,
    /// Longest hit-test query, in characters.
    search_query_chars: usize,
    /// Largest `top_k` of a hit test.
    search_top_k_max: usize,
    /// Longest knowledge base name, in characters.
    kb_name_chars: usize,
    /// Longest knowledge base description, in characters.
    kb_description_chars: usize,
    /// Longest document name kept, in characters: a longer file name (or pasted text's
    /// name) is cut to this many, not refused.
    document_name_chars: usize,
    /// Largest file an upload takes, in bytes.
    upload_bytes: u64,
    /// The file types an upload takes; any other gets 415 naming these extensions.
    accepted_types: Vec<FileTypeView>,
    /// Web pages added by URL.
    web: WebLimitsView,
    /// Splitting.
    split: SplitLimitsView,
    /// A bot's settings.
    bot: BotLimitsView,
}

/// A file type an upload takes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = FileType)]
pub(crate) struct FileTypeView {
    /// How a person reads it, e.g. "Word (docx/doc)".
    label: &'static str,
    /// Its extensions, lowercase, without the dot.
    extensions: &'static [&'static str],
}

/// Bounds of web pages added by URL.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebLimits)]
pub(crate) struct WebLimitsView {
    /// Most URLs in one request.
    urls_per_request: usize,
    /// Largest page fetched, in bytes; a larger one is a failed document.
    fetch_bytes: u64,
    /// Time limit for one fetch, redirects included, in milliseconds.
    fetch_timeout_ms: u64,
    /// Most redirects followed for one URL.
    redirects: usize,
    /// Deepest crawl, in links from the start page.
    crawl_depth_max: u32,
    /// Most pages of one crawl or sitemap.
    crawl_pages_max: u32,
    /// Most sitemaps of one sitemap index (`<sitemapindex>`) read.
    sitemaps_per_index: usize,
    /// Shortest re-sync interval a knowledge base's schedule takes, in minutes.
    sync_interval_minutes_min: u32,
    /// Longest re-sync interval a knowledge base's schedule takes, in minutes.
    sync_interval_minutes_max: u32,
}

impl From<WebLimits> for WebLimitsView {
    fn from(w: WebLimits) -> Self {
        Self {
            urls_per_request: w.urls_per_request,
            fetch_bytes: w.fetch_bytes,
            fetch_timeout_ms: w.fetch_timeout_ms,
            redirects: w.redirects,
            crawl_depth_max: w.crawl_depth_max,
            crawl_pages_max: w.crawl_pages_max,
            sitemaps_per_index: w.sitemaps_per_index,
            sync_interval_minutes_min: w.sync_interval_minutes_min,
            sync_interval_minutes_max: w.sync_interval_minutes_max,
        }
    }
}

/// Bounds of a custom split and the automatic split's sizes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = SplitLimits)]
pub(crate) struct SplitLimitsView {
    /// Smallest `max_tokens` of a custom split.
    min_tokens: usize,
    /// Largest `max_tokens` of a custom split.
    max_tokens: usize,
    /// A custom split's `overlap_tokens` is at most its `max_tokens` divided by this,
    /// rounded down.
    max_overlap_divisor: usize,
    /// What a chunk of the automatic split holds at most, in tokens.
    auto_tokens: usize,
    /// Overlap of the automatic split's neighbouring chunks, in tokens.
    auto_overlap_tokens: usize,
}

/// Bounds of a bot's settings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = BotLimits)]
pub(crate) struct BotLimitsView {
    /// Longest name of the bot or of one of its API keys, in characters.
    name_chars: usize,
    /// Longest description, in characters.
    description_chars: usize,
    /// Longest persona, in characters.
    persona_chars: usize,
    /// Longest opening message, in characters.
    opening_chars: usize,
    /// Most suggested questions.
    suggested_questions: usize,
    /// Longest suggested question, in characters.
    suggested_question_chars: usize,
    /// Longest fixed reply when nothing is found, in characters.
    no_recall_reply_chars: usize,
    /// Largest `retrieval.top_k`.
    top_k_max: usize,
    /// Largest `retrieval.read_tokens`.
    read_tokens_max: usize,
    /// Highest `model.temperature`.
    temperature_max: f32,
    /// Largest `model.max_tokens`, and the cap on `/v1`'s `max_tokens`.
    max_tokens_max: u32,
    /// Largest `model.history_turns`.
    history_turns_max: u32,
    /// Most tools of one bot.
    tools_max: usize,
}

impl From<Limits> for LimitsView {
    fn from(l: Limits) -> Self {
        Self {
            question_chars: l.question_chars,
            search_query_chars: l.search_query_chars,
            search_top_k_max: l.search_top_k_max,
            kb_name_chars: l.kb_name_chars,
            kb_description_chars: l.kb_description_chars,
            document_name_chars: l.document_name_chars,
            upload_bytes: l.upload_bytes,
            accepted_types: l
                .accepted_types
                .iter()
                .map(|t| FileTypeView {
                    label: t.label,
                    extensions: t.extensions,
                })
                .collect(),
            web: l.web.into(),
            split: l.split.into(),
            bot: l.bot.into(),
        }
    }
}

impl From<SplitLimits> for SplitLimitsView {
    fn from(s: SplitLimits) -> Self {
        Self {
            min_tokens: s.min_tokens,
            max_tokens: s.max_tokens,
            max_overlap_divisor: s.max_overlap_divisor,
            auto_tokens: s.auto_tokens,
            auto_overlap_tokens: s.auto_overlap_tokens,
        }
    }
}

impl From<BotLimits> for BotLimitsView {
    fn from(b: BotLimits) -> Self {
        Self {
            name_chars: b.name_chars,
            description_chars: b.description_chars,
            persona_chars: b.persona_chars,
            opening_chars: b.opening_chars,
            suggested_questions: b.suggested_questions,
            suggested_question_chars: b.suggested_question_chars,
            no_recall_reply_chars: b.no_recall_reply_chars,
            top_k_max: b.top_k_max,
            read_tokens_max: b.read_tokens_max,
            temperature_max: b.temperature_max,
            max_tokens_max: b.max_tokens_max,
            history_turns_max: b.history_turns_max,
            tools_max: b.tools_max,
        }
    }
}

/// The limits the server enforces: message length, upload size and types, split bounds,
/// bot settings' bounds (no auth).
#[utoipa::path(
    get,
    path = "/api/limits",
    tag = TAG_SERVER,
    operation_id = "limits",
    responses((status = 200, description = "The limits in force", body = LimitsView))
)]
pub(crate) async fn show(State(state): State<AppState>) -> Json<LimitsView> {
    Json(limits::limits(&state.config).into())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::LimitsView;
    use crate::config::Config;
    use crate::services::limits::limits;

    /// Every number under `value`, named by its key (the keys of `/api/limits` are unique
    /// across its levels).
    fn numbers<'a>(value: &'a Value, out: &mut Vec<(&'a str, f64)>) {
        if let Value::Object(map) = value {
            for (key, v) in map {
                match v {
                    Value::Number(n) => out.push((key, n.as_f64().unwrap())),
                    _ => numbers(v, out),
                }
            }
        }
    }

    /// docs/api.md shows what `GET /api/limits` answers under the shipped defaults; this
    /// keeps that sample from going stale when a limit changes or one is added.
    #[test]
    fn the_api_docs_show_the_limits_served_by_default() {
        let docs = include_str!("../../docs/api.md");
        let sample = docs
            .split("```jsonc")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/api.md has a ```jsonc block with the limits");
        let config = Config::load(None).unwrap();
        let served = serde_json::to_value(LimitsView::from(limits(&config))).unwrap();
        let mut found = Vec::new();
        numbers(&served, &mut found);
        for (key, value) in found {
            let shown = sample
                .split(&format!("\"{key}\":"))
                .nth(1)
                .and_then(|rest| {
                    rest.trim_start()
                        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                        .next()
                })
                .and_then(|n| n.parse::<f64>().ok());
            assert_eq!(shown, Some(value), "docs/api.md's limits sample: {key}");
        }
    }
}
