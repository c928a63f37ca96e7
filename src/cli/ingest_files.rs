//! `zhiku ingest --kb NAME PATH…`: upload files and folders through the same pipeline as
//! the API, run the workers in this process, and report what was indexed and what failed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::{progress_bar, writer_state};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::services::knowledge::UploadSettings;

/// Arguments of `zhiku ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Knowledge base name or id.
    #[arg(long)]
    kb: String,
    /// Files or folders (folders are walked recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            collect(&entry, out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

pub(super) async fn run(config: Config, args: IngestArgs) -> Result<()> {
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, &mut files)?;
    }
    let workers = config.ingest.workers;
    let (state, _lock) = writer_state(config).await?;
    let started = Instant::now();
    let mut queued = Vec::new();
    let mut rejected = Vec::new();
    let mut duplicates = 0;
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(path)?;
        match state
            .knowledge
            .upload(&args.kb, &name, bytes, &UploadSettings::default())
            .await
        {
            Ok(o) if o.duplicate => duplicates += 1,
            Ok(o) => queued.push(o.id),
            Err(e @ (Error::NotFound { .. } | Error::ModelMismatch { .. })) => return Err(e),
            Err(e) => rejected.push((path.display().to_string(), e.to_string())),
        }
    }
    let running = state.start_workers(workers);
    let bar = progress_bar(queued.len() as u64, "ingesting");
    let mut indexed = 0;
    let mut failed = Vec::new();
    let mut chunks = 0;
    let mut pending: Vec<String> = queued.clone();
    while !pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut still = Vec::new();
        for id in pending {
            let doc = state.knowledge.document(&args.kb, &id).await?;
            match doc.status.as_str() {
                "indexed" => {
                    indexed += 1;
                    chunks += doc.chunk_count;
                    bar.inc(1);
                }
                "failed" => {
                    let why = doc.error.map(|e| e.message).unwrap_or_default();
                    failed.push((doc.name, why));
                    bar.inc(1);
                }
                _ => still.push(id),
            }
        }
        pending = still;
    }
    bar.finish_and_clear();
    running.stop(std::time::Duration::MAX).await;
    state.indexes.save_all().await?;
    println!(
        "{indexed} indexed ({chunks} chunks), {} failed, {} rejected, {duplicates} already in the knowledge base, in {:.1} s",
        failed.len(),
        rejected.len(),
        started.elapsed().as_secs_f64()
    );
    for (name, why) in failed.iter().chain(rejected.iter()) {
        println!("  ✗ {name}: {why}");
    }
    Ok(())
}
