//! An answer with the bot's own tools: the model calls some, they run here, their results
//! go back to it, and it goes on — until it answers, or the rounds or calls allowed are
//! spent and it must answer with what it has.
//!
//! A call repeating an earlier one (same tool, same arguments) is not run again: it gets
//! the earlier result, and the model is then asked to answer. Small models given a tool's
//! result with the tools still on offer often call the same tool again (the 1.5B did so
//! for 14 of the first 23 questions of `scripts/bench_tools.py --bot-tools` allowed three
//! rounds), which is why
//! `tools.max_rounds` is 1 by default.
//!
//! The answer is asked for as one from passages: the tools' results join the knowledge
//! base's passages in the user message, and no tool is offered. Asked with the results as
//! the chat template's tool messages and `tool_choice` none, the 1.5B often wrote the call
//! again as its answer.

use std::sync::Arc;

use serde_json::Value;

use crate::error::Result;
use crate::llm::{
    ChatMessage, GenerateRequest, LlmBackend, LlmStream, Role, ToolCall, ToolChoice, ToolUse,
};
use crate::services::prompt::{self, Grounding, Passage, PastTurn, PromptParts};
use crate::services::tools::{Scope, ToolService, ToolStep};
use crate::store::bot_tools::{BotTool, KNOWLEDGE_SEARCH};

/// What a prompt is built from, kept for the rounds after the first.
pub(super) struct Parts {
    pub(super) persona: String,
    pub(super) extra_system: String,
    pub(super) history: Vec<PastTurn>,
    pub(super) question: String,
    pub(super) passages: Vec<Passage>,
    pub(super) grounding: Grounding,
    /// The bot's fixed no-recall reply (`no_recall.mode` fixed): what it says when the
    /// tools leave nothing to answer from.
    pub(super) no_recall_reply: Option<String>,
}

/// What comes after a round of calls.
pub(super) enum Next {
    /// The model goes on.
    Model(LlmStream),
    /// Nothing to answer from: the bot's no-recall reply is the answer.
    NoRecall(String),
}

/// How the answer is generated, kept for the rounds after the first.
pub(super) struct Sampling {
    pub(super) max_tokens: u32,
    pub(super) temperature: f32,
    pub(super) stop: Vec<String>,
    pub(super) seed: Option<u32>,
}

/// The tool rounds of one answer.
pub(super) struct ToolRounds {
    pub(super) service: Arc<ToolService>,
    pub(super) llm: Arc<dyn LlmBackend>,
    pub(super) tools: Vec<BotTool>,
    /// What the bot's tools reach: its knowledge bases' tables and indexes.
    pub(super) scope: Scope,
    pub(super) offer: ToolUse,
    pub(super) parts: Parts,
    pub(super) sampling: Sampling,
    /// Every call and result so far, as the model reads them.
    steps: Vec<ChatMessage>,
    /// Every step so far, as the client sees them.
    pub(super) done: Vec<ToolStep>,
    rounds: usize,
    calls_run: usize,
    /// A round of calls that all failed fixably has had its one more round.
    fixed_once: bool,
}

impl ToolRounds {
    pub(super) fn new(
        service: Arc<ToolService>,
        llm: Arc<dyn LlmBackend>,
        tools: Vec<BotTool>,
        scope: Scope,
        offer: ToolUse,
        parts: Parts,
        sampling: Sampling,
    ) -> Self {
        Self {
            service,
            llm,
            tools,
            scope,
            offer,
            parts,
            sampling,
            steps: Vec::new(),
            done: Vec::new(),
            rounds: 0,
            calls_run: 0,
            fixed_once: false,
        }
    }

