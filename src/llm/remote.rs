//! Any OpenAI-compatible server (vLLM, llama-server, Ollama, another zhiku) as the chat
//! model: `POST {remote_url}/chat/completions` with `stream: true`, read as server-sent
//! events. The path for teams that outgrow one machine.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::server_check::ServerCheck;
use super::tools::{ToolCall, ToolChoice, ToolUse};
use super::{
    ChatMessage, FinishReason, GenerateRequest, GenerationStats, LlmBackend, LlmEvent, LlmInfo,
    LlmStream,
};
use crate::config::Config;
use crate::error::{Error, Result};

/// A remote OpenAI-compatible chat endpoint.
pub struct RemoteLlm {
    client: reqwest::Client,
    url: String,
    api_key: String,
    model: String,
    info: LlmInfo,
    /// What [`LlmBackend::check`] asks.
    server_check: ServerCheck,
}

impl RemoteLlm {
    /// A client for the configured server; nothing is sent until the first question.
    pub fn new(config: &Config) -> Result<Self> {
        let llm = &config.llm;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_millis(llm.remote_timeout_ms))
            .build()
            .map_err(|e| Error::Config(format!("llm.remote_url: {e}")))?;
        let base = llm.remote_url.trim_end_matches('/');
        Ok(Self {
            client,
            url: format!("{base}/chat/completions"),
            server_check: ServerCheck::new(
                base,
                &llm.remote_api_key,
                "the chat model server",
                "llm.remote_api_key",
            )?,
            api_key: llm.remote_api_key.clone(),
            model: llm.remote_model.clone(),
            info: LlmInfo {
                backend: "remote",
                model: llm.remote_model.clone(),
                context_tokens: llm.context_tokens as usize,
                parallel: llm.parallel as usize,
                gpu_layers: 0,
            },
        })
    }
}

impl LlmBackend for RemoteLlm {
    fn info(&self) -> LlmInfo {
        self.info.clone()
    }

    /// The server answers `GET /models` with the key ([`ServerCheck`]).
    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.server_check
                .check()
                .await
                .map_err(Error::ModelUnavailable)
        })
    }

    /// An estimate (the remote tokenizer is not here): a CJK character is about one token,
    /// other text about four bytes a token, plus the template's few tokens per message.
    fn count_tokens(&self, messages: &[ChatMessage]) -> Result<usize> {
        Ok(messages
            .iter()
            .map(|m| estimate_tokens(&m.content) + 4)
            .sum())
    }

    fn generate(&self, request: GenerateRequest) -> Result<LlmStream> {
        let (events, stream) = unbounded_channel();
        let mut body = json!({
            "model": self.model,
            "messages": request.messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        });
        if let Some(seed) = request.seed {
            body["seed"] = json!(seed);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        if let Some(tools) = &request.tools {
            add_tools(&mut body, tools);
        }
        let call = self.call(&body);
        // The gate is a one-token, greedy request of its own: OpenAI-compatible servers
        // differ in whether and how they return log-probabilities, but all of them
        // generate. Its verdict is 1 or 0 (or ½ when the reply is neither word).
        let gate = request.gate.map(|gate| {
            let body = json!({
                "model": self.model,
                "messages": gate.messages,
                "stream": true,
                "max_tokens": 1,
                "temperature": 0.0,
            });
            (self.call(&body), gate)
        });
        tokio::spawn(async move {
            let submitted = Instant::now();
            if let Some((gate_call, gate)) = gate {
                let (tx, mut verdict) = unbounded_channel();
                let reply = match relay(gate_call, &tx, submitted).await {
                    Ok(()) => {
                        let mut text = String::new();
                        while let Ok(LlmEvent::Token(t)) = verdict.try_recv() {
                            text.push_str(&t);
                        }
                        text
                    }
                    Err(message) => {
                        let _ = events.send(LlmEvent::Failed(message));
                        return;
                    }
                };
                let proceed = reply_verdict(&reply, &gate.proceed, &gate.refuse);
                let _ = events.send(LlmEvent::Verdict(proceed));
                if proceed < gate.min_proceed {
                    let _ = events.send(LlmEvent::Done {
                        finish_reason: FinishReason::Stop,
                        stats: GenerationStats::default(),
                    });
                    return;
                }
            }
            if let Err(message) = relay(call, &events, submitted).await {
                let _ = events.send(LlmEvent::Failed(message));
            }
        });
        Ok(stream)
    }
}

impl RemoteLlm {
    fn call(&self, body: &Value) -> reqwest::RequestBuilder {
        let call = self.client.post(&self.url).json(body);
        if self.api_key.is_empty() {
            call
        } else {
            call.bearer_auth(&self.api_key)
        }
    }
}

/// The request's tools as OpenAI's fields.
fn add_tools(body: &mut Value, tools: &ToolUse) {
    if tools.tools.is_empty() {
        return;
    }
    body["tools"] = tools.tools.iter().map(|t| t.to_openai()).collect();
    body["tool_choice"] = match &tools.choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
    };
    body["parallel_tool_calls"] = json!(tools.parallel);
}

/// Tool calls as an OpenAI stream sends them: by index, the id and name first, the
/// arguments in pieces.
#[derive(Default)]
struct StreamedCalls(Vec<ToolCall>);

