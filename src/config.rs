//! The one configuration: `config.toml` compiled in as defaults, an optional `--config`
//! file over it, then `ZHIKU_*` environment variables (`__` nests: `ZHIKU_INGEST__WORKERS`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::retrieval::fusion::ScoreScale;

const DEFAULTS: &str = include_str!("../config.toml");

/// Everything zhiku can be told; see `config.toml` for what each key means.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address.
    pub bind: String,
    /// Data directory (SQLite, files, indexes).
    pub data_dir: PathBuf,
    /// Models directory.
    pub models_dir: PathBuf,
    /// Admin bearer token; empty = generate and store on first start.
    pub admin_token: String,
    /// Text the key that encrypts stored secrets (tool API keys) is made from; empty =
    /// generate and store `<data_dir>/secret_key` on first use (SQLite only).
    pub secret_key: String,
    /// Serve the UI from this folder instead of the copy in the binary (UI work).
    pub web_dir: PathBuf,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Embedding model settings.
    pub embedding: EmbeddingConfig,
    /// Ingestion settings.
    pub ingest: IngestConfig,
    /// Search settings.
    pub search: SearchConfig,
    /// Chat model settings.
    pub llm: LlmConfig,
    /// Database settings.
    pub database: DatabaseConfig,
    /// Bot tools.
    pub tools: ToolsConfig,
}

/// `[tools]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// Time limit of one HTTP tool call.
    pub timeout_ms: u64,
    /// Largest HTTP response read.
    pub max_response_bytes: u64,
    /// Most characters of a result given to the model.
    pub max_result_chars: usize,
    /// Most tool calls in one answer.
    pub max_calls_per_answer: usize,
    /// Most model rounds with tools in one answer.
    pub max_rounds: usize,
    /// Let HTTP tools reach loopback, link-local and private addresses.
    pub allow_private: bool,
    /// Most rows of a table query's result given to the model.
    pub table_max_rows: usize,
    /// Time limit of one table query.
    pub table_query_timeout_ms: u64,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://<path>` or `postgres://user:password@host:port/db`; empty: the SQLite file
    /// `<data_dir>/zhiku.db`.
    pub url: String,
    /// Let several nodes write to one PostgreSQL database, each with index replicas that
    /// follow the others' writes (off: a second one refuses to start).
    pub several_nodes: bool,
    /// With several nodes: how often each node compares its indexes with the chunk log,
    /// catching up what a lost notification left behind.
    pub replica_poll_ms: u64,
    /// Where uploaded files and fetched pages are kept.
    pub files: FilesBacking,
}

/// `database.files`: where uploaded files and fetched web pages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilesBacking {
    /// In the database on PostgreSQL, in the data directory on SQLite.
    Auto,
    /// In the database (PostgreSQL only): every node reads every file.
    Database,
    /// In `<data_dir>/files`; with several nodes, one directory they all mount.
    Directory,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Browser origins allowed by CORS (empty: CORS off).
    pub cors_allowed_origins: Vec<String>,
    /// Requests per minute per bot API key (0: unlimited).
    pub key_requests_per_minute: u32,
    /// Largest JSON request body.
    pub max_json_body_bytes: usize,
    /// A bearer token that opens `GET /metrics` and nothing else (empty: only the admin
    /// token opens it), so a Prometheus server need not hold the admin token.
    pub metrics_token: String,
}

/// `[embedding]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// The model here (local) or on an embedding server (remote).
    pub backend: EmbeddingBackendKind,
    /// Model folder name under `models_dir`, or a path; with a remote backend the id the
    /// server knows the model by (its folder, if any, gives the tokenizer).
    pub model: String,
    /// ONNX Runtime library path; empty = the one `./scripts/run` fetches.
    pub ort_library: String,
    /// Threads per ONNX session (0 = all cores).
    pub threads: usize,
    /// Most passages per ONNX run while ingesting.
    pub batch_size: usize,
    /// Most padded tokens (passages × the longest) per ONNX run while ingesting.
    pub batch_tokens: usize,
    /// Release the passage model after this many seconds without a passage (0: never).
    pub passage_idle_release_s: u64,
    /// Remote: the server's base URL, ending in `/v1`.
    pub url: String,
    /// Remote: bearer token (empty: none).
    pub api_key: String,
    /// Remote: time limit of one request.
    pub timeout_ms: u64,
    /// Remote: further tries after a connection error, a timeout, 429 or 5xx.
    pub retries: u32,
    /// Remote: wait before the first retry, doubled for each next one.
    pub retry_backoff_ms: u64,
    /// Remote: how the model's query and passage prefixes reach the server.
    pub prefixes: RemotePrefixes,
}

