//! The embedding model: fastembed over an ONNX Runtime library loaded at run time
//! (`embedding.backend = "local"`), or an OpenAI-compatible embedding server
//! (`"remote"`, see [`remote`]). Both go through [`Embedder`]: one way for ingestion,
//! search and `/v1/embeddings`, whichever backend answers.
//!
//! A model folder holds `model.onnx`, the four tokenizer JSON files fastembed reads and,
//! optionally, `zhiku-model.json` (id, dims, prefixes). Two sessions are kept: one for
//! ingestion and one for queries, so a search never waits behind an ingestion run.
//! The passage session starts with the first passage and is released when none has come
//! for a while, since most of the time a server answers questions and ingests nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use fastembed::{
    InitOptionsUserDefined, Pooling, QuantizationMode, TextEmbedding, TokenizerFiles,
    UserDefinedEmbeddingModel,
};
use serde::{Deserialize, Serialize};

mod remote;
mod remote_tokens;

pub use remote::RemoteConfig;
use remote::{Kind, RemoteModel};
use remote_tokens::{CharEstimate, TokenizerFile};

use crate::pipeline::sha256_hex;
use crate::split::TokenCount;
use crate::{Error, Result};

/// What we know about an embedding model; from `zhiku-model.json` when the folder has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Stable id recorded in each knowledge base (e.g. `multilingual-e5-small`).
    pub id: String,
    /// Vector dimensions.
    pub dims: usize,
    /// Prepended to questions (e5: `query: `).
    #[serde(default)]
    pub query_prefix: String,
    /// Prepended to chunks (e5: `passage: `).
    #[serde(default)]
    pub passage_prefix: String,
    /// The model's token window.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

fn default_max_tokens() -> usize {
    512
}

/// Where the model and the runtime are, and how to run them.
#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    /// Folder with `model.onnx` and the tokenizer files. With a remote backend it may be
    /// missing: when it has `tokenizer.json` that sizes chunks, and its `zhiku-model.json`
    /// gives the prefixes and the window (otherwise a name with "e5" in it gets e5's).
    pub model_dir: PathBuf,
    /// Path of `libonnxruntime.so` (local backend).
    pub ort_library: PathBuf,
    /// ONNX Runtime intra-op threads per session (0 = all cores).
    pub threads: usize,
    /// Most passages per ONNX run (or per request to a remote server) while ingesting.
    pub batch_size: usize,
    /// Most padded tokens (passages × the longest one) per run while ingesting.
    pub batch_tokens: usize,
    /// Release the passage model after this many seconds without a passage (0: never).
    pub passage_idle_release_s: u64,
    /// `Some`: embed on this server instead of running the model here.
    pub remote: Option<RemoteConfig>,
}

/// Embeds passages and queries; shared by ingestion and search.
pub struct Embedder {
    info: ModelInfo,
    backend: Backend,
    batch_size: usize,
    batch_tokens: usize,
    /// Questions embedded since the start.
    queries_embedded: AtomicU64,
    /// Passages embedded since the start (each distinct text of a call once).
    passages_embedded: AtomicU64,
}

/// Where vectors come from: the one place the backend is chosen.
enum Backend {
    /// The ONNX model in this process (boxed: its sessions are large beside a client).
    Local(Box<LocalModel>),
    /// An OpenAI-compatible server; `tokens` sizes chunks (see `remote_tokens`).
    Remote {
        server: RemoteModel,
        tokens: Arc<dyn TokenCount>,
    },
}

/// The local backend's sessions.
struct LocalModel {
    files: ModelFiles,
    queries: Mutex<TextEmbedding>,
    /// Loaded on first use, released after `passage_idle_release` without use.
    passages: RwLock<Option<Arc<PassageModel>>>,
    passages_used: Mutex<Instant>,
    passage_idle_release: Option<Duration>,
}

/// How many texts an [`Embedder`] has embedded since it was loaded: what a rate of
/// embeddings per second is computed from (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedCounts {
    /// Questions (searches, chat, `/v1/embeddings`).
    pub queries: u64,
    /// Passages (ingestion, re-embedding); a text repeated within one call counts once,
    /// since it is embedded once.
    pub passages: u64,
}

