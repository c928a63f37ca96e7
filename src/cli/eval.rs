//! `zhiku eval --corpus C --queries Q [--distractors D] [--modes …] [--k …] [--answers]`:
//! build a throw-away knowledge base in a temp data dir (same config otherwise, so the
//! user's data is never touched), then print recall@k, MRR@10, nDCG@10 and latency per
//! search mode. With `--kb NAME --queries Q` it measures an existing knowledge base
//! instead (read-only, beside a running server as `zhiku search` does).

use std::path::PathBuf;

use clap::Args;
use ingest::split::SplitSettings;
use serde::Serialize;

use super::{print_json, progress_bar, reader_state, writer_state};
use crate::app::AppState;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::eval::dataset::{self, QueryRecord};
use crate::eval::metrics::ModeReport;
use crate::eval::run::{self, AnswerReport, AskSettings, BotOverrides, EvalKb, RejectionReport};
use crate::services::search::SearchMode;
use crate::store::bot_tools::BotTool;
use crate::store::bots::DEFAULT_READ_TOKENS;

/// Arguments of `zhiku eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Passages, one JSON object a line: {"id","title","text"}. Each becomes a document
    /// of a throw-away knowledge base.
    #[arg(long, required_unless_present = "kb", conflicts_with = "kb")]
    corpus: Option<PathBuf>,
    /// More passages that answer no query, mixed into the corpus.
    #[arg(long, requires = "corpus")]
    distractors: Vec<PathBuf>,
    /// Measure this existing knowledge base (name or id) instead; positive_ids name its
    /// documents by name, name without extension, or id.
    #[arg(long)]
    kb: Option<String>,
    /// Queries, one JSON object a line: {"id","query","answers":[…],"positive_ids":[…]}, and "history":[…] (earlier questions) for a follow-up.
    #[arg(long)]
    queries: PathBuf,
    /// Search modes to measure.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fulltext,semantic,hybrid"
    )]
    modes: Vec<Mode>,
    /// Cut-offs of recall@k.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10")]
    k: Vec<usize>,
    /// Only the first N queries.
    #[arg(long)]
    limit: Option<usize>,
    /// Put each passage's title on its first line (the sets' BM25 baselines index the text
    /// only).
    #[arg(long)]
    titles: bool,
    /// How the throw-away knowledge base splits its documents, as a knowledge base's
    /// `split` setting in JSON, e.g.
    /// '{"mode":"custom","separator":"\n\n","max_tokens":128,"overlap_tokens":16}'
    /// (default: a new knowledge base's, {"mode":"auto"}).
    #[arg(long, requires = "corpus", value_parser = parse_split)]
    split: Option<SplitSettings>,
    /// Also ask a bot each question: answer hit rate, and negative rejection.
    #[arg(long)]
    answers: bool,
    /// Queries asked again with their gold documents disabled (negative rejection); the
    /// first N of those evaluated. Needs the throw-away KB.
    #[arg(long, default_value_t = 20)]
    negatives: usize,
    /// The eval bot's min_score (default: a new bot's).
    #[arg(long)]
    min_score: Option<f32>,
    /// The eval bot's retrieval.read_tokens: how much passage text it reads in all (0:
    /// whole chunks; default: a new bot's). Also what "as read" measures.
    #[arg(long)]
    read_tokens: Option<usize>,
    /// The eval bot's no_recall.min_answerable: below this probability that the passages
    /// answer, it declines (0: no check; default: a new bot's). A tiny value such as
    /// 0.000001 asks without ever declining, to see the verdicts.
    #[arg(long)]
    min_answerable: Option<f32>,
    /// The eval bot's model.quote_first: whether an answer from passages opens with one of
    /// their sentences word for word (default: a new bot's).
    #[arg(long)]
    quote_first: Option<bool>,
    /// The eval bot's rewrite_query: whether a follow-up (a query with `history`) is
    /// searched together with the earlier questions it leans on (default: a new bot's).
    #[arg(long)]
    rewrite_query: Option<bool>,
    /// Built-in tools the eval bot has, comma-separated: knowledge_search (it searches
    /// when its model asks, instead of before every answer), calculator, current_time,
    /// table_query. To see what tools cost answers that need none.
    #[arg(long, value_delimiter = ',', value_parser = parse_builtin_tool)]
    tools: Vec<BotTool>,
    /// Longest answer in tokens (short answers keep a CPU run quick; gold answers are
    /// short facts).
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Fulltext,
    Semantic,
    Hybrid,
}

