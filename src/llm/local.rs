//! llama.cpp in this process. The model is loaded once; one engine thread owns one context
//! with `parallel` sequences (slots) and decodes every active conversation in the same batch
//! (continuous batching, as llama-server does): on a CPU this raises throughput without
//! more threads fighting over the cores, and on a GPU it is how the card is kept busy.
//!
//! Each slot keeps the tokens whose KV cache it holds. A new request goes to the free slot
//! that shares the longest prefix with its prompt, and only the rest is read: a follow-up
//! turn of a conversation re-reads neither the persona nor the earlier turns.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::vocab::LlamaVocab;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::stop::{StopMatcher, StopOutcome};
use super::tool_grammar::{ToolGrammar, tool_grammar};
use super::tools::{CallReader, ToolUse};
use super::{
    ChatMessage, FinishReason, GenerateRequest, GenerationStats, LlmBackend, LlmEvent, LlmInfo,
    LlmStream, Occupancy, template,
};
use crate::config::Config;
use crate::error::{Error, Result};

/// llama.cpp may be initialised once per process.
static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::ModelUnavailable(format!("llama.cpp could not start: {e}")))
}

/// A GGUF model served by the engine thread.
pub struct LocalLlm {
    model: Arc<LlamaModel>,
    template: Option<LlamaChatTemplate>,
    jobs: mpsc::Sender<Job>,
    /// The queue length and slot-time average the engine thread keeps.
    shared: Shared,
    max_queue: usize,
    max_queue_wait: Option<Duration>,
    info: LlmInfo,
}

/// What the engine thread needs to know.
#[derive(Debug, Clone, Copy)]
struct EngineSettings {
    context_tokens: u32,
    parallel: u32,
    batch_tokens: u32,
    threads: i32,
    /// How long a request may wait for a slot; `None`: as long as it takes.
    max_queue_wait: Option<Duration>,
}

/// A request on its way to a slot.
struct Job {
    /// What the slot reads: the gate's prompt while there is a gate, then the answer's.
    prompt: Vec<LlamaToken>,
    /// The request's opening in tokens, the end of the answer's prompt: streamed to the
    /// client as soon as the model goes ahead (empty: none).
    opening: Vec<LlamaToken>,
    gate: Option<TokenGate>,
    /// The grammar tool calls are decoded under (`None`: no tool may be called).
    grammar: Option<ToolGrammar>,
    request: GenerateRequest,
    events: UnboundedSender<LlmEvent>,
    submitted: Instant,
}

/// A [`super::Gate`] in tokens.
struct TokenGate {
    /// The answer's prompt, read after a yes.
    answer_prompt: Vec<LlamaToken>,
    proceed: LlamaToken,
    refuse: LlamaToken,
    min_proceed: f32,
}

impl LocalLlm {
    /// Load the configured GGUF and start the engine thread. Blocking (seconds).
    pub fn load(config: &Config) -> Result<Self> {
        let path = config.llm_model_path();
        if !path.is_file() {
            return Err(Error::ModelUnavailable(format!(
                "chat model file {} not found: run ./scripts/run to fetch the default models, or set llm.model to a GGUF file",
                path.display()
            )));
        }
        let backend = backend()?;
        let params = LlamaModelParams::default().with_n_gpu_layers(config.llm.gpu_layers);
        let model = LlamaModel::load_from_file(backend, &path, &params)
            .map_err(|e| Error::ModelUnavailable(format!("{}: {e}", path.display())))?;
        let model = Arc::new(model);
        let template = model.chat_template(None).ok();
        let trained = model.n_ctx_train();
        let context_tokens = if trained > 0 {
            config.llm.context_tokens.min(trained)
        } else {
            config.llm.context_tokens
        };
        let settings = EngineSettings {
            context_tokens,
            parallel: config.llm.parallel,
            batch_tokens: config.llm.batch_tokens,
            threads: i32::try_from(config.llm_threads()).unwrap_or(1),
            max_queue_wait: (config.llm.max_queue_wait_s > 0)
                .then(|| Duration::from_secs(config.llm.max_queue_wait_s)),
        };
        let (jobs, receiver) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let shared = Shared::default();
        let engine_model = model.clone();
        let engine_shared = shared.clone();
        std::thread::Builder::new()
            .name("llm-engine".into())
            .spawn(move || {
                engine_main(&engine_model, settings, receiver, ready_tx, engine_shared)
            })?;
        ready_rx
            .recv()
            .map_err(|_| Error::ModelUnavailable("the llama.cpp engine thread died".into()))?
            .map_err(Error::ModelUnavailable)?;
        let name = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        Ok(Self {
            model,
            template,
            jobs,
            shared,
            max_queue: config.llm.max_queue,
            max_queue_wait: settings.max_queue_wait,
            info: LlmInfo {
                backend: "local",
                model: name,
                context_tokens: context_tokens as usize,
                parallel: settings.parallel as usize,
                gpu_layers: config.llm.gpu_layers,
            },
        })
    }

