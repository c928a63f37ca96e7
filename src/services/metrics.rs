//! What this node has done and is doing, in the Prometheus text format (`GET /metrics`).
//!
//! Two kinds of figures. Those counted as things happen live in [`HttpMetrics`] (requests
//! and their latency, recorded by the HTTP layer), [`LlmUsage`] (what the chat model
//! generated) and the embedder's own counts. Those that are a state — the ingestion queue,
//! the indexes' lag, the chat model's slots — are read when scraped, from their owners,
//! so they can never drift from the truth. Each scrape builds a fresh registry over both.
//!
//! Names follow Prometheus' conventions: `zhiku_` first, the unit last (`_seconds`,
//! `_chunks`), counters ending in `_total`. Labels take bounded values only: a route is
//! its template (`/api/kbs/{kb}`), never the path asked, so a client cannot grow the
//! number of series by asking for many paths.

use std::sync::Arc;
use std::time::Duration;

use ingest::embed::{EmbedCounts, Embedder};
use ingest::jobs::{JobQueue, JobStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::indexing::IndexRegistry;
use crate::error::{Error, Result};
use crate::llm::LlmBackend;
use crate::llm::metered::LlmUsage;

/// The media type of what [`MetricsService::render`] writes (Prometheus text, 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds. Most routes answer in milliseconds;
/// an upload of a large file, a search on a cold index or a non-streamed answer on a CPU
/// take seconds to a minute.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A request's labels: the route template it matched, its method, the status class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

/// A route and method, for latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

/// One label naming a status or kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_SECONDS)
}

/// Requests served, by route, method and status class, and how long each took to answer
/// (until its response started: a streamed chat is timed to its first byte). Cheap to
/// clone; clones share the counts.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Methods are labels only when they are the usual ones: a made-up method (which gets a
/// 405) must not make a series of its own.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

impl HttpMetrics {
    /// Count one request. `route` is the template it matched (`None`: none did, as with a
    /// 404 for an unknown path), never the path itself.
    pub fn record(&self, route: Option<&str>, method: &str, status: u16, elapsed: Duration) {
        let route = route.unwrap_or("unmatched").to_string();
        let method = method_label(method).to_string();
        let class = format!("{}xx", status / 100);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method.clone(),
                status: class,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route, method })
            .observe(elapsed.as_secs_f64());
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status class",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to the start of a streamed response), by route template and method",
            Unit::Seconds,
            self.latency.clone(),
        );
    }
}

/// What texts an embedding model has embedded; the [`Embedder`] in service, a stand-in in
/// tests.
pub trait EmbedCounter: Send + Sync {
    /// The counts since it was loaded.
    fn embedded(&self) -> EmbedCounts;
}

impl EmbedCounter for Embedder {
    fn embedded(&self) -> EmbedCounts {
        Embedder::embedded(self)
    }
}

/// Everything `/metrics` reads.
#[derive(Clone)]
pub struct MetricsService {
    /// Requests, recorded by the HTTP layer.
    pub http: HttpMetrics,
    /// The ingestion queue (jobs by status).
    pub queue: JobQueue,
    /// The indexes (their lag behind the database).
    pub indexes: Arc<IndexRegistry>,
    /// The chat model (its slots and queue).
    pub llm: Arc<dyn LlmBackend>,
    /// What the chat model generated, counted by [`crate::llm::metered::Metered`].
    pub llm_usage: Arc<LlmUsage>,
    /// The embedding model's counts.
    pub embedder: Arc<dyn EmbedCounter>,
}

