//! The language model behind chat, behind one trait: [`LlmBackend`]. [`local`] runs a GGUF
//! model in this process with llama.cpp; [`remote`] calls any OpenAI-compatible server.
//! Both stream [`LlmEvent`]s through a channel; dropping the receiver cancels the answer.
//! Tests use a stand-in, `scripted`, that needs no model. [`metered`] wraps whichever is
//! loaded to count what it generates (`/metrics`).

pub mod local;
pub mod metered;
pub mod remote;
#[cfg(test)]
pub mod scripted;
pub mod server_check;
pub mod stop;
pub mod template;
pub mod tool_grammar;
pub mod tools;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::{Config, LlmBackendKind};
use crate::error::{Error, Result};

pub use tools::{ToolCall, ToolChoice, ToolSpec, ToolUse};

/// Who speaks a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
// Named apart from the stored conversation's `Role` (which has no `system`).
#[schema(as = PromptRole)]
pub enum Role {
    /// Instructions.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
    /// A tool's result, given back to the model (OpenAI tool calling).
    Tool,
}

impl Role {
    /// The name chat templates use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a prompt. Serialised as OpenAI's chat messages are (what a remote
/// server is sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
    /// The tools an assistant message called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// Whether the message is part of tool calling: a call or a tool's result.
    pub fn is_tool_step(&self) -> bool {
        self.role == Role::Tool || !self.tool_calls.is_empty()
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The conversation, system message first.
    pub messages: Vec<ChatMessage>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus sampling mass (1.0 = off).
    pub top_p: f32,
    /// Sampling seed; `None` = random.
    pub seed: Option<u32>,
    /// Strings that end the answer (not included in it).
    pub stop: Vec<String>,
    /// A yes/no question the model answers first; the answer is generated only on yes.
    pub gate: Option<Gate>,
    /// Text the answer opens with, word for word; the model goes on from its end. The local
    /// engine reads it as part of the prompt (at prompt speed, not a token a step) and
    /// streams it as soon as the model has read the passages — after a gate's yes. An
    /// OpenAI-compatible server is not sent one, since the API has no field for it.
    pub opening: Option<String>,
    /// Functions the model may call instead of answering (OpenAI tool calling); a call
    /// comes as [`LlmEvent::ToolCall`] and the generation ends with
    /// [`FinishReason::ToolCalls`].
    pub tools: Option<ToolUse>,
}

/// A question with two replies put to the model before it answers, read from one forward
/// pass: the probability of the first token of `proceed` against that of `refuse` as the
/// reply's first token. Its prompt should begin with the answer's own prompt (the same
/// messages with the question added at the end), so the answer that follows in the same
/// slot reads only the few tokens where the two differ.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The prompt that asks the question.
    pub messages: Vec<ChatMessage>,
    /// The reply under which the answer goes ahead (its first token counts).
    pub proceed: String,
    /// The reply under which it does not (its first token counts).
    pub refuse: String,
    /// The answer is generated only when P(proceed), over the two, is at least this;
    /// below it the stream ends after [`LlmEvent::Verdict`] with no text.
    pub min_proceed: f32,
}

impl GenerateRequest {
    /// A request with the usual sampling settings.
    pub fn new(messages: Vec<ChatMessage>, max_tokens: u32, temperature: f32) -> Self {
        Self {
            messages,
            max_tokens,
            temperature,
            top_p: 0.95,
            seed: None,
            stop: Vec::new(),
            gate: None,
            opening: None,
            tools: None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished (or hit a stop string).
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The receiver went away.
    Cancelled,
    /// The model called tools (their results are wanted before it answers).
    ToolCalls,
}

/// Counts and timings of one generation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Of those, tokens whose KV cache was reused from the slot's previous prompt.
    pub cached_prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Waiting for a slot.
    pub queue_ms: u64,
    /// From getting a slot to the first token (reading the prompt).
    pub prompt_ms: u64,
    /// From the request to the first token.
    pub first_token_ms: u64,
    /// From the first token to the last.
    pub generation_ms: u64,
    /// Generated tokens per second after the first.
    pub tokens_per_s: f64,
}

/// What a generation stream carries.
#[derive(Debug, Clone)]
pub enum LlmEvent {
    /// The next piece of text.
    Token(String),
    /// Generation ended normally.
    Done {
        /// Why.
        finish_reason: FinishReason,
        /// Counts and timings.
        stats: GenerationStats,
    },
    /// Generation failed; text already sent stands.
    Failed(String),
    /// No slot came free in time; nothing was generated and a retry may succeed.
    Busy(String),
    /// The [`Gate`]'s verdict, before any text: P(proceed) over its two replies.
    Verdict(f32),
    /// A complete call of one of the request's tools.
    ToolCall(ToolCall),
}

/// A stream of [`LlmEvent`]s; drop it to cancel.
pub type LlmStream = UnboundedReceiver<LlmEvent>;

/// What a backend is.
#[derive(Debug, Clone, Serialize)]
pub struct LlmInfo {
    /// "local" or "remote".
    pub backend: &'static str,
    /// Model name (file stem or remote model id).
    pub model: String,
    /// Tokens per conversation.
    pub context_tokens: usize,
    /// Conversations generated at once.
    pub parallel: usize,
    /// Layers on the GPU.
    pub gpu_layers: u32,
}

/// What a backend's slots are doing now (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// Slots generating (or reading the prompt of) an answer.
    pub slots_busy: usize,
    /// Requests waiting for a slot.
    pub queued: usize,
}

