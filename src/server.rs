//! `zhiku serve`: take the data dir lock, recover interrupted jobs, catch the indexes up,
//! start the ingestion workers and the HTTP server, and shut down cleanly on Ctrl-C/SIGTERM
//! (workers stop claiming, vector indexes are saved).

use std::sync::Arc;
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

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sink = Arc::new(state.sink());
    let mut worker_handles = Vec::new();
    for worker in 0..workers {
        worker_handles.push(tokio::spawn(ingest::pipeline::run_worker(
            worker,
            state.queue.clone(),
            state.pipeline.clone(),
            sink.clone(),
            stop_rx.clone(),
        )));
    }

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
    let _ = stop_tx.send(true);
    for handle in worker_handles {
        // A worker in the middle of a job finishes it; its job is requeued at the next start
        // if we are killed meanwhile.
        let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
    }
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