impl From<Mode> for SearchMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Fulltext => SearchMode::Fulltext,
            Mode::Semantic => SearchMode::Semantic,
            Mode::Hybrid => SearchMode::Hybrid,
        }
    }
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report {
    /// "throw-away" or the KB's name.
    knowledge_base: String,
    /// Built for this run from `--corpus` (and deleted after it).
    is_throw_away: bool,
    documents: usize,
    /// How the throw-away knowledge base split its documents (an existing one keeps its
    /// own settings per document).
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<SplitSettings>,
    /// Live chunks those documents were split into.
    chunks: i64,
    /// How much of each chunk the bot reads ("as read" figures and the eval bot).
    read_tokens: usize,
    /// Corpus records whose ingestion failed: (id, reason).
    failed_documents: Vec<(String, String)>,
    queries: usize,
    ingest_s: Option<f64>,
    modes: Vec<ModeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answers: Option<AnswerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    negative_rejection: Option<RejectionReport>,
}

pub(super) async fn run(mut config: Config, args: EvalArgs) -> Result<()> {
    let ks = check_ks(&args.k)?;
    let queries = dataset::load_queries(&args.queries, args.limit)?;
    let mut modes: Vec<Mode> = Vec::new();
    for m in &args.modes {
        if !modes.contains(m) {
            modes.push(*m);
        }
    }
    let bar = progress_bar(0, "");
    let progress = |what: &str, done: u64, total: u64| {
        bar.set_message(what.to_string());
        bar.set_length(total);
        bar.set_position(done);
    };

    // The temp dir lives until the end of this function; dropping it deletes the KB.
    let mut _temp = None;
    let (state, _lock, kb, name, ingest_s) = match (&args.kb, &args.corpus) {
        (Some(kb_name), _) => {
            let (state, lock) = reader_state(config).await?;
            let kb = run::existing_kb(&state, kb_name).await?;
            dataset::check_positives(&queries, &kb.known_labels())?;
            (state, lock, kb, kb_name.clone(), None)
        }
        (None, Some(corpus_path)) => {
            let mut paths = vec![corpus_path.as_path()];
            paths.extend(args.distractors.iter().map(PathBuf::as_path));
            let corpus = dataset::load_corpus(&paths)?;
            let ids = corpus.iter().map(|r| r.id.clone()).collect();
            dataset::check_positives(&queries, &ids)?;
            let temp = tempfile::Builder::new().prefix("zhiku-eval-").tempdir()?;
            config.data_dir = temp.path().to_path_buf();
            _temp = Some(temp);
            let (state, lock) = writer_state(config).await?;
            let started = std::time::Instant::now();
            let kb = run::build_kb(
                &state,
                "eval",
                &corpus,
                args.titles,
                args.split.clone(),
                &progress,
            )
            .await?;
            let secs = started.elapsed().as_secs_f64();
            (state, Some(lock), kb, "throw-away".to_string(), Some(secs))
        }
        (None, None) => {
            return Err(Error::InvalidInput("give --corpus or --kb".into()));
        }
    };
    if !kb.failed.is_empty() && !args.json {
        eprintln!(
            "warning: {} corpus records failed to ingest:",
            kb.failed.len()
        );
        for (id, why) in kb.failed.iter().take(5) {
            eprintln!("  ✗ {id}: {why}");
        }
    }

    let mut reports = Vec::new();
    for &mode in &modes {
        let read_tokens = args.read_tokens.unwrap_or(DEFAULT_READ_TOKENS);
        reports.push(
            run::evaluate_mode(
                &state,
                &kb,
                &queries,
                mode.into(),
                &ks,
                read_tokens,
                &progress,
            )
            .await?,
        );
    }
    let (answers, negative_rejection) = match args.answers {
        true => ask_bot(&state, &kb, &queries, &args, &progress).await?,
        false => (None, None),
    };
    bar.finish_and_clear();

    let chunks = state.knowledge.kb(&kb.kb_id).await?.chunk_count;
    let report = Report {
        is_throw_away: args.kb.is_none(),
        knowledge_base: name,
        documents: kb.labels.len(),
        split: args
            .kb
            .is_none()
            .then(|| args.split.clone().unwrap_or_default()),
        chunks,
        read_tokens: args.read_tokens.unwrap_or(DEFAULT_READ_TOKENS),
        failed_documents: kb.failed.clone(),
        queries: queries.len(),
        ingest_s,
        modes: reports,
        answers,
        negative_rejection,
    };
    if args.json {
        return print_json(&report);
    }
    print_report(&report, &ks);
    Ok(())
}

