//! Running the tools of a bot (Coze's plugins) while it answers: the functions offered to
//! the model, each call it makes run here (independent ones at the same time), and what
//! each returned, given back to it.
//!
//! A tool that fails, times out or answers too much is never a failed answer: the model is
//! told what happened in the tool's result and answers with that.

mod builtin;
mod http;
mod openapi;
mod settings;
mod table_query;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use openapi::tools_from_openapi;
pub use settings::{MAX_TOOLS, check_tools, seal_secrets};
pub use table_query::TableQueries;

use super::fetch::Fetcher;
use super::retrieve::retrieve;
use super::search::SearchService;
use super::secrets::SecretBox;
use crate::config::ToolsConfig;
use crate::error::{Error, Result};
use crate::llm::{ToolCall, ToolChoice, ToolSpec, ToolUse};
use crate::services::prompt::{self, Passage};
use crate::store::Store;
use crate::store::bot_tools::{BotTool, TABLE_QUERY};
use crate::store::bots::RetrievalSettings;

/// Runs bots' tools under the limits `[tools]` sets.
#[derive(Debug, Clone)]
pub struct ToolService {
    /// HTTP calls: time limit, size cap, address rules.
    pub fetcher: Fetcher,
    /// Opens the tools' secret headers.
    pub secrets: Arc<SecretBox>,
    /// Most characters of a result the model reads.
    pub max_result_chars: usize,
    /// Most calls in one answer.
    pub max_calls_per_answer: usize,
    /// Most model rounds with tools in one answer.
    pub max_rounds: usize,
    /// The knowledge bases' spreadsheets as SQL tables (`table_query`).
    pub tables: Arc<TableQueries>,
    /// The knowledge bases' indexes (`knowledge_search`).
    pub search: Arc<SearchService>,
}

/// What a bot's tools reach: its knowledge bases, and how it searches them.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The bot's knowledge bases (their tables for `table_query`, their indexes for
    /// `knowledge_search`).
    pub kb_ids: Vec<String>,
    /// The bot's retrieval settings, which `knowledge_search` searches with.
    pub retrieval: RetrievalSettings,
}

/// One tool call and what came of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ToolStep {
    /// The call's id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments, a JSON object as text.
    pub arguments: String,
    /// What the model was given back: the tool's answer, or what went wrong.
    pub result: String,
    /// Whether the tool answered (an HTTP 2xx, a value); false: `result` says why not.
    pub ok: bool,
    /// How long it took.
    pub elapsed_ms: u64,
    /// The documents the result comes from (a table query's spreadsheets), cited with
    /// the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ToolSource>,
    /// It failed for a reason the model can put right (SQL the database refused, an
    /// expression that does not parse): it may call again once.
    #[serde(skip)]
    pub fixable: bool,
    /// What `knowledge_search` found: they join the answer's passages and are cited as
    /// the knowledge base's own.
    #[serde(skip)]
    pub passages: Vec<Passage>,
}

/// The tools offered to the model for one answer.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The functions, to call as the model sees fit.
    pub tools: ToolUse,
    /// The documents whose tables `table_query` reads (none without it).
    pub table_documents: Vec<String>,
    /// `knowledge_search` is offered: the bot searches when its model asks.
    pub searches: bool,
}

impl Offer {
    /// Whether a question whose best passage is `best` is one for the tables: the
    /// passage comes from a spreadsheet that `table_query` reads. Small models given a
    /// sheet's rows as passages and the tool answer from the ten rows they see (the
    /// 1.5B called the tool for 1 of the first 8 questions of `scripts/bench_tables.py`),
    /// so such a question is asked to query, and the sheet's rows are left to the query.
    pub fn is_for_tables(&self, best: Option<&Passage>) -> bool {
        best.is_some_and(|p| self.table_documents.contains(&p.document_id))
    }

    /// The tools as offered for a question [`Offer::is_for_tables`]: `table_query` must
    /// be called first.
    pub fn query_first(&self) -> ToolUse {
        ToolUse {
            choice: ToolChoice::Function(TABLE_QUERY.to_string()),
            ..self.tools.clone()
        }
    }
}

/// A document a tool's result comes from.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolSource {
    /// The document.
    pub document_id: String,
    /// Its name.
    pub document_name: String,
    /// Where in it: the sheet (`工作表 订单`).
    pub label: String,
}

impl ToolService {
    /// The service `[tools]` configures; table queries read `store`'s tables, knowledge
    /// searches `search`'s indexes.
    pub fn new(
        config: &ToolsConfig,
        secrets: Arc<SecretBox>,
        store: Store,
        search: Arc<SearchService>,
    ) -> Self {
        Self {
            fetcher: Fetcher::for_tools(config),
            secrets,
            max_result_chars: config.max_result_chars,
            max_calls_per_answer: config.max_calls_per_answer,
            max_rounds: config.max_rounds,
            tables: Arc::new(TableQueries::new(
                store,
                config.table_max_rows,
                config.table_query_timeout_ms,
            )),
            search,
        }
    }