/// `embedding.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingBackendKind {
    /// The ONNX model in this process.
    Local,
    /// An OpenAI-compatible `/v1/embeddings` server.
    Remote,
}

/// `embedding.prefixes`: how e5's "query: " and "passage: " reach a remote server, so that
/// it embeds what the local backend would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemotePrefixes {
    /// Put before each text here (text-embeddings-inference, vLLM, Ollama, infinity).
    Text,
    /// Send texts bare with `input_type` = `query` or `passage`; the server adds them
    /// (another zhiku).
    InputType,
}

/// `[ingest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Concurrent jobs.
    pub workers: usize,
    /// Upload size cap.
    pub max_upload_bytes: u64,
    /// Extraction time limit.
    pub extract_timeout_ms: u64,
    /// Cleaning + splitting time limit.
    pub split_timeout_ms: u64,
    /// Passages embedded between two looks at the queue (small jobs, shutdown).
    pub embed_slice_passages: usize,
    /// Most cells a document's sheets may hold together to be loaded as typed tables
    /// for the `table_query` tool.
    pub max_table_cells: usize,
    /// Zip container cap on uncompressed bytes.
    pub max_uncompressed_bytes: u64,
    /// Zip container cap on entries.
    pub max_archive_entries: usize,
    /// Crash-interrupted attempts before a job fails.
    pub max_attempts: i64,
    /// Most small documents one worker takes at once (1: one at a time).
    pub batch_max_jobs: usize,
    /// Most bytes of documents in one batch; a larger document runs alone.
    pub batch_max_bytes: u64,
    /// Largest web page (or file behind a URL) the server fetches, in bytes.
    pub max_fetch_bytes: u64,
    /// Time limit for fetching one URL, redirects included.
    pub fetch_timeout_ms: u64,
    /// Let URLs reach loopback, link-local and private addresses (tests, intranets).
    pub url_allow_private: bool,
    /// How long a minute of a KB's `web_sync_interval_minutes` lasts, in milliseconds, and
    /// how often the schedule looks for due pages (60000; the tests shorten it).
    pub web_sync_minute_ms: u64,
    /// How long a node's claim on a job holds without renewal; when it runs out (the node
    /// stopped) any node puts the job back in the queue.
    pub job_lease_ms: u64,
    /// How often a node renews the leases of the jobs it holds (and looks for run-out
    /// leases of others); at most half of `job_lease_ms`.
    pub job_heartbeat_ms: u64,
}

/// `[search]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Default number of results.
    pub top_k: usize,
    /// Candidates per retriever.
    pub candidates: usize,
    /// How hybrid mode fuses the two rankings.
    pub fusion: FusionMethod,
    /// How weighted fusion scales BM25 and cosine before mixing them.
    pub score_scale: ScoreScale,
    /// Weight of the semantic side in weighted fusion, 0..=1 (its best value depends on
    /// `score_scale`).
    pub semantic_weight: f32,
    /// RRF constant.
    pub rrf_k: f32,
    /// HNSW ef at query time.
    pub hnsw_ef_search: usize,
    /// HNSW max connections per node.
    pub hnsw_max_connections: usize,
    /// HNSW ef at build time.
    pub hnsw_ef_construction: usize,
    /// Save the vector index after this many new points.
    pub hnsw_save_every_points: usize,
}

/// `search.fusion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FusionMethod {
    /// Scores scaled by `score_scale` and mixed by `semantic_weight`.
    Weighted,
    /// Reciprocal rank fusion with `rrf_k`.
    Rrf,
}

impl SearchConfig {
    /// The fusion hybrid search uses when a request names none.
    pub fn fusion(&self) -> crate::retrieval::fusion::Fusion {
        use crate::retrieval::fusion::Fusion;
        match self.fusion {
            FusionMethod::Weighted => Fusion::Weighted {
                semantic_weight: self.semantic_weight,
                scale: self.score_scale,
            },
            FusionMethod::Rrf => Fusion::Rrf { k: self.rrf_k },
        }
    }
}

/// Which LLM backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmBackendKind {
    /// llama.cpp in this process.
    Local,
    /// An OpenAI-compatible server.
    Remote,
}