    /// Run `calls` (the round that just ended made them) and start the model again with
    /// their results: the steps of this round, and the next round's stream.
    pub(super) async fn next(&mut self, calls: Vec<ToolCall>) -> Result<(Vec<ToolStep>, Next)> {
        self.rounds += 1;
        let max_calls = self.service.max_calls_per_answer;
        let mut steps: Vec<Option<ToolStep>> = vec![None; calls.len()];
        let mut to_run = Vec::new();
        let mut repeats = 0;
        for (i, call) in calls.iter().enumerate() {
            if let Some(earlier) = self.done.iter().find(|s| same_call(s, call)) {
                repeats += 1;
                steps[i] = Some(ToolStep {
                    id: call.id.clone(),
                    elapsed_ms: 0,
                    ..earlier.clone()
                });
            } else if self.calls_run + to_run.len() >= max_calls {
                steps[i] = Some(ToolStep {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                    result: format!(
                        "error: not run: an answer may make at most {max_calls} tool calls (tools.max_calls_per_answer)"
                    ),
                    ok: false,
                    elapsed_ms: 0,
                    sources: Vec::new(),
                    fixable: false,
                    passages: Vec::new(),
                });
            } else {
                to_run.push((i, call.clone()));
            }
        }
        let run: Vec<ToolCall> = to_run.iter().map(|(_, c)| c.clone()).collect();
        self.calls_run += run.len();
        let results = self.service.run_all(&self.tools, &run, &self.scope).await;
        for ((i, _), step) in to_run.into_iter().zip(results) {
            steps[i] = Some(step);
        }
        let steps: Vec<ToolStep> = steps.into_iter().flatten().collect();

        let mut call_message = ChatMessage::new(Role::Assistant, "");
        call_message.tool_calls = calls;
        self.steps.push(call_message);
        for step in &steps {
            let mut result = ChatMessage::new(Role::Tool, step.result.clone());
            result.tool_call_id = Some(step.id.clone());
            self.steps.push(result);
        }
        self.done.extend(steps.iter().cloned());

        // Calls that all failed for reasons the model can put right (the database refused
        // its SQL): it is shown the errors and must call again, once beyond max_rounds.
        // Answering instead, the 1.5B made up a figure (4 of 32 questions of
        // scripts/bench_tables.py).
        let fix = !self.fixed_once && steps.iter().all(|s| s.fixable);
        self.fixed_once |= fix;
        let rounds = self.service.max_rounds + usize::from(self.fixed_once);
        // Answer now when the model only repeated itself or nothing more may be called.
        let spent = self.rounds >= rounds || self.calls_run >= max_calls;
        let next = if repeats == steps.len() || spent {
            self.answer()?
        } else {
            Next::Model(self.call_again(fix)?)
        };
        Ok((steps, next))
    }

    /// The model is offered the tools with the question alone, its passages having been
    /// judged not to hold the answer (they come back in the answer, beside the results).
    /// Shown the passages and the rules for answering from them, the 1.5B called no tool
    /// for any of 21 declined questions, "37乘以48等于多少？" among them; with the question
    /// alone it calls tools as a bot without knowledge does.
    pub(super) fn offer_tools(&self) -> Result<LlmStream> {
        self.generate(Vec::new(), Grounding::None, &[], Some(self.offer.clone()))
    }

    /// The model goes on with the tools' results as tool messages, tools still offered;
    /// to `fix` a failed call, it must call one.
    fn call_again(&self, fix: bool) -> Result<LlmStream> {
        let passages = self.parts.passages.clone();
        let mut offer = self.offer.clone();
        if fix {
            offer.choice = ToolChoice::Required;
        }
        self.generate(passages, self.parts.grounding, &self.steps, Some(offer))
    }