/// A chat model.
pub trait LlmBackend: Send + Sync {
    /// Name and limits.
    fn info(&self) -> LlmInfo;

    /// Its slots and queue now, where it keeps them (the local engine); `None` where it
    /// does not know (a remote server queues requests itself).
    fn occupancy(&self) -> Option<Occupancy> {
        None
    }

    /// Whether it can answer now; the error says why not (not loaded, its server does not
    /// answer). What `/health` reports; it must return within a few seconds.
    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Tokens `messages` take once rendered with the chat template.
    fn count_tokens(&self, messages: &[ChatMessage]) -> Result<usize>;

    /// Start generating. Fails at once with [`Error::Overloaded`] when the queue is full.
    fn generate(&self, request: GenerateRequest) -> Result<LlmStream>;
}

/// Generate and wait for the whole text (short, non-streamed calls: query rewriting,
/// persona suggestions). `Err` carries the model's failure.
pub async fn complete(llm: &dyn LlmBackend, request: GenerateRequest) -> Result<String> {
    let mut stream = llm.generate(request)?;
    let mut text = String::new();
    while let Some(event) = stream.recv().await {
        match event {
            LlmEvent::Token(t) => text.push_str(&t),
            LlmEvent::Done { .. } => return Ok(text),
            LlmEvent::Failed(e) => return Err(Error::Llm(e)),
            LlmEvent::Busy(e) => return Err(Error::Busy(e)),
            LlmEvent::Verdict(_) | LlmEvent::ToolCall(_) => {}
        }
    }
    Err(Error::Llm("the model stopped without finishing".into()))
}

/// The model's answer to a yes/no question and nothing more: the probability, over the
/// two, that its reply starts with `proceed` rather than `refuse` (a [`Gate`] that never
/// lets an answer follow). `messages` ask the question.
pub async fn verdict(
    llm: &dyn LlmBackend,
    messages: Vec<ChatMessage>,
    proceed: &str,
    refuse: &str,
) -> Result<f32> {
    let mut request = GenerateRequest::new(messages.clone(), 1, 0.0);
    request.gate = Some(Gate {
        messages,
        proceed: proceed.into(),
        refuse: refuse.into(),
        // No probability reaches it: the stream ends after the verdict.
        min_proceed: 2.0,
    });
    let mut stream = llm.generate(request)?;
    let mut proceed_probability = None;
    while let Some(event) = stream.recv().await {
        match event {
            LlmEvent::Verdict(p) => proceed_probability = Some(p),
            LlmEvent::Done { .. } => break,
            LlmEvent::Failed(e) => return Err(Error::Llm(e)),
            LlmEvent::Busy(e) => return Err(Error::Busy(e)),
            LlmEvent::Token(_) | LlmEvent::ToolCall(_) => {}
        }
    }
    proceed_probability.ok_or_else(|| Error::Llm("the model gave no verdict".into()))
}

/// The backend used when the model could not be loaded: every call explains why.
pub struct Unavailable {
    /// Why the model is not loaded.
    pub reason: String,
}

impl LlmBackend for Unavailable {
    fn info(&self) -> LlmInfo {
        LlmInfo {
            backend: "unavailable",
            model: String::new(),
            context_tokens: 0,
            parallel: 0,
            gpu_layers: 0,
        }
    }

    fn count_tokens(&self, _: &[ChatMessage]) -> Result<usize> {
        Err(Error::ModelUnavailable(self.reason.clone()))
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Err(Error::ModelUnavailable(
            self.reason.clone(),
        ))))
    }

    fn generate(&self, _: GenerateRequest) -> Result<LlmStream> {
        Err(Error::ModelUnavailable(self.reason.clone()))
    }
}

/// Build the configured backend. A local model that fails to load gives [`Unavailable`]
/// (knowledge bases keep working) and the reason is logged.
pub fn load(config: &Config) -> Arc<dyn LlmBackend> {
    let loaded: Result<Arc<dyn LlmBackend>> = match config.llm.backend {
        LlmBackendKind::Local => local::LocalLlm::load(config).map(|m| Arc::new(m) as _),
        LlmBackendKind::Remote => remote::RemoteLlm::new(config).map(|m| Arc::new(m) as _),
    };
    match loaded {
        Ok(backend) => {
            let info = backend.info();
            tracing::info!(backend = info.backend, model = %info.model, context_tokens = info.context_tokens, parallel = info.parallel, "chat model ready");
            backend
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(%reason, "chat model not loaded; chat answers will fail until it is fixed");
            Arc::new(Unavailable { reason })
        }
    }
}