    fn tokenize(&self, messages: &[ChatMessage]) -> Vec<LlamaToken> {
        let text = template::render(&self.model, self.template.as_ref(), messages);
        self.tokenize_text(&text)
    }

    /// A request's prompt: rendered by the model's own Jinja template when tools are
    /// offered or the conversation holds tool calls (llama.cpp's templates know neither).
    fn tokenize_request(&self, request: &GenerateRequest) -> Result<Vec<LlamaToken>> {
        let offered: Vec<_> = request
            .tools
            .as_ref()
            .map(|t| t.callable().into_iter().cloned().collect())
            .unwrap_or_default();
        if offered.is_empty() && !request.messages.iter().any(ChatMessage::is_tool_step) {
            return Ok(self.tokenize(&request.messages));
        }
        let source = self
            .template
            .as_ref()
            .and_then(|t| t.to_string().ok())
            .ok_or_else(|| {
                Error::InvalidInput(
                    "the chat model has no chat template, so it cannot be given tools".into(),
                )
            })?;
        let text = template::render_jinja(&source, &request.messages, &offered)?;
        Ok(self.tokenize_text(&text))
    }

    fn tokenize_text(&self, text: &str) -> Vec<LlamaToken> {
        // Specials are parsed because the template's markers are special tokens; the
        // messages themselves had theirs defused by `template::render`.
        self.model.vocab().tokenize(text.as_bytes(), true, true)
    }

    fn check_prompt(&self, prompt: &[LlamaToken]) -> Result<()> {
        if prompt.is_empty() {
            return Err(Error::InvalidInput("the prompt is empty".into()));
        }
        if prompt.len() >= self.info.context_tokens {
            return Err(Error::InvalidInput(format!(
                "the prompt has {} tokens but the model's context window is {}; shorten it or raise llm.context_tokens",
                prompt.len(),
                self.info.context_tokens
            )));
        }
        Ok(())
    }

    /// The token a reply starting with `text` starts with.
    fn first_token(&self, text: &str) -> Result<LlamaToken> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .first()
            .copied()
            .ok_or_else(|| Error::InvalidInput(format!("'{text}' has no tokens")))
    }
}

impl LlmBackend for LocalLlm {
    fn info(&self) -> LlmInfo {
        self.info.clone()
    }

    fn occupancy(&self) -> Option<Occupancy> {
        Some(Occupancy {
            slots_busy: self.shared.busy_slots.load(Ordering::Relaxed),
            queued: self.shared.waiting.load(Ordering::SeqCst),
        })
    }

    fn count_tokens(&self, messages: &[ChatMessage]) -> Result<usize> {
        Ok(self.tokenize(messages).len())
    }

