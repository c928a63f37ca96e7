//! Whether an OpenAI-compatible server answers, for `/health`: the remote chat model's
//! server and the remote embedding server are checked the same way, by this.
//!
//! The check asks `GET {base}/models` (the OpenAI API's list, which vLLM, llama-server,
//! Ollama, text-embeddings-inference and zhiku serve) with the key. A 404 still shows a
//! server that answers; a refused key, a 5xx, no answer in [`CHECK_TIMEOUT`] or no
//! connection do not. An outcome is reused for [`CHECK_REUSE`].

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a check's outcome is reused: load balancers ask `/health` every few seconds,
/// and every node would otherwise ask the model server as often.
const CHECK_REUSE: Duration = Duration::from_secs(10);
/// How long a check waits for the server (`/health` must answer within a load
/// balancer's timeout, usually 5 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The check of one server, with its last outcome.
pub struct ServerCheck {
    client: reqwest::Client,
    models_url: String,
    api_key: String,
    /// What the server is, for messages ("the chat model server").
    what: &'static str,
    /// The setting that holds the key, for messages ("llm.remote_api_key").
    key_setting: &'static str,
    /// The last check's time and outcome, reused for [`CHECK_REUSE`].
    last: Mutex<Option<(Instant, std::result::Result<(), String>)>>,
}

impl ServerCheck {
    /// A check of the server at `base_url` (ending in `/v1`); nothing is sent yet.
    pub fn new(
        base_url: &str,
        api_key: &str,
        what: &'static str,
        key_setting: &'static str,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .build()
            .map_err(|e| Error::Config(format!("{what} at {base_url}: {e}")))?;
        Ok(Self {
            client,
            models_url: format!("{}/models", base_url.trim_end_matches('/')),
            api_key: api_key.to_string(),
            what,
            key_setting,
            last: Mutex::new(None),
        })
    }

    /// Whether the server answers (reusing an outcome younger than [`CHECK_REUSE`]);
    /// the error says why not.
    pub async fn check(&self) -> std::result::Result<(), String> {
        let reused = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < CHECK_REUSE)
            .map(|(_, outcome)| outcome.clone());
        if let Some(outcome) = reused {
            return outcome;
        }
        let outcome = self.probe().await;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), outcome.clone()));
        outcome
    }

    async fn probe(&self) -> std::result::Result<(), String> {
        let mut request = self.client.get(&self.models_url);
        if !self.api_key.is_empty() {
            request = request.bearer_auth(&self.api_key);
        }
        let (what, server) = (self.what, &self.models_url);
        match request.send().await {
            Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND => {
                Ok(())
            }
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Err(format!(
                "{what} ({server}) refuses {}: {}",
                self.key_setting,
                r.status()
            )),
            Ok(r) => Err(format!("{what} ({server}) answers {}", r.status())),
            Err(e) if e.is_timeout() => Err(format!(
                "{what} ({server}) did not answer within {} s",
                CHECK_TIMEOUT.as_secs()
            )),
            Err(e) => Err(format!("{what} ({server}) cannot be reached: {e}")),
        }
    }
}
