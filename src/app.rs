//! `AppState`: the services built once from [`Config`], shared by the server and the CLI.

use std::path::Path;
use std::sync::Arc;

use ingest::embed::{Embedder, EmbedderConfig};
use ingest::extract::ExtractLimits;
use ingest::jobs::{BatchLimits, JobQueue};
use ingest::pipeline::Pipeline;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::llm::metered::{LlmUsage, Metered};
use crate::llm::server_check::ServerCheck;
use crate::llm::{LlmBackend, Unavailable};
use crate::services::bots::BotService;
use crate::services::chat::ChatService;
use crate::services::embeddings::EmbeddingService;
use crate::services::files::FileStore;
use crate::services::health::HealthService;
use crate::services::indexing::IndexRegistry;
use crate::services::jobs::JobService;
use crate::services::key_rate::KeyRateLimit;
use crate::services::knowledge::KnowledgeService;
use crate::services::metrics::{HttpMetrics, MetricsService};
use crate::services::replicas::ReplicaLag;
use crate::services::search::SearchService;
use crate::services::secrets::SecretBox;
use crate::services::tools::ToolService;
pub use crate::services::workers::Workers;
use crate::store::Store;

/// Everything a request or a command needs.
#[derive(Clone)]
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// The BM25 and vector indexes of every KB.
    pub indexes: Arc<IndexRegistry>,
    /// KBs, documents, chunks.
    pub knowledge: Arc<KnowledgeService>,
    /// Hit testing.
    pub search: Arc<SearchService>,
    /// The embedding model for `/v1/embeddings`.
    pub embeddings: Arc<EmbeddingService>,
    /// Bots, their versions, keys and conversations.
    pub bots: Arc<BotService>,
    /// Answers (rebuilt by [`AppState::load_llm`] with the model loaded).
    pub chat: Arc<ChatService>,
    /// The ingestion queue as the API and the CLI see it.
    pub jobs: Arc<JobService>,
    /// The admin token in force.
    pub admin_token: Arc<str>,
    /// Requests per minute per bot API key, on this node or across nodes.
    pub key_limits: Arc<KeyRateLimit>,
    /// The chat model (loaded by `zhiku serve` with [`AppState::load_llm`]).
    pub llm: Arc<dyn LlmBackend>,
    /// Whether this node can work (`/health`; rebuilt by [`AppState::load_llm`]).
    pub health: Arc<HealthService>,
    /// What this node has done and is doing (`/metrics`; rebuilt by
    /// [`AppState::load_llm`]).
    pub metrics: Arc<MetricsService>,
}

/// Load the embedding model the config names.
pub fn load_embedder(config: &Config) -> Result<Embedder> {
    Embedder::load(&EmbedderConfig {
        model_dir: config.embedding_model_dir(),
        ort_library: config.ort_library(),
        threads: config.embedding.threads,
        batch_size: config.embedding.batch_size,
        batch_tokens: config.embedding.batch_tokens,
        passage_idle_release_s: config.embedding.passage_idle_release_s,
        remote: config.remote_embedding(),
    })
    .map_err(|e| Error::ModelUnavailable(e.to_string()))
}

