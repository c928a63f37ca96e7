//! `zhiku serve`: take the data dir lock, recover interrupted jobs, catch the indexes up,
//! follow other nodes' writes (several nodes on PostgreSQL), start the ingestion workers
//! and the HTTP server, and shut down cleanly on Ctrl-C/SIGTERM
//! (workers stop claiming, vector indexes are saved).

use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{Instrument, info, warn};

use crate::app::{AppState, admin_token};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lock::DataDirLock;

/// How long a shutdown waits for the workers: one embedding slice takes seconds, and a
/// worker inside extraction or splitting (which nothing can interrupt) is not waited for
/// longer than this.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Run the server until a shutdown signal; `on_ready` gets the bound address.
pub async fn serve(config: Config) -> Result<()> {
    let _lock = DataDirLock::acquire(&config.data_dir)?;
    let (token, generated) = admin_token(&config)?;
    if generated {
        // Printed once, on the first start; afterwards it is read from the data dir.
        println!(
            "Generated admin token (saved in {}): {token}",
            config.data_dir.join("admin_token").display()
        );
    }
    let bind = config.bind.clone();
    let workers = config.ingest.workers;
    let mut state = AppState::build(config, token, false).await?;
    state.load_llm().await?;

    info!(node = %state.jobs.queue.lease().node, "this node's id (on the jobs it holds)");
    state.jobs.recover().await?;
    state.indexes.catch_up_all().await?;
    remove_orphan_files(&state);

    // With several nodes, this node's indexes follow the others' writes too.
    let replicas = state.config.follows_other_nodes().then(|| {
        crate::services::replicas::start(
            state.indexes.clone(),
            state.knowledge.store.clone(),
            state.config.replica_poll(),
            state.health.replica_lag.clone(),
        )
    });
    let workers_running = state.start_workers(workers);
    let schedule = crate::services::web_schedule::start(
        state.knowledge.clone(),
        Duration::from_millis(state.config.ingest.web_sync_minute_ms),
    );

    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {bind}: {e}")))?;
    let address = listener.local_addr()?;
    info!(%address, workers, "zhiku is listening");
    println!("zhiku is listening on http://{address}");
    axum::serve(listener, crate::http::router(state.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    info!("shutting down");
    schedule.stop(STOP_GRACE).await;
    let busy = workers_running.stop(STOP_GRACE).await;
    if let Some(replicas) = replicas {
        replicas.stop(STOP_GRACE).await;
    }
    state.indexes.save_all().await?;
    if busy > 0 {
        // Said as it is: their threads are abandoned when the process exits, and the jobs
        // they held are queued again at the next start.
        warn!(
            busy,
            grace_s = STOP_GRACE.as_secs(),
            "stopped without waiting for workers still extracting or splitting; their documents are processed again at the next start"
        );
    } else {
        info!("stopped");
    }
    Ok(())
}

/// Remove, in the background, the stored files a crash left without a document (best
/// effort: a failure is logged, and the next start tries again).
fn remove_orphan_files(state: &AppState) {
    let knowledge = state.knowledge.clone();
    let sweep = async move {
        let min_age = crate::services::files::ORPHAN_MIN_AGE;
        match knowledge
            .files
            .remove_orphans(&knowledge.store, min_age)
            .await
        {
            Ok(0) => {}
            Ok(removed) => info!(removed, "removed stored files no document points at"),
            Err(e) => warn!(error = %e, "stored files no document points at were not removed"),
        }
    };
    tokio::spawn(sweep.instrument(tracing::info_span!("orphan_files")));
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
