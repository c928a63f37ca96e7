//! Whether this node can do its work, for load balancers and operators (`GET /health`):
//! the database answers, the chat model is available, the embedding model is loaded (or
//! its server answers), and
//! (several nodes) its indexes are not left behind the others' writes.
//! Each failing check adds a reason; any reason makes the node `degraded`, which the HTTP
//! layer answers with 503 so that a load balancer takes the node out of rotation.
//!
//! The checks are cheap enough to run on every request (a `SELECT 1`, an atomic read, a
//! remote model server's answer reused for ten seconds) and each has a time limit, so a
//! node whose database hangs says so within [`DATABASE_TIMEOUT`] instead of hanging too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::replicas::{REPLICA_BEHIND_GRACE, ReplicaLag};
use super::search::QueryEmbedder;
use crate::llm::LlmBackend;
use crate::llm::server_check::ServerCheck;
use crate::store::Store;

/// How long the database has to answer `SELECT 1`: well under the 5 s a load balancer
/// usually waits, and far above the milliseconds it takes when all is well.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The health checks' inputs.
#[derive(Clone)]
pub struct HealthService {
    /// The database.
    pub store: Store,
    /// The chat model as loaded (or the stand-in that says why it is not).
    pub llm: Arc<dyn LlmBackend>,
    /// The embedding model (the server does not start without it).
    pub embedder: Arc<dyn QueryEmbedder>,
    /// With `embedding.backend = "remote"`: its server, checked as a remote chat model's
    /// is.
    pub embedding_server: Option<Arc<ServerCheck>>,
    /// How far this node's indexes are behind the other nodes' writes (several nodes).
    pub replica_lag: Arc<ReplicaLag>,
}

/// `ready` when every check passes, `degraded` when one does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Every check passed.
    Ready,
    /// At least one check failed; `reasons` says which.
    Degraded,
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Whether it passed.
    pub ok: bool,
    /// What was checked: the database's kind, the model's name.
    pub about: String,
    /// How long it took.
    pub elapsed_ms: u64,
    /// Why it failed, in detail (file paths, addresses, the driver's error).
    pub error: Option<String>,
}

/// Every check, by name.
#[derive(Debug, Clone)]
pub struct Checks {
    /// The database answers a trivial query within [`DATABASE_TIMEOUT`].
    pub database: Check,
    /// The chat model is loaded (local) or its server answers (remote).
    pub llm: Check,
    /// The embedding model is loaded (local) or its server answers (remote).
    pub embedder: Check,
}

/// What `/health` answers.
#[derive(Debug, Clone)]
pub struct Health {
    /// `ready` or `degraded`.
    pub status: HealthStatus,
    /// One short phrase per failed check ("database unreachable", "chat model
    /// unavailable"); empty when ready.
    pub reasons: Vec<String>,
    /// Each check's outcome.
    pub checks: Checks,
}

impl HealthService {
    /// Run every check (the database's and the chat model's at once).
    pub async fn check(&self) -> Health {
        let (database, llm, embedder) = tokio::join!(
            self.check_database(),
            self.check_llm(),
            self.check_embedder()
        );
        let mut reasons = Vec::new();
        if !database.ok {
            reasons.push(match database.error.as_deref() {
                Some(TIMED_OUT) => format!(
                    "database unreachable: no answer within {} s",
                    DATABASE_TIMEOUT.as_secs()
                ),
                _ => "database unreachable".to_string(),
            });
        }
        if !llm.ok {
            reasons.push("chat model unavailable".to_string());
        }
        if !embedder.ok {
            reasons.push("embedding model unavailable".to_string());
        }
        if let Some((chunks, since)) = self
            .replica_lag
            .behind_for_longer_than(REPLICA_BEHIND_GRACE)
        {
            reasons.push(format!(
                "index replica behind by {chunks} chunks for {} s",
                since.as_secs()
            ));
        }
        Health {
            status: match reasons.is_empty() {
                true => HealthStatus::Ready,
                false => HealthStatus::Degraded,
            },
            reasons,
            checks: Checks {
                database,
                llm,
                embedder,
            },
        }
    }

    async fn check_database(&self) -> Check {
        let started = Instant::now();
        let outcome = tokio::time::timeout(DATABASE_TIMEOUT, self.store.ping()).await;
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(TIMED_OUT.to_string()),
        };
        finished(self.store.backend().name(), started, error)
    }

    async fn check_llm(&self) -> Check {
        let started = Instant::now();
        let info = self.llm.info();
        let about = match info.model.is_empty() {
            true => info.backend.to_string(),
            false => format!("{} {}", info.backend, info.model),
        };
        let error = self.llm.check().await.err().map(|e| e.to_string());
        finished(&about, started, error)
    }

    /// `AppState::build` fails when the embedding model cannot be loaded (or its server
    /// did not embed a test text), so a serving node has one; the check says which, and
    /// whether a remote one's server still answers.
    async fn check_embedder(&self) -> Check {
        let started = Instant::now();
        let info = self.embedder.info();
        let about = format!("{} ({} dimensions)", info.id, info.dims);
        match &self.embedding_server {
            None => finished(&about, started, None),
            Some(server) => finished(
                &format!("remote {about}"),
                started,
                server.check().await.err(),
            ),
        }
    }
}

/// The error of a database check that ran out of time.
const TIMED_OUT: &str = "timed out";

fn finished(about: &str, started: Instant, error: Option<String>) -> Check {
    Check {
        ok: error.is_none(),
        about: about.to_string(),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Unavailable;
    use crate::llm::scripted::ScriptedLlm;
    use crate::services::testing::{Fixture, HashEmbedder, MODEL};

    fn service(fixture: &Fixture, llm: Arc<dyn LlmBackend>) -> HealthService {
        HealthService {
            store: fixture.store.clone(),
            llm,
            embedder: Arc::new(HashEmbedder::new(MODEL)),
            embedding_server: None,
            replica_lag: Arc::new(ReplicaLag::default()),
        }
    }

    #[tokio::test]
    async fn ready_when_the_database_and_the_models_answer() {
        let fixture = Fixture::new().await;
        let health = service(&fixture, Arc::new(ScriptedLlm::new(["hi"])))
            .check()
            .await;
        assert_eq!(health.status, HealthStatus::Ready);
        assert!(health.reasons.is_empty(), "{:?}", health.reasons);
        assert!(health.checks.database.ok && health.checks.llm.ok && health.checks.embedder.ok);
        assert_eq!(health.checks.database.about, "SQLite");
        assert_eq!(health.checks.llm.about, "scripted scripted");
    }

    #[tokio::test]
    async fn degraded_with_the_reason_when_the_chat_model_is_not_loaded() {
        let fixture = Fixture::new().await;
        let missing = Unavailable {
            reason: "chat model file /models/llm/x.gguf not found".into(),
        };
        let health = service(&fixture, Arc::new(missing)).check().await;
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.reasons, ["chat model unavailable"]);
        let error = health.checks.llm.error.unwrap();
        assert!(error.contains("x.gguf not found"), "{error}");
        assert!(health.checks.database.ok);
    }

    #[tokio::test]
    async fn degraded_when_the_database_does_not_answer() {
        let fixture = Fixture::new().await;
        let health = service(&fixture, Arc::new(ScriptedLlm::new(["hi"])));
        fixture.store.pool.close().await;
        let health = health.check().await;
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.reasons, ["database unreachable"]);
        assert!(health.checks.database.error.is_some());
        assert!(health.checks.llm.ok);
    }
}