/// A gauge holding `value`.
fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// A counter standing at `value` (a total kept elsewhere, read at the scrape).
fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl MetricsService {
    /// Every metric, as Prometheus text.
    pub async fn render(&self) -> Result<String> {
        let jobs = self.queue.count_by_status().await?;
        let lag = self.indexes.lag_chunks().await?;
        let mut registry = Registry::with_prefix("zhiku");
        self.http.register(&mut registry);
        register_queue(&mut registry, &jobs);
        registry.register_with_unit(
            "index_lag",
            "Chunk changes committed to the database that this node's indexes have not applied yet",
            Unit::Other("chunks".into()),
            gauge(lag),
        );
        self.register_llm(&mut registry);
        let embedded = self.embedder.embedded();
        let embeddings = Family::<KindLabel, Counter>::default();
        for (kind, n) in [("query", embedded.queries), ("passage", embedded.passages)] {
            embeddings
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(n);
        }
        registry.register(
            "embeddings",
            "Texts embedded: questions (searches, chat, /v1/embeddings) and passages (ingestion)",
            embeddings,
        );
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .map_err(|e| Error::Internal(format!("could not write the metrics: {e}")))?;
        Ok(text)
    }

    fn register_llm(&self, registry: &mut Registry) {
        let info = self.llm.info();
        registry.register(
            "llm_slots",
            "Answers the chat model generates at once (llm.parallel; 0 when it is not loaded)",
            gauge(as_i64(info.parallel)),
        );
        // Only the local engine knows its slots and queue; a remote server keeps its own.
        if let Some(now) = self.llm.occupancy() {
            registry.register(
                "llm_slots_busy",
                "Chat model slots answering a request now",
                gauge(as_i64(now.slots_busy)),
            );
            registry.register(
                "llm_requests_queued",
                "Chat requests waiting for a free slot",
                gauge(as_i64(now.queued)),
            );
        }
        let usage = self.llm_usage.counts();
        registry.register(
            "llm_generations",
            "Answers the chat model finished",
            counter(usage.generations),
        );
        registry.register(
            "llm_prompt_tokens",
            "Prompt tokens of the finished answers",
            counter(usage.prompt_tokens),
        );
        registry.register(
            "llm_completion_tokens",
            "Tokens the chat model generated in finished answers",
            counter(usage.completion_tokens),
        );
        let seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        seconds.inc_by(usage.generation_seconds);
        registry.register_with_unit(
            "llm_generation",
            "Time spent generating the finished answers, first token to last, summed over answers",
            Unit::Seconds,
            seconds,
        );
    }
}