    fn generate(&self, request: GenerateRequest) -> Result<LlmStream> {
        let mut answer_prompt = self.tokenize_request(&request)?;
        self.check_prompt(&answer_prompt)?;
        let grammar = match &request.tools {
            Some(tools) => tool_grammar(tools)?,
            None => None,
        };
        // The opening is text of the reply, not of the template: its specials stay text.
        let mut opening = request.opening.as_ref().map_or_else(Vec::new, |text| {
            self.model.vocab().tokenize(text.as_bytes(), false, false)
        });
        // It is part of the answer: one longer than the answer may be, or than the window
        // has room for, is not given, and the model answers freely.
        let room = self
            .info
            .context_tokens
            .saturating_sub(answer_prompt.len() + 1);
        if opening.len() > (request.max_tokens as usize).min(room) {
            opening.clear();
        }
        answer_prompt.extend_from_slice(&opening);
        let (prompt, gate) = match &request.gate {
            Some(gate) => {
                let probe = self.tokenize(&gate.messages);
                self.check_prompt(&probe)?;
                let token_gate = TokenGate {
                    answer_prompt,
                    proceed: self.first_token(&gate.proceed)?,
                    refuse: self.first_token(&gate.refuse)?,
                    min_proceed: gate.min_proceed,
                };
                (probe, Some(token_gate))
            }
            None => (answer_prompt, None),
        };
        let waiting = self.shared.waiting.load(Ordering::SeqCst);
        let wait = estimated_wait(waiting, self.info.parallel, self.shared.slot_time());
        // A request that would only be shed after max_queue_wait is told so now: the
        // user learns in a moment what they would otherwise learn minutes later.
        let too_long = self.max_queue_wait.is_some_and(|limit| wait > limit);
        if waiting >= self.max_queue || too_long {
            return Err(Error::Overloaded {
                waiting,
                retry_after_s: retry_after_s(waiting, self.info.parallel, wait),
            });
        }
        let (events, stream) = unbounded_channel();
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            prompt,
            opening,
            gate,
            grammar,
            request,
            events,
            submitted: Instant::now(),
        };
        if self.jobs.send(job).is_err() {
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::ModelUnavailable(
                "the llama.cpp engine thread has stopped".into(),
            ));
        }
        Ok(stream)
    }
}

/// How long a request that finds `waiting` requests ahead of it waits for a slot, at
/// the least: the full rounds of `parallel` slots ahead of it, each as long as a request
/// holds its slot on average. The slots busy now are not counted (they may be nearly
/// done), so the estimate only errs towards letting a request in. `mean_slot` is
/// [`Shared::slot_time`].
fn estimated_wait(waiting: usize, parallel: usize, mean_slot: Duration) -> Duration {
    let full_rounds = u32::try_from(waiting / parallel.max(1)).unwrap_or(u32::MAX);
    mean_slot.saturating_mul(full_rounds)
}

/// A guess a client can act on: the estimated wait once it is known, else a few seconds
/// per answer ahead of it in each slot; at most two minutes.
fn retry_after_s(waiting: usize, parallel: usize, estimated: Duration) -> u64 {
    let rounds = waiting / parallel.max(1) + 1;
    let guess = rounds as u64 * 5;
    guess.max(estimated.as_secs()).min(120)
}

/// What a request that waited too long for a slot is told.
fn busy_message(waited: Duration) -> String {
    format!(
        "the model is busy: no answer slot came free in {} s; try again in a moment",
        waited.as_secs()
    )
}

