//! A stand-in chat model for tests: scripted replies and a fixed answerability verdict,
//! no model files. It behaves as the real backends do where the services can tell (a gate
//! below its threshold ends the stream after the verdict with no text), and records what
//! it was asked, so the chat and search services get tests that run in milliseconds. A
//! request with tools has its reply read for calls as the local engine reads them
//! (`<tool_call>{…}</tool_call>`).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc::unbounded_channel;

use super::tools::{Piece, ToolUse};
use super::{
    ChatMessage, FinishReason, GenerateRequest, GenerationStats, LlmBackend, LlmEvent, LlmInfo,
    LlmStream,
};
use crate::error::Result;

/// The stand-in model: each generation takes the next scripted reply (an empty answer once
/// they run out) and a gated one first gets the next of `verdicts`, or `verdict` once they
/// run out.
pub struct ScriptedLlm {
    replies: Mutex<VecDeque<String>>,
    verdict: f32,
    verdicts: Mutex<VecDeque<f32>>,
    requests: Mutex<Vec<GenerateRequest>>,
}

impl ScriptedLlm {
    /// A model that answers `replies` in turn and judges every question answerable
    /// (verdict 1.0).
    pub fn new<S: Into<String>>(replies: impl IntoIterator<Item = S>) -> Self {
        Self {
            replies: Mutex::new(replies.into_iter().map(Into::into).collect()),
            verdict: 1.0,
            verdicts: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// The same, giving the first gates `verdicts` in turn (then the usual verdict).
    pub fn with_verdicts(self, verdicts: impl IntoIterator<Item = f32>) -> Self {
        *self.verdicts.lock().unwrap_or_else(PoisonError::into_inner) =
            verdicts.into_iter().collect();
        self
    }

    /// The same, giving `verdict` as P(proceed) to every gate.
    pub fn with_verdict(mut self, verdict: f32) -> Self {
        self.verdict = verdict;
        self
    }

    /// What it was asked, in order.
    pub fn requests(&self) -> Vec<GenerateRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Tokens as a rough count: one per two characters, plus a few per message for the
/// template, so prompt budgets behave as with a real tokenizer.
fn rough_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(2)
}

impl LlmBackend for ScriptedLlm {
    fn info(&self) -> LlmInfo {
        LlmInfo {
            backend: "scripted",
            model: "scripted".into(),
            context_tokens: 8192,
            parallel: 1,
            gpu_layers: 0,
        }
    }

    fn count_tokens(&self, messages: &[ChatMessage]) -> Result<usize> {
        Ok(messages.iter().map(|m| rough_tokens(&m.content) + 4).sum())
    }

    fn generate(&self, request: GenerateRequest) -> Result<LlmStream> {
        let prompt_tokens = self.count_tokens(&request.messages)?;
        let gate = request.gate.as_ref().map(|g| g.min_proceed);
        let mut calls = request.tools.as_ref().map(ToolUse::reader);
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        let (tx, rx) = unbounded_channel();
        let done = |completion_tokens, finish_reason| LlmEvent::Done {
            finish_reason,
            stats: GenerationStats {
                prompt_tokens,
                completion_tokens,
                ..GenerationStats::default()
            },
        };
        if let Some(min_proceed) = gate {
            let verdict = self
                .verdicts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .unwrap_or(self.verdict);
            let _ = tx.send(LlmEvent::Verdict(verdict));
            if verdict < min_proceed {
                let _ = tx.send(done(0, FinishReason::Stop));
                return Ok(rx);
            }
        }
        let reply = self
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or_default();
        // Streamed in pieces, as a model would, so relays see more than one token.
        let mut finish_reason = FinishReason::Stop;
        let send = |piece: Piece| tx.send(piece.into());
        for piece in reply.split_inclusive(' ') {
            match calls.as_mut() {
                None => drop(tx.send(LlmEvent::Token(piece.to_string()))),
                Some(reader) => reader.push(piece).into_iter().for_each(|p| drop(send(p))),
            }
        }
        if let Some(reader) = calls.as_mut() {
            reader.finish().into_iter().for_each(|p| drop(send(p)));
            if reader.calls() > 0 {
                finish_reason = FinishReason::ToolCalls;
            }
        }
        let _ = tx.send(done(rough_tokens(&reply), finish_reason));
        Ok(rx)
    }
}
