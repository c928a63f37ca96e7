//! `zhiku serve`: take the data dir lock, recover interrupted jobs, catch the indexes up,
//! start the ingestion workers and the HTTP server, and shut down cleanly on Ctrl-C/SIGTERM
//! (workers stop claiming, vector indexes are saved).

use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::app::{AppState, admin_token};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lock::DataDirLock;

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

    let (requeued, failed) = state.queue.recover().await?;
    for job in &failed {
        state
            .store
            .set_document_status(
                &job.document_id,
                "failed",
                Some((
                    "worker_crashed",
                    job.error_message.as_deref().unwrap_or_default(),
                )),
            )
            .await?;
    }
    if !requeued.is_empty() || !failed.is_empty() {
        info!(
            requeued = requeued.len(),
            failed = failed.len(),
            "recovered interrupted jobs"
        );
    }
    for job in &requeued {
        state
            .store
            .set_document_status(&job.document_id, "queued", None)
            .await?;
    }
    for kb in state.store.list_kbs().await? {
        if let Err(e) = state.indexes.catch_up(&kb.kb_id).await {
            warn!(kb = %kb.name, error = %e, "cannot open the indexes of this knowledge base");
        }
    }

    let workers_running = state.start_workers(workers);

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
    workers_running.stop(Duration::from_secs(30)).await;
    state.indexes.save_all().await?;
    info!("stopped");
    Ok(())
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
