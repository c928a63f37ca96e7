//! The evaluation itself, over the same services the server uses: ingest a corpus into a
//! knowledge base through the upload pipeline, search it in each mode, and ask a bot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ingest::split::SplitSettings;
use serde::Serialize;

use super::answers::{answer_contains_gold, contains_gold, is_decline};
use super::dataset::{CorpusRecord, QueryRecord};
use super::metrics::{
    ChunkEvidence, ModeAccumulator, ModeReport, ReadEvidence, first_occurrences, percentile,
};
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::llm::{ChatMessage, Role};
use crate::services::chat::{ChatEvent, History, Turn};
use crate::services::focus::focus;
use crate::services::knowledge::{CreateKb, UploadSettings};
use crate::services::prompt::opening_sentence;
use crate::services::search::{SearchMode, SearchRequest};
use crate::store::bots::BotSettings;

/// Reports progress as (what, done, total); the CLI draws it.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// A knowledge base under evaluation: which labels (corpus ids, or document names and
/// ids) each document answers to.
#[derive(Debug, Clone)]
pub struct EvalKb {
    /// The KB's id.
    pub kb_id: String,
    /// Document id → the labels a query's `positive_ids` may use for it.
    pub labels: HashMap<String, Vec<String>>,
    /// Documents whose ingestion failed: (corpus id, reason).
    pub failed: Vec<(String, String)>,
}

impl EvalKb {
    /// Every label of every document.
    pub fn known_labels(&self) -> HashSet<String> {
        self.labels.values().flatten().cloned().collect()
    }

    /// The documents a query's positives name.
    fn documents_of(&self, positive_ids: &[String]) -> Vec<String> {
        let mut docs: Vec<String> = self
            .labels
            .iter()
            .filter(|(_, labels)| labels.iter().any(|l| positive_ids.contains(l)))
            .map(|(doc, _)| doc.clone())
            .collect();
        docs.sort();
        docs
    }

    fn is_positive(&self, document_id: &str, positive_ids: &[String]) -> bool {
        self.labels
            .get(document_id)
            .is_some_and(|labels| labels.iter().any(|l| positive_ids.contains(l)))
    }
}

/// The file name a corpus record is uploaded under: its id, as a text file.
fn file_name(id: &str) -> String {
    if id.ends_with(".txt") {
        id.to_string()
    } else {
        format!("{id}.txt")
    }
}

/// Create a KB named `name` that splits with `split` (`None`: a new KB's default) and
/// ingest every record as one document (its text, or the file it names), through the
/// upload pipeline and this process's workers, waiting until all are settled.
pub async fn build_kb(
    state: &AppState,
    name: &str,
    corpus: &[CorpusRecord],
    with_titles: bool,
    split: Option<SplitSettings>,
    progress: Progress<'_>,
) -> Result<EvalKb> {
    let kb = state
        .knowledge
        .create_kb(CreateKb {
            name: name.to_string(),
            description: "built by zhiku eval".into(),
            split,
            ..CreateKb::default()
        })
        .await?;
    let workers = state.start_workers(state.config.ingest.workers);
    let built = ingest_records(state, &kb.id, corpus, with_titles, progress).await;
    workers.stop(std::time::Duration::MAX).await;
    built
}

