//! The `remote` embedding backend: any OpenAI-compatible `POST {url}/embeddings`
//! (text-embeddings-inference, vLLM, Ollama, infinity, or another zhiku).
//!
//! The embedder is called on blocking threads (the local backend's ONNX runs there too), so
//! the client is reqwest's blocking one. Connection errors, timeouts, 429 and 5xx are tried
//! again after a growing wait; any other 4xx is the request's or the key's fault and fails
//! at once, since asking again would get the same answer.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Error, Result};

/// Where the embedding server is and how to talk to it (`[embedding]` with
/// `backend = "remote"`).
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL ending in `/v1` (as `llm.remote_url`): texts go to `{url}/embeddings`.
    pub url: String,
    /// The server's model id, sent as `model` and recorded in each knowledge base.
    pub model: String,
    /// Bearer token; empty sends none.
    pub api_key: String,
    /// Time limit of one request (connecting, sending, reading the answer).
    pub timeout_ms: u64,
    /// Further tries of a request after a connection error, a timeout, 429 or 5xx.
    pub retries: u32,
    /// Wait before the first retry, doubled for each next one (a 429's or 503's
    /// `Retry-After` wins when it is given).
    pub retry_backoff_ms: u64,
    /// Send texts without the model's prefixes and say what they are in `input_type`
    /// (another zhiku adds its model's own prefixes then); `false`: prefixed texts, which
    /// every OpenAI-compatible server embeds as they are.
    pub input_type: bool,
}

/// Whether texts are questions or passages (e5's prefixes differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A search question.
    Query,
    /// A chunk of a document.
    Passage,
}

/// The longest wait before a retry, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an error answer's body goes into the message.
const ERROR_BODY_CHARS: usize = 300;

/// A client of one embedding server.
pub(crate) struct RemoteModel {
    client: reqwest::blocking::Client,
    endpoint: String,
    config: RemoteConfig,
}

/// One failed request: what to tell, whether asking again may help, and when.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    message: String,
    transient: bool,
    retry_after: Option<Duration>,
}

impl RemoteModel {
    /// A client for `config.url`; nothing is sent yet.
    pub(crate) fn new(config: RemoteConfig) -> Result<Self> {
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::Model(format!("embedding.url = {:?}: {e}", config.url)))?;
        Ok(Self {
            client,
            endpoint: endpoint(&config.url),
            config,
        })
    }

    /// Where texts are sent (`{url}/embeddings`).
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether texts go bare with `input_type` rather than prefixed.
    pub(crate) fn sends_input_type(&self) -> bool {
        self.config.input_type
    }

    /// One vector per text, in order; retried as the module says.
    pub(crate) fn embed(&self, texts: &[&str], kind: Kind) -> Result<Vec<Vec<f32>>> {
        let body = request_body(&self.config.model, texts, kind, self.config.input_type);
        let mut retried = 0;
        loop {
            let failure = match self.send(&body, texts.len()) {
                Ok(vectors) => return Ok(vectors),
                Err(failure) => failure,
            };
            if !failure.transient || retried >= self.config.retries {
                let tries = match retried {
                    0 => String::new(),
                    n => format!(" (tried {} times)", n + 1),
                };
                return Err(Error::EmbeddingServer {
                    message: format!("{}{tries}", failure.message),
                    transient: failure.transient,
                });
            }
            let wait = backoff(self.config.retry_backoff_ms, retried, failure.retry_after);
            tracing::warn!(
                error = %failure.message,
                retry_in_ms = wait.as_millis() as u64,
                "embedding request failed; trying again"
            );
            std::thread::sleep(wait);
            retried += 1;
        }
    }

    fn send(&self, body: &Value, expected: usize) -> Result<Vec<Vec<f32>>, Failure> {
        let mut request = self.client.post(&self.endpoint).json(body);
        if !self.config.api_key.is_empty() {
            request = request.bearer_auth(&self.config.api_key);
        }
        let endpoint = &self.endpoint;
        let response = request.send().map_err(|e| Failure {
            message: format!(
                "the embedding server {endpoint} cannot be reached: {}",
                with_sources(&e)
            ),
            // No answer, a reset connection, a timeout: the server may be restarting.
            transient: true,
            retry_after: None,
        })?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().unwrap_or_default();
            return Err(status_failure(
                endpoint,
                status.as_u16(),
                &text,
                retry_after,
            ));
        }
        let bytes = response.bytes().map_err(|e| Failure {
            message: format!(
                "the embedding server {endpoint} broke off its answer: {}",
                with_sources(&e)
            ),
            transient: true,
            retry_after: None,
        })?;
        parse_response(&bytes, expected).map_err(|why| Failure {
            message: format!("the embedding server {endpoint} sent no usable embeddings: {why}"),
            transient: false,
            retry_after: None,
        })
    }
}