fn engine_main(
    model: &LlamaModel,
    settings: EngineSettings,
    jobs: mpsc::Receiver<Job>,
    ready: mpsc::Sender<std::result::Result<(), String>>,
    shared: Shared,
) {
    let context = backend().map_err(|e| e.to_string()).and_then(|backend| {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(settings.context_tokens * settings.parallel))
            .with_n_batch(settings.batch_tokens)
            .with_n_ubatch(settings.batch_tokens)
            .with_n_seq_max(settings.parallel)
            // Each slot gets its own context_tokens window: a long conversation can
            // never take the cache another slot needs.
            .with_kv_unified(false)
            .with_n_threads(settings.threads)
            .with_n_threads_batch(settings.threads);
        model
            .new_context(backend, params)
            .map_err(|e| format!("could not create a llama.cpp context: {e}"))
    });
    let context = match context {
        Ok(context) => {
            let _ = ready.send(Ok(()));
            context
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut engine = Engine {
        model,
        context,
        settings,
        slots: (0..settings.parallel).map(Slot::new).collect(),
        pending: VecDeque::new(),
        shared,
        clock: 0,
    };
    engine.run(&jobs);
}

/// One sequence of the context and the tokens its KV cache holds.
struct Slot {
    id: u32,
    cached: Vec<LlamaToken>,
    last_used: u64,
    active: Option<Active>,
}

impl Slot {
    fn new(id: u32) -> Self {
        Self {
            id,
            cached: Vec::new(),
            last_used: 0,
            active: None,
        }
    }
}

/// A request being answered in a slot.
struct Active {
    job: Job,
    prompt_done: usize,
    cached_prompt_tokens: usize,
    next_input: Option<LlamaToken>,
    logits_at: Option<i32>,
    in_batch: bool,
    sampler: LlamaSampler,
    text: Utf8Stream,
    stop: StopMatcher,
    /// Reads tool calls out of the text when the request offers tools.
    calls: Option<CallReader>,
    generated: usize,
    /// Tokens of the opening streamed: part of the answer, not sampled.
    opening_said: usize,
    admitted: Instant,
    first_token: Option<Instant>,
}

impl Active {
    /// Stream the request's opening, if it has one not yet said, and let the sampler's
    /// repetition window see it; false when the client has left.
    fn say_opening(&mut self, vocab: &LlamaVocab) -> bool {
        let opening = std::mem::take(&mut self.job.opening);
        if opening.is_empty() {
            return true;
        }
        self.first_token.get_or_insert_with(Instant::now);
        self.opening_said = opening.len();
        for token in opening {
            self.sampler.accept(token);
            let piece = self.text.push(&vocab.token_to_piece(token, false, None));
            if !self.emit(piece) {
                return false;
            }
        }
        true
    }

    /// Send generated text: as it is, or read for tool calls; false when the client has
    /// left.
    fn emit(&mut self, text: String) -> bool {
        if text.is_empty() {
            return true;
        }
        let events = &self.job.events;
        match self.calls.as_mut() {
            None => events.send(LlmEvent::Token(text)).is_ok(),
            Some(reader) => reader
                .push(&text)
                .into_iter()
                .all(|piece| events.send(piece.into()).is_ok()),
        }
    }
}

/// What the engine thread and the request side both see.
#[derive(Clone, Default)]
struct Shared {
    /// Requests queued, not yet in a slot.
    waiting: Arc<AtomicUsize>,
    /// Moving average of how long a finished request held its slot (ms; 0 until one
    /// finished).
    mean_slot_ms: Arc<AtomicU64>,
    /// While every slot is busy, how long the one admitted last has held its slot so far
    /// (ms; 0 while a slot is free). The engine updates it at every step.
    busy_floor_ms: Arc<AtomicU64>,
    /// Slots answering a request; the engine updates it at every step (`/metrics`).
    busy_slots: Arc<AtomicUsize>,
}

impl Shared {
    /// Fold one finished request's time in its slot into the average (weight 1/5, so a
    /// change of load shows within a few answers).
    fn record_slot_time(&self, held: Duration) {
        let held_ms = u64::try_from(held.as_millis()).unwrap_or(u64::MAX);
        let mean = self.mean_slot_ms.load(Ordering::Relaxed);
        let next = match mean {
            0 => held_ms,
            _ => (mean.saturating_mul(4).saturating_add(held_ms)) / 5,
        };
        self.mean_slot_ms.store(next.max(1), Ordering::Relaxed);
    }

    /// How long a request is expected to hold its slot: the moving average once a request
    /// has finished. Before that (the first minutes after a start, when a burst of users
    /// arrives), the time every busy slot has already been held: each answer running now
    /// has taken at least that long, so a queue behind them is not taken for an empty one.
    fn slot_time(&self) -> Duration {
        let ms = match self.mean_slot_ms.load(Ordering::Relaxed) {
            0 => self.busy_floor_ms.load(Ordering::Relaxed),
            mean => mean,
        };
        Duration::from_millis(ms)
    }
}

struct Engine<'m> {
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    settings: EngineSettings,
    slots: Vec<Slot>,
    pending: VecDeque<Job>,
    shared: Shared,
    clock: u64,
}