/// What ingestion alone needs: the passage session and a tokenizer without truncation for
/// sizing chunks. Together they are most of a server's memory (the session's arena grows
/// with the largest run, and the 250k-token vocabulary takes ~270 MB per tokenizer), so
/// they are released when no document has come for a while and loaded again (about a
/// second) when one does.
pub struct PassageModel {
    session: Mutex<TextEmbedding>,
    tokenizer: tokenizers::Tokenizer,
}

impl PassageModel {
    /// Tokens in `text`, with or without the special tokens the session adds.
    fn tokens_in(&self, text: &str, special_tokens: bool) -> usize {
        self.tokenizer
            .encode_fast(text, special_tokens)
            .map(|e| e.len())
            // A tokenizer failure must not lose text: fall back to a character count,
            // which over-estimates for CJK and so keeps chunks within the window (and
            // only the shape of an embedding run depends on it, never a vector).
            .unwrap_or_else(|_| text.chars().count())
    }

    /// Tokens `text` takes in a run: special tokens included, cut at the model's window.
    fn run_tokens(&self, text: &str, window: usize) -> usize {
        self.tokens_in(text, true).min(window)
    }
}

impl TokenCount for PassageModel {
    fn count(&self, text: &str) -> usize {
        self.tokens_in(text, false)
    }
}

/// Where the model's files are and how its sessions are started, kept so the passage
/// session can be started again after a release.
struct ModelFiles {
    env: ort::environment::Environment,
    dir: PathBuf,
    threads: usize,
    max_tokens: usize,
    /// Of the `model.onnx` the process started with: a file replaced since is refused
    /// rather than mixed into the same index.
    onnx_sha256: String,
}

impl ModelFiles {
    fn read(&self) -> Result<(Vec<u8>, TokenizerFiles)> {
        let dir = &self.dir;
        Ok((
            read(dir, "model.onnx")?,
            TokenizerFiles {
                tokenizer_file: read(dir, "tokenizer.json")?,
                config_file: read(dir, "config.json")?,
                special_tokens_map_file: read(dir, "special_tokens_map.json")?,
                tokenizer_config_file: read(dir, "tokenizer_config.json")?,
            },
        ))
    }

    fn session(&self, onnx: Vec<u8>, files: TokenizerFiles, spin: bool) -> Result<TextEmbedding> {
        let model = UserDefinedEmbeddingModel::new(onnx, files)
            .with_pooling(Pooling::Mean)
            .with_quantization(QuantizationMode::None);
        let mut options = InitOptionsUserDefined::new()
            .with_environment(self.env.clone())
            .with_max_length(self.max_tokens);
        if self.threads > 0 {
            options = options.with_intra_threads(self.threads);
        }
        if !spin {
            options = options
                .with_session_config("session.intra_op.allow_spinning", "0")
                .with_session_config("session.inter_op.allow_spinning", "0");
        }
        TextEmbedding::try_new_from_user_defined(model, options).map_err(|e| {
            Error::Model(format!(
                "cannot start {}: {e}; the model file may be damaged: ./scripts/run fetches and verifies it again",
                self.dir.display()
            ))
        })
    }

    fn passage_model(&self) -> Result<PassageModel> {
        let (onnx, files) = self.read()?;
        if sha256_hex(&onnx) != self.onnx_sha256 {
            return Err(Error::Model(format!(
                "{} changed since the server started; restart the server to use the new model",
                self.dir.join("model.onnx").display()
            )));
        }
        // Passage threads sleep between operators: an ingest batch shares the cores with
        // extraction, SQLite and the index commits, and spinning threads took 16% of the
        // CPU from them.
        let session = self.session(onnx, files, false)?;
        // Chunks are sized by the session's own tokenizer without its truncation and
        // padding: cloning it is cheaper than parsing tokenizer.json (17 MB for e5) a
        // second time, which took 0.56 s of every start of the passage model.
        let mut tokenizer = session.tokenizer.clone();
        tokenizer
            .with_padding(None)
            .with_truncation(None)
            .map_err(|e| Error::Model(format!("tokenizer.json in {}: {e}", self.dir.display())))?;
        Ok(PassageModel {
            session: Mutex::new(session),
            tokenizer,
        })
    }
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Give freed memory back to the system: glibc keeps a released session's and tokenizer's
/// many small blocks in its free lists otherwise, and the process's RSS would not fall.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The ONNX Runtime library can be loaded once per process; its environment lives as long.
static ORT_ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

fn init_ort(library: &Path) -> Result<ort::environment::Environment> {
    let loaded = ORT_ENV.get_or_init(|| {
        if !library.is_file() {
            return Err(format!(
                "ONNX Runtime library not found at {} (run ./scripts/run or set ZHIKU_ORT_LIBRARY)",
                library.display()
            ));
        }
        ort::init_from(library)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?
            .with_name("zhiku")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", library.display()))
    });
    match loaded {
        Ok(env) => Ok(env.clone()),
        Err(e) => Err(Error::Model(e.clone())),
    }
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| {
        Error::Model(format!(
            "cannot read {} ({e}); fetch the models with ./scripts/run or point models_dir at a model folder",
            path.display()
        ))
    })
}