/// `{url}/embeddings`, whether or not `url` ends in a slash.
fn endpoint(url: &str) -> String {
    format!("{}/embeddings", url.trim_end_matches('/'))
}

/// The OpenAI request: floats asked for explicitly (the official clients default to
/// base64), `input_type` only when the server is to add the prefixes.
fn request_body(model: &str, texts: &[&str], kind: Kind, input_type: bool) -> Value {
    let mut body = json!({"model": model, "input": texts, "encoding_format": "float"});
    if input_type {
        body["input_type"] = json!(match kind {
            Kind::Query => "query",
            Kind::Passage => "passage",
        });
    }
    body
}

/// Whether a status is worth asking again: too many requests, or the server's own trouble.
fn is_transient_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

fn status_failure(
    endpoint: &str,
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> Failure {
    let hint = match status {
        401 | 403 => "; check embedding.api_key (ZHIKU_EMBEDDING__API_KEY)",
        404 => "; check embedding.url (the server's base URL, ending in /v1) and embedding.model",
        _ => "",
    };
    let said: String = body.trim().chars().take(ERROR_BODY_CHARS).collect();
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    Failure {
        message: format!(
            "the embedding server {endpoint} answered {status} {reason}{}{said}{hint}",
            if said.is_empty() { "" } else { ": " }
        ),
        transient: is_transient_status(status),
        retry_after,
    }
}

/// The wait before retry number `retried + 1`: `Retry-After` when given, otherwise the
/// base doubled per retry; at most [`MAX_BACKOFF`].
fn backoff(base_ms: u64, retried: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| Duration::from_millis(base_ms.saturating_mul(1 << retried.min(16))))
        .min(MAX_BACKOFF)
}

