//! `zhiku jobs`: the ingestion queue.

use clap::Args;

use super::{print_json, reader_state};
use crate::config::Config;
use crate::error::Result;
use crate::http::jobs::JobView;
use crate::services::jobs::NamedJob;

/// Arguments of `zhiku jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// How many (newest first).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(config: Config, args: JobsArgs) -> Result<()> {
    let (state, _lock) = reader_state(config).await?;
    if args.json {
        let jobs = state.jobs.list(None, args.limit).await?;
        // The same JSON as `GET /api/jobs`.
        let jobs: Vec<JobView> = jobs.into_iter().map(JobView::from).collect();
        return print_json(&jobs);
    }
    let jobs = state.jobs.list_named(args.limit).await?;
    if jobs.is_empty() {
        println!("no jobs");
    }
    for NamedJob {
        job: j,
        document_name,
    } in jobs
    {
        let name = document_name.unwrap_or_else(|| "(deleted)".into());
        let error = j
            .error_message
            .map(|e| format!("  {e}"))
            .unwrap_or_default();
        println!(
            "{:>6}  {:<10} {:>3.0}%  tries {}  {}{}",
            j.job_id,
            format!("{:?}", j.status).to_lowercase(),
            j.progress * 100.0,
            j.attempts,
            name,
            error
        );
    }
    Ok(())
}