async fn ingest_records(
    state: &AppState,
    kb_id: &str,
    corpus: &[CorpusRecord],
    with_titles: bool,
    progress: Progress<'_>,
) -> Result<EvalKb> {
    let total = corpus.len() as u64;
    let mut labels: HashMap<String, Vec<String>> = HashMap::new();
    for (i, record) in corpus.iter().enumerate() {
        let (name, bytes) = match &record.file {
            Some(file) => (
                file.file_name()
                    .map_or_else(|| file_name(&record.id), |n| n.to_string_lossy().into()),
                std::fs::read(file).map_err(|e| {
                    Error::InvalidInput(format!("corpus record '{}': {e}", record.id))
                })?,
            ),
            None => {
                let text = match with_titles && !record.title.trim().is_empty() {
                    true => format!("{}\n\n{}", record.title.trim(), record.text),
                    false => record.text.clone(),
                };
                (file_name(&record.id), text.into_bytes())
            }
        };
        let outcome = state
            .knowledge
            .upload(kb_id, &name, bytes, &UploadSettings::default())
            .await
            .map_err(|e| Error::InvalidInput(format!("corpus record '{}': {e}", record.id)))?;
        // Identical texts become one document (uploads are deduplicated by content);
        // that document then answers to every id it stands for.
        labels
            .entry(outcome.id)
            .or_default()
            .push(record.id.clone());
        progress("storing", i as u64 + 1, total);
    }
    let mut failed = Vec::new();
    loop {
        let docs = state
            .knowledge
            .list_documents(kb_id, 0, labels.len() as i64 + 1)
            .await?;
        let settled: Vec<_> = docs
            .iter()
            .filter(|d| d.status == "indexed" || d.status == "failed")
            .collect();
        let settled_records: usize = settled
            .iter()
            .map(|d| labels.get(&d.id).map_or(0, Vec::len))
            .sum();
        progress("indexing", settled_records as u64, total);
        if settled.len() == docs.len() {
            for d in docs.iter().filter(|d| d.status == "failed") {
                let ids = labels.remove(&d.id).unwrap_or_default();
                let why = d
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                failed.extend(ids.into_iter().map(|id| (id, why.clone())));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(EvalKb {
        kb_id: kb_id.to_string(),
        labels,
        failed,
    })
}

/// An existing KB: a document answers to its id, its name, and its name without the
/// extension, so a queries file can name documents as the user knows them.
pub async fn existing_kb(state: &AppState, id_or_name: &str) -> Result<EvalKb> {
    let kb = state.knowledge.kb(id_or_name).await?;
    let mut labels = HashMap::new();
    let page = 1000;
    let mut offset = 0;
    loop {
        let docs = state.knowledge.list_documents(&kb.id, offset, page).await?;
        let n = docs.len() as i64;
        for d in docs.into_iter().filter(|d| d.enabled) {
            let mut names = vec![d.id.clone(), d.name.clone()];
            if let Some((stem, _)) = d.name.rsplit_once('.') {
                names.push(stem.to_string());
            }
            labels.insert(d.id, names);
        }
        if n < page {
            break;
        }
        offset += page;
    }
    Ok(EvalKb {
        kb_id: kb.id,
        labels,
        failed: Vec::new(),
    })
}

/// Search every query in `mode` and score the document rankings, and the chunks whole and
/// cut to `read_tokens` as a bot reads them.
pub async fn evaluate_mode(
    state: &AppState,
    kb: &EvalKb,
    queries: &[QueryRecord],
    mode: SearchMode,
    ks: &[usize],
    read_tokens: usize,
    progress: Progress<'_>,
) -> Result<ModeReport> {
    let name = mode_name(mode);
    // As many chunks as fusion sees by default, so hybrid ranks exactly as it does for
    // users, and enough distinct documents remain for the largest k.
    let top_k = state.config.search.candidates.clamp(1, 100);
    let mut acc = ModeAccumulator::new(ks);
    for (i, q) in queries.iter().enumerate() {
        let request = SearchRequest {
            query: q.query.clone(),
            mode,
            top_k: Some(top_k),
            min_score: None,
            semantic_weight: None,
        };
        let started = Instant::now();
        let response = state
            .search
            .search(&kb.kb_id, &request)
            .await
            .map_err(|e| Error::InvalidInput(format!("query '{}': {e}", q.id)))?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let docs = first_occurrences(response.results.iter().map(|r| r.document_id.as_str()));
        let relevant: Vec<bool> = docs
            .iter()
            .map(|d| kb.is_positive(d, &q.positive_ids))
            .collect();
        let positives = q.positive_ids.iter().collect::<HashSet<_>>().len();
        let whole: Vec<&str> = response.results.iter().map(|r| r.text.as_str()).collect();
        let (whole_holds, whole_chars) = evidence_of(&whole, &q.answers);
        let (read_holds, read_chars, quote_holds) =
            read_evidence(&whole, &q.query, &q.answers, ks, read_tokens);
        let has_answers = !q.answers.is_empty();
        let whole = ChunkEvidence {
            holds_answer: has_answers.then_some(whole_holds.as_slice()),
            chars: &whole_chars,
        };
        let read = ReadEvidence {
            holds_answer: has_answers.then_some(read_holds.as_slice()),
            chars: &read_chars,
            quote_holds_answer: has_answers.then_some(quote_holds.as_slice()),
        };
        acc.add(
            &relevant,
            positives,
            whole,
            read,
            latency_ms,
            response.timings_ms.embed_ms,
        );
        progress(name, i as u64 + 1, queries.len() as u64);
    }
    Ok(acc.report(name))
}

/// The chunks as a bot with `top_k = k` reads them, for each cut-off k: the first k cut
/// together to `read_tokens` ([`focus`]): whether that text holds a gold answer, its
/// characters, and whether the sentence an answer opens with ([`opening_sentence`]) holds
/// one.
fn read_evidence(
    whole: &[&str],
    query: &str,
    answers: &[String],
    ks: &[usize],
    read_tokens: usize,
) -> (Vec<bool>, Vec<usize>, Vec<bool>) {
    let mut holds = Vec::with_capacity(ks.len());
    let mut chars = Vec::with_capacity(ks.len());
    let mut quote_holds = Vec::with_capacity(ks.len());
    for &k in ks {
        let read = focus(&whole[..k.min(whole.len())], query, read_tokens);
        let read: Vec<&str> = read.iter().map(String::as_str).collect();
        let (read_holds, read_chars) = evidence_of(&read, answers);
        holds.push(read_holds.iter().any(|h| *h));
        chars.push(read_chars.iter().sum::<usize>());
        let quote = opening_sentence(&read, query, "");
        quote_holds.push(quote.is_some_and(|(_, body, _)| contains_gold(&body, answers)));
    }
    (holds, chars, quote_holds)
}

/// For each text: whether it holds a gold answer, and its length in characters.
fn evidence_of(texts: &[&str], answers: &[String]) -> (Vec<bool>, Vec<usize>) {
    texts
        .iter()
        .map(|t| (contains_gold(t, answers), t.chars().count()))
        .unzip()
}

/// The word for a mode, as the command line and the reports spell it.
pub fn mode_name(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Fulltext => "fulltext",
        SearchMode::Semantic => "semantic",
        SearchMode::Hybrid => "hybrid",
    }
}

/// How the bot is asked.
#[derive(Debug, Clone)]
pub struct AskSettings {
    /// The bot's settings (knowledge bases, retrieval, persona, no-recall reply).
    pub bot: BotSettings,
    /// Its id (any id: nothing is recorded).
    pub bot_id: String,
    /// Longest answer in tokens.
    pub max_tokens: u32,
}

/// What an eval bot changes from a new bot's defaults.
#[derive(Debug, Clone, Default)]
pub struct BotOverrides {
    /// `retrieval.min_score`.
    pub min_score: Option<f32>,
    /// `retrieval.read_tokens`.
    pub read_tokens: Option<usize>,
    /// `no_recall.min_answerable`.
    pub min_answerable: Option<f32>,
    /// `model.quote_first`.
    pub quote_first: Option<bool>,
    /// `rewrite_query`: whether a follow-up is searched with the earlier questions it
    /// leans on.
    pub rewrite_query: Option<bool>,
    /// `tools`: built-in ones (none by default).
    pub tools: Vec<crate::store::bot_tools::BotTool>,
}

/// The settings of a throw-away bot over `kb_id`: the defaults a new bot gets (a query
/// with `history` is searched as a bot's follow-up is), with `overrides`. Saved as a bot
/// when `save`.
pub async fn eval_bot(
    state: &AppState,
    kb_id: &str,
    overrides: BotOverrides,
    save: bool,
) -> Result<(String, BotSettings)> {
    let mut settings = BotSettings {
        name: format!(
            "zhiku-eval-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        knowledge_bases: vec![kb_id.to_string()],
        ..BotSettings::default()
    };
    if let Some(rewrite) = overrides.rewrite_query {
        settings.rewrite_query = rewrite;
    }
    if let Some(min) = overrides.min_score {
        settings.retrieval.min_score = min;
    }
    if let Some(tokens) = overrides.read_tokens {
        settings.retrieval.read_tokens = tokens;
    }
    if let Some(min) = overrides.min_answerable {
        settings.no_recall.min_answerable = Some(min);
    }
    if let Some(quote) = overrides.quote_first {
        settings.model.quote_first = quote;
    }
    settings.tools = overrides.tools;
    let bots = &state.bots;
    if save {
        let row = bots.create(settings).await?;
        return Ok((row.bot_id, row.draft));
    }
    Ok(("zhiku-eval".into(), bots.validate(settings).await?))
}

/// One answer.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerSample {
    /// Query id.
    pub id: String,
    /// The answer text.
    pub answer: String,
    /// Retrieval found nothing, or the model judged the passages do not answer, and the
    /// no-recall behaviour answered.
    pub no_recall: bool,
    /// The model's probability that the passages answer (when it was asked).
    pub answerable: Option<f32>,
    /// The passages support the answer (see `services::evidence`).
    pub grounded: Option<bool>,
    /// The share of the answer's words the passages hold.
    pub grounding_score: Option<f32>,
    /// What the model read: the last message of its prompt (the passages and the
    /// question), to see why an answer went wrong.
    pub read: Option<String>,
    /// Each retriever's score of the passages given to the model, best first.
    pub read_scores: Vec<crate::services::search::RawScores>,
    /// The share of what the question asks about that those passages hold.
    pub question_coverage: Option<f32>,
    /// The bot's tools the answer called, in call order.
    pub tools_called: Vec<String>,
    /// A bot that searches on demand: the model's probability that the question needs
    /// the knowledge base (it searched first from 0.5).
    pub search_verdict: Option<f32>,
    /// A follow-up: what the bot searched instead (the earlier questions and the
    /// follow-up; `None`: searched as asked).
    pub rewritten_query: Option<String>,
    /// From the question to the first token of the answer, in ms.
    pub first_token_ms: f64,
    /// From the question to the end of the answer, in ms.
    pub total_ms: f64,
}

/// Ask `question` as the follow-up of `earlier` questions: the bot answers each of those
/// first, in one conversation the eval passes along (as an OpenAI client does), so the
/// follow-up is searched and answered as a person's would be.
async fn ask(
    state: &AppState,
    how: &AskSettings,
    earlier: &[String],
    question: &str,
) -> Result<AnswerSample> {
    let mut messages = Vec::new();
    for asked in earlier {
        let sample = ask_once(state, how, &messages, asked).await?;
        messages.push(ChatMessage::new(Role::User, asked.clone()));
        messages.push(ChatMessage::new(Role::Assistant, sample.answer));
    }
    ask_once(state, how, &messages, question).await
}

/// Ask one question after the conversation `messages`; nothing is recorded.
async fn ask_once(
    state: &AppState,
    how: &AskSettings,
    messages: &[ChatMessage],
    question: &str,
) -> Result<AnswerSample> {
    let started = Instant::now();
    let mut turn = Turn::new(
        how.bot_id.clone(),
        how.bot.clone(),
        question.to_string(),
        History::Given {
            extra_system: String::new(),
            messages: messages.to_vec(),
        },
    );
    turn.max_tokens = Some(how.max_tokens);
    // A fixed seed makes a rerun with the same model give the same answers.
    turn.seed = Some(42);
    turn.trace = true;
    let mut stream = state.chat.start(turn).await?;
    let mut answer = String::new();
    while let Some(event) = stream.events.recv().await {
        match event {
            ChatEvent::Token(t) => answer.push_str(&t),
            // The bot's own tools run in the chat service; the eval brings none.
            ChatEvent::ToolCall(_) | ChatEvent::ToolRun(_) | ChatEvent::ToolResult(_) => {}
            ChatEvent::Done(outcome) => {
                let outcome = *outcome;
                // What the model read: the passages given to it, and the prompt's last
                // message (they and the question).
                let (question_coverage, read, read_scores, search_verdict, rewritten_query) =
                    match outcome.trace {
                        Some(trace) => (
                            trace.question_coverage,
                            trace.prompt.into_iter().last().map(|m| m.content),
                            trace
                                .chunks
                                .into_iter()
                                .filter(|c| c.marker.is_some())
                                .map(|c| c.result.raw)
                                .collect(),
                            trace.search_verdict,
                            trace.rewritten_query,
                        ),
                        None => (None, None, Vec::new(), None, None),
                    };
                return Ok(AnswerSample {
                    id: String::new(),
                    answer: outcome.answer,
                    no_recall: outcome.no_recall,
                    answerable: outcome.answerable,
                    grounded: outcome.grounded,
                    grounding_score: outcome.grounding_score,
                    question_coverage,
                    read,
                    read_scores,
                    tools_called: outcome.tool_steps.iter().map(|s| s.name.clone()).collect(),
                    search_verdict,
                    rewritten_query,
                    first_token_ms: outcome.timings.first_token_ms as f64,
                    total_ms: started.elapsed().as_secs_f64() * 1000.0,
                });
            }
            ChatEvent::Failed { message, .. } => return Err(Error::Llm(message)),
        }
    }
    Err(Error::Llm(
        "the answer stream ended without finishing".into(),
    ))
}

/// Ask every query, as many at once as the model has slots, in query order.
async fn ask_all(
    state: &AppState,
    how: &AskSettings,
    queries: &[&QueryRecord],
    what: &str,
    progress: Progress<'_>,
) -> Result<Vec<AnswerSample>> {
    let parallel = state.llm.info().parallel.max(1);
    let total = queries.len() as u64;
    let mut done = 0;
    let mut samples = Vec::with_capacity(queries.len());
    let mut answers = futures::stream::iter(queries.iter().map(|q| async move {
        let mut sample = ask(state, how, &q.history, &q.query)
            .await
            .map_err(|e| Error::Llm(format!("query '{}': {e}", q.id)))?;
        sample.id = q.id.clone();
        Ok::<_, Error>(sample)
    }))
    .buffered(parallel);
    while let Some(sample) = answers.next().await {
        samples.push(sample?);
        done += 1;
        progress(what, done, total);
    }
    Ok(samples)
}

/// How often the answers contain a gold answer.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerReport {
    /// The chat model.
    pub model: String,
    /// Questions asked.
    pub queries: usize,
    /// Answers containing a gold answer.
    pub hits: usize,
    /// `hits / queries`.
    pub hit_rate: f64,
    /// Answers that were the no-recall reply.
    pub no_recall: usize,
    /// Answers the passages support (`grounded`).
    pub grounded: usize,
    /// Answers that called one of the bot's tools.
    pub with_tool_calls: usize,
    /// Median time to the first token.
    pub first_token_p50_ms: f64,
    /// Median time per answer.
    pub p50_ms: f64,
    /// 95th percentile time per answer.
    pub p95_ms: f64,
    /// Every answer, in query order.
    pub samples: Vec<AnswerSample>,
}

/// Ask each query (those with gold answers) and count answers containing a gold answer.
pub async fn answer_hits(
    state: &AppState,
    how: &AskSettings,
    queries: &[QueryRecord],
    progress: Progress<'_>,
) -> Result<AnswerReport> {
    let asked: Vec<&QueryRecord> = queries.iter().filter(|q| !q.answers.is_empty()).collect();
    let samples = ask_all(state, how, &asked, "answering", progress).await?;
    let hits = samples
        .iter()
        .zip(&asked)
        .filter(|(s, q)| answer_contains_gold(&s.answer, &q.answers))
        .count();
    let times: Vec<f64> = samples.iter().map(|s| s.total_ms).collect();
    let first_tokens: Vec<f64> = samples.iter().map(|s| s.first_token_ms).collect();
    Ok(AnswerReport {
        model: state.llm.info().model,
        queries: samples.len(),
        hits,
        hit_rate: ratio(hits, samples.len()),
        no_recall: samples.iter().filter(|s| s.no_recall).count(),
        grounded: grounded_count(&samples),
        with_tool_calls: samples
            .iter()
            .filter(|s| !s.tools_called.is_empty())
            .count(),
        first_token_p50_ms: percentile(&first_tokens, 50.0),
        p50_ms: percentile(&times, 50.0),
        p95_ms: percentile(&times, 95.0),
        samples,
    })
}

/// How often the bot declines when the gold documents are gone.
#[derive(Debug, Clone, Serialize)]
pub struct RejectionReport {
    /// Questions asked.
    pub queries: usize,
    /// Retrieval found nothing above `min_score`: the no-recall reply, no model call.
    pub no_recall_replies: usize,
    /// The model was given passages and said the knowledge base has no answer.
    pub model_declines: usize,
    /// `(no_recall_replies + model_declines) / queries`.
    pub rejection_rate: f64,
    /// Answers that still contained a gold answer (from the model's own knowledge, or
    /// another document that also holds it).
    pub gold_anyway: usize,
    /// Answers (not declines) the passages were judged to support: an ungrounded answer
    /// is marked as such to the person even where it is not declined.
    pub grounded: usize,
    /// Every answer, in query order.
    pub samples: Vec<AnswerSample>,
}

/// Negative rejection: for each of `queries`, disable its gold documents, ask, and
/// enable them again. Queries with the same gold documents are asked together. Only for
/// a throw-away KB: it changes the documents.
pub async fn negative_rejection(
    state: &AppState,
    how: &AskSettings,
    kb: &EvalKb,
    queries: &[QueryRecord],
    progress: Progress<'_>,
) -> Result<RejectionReport> {
    let mut groups: BTreeMap<Vec<String>, Vec<&QueryRecord>> = BTreeMap::new();
    for q in queries {
        groups
            .entry(kb.documents_of(&q.positive_ids))
            .or_default()
            .push(q);
    }
    let total = queries.len() as u64;
    let mut done = 0;
    let mut by_id: HashMap<String, AnswerSample> = HashMap::new();
    for (gold_docs, group) in groups {
        for doc in &gold_docs {
            state
                .knowledge
                .set_document_enabled(&kb.kb_id, doc, false)
                .await?;
        }
        let offset = done;
        let asked = ask_all(state, how, &group, "rejection", &|what, n, _| {
            progress(what, offset + n, total)
        })
        .await;
        for doc in &gold_docs {
            state
                .knowledge
                .set_document_enabled(&kb.kb_id, doc, true)
                .await?;
        }
        for s in asked? {
            by_id.insert(s.id.clone(), s);
        }
        done += group.len() as u64;
    }
    let samples: Vec<AnswerSample> = queries.iter().filter_map(|q| by_id.remove(&q.id)).collect();
    let reply = &how.bot.no_recall.reply;
    let no_recall_replies = samples.iter().filter(|s| s.no_recall).count();
    let model_declines = samples
        .iter()
        .filter(|s| !s.no_recall && is_decline(&s.answer, reply))
        .count();
    let gold_anyway = samples
        .iter()
        .zip(queries)
        .filter(|(s, q)| !s.no_recall && answer_contains_gold(&s.answer, &q.answers))
        .count();
    Ok(RejectionReport {
        queries: samples.len(),
        no_recall_replies,
        model_declines,
        rejection_rate: ratio(no_recall_replies + model_declines, samples.len()),
        gold_anyway,
        grounded: grounded_count(&samples),
        samples,
    })
}

/// Answers that are not no-recall replies and that the passages support.
fn grounded_count(samples: &[AnswerSample]) -> usize {
    samples
        .iter()
        .filter(|s| !s.no_recall && s.grounded == Some(true))
        .count()
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