fn register_queue(registry: &mut Registry, jobs: &[(JobStatus, i64)]) {
    let by_status = Family::<StatusLabel, Gauge>::default();
    for (status, n) in jobs {
        by_status
            .get_or_create(&StatusLabel {
                status: status.as_str().into(),
            })
            .set(*n);
    }
    registry.register(
        "ingest_jobs",
        "Ingestion jobs in each status (enqueued, processing, succeeded, failed, canceled)",
        by_status,
    );
    let depth = jobs
        .iter()
        .find(|(s, _)| *s == JobStatus::Enqueued)
        .map_or(0, |(_, n)| *n);
    registry.register(
        "ingest_queue_depth",
        "Ingestion jobs waiting for a worker",
        gauge(depth),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::scale::{SyntheticChunk, write_document};
    use crate::llm::metered::Metered;
    use crate::llm::scripted::ScriptedLlm;
    use crate::llm::{ChatMessage, GenerateRequest, LlmInfo, LlmStream, Occupancy, Role, complete};
    use crate::services::testing::{Fixture, HashEmbedder};
    use crate::store::documents::NewDocument;

    struct Counted(EmbedCounts);

    impl EmbedCounter for Counted {
        fn embedded(&self) -> EmbedCounts {
            self.0
        }
    }

    /// A local-like backend with two slots busy and three requests waiting.
    struct Busy;

    impl LlmBackend for Busy {
        fn info(&self) -> LlmInfo {
            LlmInfo {
                backend: "local",
                model: "busy".into(),
                context_tokens: 2048,
                parallel: 2,
                gpu_layers: 0,
            }
        }
        fn occupancy(&self) -> Option<Occupancy> {
            Some(Occupancy {
                slots_busy: 2,
                queued: 3,
            })
        }
        fn count_tokens(&self, _: &[ChatMessage]) -> Result<usize> {
            Ok(0)
        }
        fn generate(&self, _: GenerateRequest) -> Result<LlmStream> {
            Err(Error::Busy("busy".into()))
        }
    }

    /// `name{labels} value` or `name value`, with a name and a number Prometheus reads;
    /// `None` for anything else.
    fn sample(line: &str) -> Option<(&str, &str, f64)> {
        let (series, value) = line.rsplit_once(' ')?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let valid_name = name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        (valid_name && !name.is_empty()).then_some((name, labels, value))
    }

    fn value_of(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn a_scrape_is_valid_text_and_reads_the_state_now() {
        let mut fixture = Fixture::new().await;
        // Opens the KB's indexes and catches them up.
        fixture.add_document(&["北京 差旅 住宿"]).await;
        let queue = JobQueue::new(
            fixture.store.pool.clone(),
            3,
            crate::services::testing::lease(),
        );
        // A document waiting for a worker.
        fixture
            .store
            .insert_document(&NewDocument {
                document_id: "waiting",
                kb_id: &fixture.kb_id,
                name: "waiting.txt",
                bytes: 10,
                sha256: "0",
                file_path: "",
                split_json: None,
                clean_json: None,
                source_url: None,
                crawl: None,
                crawl_sitemap_url: None,
            })
            .await
            .unwrap();
        // Two chunks stored, not yet applied to the indexes.
        let chunks: Vec<SyntheticChunk> = ["上海 住宿 标准", "广州 交通 补贴"]
            .iter()
            .map(|t| SyntheticChunk {
                text: t.to_string(),
                vector: HashEmbedder::vector(t),
            })
            .collect();
        write_document(&fixture.store, &queue, &fixture.kb_id, 7, &chunks)
            .await
            .unwrap();
        let usage = Arc::new(LlmUsage::default());
        let answered = Metered::new(
            Arc::new(ScriptedLlm::new(["one two three four"])),
            usage.clone(),
        );
        let question = GenerateRequest::new(vec![ChatMessage::new(Role::User, "hello")], 16, 0.0);
        complete(&answered, question).await.unwrap();
        let service = MetricsService {
            http: HttpMetrics::default(),
            queue,
            indexes: fixture.search.indexes.clone(),
            llm: Arc::new(Busy),
            llm_usage: usage,
            embedder: Arc::new(Counted(EmbedCounts {
                queries: 3,
                passages: 5,
            })),
        };
        service
            .http
            .record(Some("/api/kbs/{kb}"), "GET", 200, Duration::from_millis(30));
        service
            .http
            .record(Some("/api/kbs/{kb}"), "GET", 404, Duration::from_millis(2));
        service
            .http
            .record(None, "BREW", 404, Duration::from_millis(1));

        let text = service.render().await.unwrap();
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || sample(line).is_some(),
                "not a Prometheus line: {line:?}\n{text}"
            );
        }
        let expected = [
            ("zhiku_ingest_queue_depth", 1.0),
            ("zhiku_ingest_jobs{status=\"enqueued\"}", 1.0),
            ("zhiku_ingest_jobs{status=\"succeeded\"}", 2.0),
            ("zhiku_ingest_jobs{status=\"canceled\"}", 0.0),
            ("zhiku_index_lag_chunks", 2.0),
            ("zhiku_llm_slots", 2.0),
            ("zhiku_llm_slots_busy", 2.0),
            ("zhiku_llm_requests_queued", 3.0),
            ("zhiku_llm_generations_total", 1.0),
            ("zhiku_llm_completion_tokens_total", 9.0),
            ("zhiku_embeddings_total{kind=\"query\"}", 3.0),
            ("zhiku_embeddings_total{kind=\"passage\"}", 5.0),
            (
                "zhiku_http_requests_total{route=\"/api/kbs/{kb}\",method=\"GET\",status=\"2xx\"}",
                1.0,
            ),
            (
                "zhiku_http_requests_total{route=\"/api/kbs/{kb}\",method=\"GET\",status=\"4xx\"}",
                1.0,
            ),
            (
                "zhiku_http_requests_total{route=\"unmatched\",method=\"other\",status=\"4xx\"}",
                1.0,
            ),
            (
                "zhiku_http_request_duration_seconds_count{route=\"/api/kbs/{kb}\",method=\"GET\"}",
                2.0,
            ),
            (
                "zhiku_http_request_duration_seconds_bucket{route=\"/api/kbs/{kb}\",method=\"GET\",le=\"0.05\"}",
                2.0,
            ),
        ];
        for (series, value) in expected {
            assert_eq!(value_of(&text, series), Some(value), "{series}\n{text}");
        }
        assert!(text.contains("# TYPE zhiku_llm_generation_seconds_total counter"));

        // Once the indexes catch up, the lag is gone.
        fixture
            .search
            .indexes
            .catch_up(&fixture.kb_id)
            .await
            .unwrap();
        let text = service.render().await.unwrap();
        assert_eq!(value_of(&text, "zhiku_index_lag_chunks"), Some(0.0));
    }
}