impl Engine<'_> {
    fn run(&mut self, jobs: &mpsc::Receiver<Job>) {
        let mut batch = LlamaBatch::new(self.settings.batch_tokens as usize, 1);
        loop {
            if self.is_idle() && self.pending.is_empty() {
                // Idle from here until the next request: say so before waiting for it.
                self.publish_busy_floor();
                match jobs.recv() {
                    Ok(job) => self.pending.push_back(job),
                    // Every sender is gone: the server is shutting down.
                    Err(_) => return,
                }
            }
            while let Ok(job) = jobs.try_recv() {
                self.pending.push_back(job);
            }
            self.drop_cancelled();
            self.admit();
            self.publish_busy_floor();
            if self.is_idle() {
                continue;
            }
            batch.clear();
            if let Err(e) = self.fill(&mut batch) {
                self.fail_batch(&e);
                continue;
            }
            if batch.n_tokens() == 0 {
                continue;
            }
            match self.context.decode(&mut batch) {
                Ok(()) => self.sample(),
                Err(e) => self.fail_batch(&format!("llama.cpp decode failed: {e}")),
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.slots.iter().all(|s| s.active.is_none())
    }

    /// Tell the request side how long every slot has been busy at least (see
    /// [`Shared::slot_time`]); zero while one is free.
    fn publish_busy_floor(&self) {
        let busy = self.slots.iter().filter(|s| s.active.is_some()).count();
        self.shared.busy_slots.store(busy, Ordering::Relaxed);
        // None as soon as one slot is free.
        let floor = self.slots.iter().try_fold(Duration::MAX, |least, slot| {
            slot.active
                .as_ref()
                .map(|a| least.min(a.admitted.elapsed()))
        });
        let floor = floor.filter(|f| *f != Duration::MAX).unwrap_or_default();
        self.shared
            .busy_floor_ms
            .store(ms(floor), Ordering::Relaxed);
    }

    /// Requests whose client left are dropped from the queue and stopped in their slot.
    /// Requests that found no free slot within `max_queue_wait` leave the queue too, with
    /// a "busy" error: on a CPU a full queue is minutes of prompts, and a client told to try
    /// again can say so to its user, where one left waiting only sees nothing happen.
    fn drop_cancelled(&mut self) {
        let limit = self.settings.max_queue_wait;
        let before = self.pending.len();
        self.pending.retain(|job| {
            if job.events.is_closed() {
                return false;
            }
            if let Some(limit) = limit.filter(|limit| job.submitted.elapsed() >= *limit) {
                let _ = job.events.send(LlmEvent::Busy(busy_message(limit)));
                return false;
            }
            true
        });
        self.shared
            .waiting
            .fetch_sub(before - self.pending.len(), Ordering::SeqCst);
        for index in 0..self.slots.len() {
            let closed = self.slots[index]
                .active
                .as_ref()
                .is_some_and(|a| a.job.events.is_closed());
            if closed {
                self.finish(index, FinishReason::Cancelled);
            }
        }
    }

    /// Give waiting requests to free slots, each to the slot sharing its longest prefix.
    fn admit(&mut self) {
        while let Some(job) = self.pending.front() {
            let Some(index) = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.active.is_none())
                .max_by_key(|(_, s)| (reusable(&s.cached, &job.prompt), Reverse(s.last_used)))
                .map(|(i, _)| i)
            else {
                return;
            };
            let Some(job) = self.pending.pop_front() else {
                return;
            };
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
            let slot = &mut self.slots[index];
            // The last prompt token is always decoded again: its logits pick the first token.
            let mut keep = common_prefix(&slot.cached, &job.prompt).min(job.prompt.len() - 1);
            let trimmed = self
                .context
                .clear_kv_cache_seq(Some(slot.id), Some(keep as u32), None);
            if !matches!(trimmed, Ok(true)) {
                let _ = self.context.clear_kv_cache_seq(Some(slot.id), None, None);
                keep = 0;
            }
            slot.cached.truncate(keep);
            let request = &job.request;
            let sampler = match sampler(self.model, request, job.grammar.as_ref()) {
                Ok(sampler) => sampler,
                Err(message) => {
                    let _ = job.events.send(LlmEvent::Failed(message));
                    continue;
                }
            };
            let stop = StopMatcher::new(&request.stop);
            let calls = request.tools.as_ref().map(ToolUse::reader);
            slot.active = Some(Active {
                prompt_done: keep,
                cached_prompt_tokens: keep,
                next_input: None,
                logits_at: None,
                in_batch: false,
                sampler,
                text: Utf8Stream::new(),
                stop,
                calls,
                generated: 0,
                opening_said: 0,
                admitted: Instant::now(),
                first_token: None,
                job,
            });
        }
    }

    /// One decode's worth of tokens: every generating slot's last token first (they keep
    /// the streams moving), then prompt tokens up to the batch size.
    fn fill(&mut self, batch: &mut LlamaBatch) -> std::result::Result<(), String> {
        let mut budget = self.settings.batch_tokens as usize;
        for slot in &mut self.slots {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            active.in_batch = false;
            if let Some(token) = active.next_input.take() {
                add(batch, token, slot.cached.len(), slot.id, true)?;
                slot.cached.push(token);
                active.logits_at = Some(batch.n_tokens() - 1);
                active.in_batch = true;
                budget = budget.saturating_sub(1);
            }
        }
        for slot in &mut self.slots {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            let prompt = &active.job.prompt;
            if budget == 0 || active.prompt_done >= prompt.len() {
                continue;
            }
            let take = (prompt.len() - active.prompt_done).min(budget);
            for offset in 0..take {
                let at = active.prompt_done + offset;
                let last = at == prompt.len() - 1;
                add(batch, prompt[at], slot.cached.len(), slot.id, last)?;
                slot.cached.push(prompt[at]);
            }
            active.prompt_done += take;
            active.in_batch = true;
            budget -= take;
            if active.prompt_done == prompt.len() {
                active.logits_at = Some(batch.n_tokens() - 1);
            }
        }
        Ok(())
    }

    /// After a decode: each slot whose logits were computed gets its next token.
    fn sample(&mut self) {
        let model = self.model;
        let vocab = model.vocab();
        let context_tokens = self.settings.context_tokens as usize;
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let cached = slot.cached.len();
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            let Some(at) = active.logits_at.take() else {
                continue;
            };
            if let Some(gate) = active.job.gate.take() {
                let proceed = proceed_probability(self.context.get_logits_ith(at), &gate);
                let _ = active.job.events.send(LlmEvent::Verdict(proceed));
                if proceed < gate.min_proceed {
                    self.finish(index, FinishReason::Stop);
                    continue;
                }
                // The answer's prompt replaces the gate's: the shared prefix stays in the
                // cache, the gate's question is dropped from it, and the rest is read.
                let mut keep = common_prefix(&slot.cached, &gate.answer_prompt)
                    .min(gate.answer_prompt.len() - 1);
                let trimmed =
                    self.context
                        .clear_kv_cache_seq(Some(slot.id), Some(keep as u32), None);
                if !matches!(trimmed, Ok(true)) {
                    let _ = self.context.clear_kv_cache_seq(Some(slot.id), None, None);
                    keep = 0;
                }
                slot.cached.truncate(keep);
                active.job.prompt = gate.answer_prompt;
                active.prompt_done = keep;
                // The model goes ahead: the opening is known, the person need not wait
                // for the slot to read it.
                if !active.say_opening(&vocab) {
                    self.finish(index, FinishReason::Cancelled);
                }
                continue;
            }
            if !active.say_opening(&vocab) {
                self.finish(index, FinishReason::Cancelled);
                continue;
            }
            let token = active.sampler.sample(&self.context, at);
            active.first_token.get_or_insert_with(Instant::now);
            let finished = if vocab.is_eog(token) {
                Some(FinishReason::Stop)
            } else {
                active.generated += 1;
                // Tool-call markers are added tokens of their own in most vocabularies.
                let specials = active.calls.is_some();
                let piece = active
                    .text
                    .push(&vocab.token_to_piece(token, specials, None));
                let (text, stopped) = match active.stop.push(&piece) {
                    StopOutcome::Continue(text) => (text, false),
                    StopOutcome::Stopped(text) => (text, true),
                };
                if !active.emit(text) {
                    Some(FinishReason::Cancelled)
                } else if stopped {
                    Some(FinishReason::Stop)
                } else if active.generated + active.opening_said
                    >= active.job.request.max_tokens as usize
                    || cached + 1 >= context_tokens
                {
                    Some(FinishReason::Length)
                } else {
                    active.next_input = Some(token);
                    None
                }
            };
            if let Some(reason) = finished {
                self.finish(index, reason);
            }
        }
    }

    /// End the request in slot `index`; its KV cache stays for the next one.
    fn finish(&mut self, index: usize, reason: FinishReason) {
        self.clock += 1;
        let slot = &mut self.slots[index];
        slot.last_used = self.clock;
        let Some(mut active) = slot.active.take() else {
            return;
        };
        let mut reason = reason;
        if reason != FinishReason::Cancelled {
            let rest = active.stop.finish() + &active.text.finish();
            if reason == FinishReason::Length {
                active.emit(rest);
            }
            if let Some(mut reader) = active.calls.take() {
                for piece in reader.finish() {
                    let _ = active.job.events.send(piece.into());
                }
                if reader.calls() > 0 {
                    reason = FinishReason::ToolCalls;
                }
            }
        }
        let now = Instant::now();
        let first = active.first_token.unwrap_or(now);
        let generation_s = now.duration_since(first).as_secs_f64();
        let stats = GenerationStats {
            prompt_tokens: active.job.prompt.len(),
            cached_prompt_tokens: active.cached_prompt_tokens,
            completion_tokens: active.generated + active.opening_said,
            queue_ms: ms(active.admitted.duration_since(active.job.submitted)),
            prompt_ms: ms(first.duration_since(active.admitted)),
            first_token_ms: ms(first.duration_since(active.job.submitted)),
            generation_ms: ms(now.duration_since(first)),
            tokens_per_s: if active.generated > 1 && generation_s > 0.0 {
                (active.generated - 1) as f64 / generation_s
            } else {
                0.0
            },
        };
        tracing::debug!(slot = slot.id, ?reason, ?stats, "generation finished");
        if reason != FinishReason::Cancelled {
            self.shared
                .record_slot_time(now.duration_since(active.admitted));
        }
        let _ = active.job.events.send(LlmEvent::Done {
            finish_reason: reason,
            stats,
        });
    }

    /// A decode failed: the requests in that batch fail, and their slots forget their cache
    /// (it may be half-written).
    fn fail_batch(&mut self, message: &str) {
        tracing::error!(message, "llama.cpp batch failed");
        for slot in &mut self.slots {
            if !slot.active.as_ref().is_some_and(|a| a.in_batch) {
                continue;
            }
            if let Some(active) = slot.active.take() {
                let _ = active
                    .job
                    .events
                    .send(LlmEvent::Failed(message.to_string()));
            }
            let _ = self.context.clear_kv_cache_seq(Some(slot.id), None, None);
            slot.cached.clear();
        }
    }
}