    /// The bot's tools as the model is offered them, to call as it sees fit, for a bot
    /// reaching `scope`. `table_query` is described with the tables it can read, and left
    /// out where there are none, as `knowledge_search` is without a knowledge base;
    /// `None` when no tool is left.
    pub async fn offer(&self, tools: &[BotTool], scope: &Scope) -> Result<Option<Offer>> {
        let mut specs = Vec::with_capacity(tools.len());
        let mut table_documents = Vec::new();
        let mut searches = false;
        for tool in tools {
            let description = match tool {
                BotTool::KnowledgeSearch if scope.kb_ids.is_empty() => continue,
                BotTool::KnowledgeSearch => {
                    searches = true;
                    tool.description().to_string()
                }
                BotTool::TableQuery => match self.tables.describe(&scope.kb_ids).await? {
                    Some((tables, documents)) => {
                        table_documents = documents;
                        format!("{}\n{tables}", tool.description())
                    }
                    None => continue,
                },
                _ => tool.description().to_string(),
            };
            specs.push(ToolSpec::new(
                tool.name(),
                &description,
                Some(tool.parameters()),
            )?);
        }
        if specs.is_empty() {
            return Ok(None);
        }
        Ok(Some(Offer {
            tools: ToolUse::new(specs, ToolChoice::Auto, true)?,
            table_documents,
            searches,
        }))
    }

    /// Run `calls` (at the same time) with the tools of a bot reaching `scope`; the
    /// results in call order.
    pub async fn run_all(
        &self,
        tools: &[BotTool],
        calls: &[ToolCall],
        scope: &Scope,
    ) -> Vec<ToolStep> {
        let runs = calls.iter().map(|call| self.run(tools, call, scope));
        futures::future::join_all(runs).await
    }

    async fn run(&self, tools: &[BotTool], call: &ToolCall, scope: &Scope) -> ToolStep {
        let started = Instant::now();
        let span = tracing::info_span!("tool", name = %call.name);
        let mut sources = Vec::new();
        let mut passages = Vec::new();
        // Whether a failure is one the model can put right by calling again.
        let mut fixable = false;
        let outcome = match tools.iter().find(|t| t.name() == call.name) {
            None => Err(format!("there is no tool named '{}'", call.name)),
            Some(tool) => {
                let arguments = call.arguments_json();
                let run = async {
                    match tool {
                        BotTool::Http(http) => {
                            http::call(&self.fetcher, &self.secrets, http, &arguments).await
                        }
                        BotTool::CurrentTime => Ok(builtin::current_time()),
                        BotTool::Calculator => builtin::calculate(&arguments).inspect_err(|_| {
                            fixable = true;
                        }),
                        BotTool::KnowledgeSearch => {
                            match self.knowledge_search(scope, &arguments).await {
                                Ok(found) => {
                                    let text = prompt::passages_text(&found);
                                    passages = found;
                                    Ok(text)
                                }
                                Err((why, can_fix)) => {
                                    fixable = can_fix;
                                    Err(why)
                                }
                            }
                        }
                        BotTool::TableQuery => {
                            match self.tables.run(&scope.kb_ids, &arguments).await {
                                Ok(result) => {
                                    sources = result
                                        .tables
                                        .iter()
                                        .map(|t| ToolSource {
                                            document_id: t.info.document_id.clone(),
                                            document_name: t.info.document_name.clone(),
                                            label: format!("表 {}", t.sql_name),
                                        })
                                        .collect();
                                    Ok(result.text)
                                }
                                Err(e) => {
                                    fixable = matches!(e, Error::InvalidInput(_));
                                    Err(e.to_string())
                                }
                            }
                        }
                    }
                };
                tracing::Instrument::instrument(run, span).await
            }
        };
        let (result, ok) = match outcome {
            Ok(text) => (text, true),
            Err(why) => (format!("error: {why}"), false),
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(tool = %call.name, ok, elapsed_ms, "tool called");
        ToolStep {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            result: cut(&result, self.max_result_chars),
            ok,
            elapsed_ms,
            sources,
            fixable,
            passages,
        }
    }

    /// The passages `{"query": …}` finds in the bot's knowledge bases; what went wrong
    /// instead, and whether the model can put it right (another query).
    async fn knowledge_search(
        &self,
        scope: &Scope,
        arguments: &serde_json::Value,
    ) -> std::result::Result<Vec<Passage>, (String, bool)> {
        let query = arguments
            .get("query")
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| ("give the query as {\"query\": \"…\"}".to_string(), true))?;
        let found = retrieve(&self.search, &scope.kb_ids, &scope.retrieval, query)
            .await
            .map_err(|e| (e.to_string(), false))?;
        if found.passages.is_empty() {
            return Err((
                format!(
                    "nothing in the knowledge base matches '{query}': search again with other words (fewer words, another term for the same thing)"
                ),
                true,
            ));
        }
        Ok(found.passages)
    }
}

/// `text` cut to `max_chars`, saying so.
fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let kept: String = text.chars().take(max_chars).collect();
    format!("{kept}… (cut at {max_chars} characters)")
}

#[cfg(test)]
mod tests;