impl Embedder {
    /// Load the configured backend. Local: the model in `config.model_dir` with the
    /// runtime in `config.ort_library`; the query session starts now, the passage session
    /// with the first passage. Remote: one test embedding learns the dimensions (and shows
    /// that the server answers with the key) before anything is indexed.
    pub fn load(config: &EmbedderConfig) -> Result<Self> {
        let (info, backend) = match &config.remote {
            None => LocalModel::load(config)?,
            Some(remote) => load_remote(config, remote)?,
        };
        Ok(Self {
            info,
            backend,
            // `passage_batches::plan` makes progress with either cap at 0.
            batch_size: config.batch_size,
            batch_tokens: config.batch_tokens,
            queries_embedded: AtomicU64::new(0),
            passages_embedded: AtomicU64::new(0),
        })
    }

    /// Texts embedded since the model was loaded.
    pub fn embedded(&self) -> EmbedCounts {
        EmbedCounts {
            queries: self.queries_embedded.load(Ordering::Relaxed),
            passages: self.passages_embedded.load(Ordering::Relaxed),
        }
    }

    /// Release the passage model if nothing has used it for the configured idle time
    /// (`embedding.passage_idle_release_s`) and nothing holds it now; `true` if released.
    /// Ingestion workers call this now and then; the next passage loads the model again.
    /// A remote backend holds no session: nothing to release.
    pub fn release_idle(&self) -> bool {
        match &self.backend {
            Backend::Local(local) => local.release_idle(),
            Backend::Remote { .. } => false,
        }
    }

    /// Whether the passage model is loaded now (never, with a remote backend).
    pub fn passages_loaded(&self) -> bool {
        match &self.backend {
            Backend::Local(local) => local.passages.read().map(|s| s.is_some()).unwrap_or(false),
            Backend::Remote { .. } => false,
        }
    }