fn add(
    batch: &mut LlamaBatch,
    token: LlamaToken,
    position: usize,
    seq: u32,
    logits: bool,
) -> std::result::Result<(), String> {
    let position = i32::try_from(position).map_err(|e| e.to_string())?;
    batch
        .add(token, position, &[seq as i32], logits)
        .map_err(|e| format!("llama.cpp batch: {e}"))
}

/// P(proceed) from the logits of the reply's first token, over the gate's two tokens only.
fn proceed_probability(logits: &[f32], gate: &TokenGate) -> f32 {
    let logit = |t: LlamaToken| {
        usize::try_from(t.0)
            .ok()
            .and_then(|i| logits.get(i))
            .copied()
            .unwrap_or(f32::NEG_INFINITY)
    };
    two_way_softmax(logit(gate.proceed), logit(gate.refuse))
}

/// e^a / (e^a + e^b), computed without overflow; ½ when neither is finite.
fn two_way_softmax(a: f32, b: f32) -> f32 {
    let top = a.max(b);
    if !top.is_finite() {
        return 0.5;
    }
    let (ea, eb) = ((a - top).exp(), (b - top).exp());
    ea / (ea + eb)
}

/// Greedy at temperature 0; otherwise the usual top-p / temperature chain. A light
/// repetition penalty keeps small models out of loops. Top-k comes first: llama.cpp's
/// penalty looks every candidate up in its window, and over a 152k-token vocabulary that
/// costs milliseconds a token; over the best 40 it costs nothing and changes nothing a
/// greedy or nucleus pick could see.
///
/// A tool-call grammar goes first, so that the candidates the rest choose among are the
/// ones it allows.
fn sampler(
    model: &LlamaModel,
    request: &GenerateRequest,
    grammar: Option<&ToolGrammar>,
) -> std::result::Result<LlamaSampler, String> {
    let mut chain = Vec::new();
    if let Some(grammar) = grammar {
        let constrained = match grammar.lazy {
            true => LlamaSampler::grammar_lazy_patterns(
                model,
                &grammar.gbnf,
                "root",
                &grammar.triggers,
                &[],
            ),
            false => LlamaSampler::grammar(model, &grammar.gbnf, "root"),
        };
        chain.push(
            constrained.map_err(|e| format!("llama.cpp refused the tool-call grammar: {e}"))?,
        );
    }
    chain.push(LlamaSampler::top_k(40));
    chain.push(LlamaSampler::penalties(-1, 64, 1.1, 0.0, 0.0));
    if request.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        chain.push(LlamaSampler::top_p(request.top_p.clamp(0.01, 1.0), 1));
        chain.push(LlamaSampler::temp(request.temperature));
        chain.push(LlamaSampler::dist(
            request.seed.unwrap_or_else(rand::random),
        ));
    }
    Ok(LlamaSampler::chain_simple(chain))
}

