//! `zhiku ingest --kb NAME PATH…` (and `--url URL…`): upload files and folders, or add web
//! pages, through the same pipeline as the API, run the workers in this process, and report
//! what was indexed and what failed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::{progress_bar, writer_state};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::services::knowledge::UploadSettings;
use crate::services::web_pages::CrawlSettings;

/// Arguments of `zhiku ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Knowledge base name or id.
    #[arg(long)]
    kb: String,
    /// Files or folders (folders are walked recursively).
    #[arg(required_unless_present = "urls")]
    paths: Vec<PathBuf>,
    /// A web page to fetch and add (repeatable); a `.xml` sitemap adds the pages it lists.
    #[arg(long = "url", value_name = "URL")]
    urls: Vec<String>,
    /// With --url: follow each page's links on the same host this many links deep.
    #[arg(long, requires = "urls")]
    crawl_depth: Option<u32>,
    /// With --url: most pages one crawl adds (default 50).
    #[arg(long, requires = "urls")]
    crawl_pages: Option<u32>,
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
    if !args.urls.is_empty() {
        let crawl =
            (args.crawl_depth.is_some() || args.crawl_pages.is_some()).then(|| CrawlSettings {
                max_depth: args.crawl_depth.unwrap_or(1),
                max_pages: args.crawl_pages.unwrap_or(50),
            });
        let added = state
            .knowledge
            .add_urls(&args.kb, &args.urls, crawl, &UploadSettings::default())
            .await?;
        for o in added {
            if o.duplicate {
                duplicates += 1;
            } else {
                queued.push(o.id);
            }
        }
    }
    let running = state.start_workers(workers);
    let bar = progress_bar(queued.len() as u64, "ingesting");
    let mut indexed = 0;
    let mut failed = Vec::new();
    let mut chunks = 0;
    let mut pending: Vec<String> = queued.clone();
    let mut seen: std::collections::HashSet<String> = queued.iter().cloned().collect();
    let crawling = args.crawl_depth.is_some() || args.crawl_pages.is_some();
    while !pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if crawling {
            // The pages a crawl finds are added by the jobs of the pages that link to them.
            for doc in state.knowledge.list_documents(&args.kb, 0, 1000).await? {
                let waiting = matches!(doc.status.as_str(), "queued" | "processing");
                if waiting && doc.source_url.is_some() && seen.insert(doc.id.clone()) {
                    pending.push(doc.id);
                    bar.inc_length(1);
                }
            }
        }
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