    /// The model's id, dimensions and prefixes.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// `Some(url)` of the server that embeds, with a remote backend.
    pub fn remote_endpoint(&self) -> Option<&str> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Remote { server, .. } => Some(server.endpoint()),
        }
    }

    /// Embed a question (with the query prefix).
    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        let text = format!("{}{}", self.info.query_prefix, query);
        let vector = match &self.backend {
            Backend::Local(local) => {
                let mut session = local
                    .queries
                    .lock()
                    .map_err(|_| Error::Model("query session poisoned".into()))?;
                session
                    .embed([text], Some(1))
                    .map_err(|e| Error::Model(e.to_string()))?
                    .pop()
            }
            Backend::Remote { server, .. } => server.embed(&[&text], Kind::Query)?.pop(),
        }
        .ok_or_else(|| Error::Model("no vector returned".into()))?;
        self.queries_embedded.fetch_add(1, Ordering::Relaxed);
        Ok(vector)
    }

    /// Tokens of a question as the query session embeds it (prefix and special tokens
    /// included, cut at the model's window). Remote: as the chunk sizer counts them, plus
    /// the two special tokens a BERT-like model adds.
    pub fn query_tokens(&self, query: &str) -> Result<usize> {
        let text = format!("{}{}", self.info.query_prefix, query);
        let local = match &self.backend {
            Backend::Local(local) => local,
            Backend::Remote { tokens, .. } => {
                return Ok((tokens.count(&text) + 2).min(self.info.max_tokens));
            }
        };
        let session = local
            .queries
            .lock()
            .map_err(|_| Error::Model("query session poisoned".into()))?;
        let encoding = session
            .tokenizer
            .encode_fast(text, true)
            .map_err(|e| Error::Model(format!("cannot tokenize the question: {e}")))?;
        Ok(encoding
            .get_attention_mask()
            .iter()
            .filter(|&&m| m == 1)
            .count())
    }

    /// Embed passages (with the passage prefix), in input order.
    ///
    /// Identical texts are embedded once, and runs are formed from texts of similar length,
    /// at most `batch_size` passages and `batch_tokens` padded tokens each (see
    /// `passage_batches`); a remote backend sends each run as one request.
    /// `on_batch(done, total)` reports progress.
    pub fn embed_passages(
        &self,
        texts: &[String],
        mut on_batch: impl FnMut(usize, usize),
    ) -> Result<Vec<Vec<f32>>> {
        let mut unique: Vec<String> = Vec::new();
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let slots: Vec<usize> = texts
            .iter()
            .map(|t| {
                *slot_of.entry(t.as_str()).or_insert_with(|| {
                    unique.push(format!("{}{t}", self.info.passage_prefix));
                    unique.len() - 1
                })
            })
            .collect();
        let local = match &self.backend {
            Backend::Local(local) => Some(local.passage_model()?),
            Backend::Remote { .. } => None,
        };
        let tokens: Vec<usize> = unique
            .iter()
            .map(|t| match (&local, &self.backend) {
                (Some(model), _) => model.run_tokens(t, self.info.max_tokens),
                (None, Backend::Remote { tokens, .. }) => {
                    (tokens.count(t) + 2).min(self.info.max_tokens)
                }
                (None, Backend::Local(_)) => 0,
            })
            .collect();
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); unique.len()];
        let mut done = 0;
        for run in crate::passage_batches::plan(&tokens, self.batch_size, self.batch_tokens) {
            let inputs: Vec<&str> = run.iter().map(|&i| unique[i].as_str()).collect();
            let out = match (&local, &self.backend) {
                (_, Backend::Remote { server, .. }) => server.embed(&inputs, Kind::Passage)?,
                (Some(model), Backend::Local(_)) => {
                    let mut session = model
                        .session
                        .lock()
                        .map_err(|_| Error::Model("passage session poisoned".into()))?;
                    session
                        .embed(inputs, Some(run.len()))
                        .map_err(|e| Error::Model(e.to_string()))?
                }
                (None, Backend::Local(_)) => {
                    return Err(Error::Model("passage model not loaded".into()));
                }
            };
            if out.len() != run.len() || out.iter().any(|v| v.len() != self.info.dims) {
                return Err(Error::Model(format!(
                    "the embedding model returned {} vectors for {} passages, not all of {} dimensions",
                    out.len(),
                    run.len(),
                    self.info.dims
                )));
            }
            for (&i, v) in run.iter().zip(out) {
                vectors[i] = v;
            }
            done += run.len();
            self.passages_embedded
                .fetch_add(run.len() as u64, Ordering::Relaxed);
            on_batch(done, unique.len());
        }
        if let Backend::Local(local) = &self.backend {
            local.touch_passages();
        }
        Ok(slots.into_iter().map(|s| vectors[s].clone()).collect())
    }

    /// What sizes chunks: the model's tokenizer, without truncation (locally it comes with
    /// the passage model, which this starts if it was released; remotely see
    /// `remote_tokens`).
    pub fn tokens(&self) -> Result<Arc<dyn TokenCount>> {
        match &self.backend {
            Backend::Local(local) => Ok(local.passage_model()?),
            Backend::Remote { tokens, .. } => Ok(tokens.clone()),
        }
    }
}

impl LocalModel {
    fn load(config: &EmbedderConfig) -> Result<(ModelInfo, Backend)> {
        let mut info = read_info(&config.model_dir)?;
        let mut files = ModelFiles {
            env: init_ort(&config.ort_library)?,
            dir: config.model_dir.clone(),
            threads: config.threads,
            max_tokens: info.max_tokens,
            onnx_sha256: String::new(),
        };
        let (onnx, tokenizer_files) = files.read()?;
        files.onnx_sha256 = sha256_hex(&onnx);
        // Query threads spin between operators: a question is one short run, and waking
        // sleeping threads would add to every search.
        let mut queries = files.session(onnx, tokenizer_files, true)?;
        let probe = queries
            .embed(["probe"], None)
            .map_err(|e| Error::Model(format!("test embedding failed: {e}")))?;
        let dims = probe.first().map(Vec::len).unwrap_or(0);
        check_dims(&mut info, dims)?;
        return_freed_memory();
        let local = LocalModel {
            files,
            queries: Mutex::new(queries),
            passages: RwLock::new(None),
            passages_used: Mutex::new(Instant::now()),
            passage_idle_release: (config.passage_idle_release_s > 0)
                .then(|| Duration::from_secs(config.passage_idle_release_s)),
        };
        Ok((info, Backend::Local(Box::new(local))))
    }