impl StreamedCalls {
    fn add(&mut self, deltas: &Value) {
        for delta in deltas.as_array().into_iter().flatten() {
            let index = delta["index"].as_u64().unwrap_or(0) as usize;
            while self.0.len() <= index {
                self.0.push(ToolCall::new("", ""));
            }
            let call = &mut self.0[index];
            if let Some(id) = delta["id"].as_str().filter(|id| !id.is_empty()) {
                call.id = id.to_string();
            }
            let function = &delta["function"];
            if let Some(name) = function["name"].as_str() {
                call.name.push_str(name);
            }
            if let Some(arguments) = function["arguments"].as_str() {
                call.arguments.push_str(arguments);
            }
        }
    }
}

/// 1 when a gate's reply starts with the proceeding word, 0 with the refusing one, ½
/// otherwise.
fn reply_verdict(reply: &str, proceed: &str, refuse: &str) -> f32 {
    let reply = reply.trim_start();
    let starts = |word: &str| {
        word.chars()
            .next()
            .is_some_and(|first| reply.starts_with(first))
    };
    match (starts(proceed), starts(refuse)) {
        (true, false) => 1.0,
        (false, true) => 0.0,
        _ => 0.5,
    }
}

/// Send the request and forward its stream; `Err` is the reason it failed.
async fn relay(
    call: reqwest::RequestBuilder,
    events: &UnboundedSender<LlmEvent>,
    submitted: Instant,
) -> std::result::Result<(), String> {
    let response = call
        .send()
        .await
        .map_err(|e| format!("could not reach the remote model server: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!(
            "the remote model server answered {status}: {}",
            text.chars().take(500).collect::<String>()
        ));
    }
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut stats = GenerationStats::default();
    let mut finish_reason = FinishReason::Stop;
    let mut first_token: Option<Instant> = None;
    let mut calls = StreamedCalls::default();
    // A stream that just stops (the server died, a proxy timed out) is not an answer:
    // only `[DONE]` or a finish_reason says the remote model finished.
    let mut finished = false;
    'read: while let Some(chunk) = body.next().await {
        if events.is_closed() {
            return Ok(());
        }
        let chunk = chunk.map_err(|e| format!("the remote stream broke: {e}"))?;
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                finished = true;
                break 'read;
            }
            let event: Value = serde_json::from_str(data)
                .map_err(|e| format!("the remote server sent bad JSON ({e}): {data}"))?;
            if let Some(error) = event.get("error") {
                return Err(format!("the remote model server failed: {error}"));
            }
            if let Some(choice) = event["choices"].get(0) {
                if let Some(text) = choice["delta"]["content"].as_str()
                    && !text.is_empty()
                {
                    first_token.get_or_insert_with(Instant::now);
                    stats.completion_tokens += 1;
                    if events.send(LlmEvent::Token(text.to_string())).is_err() {
                        return Ok(());
                    }
                }
                calls.add(&choice["delta"]["tool_calls"]);
                match choice["finish_reason"].as_str() {
                    Some("length") => {
                        finish_reason = FinishReason::Length;
                        finished = true;
                    }
                    Some(_) => finished = true,
                    None => {}
                }
            }
            if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
                let count = |key: &str| usage[key].as_u64().unwrap_or(0) as usize;
                stats.prompt_tokens = count("prompt_tokens");
                stats.completion_tokens = count("completion_tokens").max(stats.completion_tokens);
            }
        }
    }
    if !finished {
        return Err("the remote model server stopped before finishing the answer".into());
    }
    let called = calls.0.into_iter().filter(|c| !c.name.is_empty());
    for call in called {
        finish_reason = FinishReason::ToolCalls;
        if events.send(LlmEvent::ToolCall(call)).is_err() {
            return Ok(());
        }
    }
    let now = Instant::now();
    let first = first_token.unwrap_or(now);
    stats.first_token_ms = millis(first - submitted);
    stats.prompt_ms = stats.first_token_ms;
    stats.generation_ms = millis(now - first);
    let seconds = (now - first).as_secs_f64();
    if stats.completion_tokens > 1 && seconds > 0.0 {
        stats.tokens_per_s = (stats.completion_tokens - 1) as f64 / seconds;
    }
    let _ = events.send(LlmEvent::Done {
        finish_reason,
        stats,
    });
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Rough token count for text the remote model will read.
pub fn estimate_tokens(text: &str) -> usize {
    let (cjk, other_bytes) = text.chars().fold((0usize, 0usize), |(cjk, other), c| {
        if ('\u{2E80}'..='\u{9FFF}').contains(&c) || ('\u{F900}'..='\u{FAFF}').contains(&c) {
            (cjk + 1, other)
        } else {
            (cjk, other + c.len_utf8())
        }
    });
    cjk + other_bytes.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_reply_is_read_by_its_first_character() {
        assert_eq!(reply_verdict("是", "是", "否"), 1.0);
        assert_eq!(reply_verdict(" 否。", "是", "否"), 0.0);
        assert_eq!(reply_verdict("不确定", "是", "否"), 0.5);
    }

    #[test]
    fn estimates_count_chinese_by_character() {
        assert_eq!(estimate_tokens("知识库"), 3);
        assert_eq!(estimate_tokens("abcdefgh"), 2);
    }
}