impl AppState {
    /// Open the database, load the model and build the services. `read_only` when another
    /// process (the server) owns the indexes.
    pub async fn build(config: Config, admin_token: String, read_only: bool) -> Result<Self> {
        let mut store = Store::connect(&config.database_url()).await?;
        if !read_only && !config.database.several_nodes {
            store.lock_single_writer().await?;
        }
        let embedder = Arc::new(
            tokio::task::spawn_blocking({
                let c = config.clone();
                move || load_embedder(&c)
            })
            .await??,
        );
        // A reader beside a running node must not write the data dir; it claims no jobs.
        let node = node_id(&config, !read_only)?;
        let queue = JobQueue::new(
            store.pool.clone(),
            config.ingest.max_attempts,
            config.job_lease(&node),
        );
        let indexes = Arc::new(IndexRegistry::new(
            store.clone(),
            config.data_dir.clone(),
            &config.search,
            read_only,
        ));
        let pipeline = Pipeline {
            embedder: embedder.clone(),
            limits: ExtractLimits {
                timeout_ms: config.ingest.extract_timeout_ms,
                max_uncompressed_bytes: config.ingest.max_uncompressed_bytes,
                max_archive_entries: config.ingest.max_archive_entries,
                ocr: Default::default(),
            },
            batch: BatchLimits {
                max_jobs: config.ingest.batch_max_jobs,
                max_bytes: config.ingest.batch_max_bytes,
            },
            split_timeout: std::time::Duration::from_millis(config.ingest.split_timeout_ms),
            slice_passages: config.ingest.embed_slice_passages,
            max_table_cells: config.ingest.max_table_cells,
        };
        let knowledge = Arc::new(KnowledgeService {
            store: store.clone(),
            indexes: indexes.clone(),
            queue: queue.clone(),
            pipeline: pipeline.clone(),
            files: FileStore::new(&config, &store),
            max_upload_bytes: config.ingest.max_upload_bytes,
            fetcher: crate::services::fetch::Fetcher::new(&config.ingest),
            job_heartbeat: config.job_heartbeat(),
        });
        let search = Arc::new(SearchService {
            store: store.clone(),
            indexes: indexes.clone(),
            embedder: embedder.clone(),
            config: config.search.clone(),
        });
        let embeddings = Arc::new(EmbeddingService {
            embedder: embedder.clone(),
        });
        let secrets = Arc::new(SecretBox::new(&config));
        let bots = Arc::new(BotService {
            store: store.clone(),
            secrets: secrets.clone(),
        });
        let jobs = Arc::new(JobService {
            store: store.clone(),
            queue: queue.clone(),
        });
        let llm: Arc<dyn LlmBackend> = Arc::new(Unavailable {
            reason: "the chat model is loaded by `zhiku serve`".into(),
        });
        let chat = Arc::new(ChatService {
            store: store.clone(),
            search: search.clone(),
            llm: llm.clone(),
            default_min_answerable: config.llm.min_answerable,
            tools: Arc::new(ToolService::new(
                &config.tools,
                secrets,
                store.clone(),
                search.clone(),
            )),
        });
        let health = Arc::new(HealthService {
            store: store.clone(),
            llm: llm.clone(),
            embedder: embedder.clone(),
            embedding_server: match config.remote_embedding() {
                Some(remote) => Some(Arc::new(ServerCheck::new(
                    &remote.url,
                    &remote.api_key,
                    "the embedding server",
                    "embedding.api_key",
                )?)),
                None => None,
            },
            replica_lag: Arc::new(ReplicaLag::default()),
        });
        let metrics = Arc::new(MetricsService {
            http: HttpMetrics::default(),
            queue: queue.clone(),
            indexes: indexes.clone(),
            llm: llm.clone(),
            llm_usage: Arc::new(LlmUsage::default()),
            embedder,
        });
        let config_http = config.http.clone();
        let follows_other_nodes = config.follows_other_nodes();
        Ok(Self {
            config: Arc::new(config),
            indexes,
            knowledge,
            search,
            embeddings,
            bots,
            chat,
            jobs,
            admin_token: admin_token.into(),
            key_limits: Arc::new(KeyRateLimit::new(
                config_http.key_requests_per_minute,
                // Several nodes count a key's requests together, in the database.
                follows_other_nodes.then(|| store.clone()),
            )),
            llm,
            health,
            metrics,
        })
    }

    /// Load the configured chat model (seconds for a local GGUF), counting what it
    /// generates for `/metrics`. A model that cannot be loaded leaves chat answering with
    /// the reason, `/health` degraded, and everything else working.
    pub async fn load_llm(&mut self) -> Result<()> {
        let config = self.config.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::llm::load(&config)).await?;
        self.llm = Arc::new(Metered::new(loaded, self.metrics.llm_usage.clone()));
        self.chat = Arc::new(ChatService {
            llm: self.llm.clone(),
            ..ChatService::clone(&self.chat)
        });
        self.health = Arc::new(HealthService {
            llm: self.llm.clone(),
            ..HealthService::clone(&self.health)
        });
        self.metrics = Arc::new(MetricsService {
            llm: self.llm.clone(),
            ..MetricsService::clone(&self.metrics)
        });
        Ok(())
    }

    /// Start `count` ingestion workers in this process (the server, `zhiku ingest`, the
    /// eval's throw-away KB); stop them with [`Workers::stop`].
    pub fn start_workers(&self, count: usize) -> Workers {
        self.knowledge.start_workers(count)
    }
}

/// The admin token: from config, or the one stored in the data dir, or a new one (stored,
/// and returned with `true` so the caller can print it once). On PostgreSQL only from
/// config: several nodes serve one database there, and a token made by one node in its
/// own data dir would open that node alone.
pub fn admin_token(config: &Config) -> Result<(String, bool)> {
    if !config.admin_token.is_empty() {
        return Ok((config.admin_token.clone(), false));
    }
    if config.uses_postgres() {
        return Err(Error::Config(
            "on PostgreSQL the admin token must come from the configuration, the same on every node: set admin_token in the config file or ZHIKU_ADMIN_TOKEN (for example `openssl rand -hex 24`)".into(),
        ));
    }
    let path = config.data_dir.join("admin_token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim();
        if !t.is_empty() {
            return Ok((t.to_string(), false));
        }
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let token = format!("zk-admin-{}", hex::encode(rand::random::<[u8; 24]>()));
    write_private(&path, &token)?;
    Ok((token, true))
}

/// This node's id, which its job leases carry (`ingest::jobs::Lease`): kept in
/// `<data_dir>/node_id`, made on first use from the host name and a random part (stored
/// when `persist`). It stays the same across restarts, so a restarted node knows the jobs
/// it held before and takes them back at once, while another node's are left to their
/// leases; the data dir's lock makes one process at a time its only user. A copy of a data
/// directory must not keep this file while the original runs, or two nodes would share an
/// id.
pub fn node_id(config: &Config, persist: bool) -> Result<String> {
    let path = config.data_dir.join("node_id");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let id = existing.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(40)
        .collect();
    let host = if host.is_empty() {
        "zhiku".into()
    } else {
        host
    };
    let id = format!("{host}-{}", hex::encode(rand::random::<[u8; 6]>()));
    if persist {
        std::fs::create_dir_all(&config.data_dir)?;
        write_private(&path, &id)?;
    }
    Ok(id)
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