/// Tokens of `prompt` a slot holding `cached` saves. A few shared template tokens (every
/// prompt starts `<|im_start|>system`) are not worth evicting a conversation's cache for:
/// below `MIN_REUSE_TOKENS` the least recently used slot is taken instead.
fn reusable(cached: &[LlamaToken], prompt: &[LlamaToken]) -> usize {
    const MIN_REUSE_TOKENS: usize = 32;
    let shared = common_prefix(cached, prompt);
    if shared >= MIN_REUSE_TOKENS {
        shared
    } else {
        0
    }
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Token bytes to text: a character split over two tokens comes out whole.
struct Utf8Stream {
    decoder: encoding_rs::Decoder,
}

impl Utf8Stream {
    fn new() -> Self {
        Self {
            decoder: encoding_rs::UTF_8.new_decoder_without_bom_handling(),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> String {
        self.decode(bytes, false)
    }

    fn finish(&mut self) -> String {
        self.decode(&[], true)
    }

    fn decode(&mut self, bytes: &[u8], last: bool) -> String {
        let capacity = self
            .decoder
            .max_utf8_buffer_length(bytes.len())
            .unwrap_or(bytes.len() * 3 + 8);
        let mut out = String::with_capacity(capacity);
        let _ = self.decoder.decode_to_string(bytes, &mut out, last);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_joined() {
        let mut s = Utf8Stream::new();
        let bytes = "知库".as_bytes();
        assert_eq!(s.push(&bytes[..2]), "");
        assert_eq!(s.push(&bytes[2..4]), "知");
        assert_eq!(s.push(&bytes[4..]), "库");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn the_gate_compares_two_logits_only() {
        assert!((two_way_softmax(2.0, 2.0) - 0.5).abs() < 1e-6);
        assert!(two_way_softmax(10.0, 0.0) > 0.99);
        assert!(two_way_softmax(-1e30, 0.0) < 1e-6);
        assert!((two_way_softmax(f32::NEG_INFINITY, f32::NEG_INFINITY) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn retry_after_grows_with_the_queue() {
        let unknown = Duration::ZERO;
        assert!(retry_after_s(0, 4, unknown) < retry_after_s(40, 4, unknown));
        assert!(retry_after_s(10_000, 1, unknown) <= 120);
        assert_eq!(retry_after_s(4, 4, Duration::from_secs(90)), 90);
    }

    #[test]
    fn the_wait_counts_only_full_rounds_ahead() {
        let slot = Duration::from_secs(30);
        // Fewer waiting than slots: the next free slot is theirs, however long it takes.
        assert_eq!(estimated_wait(3, 4, slot), Duration::ZERO);
        assert_eq!(estimated_wait(8, 4, slot), Duration::from_secs(60));
        assert_eq!(estimated_wait(9, 4, slot), Duration::from_secs(60));
        // No slot time known (nothing finished, a slot free): nobody is turned away for it.
        assert_eq!(estimated_wait(100, 4, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_slot_time_average_follows_the_load() {
        let shared = Shared::default();
        shared.record_slot_time(Duration::from_secs(10));
        assert_eq!(shared.mean_slot_ms.load(Ordering::Relaxed), 10_000);
        shared.record_slot_time(Duration::from_secs(20));
        assert_eq!(shared.mean_slot_ms.load(Ordering::Relaxed), 12_000);
    }

    #[test]
    fn before_an_answer_finishes_the_busy_slots_stand_in_for_the_average() {
        let shared = Shared::default();
        assert_eq!(shared.slot_time(), Duration::ZERO);
        shared.busy_floor_ms.store(40_000, Ordering::Relaxed);
        assert_eq!(shared.slot_time(), Duration::from_secs(40));
        // Once answers are known, the average alone says how long one takes.
        shared.record_slot_time(Duration::from_secs(10));
        assert_eq!(shared.slot_time(), Duration::from_secs(10));
    }
}