/// `[llm]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Local or remote.
    pub backend: LlmBackendKind,
    /// GGUF name under `<models_dir>/llm` or a path.
    pub model: String,
    /// Tokens per conversation slot.
    pub context_tokens: u32,
    /// Conversation slots decoded together.
    pub parallel: u32,
    /// Requests allowed to wait for a slot.
    pub max_queue: usize,
    /// Longest wait for a slot before a request ends "busy", and the estimated wait past
    /// which a new request is refused at once (0: no limit).
    pub max_queue_wait_s: u64,
    /// llama.cpp threads (0 = all cores).
    pub threads: usize,
    /// Tokens per decode call.
    pub batch_tokens: u32,
    /// Layers offloaded to a GPU.
    pub gpu_layers: u32,
    /// Remote base URL (…/v1).
    pub remote_url: String,
    /// Remote API key.
    pub remote_api_key: String,
    /// Remote model name.
    pub remote_model: String,
    /// Remote idle timeout.
    pub remote_timeout_ms: u64,
    /// A bot's default `no_recall.min_answerable`: how sure this model must be that the
    /// passages hold the answer before it answers (0: no check).
    pub min_answerable: f32,
}

/// The most candidates per retriever a search may ask for.
const MAX_CANDIDATES: usize = 1_000;

