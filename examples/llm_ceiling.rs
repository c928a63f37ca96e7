//! The raw ceiling for zhiku's chat figures: the same GGUF, chat template, prompt and threads
//! through llama-cpp-2 with the plainest loop (one sequence, prompt in n_batch chunks, greedy).
//! `scripts/bench_chat.py` runs it beside the server and prints the ratio.
//!
//! cargo run --release --example llm_ceiling -- --model M.gguf --messages prompt.json \
//!     --threads 2 --max-tokens 128

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use zhiku::llm::ChatMessage;
use zhiku::llm::template;

#[derive(Parser)]
struct Args {
    /// GGUF file.
    #[arg(long)]
    model: PathBuf,
    /// JSON array of {role, content} messages.
    #[arg(long)]
    messages: PathBuf,
    #[arg(long, default_value_t = 2)]
    threads: i32,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    #[arg(long, default_value_t = 4096)]
    context_tokens: u32,
    #[arg(long, default_value_t = 512)]
    batch_tokens: u32,
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
    /// Sequences in the context (zhiku's llm.parallel), to see what they cost alone.
    #[arg(long, default_value_t = 1)]
    parallel: u32,
    /// Decode runs (the best is reported).
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let load_started = Instant::now();
    let params = LlamaModelParams::default().with_n_gpu_layers(args.gpu_layers);
    let model = LlamaModel::load_from_file(&backend, &args.model, &params)?;
    let load_ms = load_started.elapsed().as_secs_f64() * 1e3;
    let messages: Vec<ChatMessage> = serde_json::from_slice(&std::fs::read(&args.messages)?)?;
    let text = template::render(&model, model.chat_template(None).ok().as_ref(), &messages);
    let prompt = model.vocab().tokenize(text.as_bytes(), true, true);
    let context_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(args.context_tokens * args.parallel))
        .with_n_seq_max(args.parallel)
        .with_kv_unified(false)
        .with_n_batch(args.batch_tokens)
        .with_n_ubatch(args.batch_tokens)
        .with_n_threads(args.threads)
        .with_n_threads_batch(args.threads);
    let mut ctx = model.new_context(&backend, context_params)?;
    let mut best: Option<Run> = None;
    for _ in 0..args.runs.max(1) {
        ctx.clear_kv_cache();
        let run = decode(&mut ctx, &model, &prompt, &args)?;
        if best
            .as_ref()
            .is_none_or(|b| run.tokens_per_s > b.tokens_per_s)
        {
            best = Some(run);
        }
    }
    let Some(Run {
        first_token_ms,
        generated,
        tokens_per_s,
    }) = best
    else {
        return Err("no run".into());
    };
    let report = serde_json::json!({
        "model": args.model.file_stem().map(|s| s.to_string_lossy().into_owned()),
        "threads": args.threads,
        "load_ms": load_ms,
        "prompt_tokens": prompt.len(),
        "first_token_ms": first_token_ms,
        "prompt_tokens_per_s": prompt.len() as f64 / (first_token_ms / 1e3),
        "completion_tokens": generated,
        "tokens_per_s": tokens_per_s,
        "parallel": args.parallel,
    });
    println!("{report}");
    Ok(())
}

struct Run {
    first_token_ms: f64,
    generated: usize,
    tokens_per_s: f64,
}

/// Read the prompt and generate greedily on sequence 0.
fn decode(
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    model: &LlamaModel,
    prompt: &[llama_cpp_2::token::LlamaToken],
    args: &Args,
) -> Result<Run, Box<dyn std::error::Error>> {
    let mut batch = LlamaBatch::new(args.batch_tokens as usize, 1);
    let mut sampler = LlamaSampler::greedy();
    let started = Instant::now();
    for (chunk_index, chunk) in prompt.chunks(args.batch_tokens as usize).enumerate() {
        batch.clear();
        let base = chunk_index * args.batch_tokens as usize;
        for (i, &token) in chunk.iter().enumerate() {
            let position = base + i;
            batch.add(token, position as i32, &[0], position == prompt.len() - 1)?;
        }
        ctx.decode(&mut batch)?;
    }
    let mut token = sampler.sample(ctx, batch.n_tokens() - 1);
    let first_token_ms = started.elapsed().as_secs_f64() * 1e3;
    let generation_started = Instant::now();
    let mut generated = 1;
    let mut position = prompt.len();
    while generated < args.max_tokens && !model.vocab().is_eog(token) {
        batch.clear();
        batch.add(token, position as i32, &[0], true)?;
        ctx.decode(&mut batch)?;
        position += 1;
        token = sampler.sample(ctx, 0);
        generated += 1;
    }
    let generation_s = generation_started.elapsed().as_secs_f64();
    Ok(Run {
        first_token_ms,
        generated,
        tokens_per_s: (generated - 1) as f64 / generation_s,
    })
}