    /// What the answer is given and judged against: the knowledge base's passages — the
    /// question's own, then what `knowledge_search` found, numbered on — and after them
    /// the other tools' results, each with the step it comes from.
    pub(super) fn evidence(&self) -> Evidence<'_> {
        let mut passages = self.parts.passages.clone();
        for step in self.done.iter().filter(|s| s.ok) {
            for found in &step.passages {
                if !passages.iter().any(|p| p.chunk_id == found.chunk_id) {
                    passages.push(Passage {
                        marker: passages.len() + 1,
                        ..found.clone()
                    });
                }
            }
        }
        let mut results: Vec<(Passage, &ToolStep)> = Vec::new();
        // A search's passages stand for its result; one that found nothing said so to
        // the model already.
        let results_of = self.done.iter().filter(|s| s.name != KNOWLEDGE_SEARCH);
        for step in results_of {
            let seen = results
                .iter()
                .any(|(r, _)| r.text == step.result && r.document_name == result_name(step));
            if !seen {
                let marker = passages.len() + results.len() + 1;
                results.push((result_passage(step, marker), step));
            }
        }
        Evidence { passages, results }
    }

    /// The model answers from the passages and the tools' results, no tool offered.
    fn answer(&self) -> Result<Next> {
        let evidence = self.evidence();
        // Nothing to answer from: every call failed and a bot with knowledge has no
        // passage (a sheet's rows are left to the query; a search found nothing). Given
        // only the errors, the 1.5B made up figures, and told that nothing was found, the
        // 0.5B repeated what it was told: the bot's fixed reply says it, as when its
        // retrieval finds nothing.
        let has_knowledge = !matches!(self.parts.grounding, Grounding::None);
        if has_knowledge && evidence.passages.is_empty() && self.done.iter().all(|s| !s.ok) {
            if let Some(reply) = &self.parts.no_recall_reply {
                return Ok(Next::NoRecall(reply.clone()));
            }
            let stream = self.generate(Vec::new(), Grounding::NothingFound, &[], None)?;
            return Ok(Next::Model(stream));
        }
        // The results first: passages that do not fit are dropped from the end.
        let passages: Vec<Passage> = evidence
            .results
            .into_iter()
            .map(|(p, _)| p)
            .chain(evidence.passages)
            .collect();
        Ok(Next::Model(self.generate(
            passages,
            Grounding::Passages,
            &[],
            None,
        )?))
    }

    fn generate(
        &self,
        passages: Vec<Passage>,
        grounding: Grounding,
        tool_steps: &[ChatMessage],
        offer: Option<ToolUse>,
    ) -> Result<LlmStream> {
        let built = prompt::build(
            self.llm.as_ref(),
            PromptParts {
                persona: &self.parts.persona,
                extra_system: &self.parts.extra_system,
                history: &self.parts.history,
                question: &self.parts.question,
                passages,
                grounding,
                answer_tokens: self.sampling.max_tokens as usize,
                tool_steps,
                tools_tokens: offer.as_ref().map_or(0, prompt::tools_tokens),
            },
        )?;
        let mut request = GenerateRequest::new(
            built.messages,
            self.sampling.max_tokens,
            self.sampling.temperature,
        );
        request.stop = self.sampling.stop.clone();
        request.seed = self.sampling.seed;
        request.tools = offer;
        self.llm.generate(request)
    }
}

/// What an answer with tools is given: see [`ToolRounds::evidence`].
pub(super) struct Evidence<'a> {
    /// The knowledge base's passages, numbered from 1.
    pub(super) passages: Vec<Passage>,
    /// The other tools' results as passages, numbered after them, with their steps.
    pub(super) results: Vec<(Passage, &'a ToolStep)>,
}

/// What a tool's result is called as a passage.
fn result_name(step: &ToolStep) -> String {
    format!("工具 {} 的结果", step.name)
}

/// A tool's result as a passage with `marker`: what the model answers from, and what an
/// answer's support is judged against beside the knowledge base's passages.
fn result_passage(step: &ToolStep, marker: usize) -> Passage {
    Passage {
        marker,
        chunk_id: 0,
        document_id: String::new(),
        document_name: result_name(step),
        source_url: None,
        page: None,
        label: None,
        text: step.result.clone(),
        score: 0.0,
    }
}

/// Whether `call` asks what `step` already asked: the same tool with the same arguments
/// (compared as JSON, so spacing and key order do not matter).
fn same_call(step: &ToolStep, call: &ToolCall) -> bool {
    let parse = |text: &str| serde_json::from_str::<Value>(text).ok();
    step.name == call.name
        && match (parse(&step.arguments), parse(&call.arguments)) {
            (Some(a), Some(b)) => a == b,
            _ => step.arguments == call.arguments,
        }
}