/// The chunks as a bot reads them: how often the first k hold a gold answer, and how much
/// text that is.
fn print_passages(r: &Report, ks: &[usize]) {
    let Some(answered) = r.modes.first().map(|m| m.answer_queries) else {
        return;
    };
    if answered == 0 {
        return;
    }
    println!();
    let split = r
        .split
        .as_ref()
        .and_then(|s| serde_json::to_string(s).ok())
        .map(|s| format!(", split {s}"))
        .unwrap_or_default();
    println!("chunks as a bot reads them ({answered} queries with gold answers{split}):");
    let mut header = format!("{:<14}", "mode");
    for k in ks {
        header.push_str(&format!(" {:>9}", format!("answer@{k}")));
    }
    for k in ks {
        header.push_str(&format!(" {:>9}", format!("chars@{k}")));
    }
    println!("{header}");
    for m in &r.modes {
        for (what, answer, chars) in [
            ("", &m.answer, &m.chars),
            (" read", &m.answer_read, &m.chars_read),
            (" quoted", &m.answer_quoted, &Vec::new()),
        ] {
            let mut line = format!("{:<14}", format!("{}{what}", m.mode));
            for a in answer {
                line.push_str(&format!(" {:>9.3}", a.recall));
            }
            for c in chars {
                line.push_str(&format!(" {:>9.0}", c.chars));
            }
            println!("{line}");
        }
    }
    println!(
        "(answer@k: a gold answer is in one of the first k chunks; chars@k: their mean length; read: the first k cut together to the question's sentences, {} tokens in all (0: whole), as the bot reads them; quoted: the sentence of those its answer opens with)",
        r.read_tokens
    );
}

/// A `--split` value: the JSON of a knowledge base's split setting, checked.
/// A built-in tool by its function name.
fn parse_builtin_tool(name: &str) -> std::result::Result<BotTool, String> {
    let tool: BotTool = serde_json::from_value(serde_json::json!({ "type": name }))
        .map_err(|_| format!("'{name}' is not a built-in tool"))?;
    match tool {
        BotTool::Http(_) => Err(format!("'{name}' is not a built-in tool")),
        builtin => Ok(builtin),
    }
}

fn parse_split(json: &str) -> std::result::Result<SplitSettings, String> {
    let split: SplitSettings = serde_json::from_str(json).map_err(|e| {
        format!(
            "not a split setting ({e}); e.g. {{\"mode\":\"auto\"}} or \
             {{\"mode\":\"custom\",\"separator\":\"\\n\",\"max_tokens\":128}}"
        )
    })?;
    split.validate().map_err(|e| e.to_string())?;
    Ok(split)
}

/// Sorted, unique, positive cut-offs.
fn check_ks(ks: &[usize]) -> Result<Vec<usize>> {
    let mut ks = ks.to_vec();
    ks.sort_unstable();
    ks.dedup();
    if ks.is_empty() || ks[0] == 0 || ks[ks.len() - 1] > 100 {
        return Err(Error::InvalidInput(
            "--k takes cut-offs between 1 and 100, e.g. --k 1,5,10".into(),
        ));
    }
    Ok(ks)
}