#[derive(Deserialize)]
struct EmbeddingList {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    /// The input's position; servers that omit it answer in order.
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// The vectors of an OpenAI embeddings answer, in the inputs' order: `expected` of them,
/// all of one non-zero length.
fn parse_response(bytes: &[u8], expected: usize) -> std::result::Result<Vec<Vec<f32>>, String> {
    let list: EmbeddingList =
        serde_json::from_slice(bytes).map_err(|e| format!("not an embeddings list ({e})"))?;
    if list.data.len() != expected {
        return Err(format!("{} vectors for {expected} texts", list.data.len()));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in list.data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        match vectors.get_mut(index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            Some(Some(_)) => return Err(format!("index {index} given twice")),
            None => return Err(format!("index {index} for {expected} texts")),
        }
    }
    let vectors: Vec<Vec<f32>> = vectors.into_iter().flatten().collect();
    let dims = vectors.first().map_or(0, Vec::len);
    if dims == 0 || vectors.iter().any(|v| v.len() != dims) {
        return Err("vectors of no or unequal lengths".into());
    }
    Ok(vectors)
}

/// An error with what caused it ("error sending request …: connection refused"): reqwest's
/// own message leaves the cause out.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_model_the_texts_and_floats() {
        let body = request_body("e5", &["a", "b"], Kind::Passage, false);
        assert_eq!(
            body,
            json!({"model": "e5", "input": ["a", "b"], "encoding_format": "float"})
        );
        let body = request_body("e5", &["q"], Kind::Query, true);
        assert_eq!(body["input_type"], "query");
        let body = request_body("e5", &["p"], Kind::Passage, true);
        assert_eq!(body["input_type"], "passage");
    }

    #[test]
    fn the_endpoint_is_under_the_base_url() {
        assert_eq!(endpoint("http://h:1/v1"), "http://h:1/v1/embeddings");
        assert_eq!(endpoint("http://h:1/v1/"), "http://h:1/v1/embeddings");
    }

    #[test]
    fn vectors_come_back_in_the_inputs_order() {
        let answer = br#"{"object":"list","model":"e5","data":[
            {"object":"embedding","index":1,"embedding":[0.0,1.0]},
            {"object":"embedding","index":0,"embedding":[1.0,0.0]}],
            "usage":{"prompt_tokens":3,"total_tokens":3}}"#;
        assert_eq!(
            parse_response(answer, 2).unwrap(),
            vec![vec![1.0, 0.0], vec![0.0, 1.0]]
        );
        // Without indexes, in the order given (Ollama's older answers).
        let answer = br#"{"data":[{"embedding":[1,2]},{"embedding":[3,4]}]}"#;
        assert_eq!(
            parse_response(answer, 2).unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
    }

    #[test]
    fn answers_that_do_not_fit_the_request_are_refused() {
        let one = br#"{"data":[{"index":0,"embedding":[1.0]}]}"#;
        assert!(
            parse_response(one, 2)
                .unwrap_err()
                .contains("1 vectors for 2")
        );
        let twice = br#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[1.0]}]}"#;
        assert!(parse_response(twice, 2).unwrap_err().contains("twice"));
        let beyond = br#"{"data":[{"index":5,"embedding":[1.0]}]}"#;
        assert!(parse_response(beyond, 1).unwrap_err().contains("index 5"));
        let ragged = br#"{"data":[{"embedding":[1.0]},{"embedding":[1.0,2.0]}]}"#;
        assert!(parse_response(ragged, 2).unwrap_err().contains("unequal"));
        let base64 = br#"{"data":[{"index":0,"embedding":"AACAPw=="}]}"#;
        assert!(
            parse_response(base64, 1)
                .unwrap_err()
                .contains("not an embeddings list")
        );
        assert!(parse_response(b"<html>", 1).is_err());
    }

    #[test]
    fn only_429_and_server_errors_are_tried_again() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert!(!is_transient_status(status), "{status}");
        }
    }

    #[test]
    fn a_refused_key_names_the_url_the_status_and_the_setting() {
        let f = status_failure(
            "http://h/v1/embeddings",
            401,
            r#"{"error":"bad key"}"#,
            None,
        );
        assert!(!f.transient);
        assert!(
            f.message
                .contains("http://h/v1/embeddings answered 401 Unauthorized"),
            "{}",
            f.message
        );
        assert!(f.message.contains("bad key") && f.message.contains("embedding.api_key"));
        let f = status_failure(
            "http://h/v1/embeddings",
            503,
            "",
            Some(Duration::from_secs(2)),
        );
        assert!(f.transient);
        assert_eq!(f.retry_after, Some(Duration::from_secs(2)));
        assert!(
            f.message.ends_with("503 Service Unavailable"),
            "{}",
            f.message
        );
    }

    #[test]
    fn the_wait_doubles_and_retry_after_wins_within_a_cap() {
        assert_eq!(backoff(200, 0, None), Duration::from_millis(200));
        assert_eq!(backoff(200, 2, None), Duration::from_millis(800));
        assert_eq!(backoff(200, 40, None), MAX_BACKOFF);
        assert_eq!(
            backoff(200, 0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(backoff(200, 0, Some(Duration::from_secs(600))), MAX_BACKOFF);
    }

    /// A port nobody listens on: every try fails to connect, is retried, and the error
    /// says where and how often; it is transient, so the job queue runs the job again.
    #[test]
    fn an_unreachable_server_is_a_transient_error_that_names_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let model = RemoteModel::new(RemoteConfig {
            url: format!("http://127.0.0.1:{port}/v1"),
            model: "e5".into(),
            api_key: String::new(),
            timeout_ms: 2_000,
            retries: 2,
            retry_backoff_ms: 1,
            input_type: false,
        })
        .unwrap();
        let e = model.embed(&["text"], Kind::Passage).unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert_eq!(e.code(), "embedding_server");
        let message = e.to_string();
        assert!(
            message.contains(&format!(
                "http://127.0.0.1:{port}/v1/embeddings cannot be reached"
            )),
            "{message}"
        );
        assert!(message.contains("tried 3 times"), "{message}");
    }
}