impl Config {
    /// Defaults < `file` < environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(Error::Config(format!(
                    "config file {} not found",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        // ZHIKU_LOG is the log filter (read in main), not a config key.
        Self::from_figment(figment.merge(Env::prefixed("ZHIKU_").ignore(&["log"]).split("__")))
    }

    fn from_figment(figment: Figment) -> Result<Self> {
        let config: Config = figment
            .extract()
            .map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.bind
            .parse::<SocketAddr>()
            .map_err(|e| Error::Config(format!("bind = {:?} is not host:port ({e})", self.bind)))?;
        if self.ingest.workers == 0 {
            return Err(Error::Config("ingest.workers must be at least 1".into()));
        }
        if self.embedding.batch_size == 0 || self.embedding.batch_tokens == 0 {
            return Err(Error::Config(
                "embedding.batch_size and embedding.batch_tokens must be at least 1".into(),
            ));
        }
        if self.ingest.batch_max_jobs == 0 {
            return Err(Error::Config(
                "ingest.batch_max_jobs must be at least 1 (1 turns batching off)".into(),
            ));
        }
        if self.ingest.max_fetch_bytes == 0
            || self.ingest.fetch_timeout_ms == 0
            || self.ingest.web_sync_minute_ms == 0
        {
            return Err(Error::Config(
                "ingest.max_fetch_bytes, ingest.fetch_timeout_ms and ingest.web_sync_minute_ms must be at least 1".into(),
            ));
        }
        if self.ingest.job_heartbeat_ms == 0
            || self.ingest.job_heartbeat_ms.saturating_mul(2) > self.ingest.job_lease_ms
        {
            return Err(Error::Config(format!(
                "ingest.job_heartbeat_ms = {} must be at least 1 and at most half of ingest.job_lease_ms = {}, so that a live node renews its leases before they run out",
                self.ingest.job_heartbeat_ms, self.ingest.job_lease_ms
            )));
        }
        if self.search.top_k == 0 || self.search.candidates == 0 {
            return Err(Error::Config(
                "search.top_k and search.candidates must be at least 1".into(),
            ));
        }
        // Each search checks its candidates in one SQL statement (2 × candidates vector
        // hits), and SQLite takes at most 32,766 parameters in one.
        if self.search.candidates > MAX_CANDIDATES {
            return Err(Error::Config(format!(
                "search.candidates = {} is more than {MAX_CANDIDATES}; fusion gains nothing past a few hundred",
                self.search.candidates
            )));
        }
        self.search
            .fusion()
            .validate()
            .map_err(|e| Error::Config(format!("search: {e}")))?;
        for origin in &self.http.cors_allowed_origins {
            if axum::http::HeaderValue::from_str(origin).is_err() || !origin.contains("://") {
                return Err(Error::Config(format!(
                    "http.cors_allowed_origins: {origin:?} is not an origin like https://intranet.example.com"
                )));
            }
        }
        let url = &self.database.url;
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(Error::Config(format!(
                "database.url = {:?} is neither sqlite://<path> nor postgres://user@host/db (empty: the SQLite file in data_dir)",
                crate::store::redact_url(url)
            )));
        }
        if self.database.files == FilesBacking::Database && !self.uses_postgres() {
            return Err(Error::Config(
                "database.files = \"database\" needs PostgreSQL (database.url = \"postgres://…\"); on SQLite files live in <data_dir>/files".into(),
            ));
        }
        let llm = &self.llm;
        if llm.parallel == 0 || llm.context_tokens < 256 || llm.batch_tokens == 0 {
            return Err(Error::Config(
                "llm.parallel and llm.batch_tokens must be at least 1 and llm.context_tokens at least 256".into(),
            ));
        }
        let tools = &self.tools;
        if tools.timeout_ms == 0
            || tools.max_result_chars == 0
            || tools.max_calls_per_answer == 0
            || tools.max_rounds == 0
        {
            return Err(Error::Config(
                "tools.timeout_ms, tools.max_result_chars, tools.max_calls_per_answer and tools.max_rounds must be at least 1".into(),
            ));
        }
        if !(0.0..=1.0).contains(&llm.min_answerable) {
            return Err(Error::Config(
                "llm.min_answerable must be between 0 and 1 (0: no check)".into(),
            ));
        }
        let embedding = &self.embedding;
        if embedding.backend == EmbeddingBackendKind::Remote
            && (embedding.url.is_empty() || embedding.model.is_empty())
        {
            return Err(Error::Config(
                "embedding.backend = \"remote\" needs embedding.url (e.g. http://10.0.0.5:8080/v1) and embedding.model (the id the server knows it by)"
                    .into(),
            ));
        }
        if embedding.backend == EmbeddingBackendKind::Remote && embedding.timeout_ms == 0 {
            return Err(Error::Config(
                "embedding.timeout_ms must be at least 1".into(),
            ));
        }
        if llm.backend == LlmBackendKind::Remote && llm.remote_url.is_empty() {
            return Err(Error::Config(
                "llm.backend = \"remote\" needs llm.remote_url (e.g. http://127.0.0.1:8000/v1)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The GGUF file of the local chat model.
    pub fn llm_model_path(&self) -> PathBuf {
        let model = Path::new(&self.llm.model);
        if model.is_absolute() || model.components().count() > 1 {
            return model.to_path_buf();
        }
        let file = if self.llm.model.ends_with(".gguf") {
            self.llm.model.clone()
        } else {
            format!("{}.gguf", self.llm.model)
        };
        self.models_dir.join("llm").join(file)
    }

    /// llama.cpp threads: the configured count, or every core.
    pub fn llm_threads(&self) -> usize {
        if self.llm.threads > 0 {
            self.llm.threads
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }

    /// The embedding model folder.
    pub fn embedding_model_dir(&self) -> PathBuf {
        let model = Path::new(&self.embedding.model);
        if model.is_absolute() || model.components().count() > 1 {
            model.to_path_buf()
        } else {
            self.models_dir.join(model)
        }
    }

    /// What `embedding.backend = "remote"` talks to; `None` for the local backend.
    pub fn remote_embedding(&self) -> Option<ingest::embed::RemoteConfig> {
        let e = &self.embedding;
        (e.backend == EmbeddingBackendKind::Remote).then(|| ingest::embed::RemoteConfig {
            url: e.url.clone(),
            model: e.model.clone(),
            api_key: e.api_key.clone(),
            timeout_ms: e.timeout_ms,
            retries: e.retries,
            retry_backoff_ms: e.retry_backoff_ms,
            input_type: e.prefixes == RemotePrefixes::InputType,
        })
    }

    /// The ONNX Runtime library file.
    pub fn ort_library(&self) -> PathBuf {
        if self.embedding.ort_library.is_empty() {
            self.models_dir
                .join("onnxruntime")
                .join("libonnxruntime.so.1.31.1")
        } else {
            PathBuf::from(&self.embedding.ort_library)
        }
    }

    /// The SQLite database file (of the default `[database] url`).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("zhiku.db")
    }

    /// The database to open: `[database] url`, or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.database_path().display())
        } else {
            self.database.url.clone()
        }
    }

    /// How this node's claims on jobs hold: `ingest.job_lease_ms`, for `node`.
    pub fn job_lease(&self, node: &str) -> ingest::jobs::Lease {
        ingest::jobs::Lease::new(node, Duration::from_millis(self.ingest.job_lease_ms))
    }

    /// How often this node renews its job leases (`ingest.job_heartbeat_ms`).
    pub fn job_heartbeat(&self) -> Duration {
        Duration::from_millis(self.ingest.job_heartbeat_ms)
    }

    /// How often index replicas poll the chunk log (`database.replica_poll_ms`).
    pub fn replica_poll(&self) -> Duration {
        Duration::from_millis(self.database.replica_poll_ms.max(1))
    }

    /// Whether this node follows other nodes' writes: several nodes on PostgreSQL.
    pub fn follows_other_nodes(&self) -> bool {
        self.database.several_nodes && self.uses_postgres()
    }

    /// Whether uploaded files and fetched pages live in the database (`database.files`:
    /// `database`, or `auto` on PostgreSQL) rather than in `<data_dir>/files`.
    pub fn files_in_database(&self) -> bool {
        match self.database.files {
            FilesBacking::Database => true,
            FilesBacking::Directory => false,
            FilesBacking::Auto => self.uses_postgres(),
        }
    }

    /// Whether the database is PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        self.database.url.starts_with("postgres")
    }
}

