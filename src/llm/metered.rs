//! Counting what the chat model generates, whichever backend it is: [`Metered`] wraps the
//! loaded backend and relays each stream, adding up the counts of every finished answer
//! into [`LlmUsage`]. `/metrics` shows the totals; Prometheus turns them into tokens per
//! second. Counting here, at the one place every stream passes, keeps the engines (and the
//! services that read the streams) free of bookkeeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use tokio::sync::mpsc::unbounded_channel;

use super::{
    ChatMessage, GenerateRequest, GenerationStats, LlmBackend, LlmEvent, LlmInfo, LlmStream,
    Occupancy,
};
use crate::error::Result;

/// Totals over the answers a backend finished since the start.
#[derive(Debug, Default)]
pub struct LlmUsage {
    generations: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    generation_ms: AtomicU64,
}

/// A reading of [`LlmUsage`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageCounts {
    /// Answers that finished (stopped, or cut at their length); a client that leaves
    /// mid-answer is not counted.
    pub generations: u64,
    /// Tokens of their prompts (those whose cache was reused included).
    pub prompt_tokens: u64,
    /// Tokens they generated.
    pub completion_tokens: u64,
    /// Seconds spent generating them, from each first token to its last: completion
    /// tokens over this is the speed one answer streams at.
    pub generation_seconds: f64,
}

impl LlmUsage {
    /// Add one finished answer.
    pub fn record(&self, stats: &GenerationStats) {
        self.generations.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens
            .fetch_add(stats.prompt_tokens as u64, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(stats.completion_tokens as u64, Ordering::Relaxed);
        self.generation_ms
            .fetch_add(stats.generation_ms, Ordering::Relaxed);
    }

    /// The totals now.
    pub fn counts(&self) -> UsageCounts {
        UsageCounts {
            generations: self.generations.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
            generation_seconds: self.generation_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

/// A backend whose finished answers are added to an [`LlmUsage`].
pub struct Metered {
    inner: Arc<dyn LlmBackend>,
    usage: Arc<LlmUsage>,
}

impl Metered {
    /// Count `inner`'s answers into `usage`.
    pub fn new(inner: Arc<dyn LlmBackend>, usage: Arc<LlmUsage>) -> Self {
        Self { inner, usage }
    }
}

impl LlmBackend for Metered {
    fn info(&self) -> LlmInfo {
        self.inner.info()
    }

    fn occupancy(&self) -> Option<Occupancy> {
        self.inner.occupancy()
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        self.inner.check()
    }

    fn count_tokens(&self, messages: &[ChatMessage]) -> Result<usize> {
        self.inner.count_tokens(messages)
    }

    /// The inner stream, relayed by a task that reads each `Done`'s counts on the way.
    /// When the caller drops its receiver the relay ends and drops the inner one, which
    /// cancels the answer as it would have without the relay. Outside a tokio runtime
    /// (nothing in zhiku calls it there) the inner stream is returned uncounted.
    fn generate(&self, request: GenerateRequest) -> Result<LlmStream> {
        let mut inner = self.inner.generate(request)?;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ok(inner);
        };
        let (events, stream) = unbounded_channel();
        let usage = self.usage.clone();
        runtime.spawn(async move {
            loop {
                let event = tokio::select! {
                    () = events.closed() => return,
                    event = inner.recv() => event,
                };
                let Some(event) = event else {
                    return;
                };
                if let LlmEvent::Done { stats, .. } = &event {
                    usage.record(stats);
                }
                if events.send(event).is_err() {
                    return;
                }
            }
        });
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::scripted::ScriptedLlm;
    use crate::llm::{ChatMessage, GenerateRequest, Role, complete};

    fn question() -> GenerateRequest {
        GenerateRequest::new(vec![ChatMessage::new(Role::User, "hello there")], 64, 0.0)
    }

    /// Every finished answer is counted, and the text arrives unchanged.
    #[tokio::test]
    async fn finished_answers_are_counted() {
        let usage = Arc::new(LlmUsage::default());
        let scripted: Arc<dyn LlmBackend> =
            Arc::new(ScriptedLlm::new(["one two three four", "five six"]));
        let metered = Metered::new(scripted, usage.clone());
        assert_eq!(
            complete(&metered, question()).await.unwrap(),
            "one two three four"
        );
        assert_eq!(complete(&metered, question()).await.unwrap(), "five six");
        let counts = usage.counts();
        assert_eq!(counts.generations, 2);
        // The stand-in counts a token per two characters.
        assert_eq!(counts.completion_tokens, 9 + 4);
        assert!(counts.prompt_tokens > 0);
    }

    /// A caller that drops its stream ends the relay, and so the inner stream: the
    /// backend sees the answer cancelled as it would without the relay.
    #[tokio::test]
    async fn dropping_the_stream_drops_the_inner_one() {
        struct Held(std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<LlmEvent>>>);
        impl LlmBackend for Held {
            fn info(&self) -> LlmInfo {
                ScriptedLlm::new(Vec::<String>::new()).info()
            }
            fn count_tokens(&self, _: &[ChatMessage]) -> Result<usize> {
                Ok(0)
            }
            fn generate(&self, _: GenerateRequest) -> Result<LlmStream> {
                let (tx, rx) = unbounded_channel();
                *self.0.lock().unwrap() = Some(tx);
                Ok(rx)
            }
        }
        let held = Arc::new(Held(std::sync::Mutex::new(None)));
        let metered = Metered::new(held.clone(), Arc::new(LlmUsage::default()));
        let stream = metered.generate(question()).unwrap();
        let engine_side = held.0.lock().unwrap().take().unwrap();
        assert!(!engine_side.is_closed());
        drop(stream);
        tokio::time::timeout(std::time::Duration::from_secs(5), engine_side.closed())
            .await
            .expect("the relay let go of the inner stream");
    }
}