async fn ask_bot(
    state: &AppState,
    kb: &EvalKb,
    queries: &[QueryRecord],
    args: &EvalArgs,
    progress: run::Progress<'_>,
) -> Result<(Option<AnswerReport>, Option<RejectionReport>)> {
    let mut state = state.clone();
    state.load_llm().await?;
    if state.llm.info().backend == "unavailable" {
        // The placeholder backend carries the loading error; any call returns it.
        state.llm.count_tokens(&[])?;
    }
    let throw_away = args.kb.is_none();
    let overrides = BotOverrides {
        min_score: args.min_score,
        read_tokens: args.read_tokens,
        min_answerable: args.min_answerable,
        quote_first: args.quote_first,
        rewrite_query: args.rewrite_query,
        tools: args.tools.clone(),
    };
    let (bot_id, bot) = run::eval_bot(&state, &kb.kb_id, overrides, throw_away).await?;
    let how = AskSettings {
        bot,
        bot_id,
        max_tokens: args.max_tokens,
    };
    let answers = run::answer_hits(&state, &how, queries, progress).await?;
    let rejection = match throw_away && args.negatives > 0 {
        true => {
            let sample = &queries[..args.negatives.min(queries.len())];
            Some(run::negative_rejection(&state, &how, kb, sample, progress).await?)
        }
        false => None,
    };
    Ok((Some(answers), rejection))
}

fn print_report(r: &Report, ks: &[usize]) {
    println!(
        "{} knowledge base: {} documents ({} chunks), {} queries{}",
        r.knowledge_base,
        r.documents,
        r.chunks,
        r.queries,
        r.ingest_s
            .map(|s| format!(", ingested in {s:.1} s"))
            .unwrap_or_default()
    );
    println!();
    let mut header = format!("{:<9}", "mode");
    for k in ks {
        header.push_str(&format!(" {:>9}", format!("recall@{k}")));
    }
    for k in ks {
        header.push_str(&format!(" {:>7}", format!("hit@{k}")));
    }
    header.push_str(&format!(
        " {:>7} {:>8} {:>8} {:>8} {:>9}",
        "MRR@10", "nDCG@10", "p50 ms", "p95 ms", "embed ms"
    ));
    println!("{header}");
    for m in &r.modes {
        let mut line = format!("{:<9}", m.mode);
        for rk in &m.recall {
            line.push_str(&format!(" {:>9.3}", rk.recall));
        }
        for h in &m.hit {
            line.push_str(&format!(" {:>7.3}", h.hit));
        }
        line.push_str(&format!(
            " {:>7.3} {:>8.3} {:>8.1} {:>8.1} {:>9.1}",
            m.mrr_at_10, m.ndcg_at_10, m.p50_ms, m.p95_ms, m.mean_embed_ms
        ));
        println!("{line}");
    }
    println!(
        "(latency: one search as the API runs it, query embedding included; embed ms: its mean share)"
    );
    print_passages(r, ks);
    if let Some(a) = &r.answers {
        println!();
        println!(
            "answers ({}): {}/{} contain a gold answer ({:.1}%), {} no-recall replies, {} grounded; first token p50 {:.0} ms; p50 {:.0} ms, p95 {:.0} ms per answer",
            a.model,
            a.hits,
            a.queries,
            a.hit_rate * 100.0,
            a.no_recall,
            a.grounded,
            a.first_token_p50_ms,
            a.p50_ms,
            a.p95_ms
        );
        if a.with_tool_calls > 0 {
            println!("  {} of those answers called a tool", a.with_tool_calls);
        }
    }
    match &r.negative_rejection {
        Some(n) => println!(
            "negative rejection (gold documents disabled): {}/{} declined ({:.1}%): {} no-recall replies, {} model declines; {} still gave a gold answer; {} answers marked grounded",
            n.no_recall_replies + n.model_declines,
            n.queries,
            n.rejection_rate * 100.0,
            n.no_recall_replies,
            n.model_declines,
            n.gold_anyway,
            n.grounded
        ),
        None if r.answers.is_some() && !r.is_throw_away => println!(
            "negative rejection: skipped (it disables gold documents, so it runs only on the throw-away knowledge base)"
        ),
        None => {}
    }
}