    /// The passage model, started if it was released (or not used yet).
    fn passage_model(&self) -> Result<Arc<PassageModel>> {
        self.touch_passages();
        if let Some(model) = self.passages.read().map_err(poisoned)?.as_ref() {
            return Ok(model.clone());
        }
        let mut slot = self.passages.write().map_err(poisoned)?;
        if let Some(model) = slot.as_ref() {
            return Ok(model.clone());
        }
        let started = Instant::now();
        let model = Arc::new(self.files.passage_model()?);
        tracing::info!(
            load_ms = started.elapsed().as_millis() as u64,
            "passage model loaded"
        );
        *slot = Some(model.clone());
        Ok(model)
    }

    fn touch_passages(&self) {
        if let Ok(mut used) = self.passages_used.lock() {
            *used = Instant::now();
        }
    }

    fn release_idle(&self) -> bool {
        let Some(idle) = self.passage_idle_release else {
            return false;
        };
        let idle_for = match self.passages_used.lock() {
            Ok(used) => used.elapsed(),
            Err(_) => return false,
        };
        if idle_for < idle {
            return false;
        }
        let released = match self.passages.write() {
            Ok(mut slot) => match slot.as_ref() {
                Some(model) if Arc::strong_count(model) == 1 => slot.take(),
                _ => None,
            },
            Err(_) => None,
        };
        let Some(model) = released else {
            return false;
        };
        drop(model);
        return_freed_memory();
        tracing::info!(
            idle_s = idle_for.as_secs(),
            "passage model released: no passage for a while"
        );
        true
    }
}

/// The remote backend: the model's description from its folder when there is one (the
/// id is the configured one, sent to the server and recorded in each knowledge base), and
/// the dimensions from a test embedding.
fn load_remote(config: &EmbedderConfig, remote: &RemoteConfig) -> Result<(ModelInfo, Backend)> {
    let mut info = read_info(&config.model_dir)?;
    info.id.clone_from(&remote.model);
    let server = RemoteModel::new(remote.clone())?;
    if server.sends_input_type() {
        // The server adds its model's prefixes, told by `input_type`.
        info.query_prefix.clear();
        info.passage_prefix.clear();
    }
    let probe = server.embed(&[&format!("{}probe", info.query_prefix)], Kind::Query)?;
    let dims = probe.first().map(Vec::len).unwrap_or(0);
    check_dims(&mut info, dims)?;
    let tokens: Arc<dyn TokenCount> = match TokenizerFile::find(&config.model_dir)? {
        Some(tokenizer) => Arc::new(tokenizer),
        None => Arc::new(CharEstimate),
    };
    tracing::info!(
        url = server.endpoint(),
        model = %info.id,
        dims,
        "embedding on a remote server"
    );
    Ok((info, Backend::Remote { server, tokens }))
}

/// Take the dimensions a test embedding showed, refusing a description that says others.
fn check_dims(info: &mut ModelInfo, dims: usize) -> Result<()> {
    if info.dims == 0 {
        info.dims = dims;
    } else if info.dims != dims {
        return Err(Error::Model(format!(
            "zhiku-model.json says {} dimensions but the model produces {dims}",
            info.dims
        )));
    }
    Ok(())
}

fn poisoned<T>(_: T) -> Error {
    Error::Model("passage model lock poisoned".into())
}

fn read_info(dir: &Path) -> Result<ModelInfo> {
    let path = dir.join("zhiku-model.json");
    if path.is_file() {
        let bytes = std::fs::read(&path)?;
        return serde_json::from_slice(&bytes)
            .map_err(|e| Error::Model(format!("{}: {e}", path.display())));
    }
    // A folder without our description: name it after the folder and probe the dimensions;
    // e5 models need their prefixes, which their names announce.
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "embedding-model".into());
    let is_e5 = id.to_lowercase().contains("e5");
    Ok(ModelInfo {
        dims: 0,
        query_prefix: if is_e5 {
            "query: ".into()
        } else {
            String::new()
        },
        passage_prefix: if is_e5 {
            "passage: ".into()
        } else {
            String::new()
        },
        max_tokens: default_max_tokens(),
        id,
    })
}

/// Cosine similarity of two vectors of equal length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