#[cfg(test)]
#[allow(
    clippy::result_large_err,
    reason = "figment's Jail closure returns figment::Error"
)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses() {
        let c = Config::from_figment(Figment::from(Toml::string(DEFAULTS))).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert_eq!(c.search.rrf_k, 60.0);
        assert_eq!(c.search.fusion, FusionMethod::Weighted);
        assert_eq!(c.search.score_scale, ScoreScale::Bounded);
        assert_eq!(
            c.embedding_model_dir(),
            PathBuf::from("models/multilingual-e5-small")
        );
    }

    #[test]
    fn environment_overrides_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ZHIKU_BIND", "127.0.0.1:9999");
            jail.set_env("ZHIKU_INGEST__WORKERS", "4");
            jail.set_env("ZHIKU_ADMIN_TOKEN", "secret");
            jail.set_env("ZHIKU_LOG", "debug");
            jail.set_env("ZHIKU_INGEST__URL_ALLOW_PRIVATE", "true");
            jail.set_env(
                "ZHIKU_DATABASE__URL",
                "postgres://zhiku@db.example:5432/zhiku",
            );
            let c = Config::load(None).unwrap();
            assert_eq!(c.database_url(), "postgres://zhiku@db.example:5432/zhiku");
            assert!(c.uses_postgres());
            assert!(c.ingest.url_allow_private);
            assert_eq!(c.bind, "127.0.0.1:9999");
            assert_eq!(c.ingest.workers, 4);
            assert_eq!(c.admin_token, "secret");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_reported() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ZHIKU_BIND", "nowhere");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("not host:port"), "{err}");
            jail.set_env("ZHIKU_BIND", "127.0.0.1:8080");
            jail.set_env("ZHIKU_SEARCH__CANDIDATES", "20000");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("more than 1000"), "{err}");
            jail.set_env("ZHIKU_SEARCH__CANDIDATES", "100");
            jail.set_env("ZHIKU_DATABASE__URL", "mysql://root:hunter2@db/zhiku");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("neither sqlite://"), "{err}");
            assert!(!err.contains("hunter2"), "the password is not shown: {err}");
            Ok(())
        });
    }

    #[test]
    fn files_live_in_the_database_on_postgres_unless_told_otherwise() {
        figment::Jail::expect_with(|jail| {
            assert!(!Config::load(None).unwrap().files_in_database());
            jail.set_env("ZHIKU_DATABASE__FILES", "database");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("needs PostgreSQL"), "{err}");
            jail.set_env("ZHIKU_DATABASE__URL", "postgres://zhiku@db/zhiku");
            assert!(Config::load(None).unwrap().files_in_database());
            jail.set_env("ZHIKU_DATABASE__FILES", "auto");
            assert!(Config::load(None).unwrap().files_in_database());
            jail.set_env("ZHIKU_DATABASE__FILES", "directory");
            assert!(!Config::load(None).unwrap().files_in_database());
            Ok(())
        });
    }

    #[test]
    fn a_remote_embedding_backend_needs_a_url_and_takes_its_key_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.embedding.backend, EmbeddingBackendKind::Local);
            assert!(c.remote_embedding().is_none());
            jail.set_env("ZHIKU_EMBEDDING__BACKEND", "remote");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("needs embedding.url"), "{err}");
            jail.set_env("ZHIKU_EMBEDDING__URL", "http://10.0.0.5:8080/v1");
            jail.set_env("ZHIKU_EMBEDDING__API_KEY", "sk-fleet");
            jail.set_env("ZHIKU_EMBEDDING__PREFIXES", "input_type");
            let remote = Config::load(None).unwrap().remote_embedding().unwrap();
            assert_eq!(remote.url, "http://10.0.0.5:8080/v1");
            assert_eq!(remote.model, "multilingual-e5-small");
            assert_eq!(remote.api_key, "sk-fleet");
            assert!(remote.input_type);
            assert_eq!((remote.retries, remote.timeout_ms), (3, 30_000));
            jail.set_env("ZHIKU_EMBEDDING__PREFIXES", "both");
            assert!(Config::load(None).is_err());
            Ok(())
        });
    }
}
