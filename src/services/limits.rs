//! The limits the server enforces, gathered in one place for clients (`GET /api/limits`,
//! the workspace and the published chat page), so that none of them keeps its own copy.
//! Each number is read from the constant (or the configuration) beside the code that
//! enforces it; this module only collects them.

use ingest::extract::{ACCEPTED_TYPES, FileType};
use ingest::split::{
    AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS, MAX_CHUNK_TOKENS, MAX_OVERLAP_DIVISOR, MIN_CHUNK_TOKENS,
};

use super::bots;
use super::chat::MAX_QUESTION_CHARS;
use super::fetch::MAX_REDIRECTS;
use super::knowledge::{MAX_DOCUMENT_NAME_CHARS, MAX_KB_DESCRIPTION_CHARS, MAX_KB_NAME_CHARS};
use super::search::{self, MAX_QUERY_CHARS};
use super::web_pages::{
    MAX_CHILD_SITEMAPS, MAX_CRAWL_DEPTH, MAX_CRAWL_PAGES, MAX_URLS_PER_REQUEST,
};
use super::web_schedule::{MAX_SYNC_INTERVAL_MINUTES, MIN_SYNC_INTERVAL_MINUTES};
use crate::config::Config;

/// The limits the server enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest chat message, in characters.
    pub question_chars: usize,
    /// Longest hit-test query, in characters.
    pub search_query_chars: usize,
    /// Largest `top_k` of a hit test.
    pub search_top_k_max: usize,
    /// Longest knowledge base name, in characters.
    pub kb_name_chars: usize,
    /// Longest knowledge base description, in characters.
    pub kb_description_chars: usize,
    /// Longest document name kept (a longer one is cut), in characters.
    pub document_name_chars: usize,
    /// Largest file an upload takes, in bytes (`ingest.max_upload_bytes`).
    pub upload_bytes: u64,
    /// The file types an upload takes.
    pub accepted_types: &'static [FileType],
    /// Web pages added by URL.
    pub web: WebLimits,
    /// Splitting.
    pub split: SplitLimits,
    /// A bot's settings.
    pub bot: BotLimits,
}

/// Bounds of web pages added by URL.
#[derive(Debug, Clone, PartialEq)]
pub struct WebLimits {
    /// Most URLs in one request.
    pub urls_per_request: usize,
    /// Largest page fetched, in bytes (`ingest.max_fetch_bytes`).
    pub fetch_bytes: u64,
    /// Time limit for one fetch, redirects included (`ingest.fetch_timeout_ms`).
    pub fetch_timeout_ms: u64,
    /// Most redirects followed for one URL.
    pub redirects: usize,
    /// Deepest crawl, in links from the start page.
    pub crawl_depth_max: u32,
    /// Most pages of one crawl or sitemap.
    pub crawl_pages_max: u32,
    /// Most sitemaps of one sitemap index read.
    pub sitemaps_per_index: usize,
    /// Shortest re-sync interval of a KB's schedule, in minutes.
    pub sync_interval_minutes_min: u32,
    /// Longest re-sync interval of a KB's schedule, in minutes.
    pub sync_interval_minutes_max: u32,
}

/// Bounds of a custom split and the automatic split's sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitLimits {
    /// Smallest `max_tokens` of a custom split.
    pub min_tokens: usize,
    /// Largest `max_tokens` of a custom split.
    pub max_tokens: usize,
    /// A custom split's `overlap_tokens` is at most its `max_tokens` divided by this
    /// (rounded down).
    pub max_overlap_divisor: usize,
    /// What a chunk of the automatic split holds at most, in tokens.
    pub auto_tokens: usize,
    /// Overlap of the automatic split's neighbouring chunks, in tokens.
    pub auto_overlap_tokens: usize,
}

/// Bounds of a bot's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BotLimits {
    /// Longest name of the bot or of one of its API keys, in characters.
    pub name_chars: usize,
    /// Longest description, in characters.
    pub description_chars: usize,
    /// Longest persona, in characters.
    pub persona_chars: usize,
    /// Longest opening message, in characters.
    pub opening_chars: usize,
    /// Most suggested questions.
    pub suggested_questions: usize,
    /// Longest suggested question, in characters.
    pub suggested_question_chars: usize,
    /// Longest fixed reply when nothing is found, in characters.
    pub no_recall_reply_chars: usize,
    /// Largest `retrieval.top_k`.
    pub top_k_max: usize,
    /// Largest `retrieval.read_tokens`.
    pub read_tokens_max: usize,
    /// Highest `model.temperature`.
    pub temperature_max: f32,
    /// Largest `model.max_tokens` (and the cap on `/v1`'s `max_tokens`).
    pub max_tokens_max: u32,
    /// Largest `model.history_turns`.
    pub history_turns_max: u32,
    /// Most tools of one bot.
    pub tools_max: usize,
}

/// The limits in force under `config`.
pub fn limits(config: &Config) -> Limits {
    Limits {
        question_chars: MAX_QUESTION_CHARS,
        search_query_chars: MAX_QUERY_CHARS,
        search_top_k_max: search::MAX_TOP_K,
        kb_name_chars: MAX_KB_NAME_CHARS,
        kb_description_chars: MAX_KB_DESCRIPTION_CHARS,
        document_name_chars: MAX_DOCUMENT_NAME_CHARS,
        upload_bytes: config.ingest.max_upload_bytes,
        accepted_types: ACCEPTED_TYPES,
        web: WebLimits {
            urls_per_request: MAX_URLS_PER_REQUEST,
            fetch_bytes: config.ingest.max_fetch_bytes,
            fetch_timeout_ms: config.ingest.fetch_timeout_ms,
            redirects: MAX_REDIRECTS,
            crawl_depth_max: MAX_CRAWL_DEPTH,
            crawl_pages_max: MAX_CRAWL_PAGES,
            sitemaps_per_index: MAX_CHILD_SITEMAPS,
            sync_interval_minutes_min: MIN_SYNC_INTERVAL_MINUTES,
            sync_interval_minutes_max: MAX_SYNC_INTERVAL_MINUTES,
        },
        split: SplitLimits {
            min_tokens: MIN_CHUNK_TOKENS,
            max_tokens: MAX_CHUNK_TOKENS,
            max_overlap_divisor: MAX_OVERLAP_DIVISOR,
            auto_tokens: AUTO_MAX_TOKENS,
            auto_overlap_tokens: AUTO_OVERLAP_TOKENS,
        },
        bot: BotLimits {
            name_chars: bots::MAX_NAME_CHARS,
            description_chars: bots::MAX_DESCRIPTION_CHARS,
            persona_chars: bots::MAX_PERSONA_CHARS,
            opening_chars: bots::MAX_OPENING_CHARS,
            suggested_questions: bots::MAX_QUESTIONS,
            suggested_question_chars: bots::MAX_SUGGESTED_QUESTION_CHARS,
            no_recall_reply_chars: bots::MAX_REPLY_CHARS,
            top_k_max: bots::MAX_TOP_K,
            read_tokens_max: bots::MAX_READ_TOKENS,
            temperature_max: bots::MAX_TEMPERATURE,
            max_tokens_max: bots::MAX_MAX_TOKENS,
            history_turns_max: bots::MAX_HISTORY_TURNS,
            tools_max: super::tools::MAX_TOOLS,
        },
    }
}
