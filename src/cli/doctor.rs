//! `zhiku doctor`: what this installation has — models and their sizes, the ONNX Runtime
//! library, threads, GPU offload, the data dir — and whether the model loads (with
//! `embedding.backend = "remote"`: whether its server embeds a test text).

use std::path::Path;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::print_json;
use crate::app::load_embedder;
use crate::config::Config;
use crate::error::Result;
use crate::lock::DataDirLock;

/// Arguments of `zhiku doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

fn describe(path: &Path) -> String {
    match size(path) {
        Some(n) => format!("{} ({:.1} MB)", path.display(), n as f64 / 1e6),
        None => format!("{} (MISSING)", path.display()),
    }
}

pub(super) async fn run(config: Config, args: DoctorArgs) -> Result<()> {
    let model_dir = config.embedding_model_dir();
    let files = [
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "config.json",
    ];
    let ort = config.ort_library();
    let started = Instant::now();
    let c = config.clone();
    let loaded = tokio::task::spawn_blocking(move || load_embedder(&c)).await?;
    let load_ms = started.elapsed().as_millis();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let llm_path = config.llm_model_path();
    let llm_started = Instant::now();
    let c = config.clone();
    let llm = tokio::task::spawn_blocking(move || crate::llm::load(&c)).await?;
    let llm_load_ms = llm_started.elapsed().as_millis();
    let llm_info = llm.info();
    let llm_error = (llm_info.backend == "unavailable")
        .then(|| llm.count_tokens(&[]).err().map(|e| e.to_string()))
        .flatten();
    let gpu_build = cfg!(feature = "cuda");
    let server_running = DataDirLock::try_acquire(&config.data_dir)?.is_none();
    let db = config.database_path();
    let database = crate::store::Store::describe(&config.database_url())
        .await
        .map_err(|e| e.to_string());
    let remote = config.remote_embedding();
    let report = json!({
        "embedding_backend": config.embedding.backend,
        "embedding_url": remote.as_ref().map(|r| r.url.clone()),
        "embedding_model_dir": model_dir.display().to_string(),
        "embedding_files": files.iter().map(|f| json!({"file": f, "bytes": size(&model_dir.join(f))})).collect::<Vec<_>>(),
        "ort_library": ort.display().to_string(),
        "ort_library_bytes": size(&ort),
        "embedding_loaded": loaded.as_ref().map(|e| json!({"id": e.info().id, "dims": e.info().dims, "load_ms": load_ms})).map_err(|e| e.to_string()),
        "cpu_threads": threads,
        "embedding_threads": if config.embedding.threads == 0 { threads } else { config.embedding.threads },
        "gpu_offload": "none: embeddings run on the CPU (ONNX Runtime CPU provider)",
        "chat_backend": config.llm.backend,
        "chat_model_file": llm_path.display().to_string(),
        "chat_model_bytes": size(&llm_path),
        "chat_model_loaded": match &llm_error {
            None => Ok(json!({"model": llm_info.model, "context_tokens": llm_info.context_tokens, "parallel": llm_info.parallel, "gpu_layers": llm_info.gpu_layers, "load_ms": llm_load_ms})),
            Some(e) => Err(e.clone()),
        },
        "chat_gpu_build": gpu_build,
        "data_dir": config.data_dir.display().to_string(),
        "database": database,
        "database_bytes": if config.uses_postgres() { json!(null) } else { json!(size(&db)) },
        "server_running": server_running,
    });
    if args.json {
        return print_json(&report);
    }
    match &remote {
        None => {
            println!("embedding        local");
            println!("embedding model  {}", model_dir.display());
            for f in files {
                println!("  {}", describe(&model_dir.join(f)));
            }
            println!("onnx runtime     {}", describe(&ort));
        }
        Some(r) => {
            println!("embedding        remote {} at {}", r.model, r.url);
            let tokenizer = model_dir.join("tokenizer.json");
            println!(
                "chunk sizes      {}",
                match size(&tokenizer) {
                    Some(_) => format!("counted by {}", tokenizer.display()),
                    None => format!("estimated from characters (no {})", tokenizer.display()),
                }
            );
        }
    }
    let loads = if remote.is_some() {
        "server answers  "
    } else {
        "model loads     "
    };
    match &loaded {
        Ok(e) => println!(
            "{loads} ok: {} ({} dims) in {load_ms} ms",
            e.info().id,
            e.info().dims
        ),
        Err(e) => println!("{loads} FAILED: {e}"),
    }
    println!(
        "threads          {threads} cores; embedding uses {}",
        report["embedding_threads"]
    );
    println!("gpu offload      none (embeddings run on the CPU)");
    match config.llm.backend {
        crate::config::LlmBackendKind::Local => {
            println!("chat model       {}", describe(&llm_path))
        }
        crate::config::LlmBackendKind::Remote => println!(
            "chat model       remote {} at {}",
            config.llm.remote_model, config.llm.remote_url
        ),
    }
    match &llm_error {
        None => println!(
            "chat model loads ok: {} ({} tokens × {} slots) in {llm_load_ms} ms",
            llm_info.model, llm_info.context_tokens, llm_info.parallel
        ),
        Some(e) => println!("chat model loads FAILED: {e}"),
    }
    println!(
        "chat gpu         {}",
        if gpu_build {
            format!(
                "built with cuda; llm.gpu_layers = {}",
                config.llm.gpu_layers
            )
        } else {
            "CPU only (build with --features cuda to offload to an NVIDIA GPU)".to_string()
        }
    );
    match &database {
        Ok(d) => println!("database         {d}"),
        Err(e) => println!("database         FAILED: {e}"),
    }
    if config.uses_postgres() {
        println!("data dir         {}", config.data_dir.display());
    } else {
        println!(
            "data dir         {} (database {})",
            config.data_dir.display(),
            describe(&db)
        );
    }
    println!(
        "server           {}",
        if server_running {
            "running on this data dir"
        } else {
            "not running"
        }
    );
    loaded.map(|_| ())
}
