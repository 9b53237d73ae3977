//! `engine-core generate`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use engine_core::engine::EnginePrompt;
use engine_core::generate::{GenerateOptions, generate};
use engine_core::model::Model;
use engine_core::sampling::SamplingParams;
use kernels::{CpuBackend, KvDtype};

/// Arguments of `generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// GGUF model file.
    #[arg(long, env = "JOURNEY_MODEL")]
    model: PathBuf,
    /// Prompt text.
    #[arg(long, conflicts_with = "prompt_token_ids")]
    prompt: Option<String>,
    /// Prompt as comma-separated token ids.
    #[arg(long, value_delimiter = ',')]
    prompt_token_ids: Option<Vec<u32>>,
    /// Wrap the prompt as one user message through the model's chat template.
    #[arg(long, requires = "prompt")]
    chat: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: u32,
    /// Top-p (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// RNG seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop sequence (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Top-N logprobs per generated token.
    #[arg(long)]
    logprobs: Option<u32>,
    /// Top-N logprobs per prompt token.
    #[arg(long)]
    prompt_logprobs: Option<u32>,
    /// Prefill in chunks of this many tokens.
    #[arg(long)]
    prefill_chunk: Option<usize>,
    /// KV block size.
    #[arg(long, default_value_t = 16)]
    block_size: usize,
    /// How the KV cache stores keys and values: `f32` (exact) or `f16` (llama.cpp's default).
    #[arg(long, default_value = "f32")]
    kv_cache_dtype: KvDtype,
    /// Print one JSON object instead of the text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let prompt = match (&args.prompt, &args.prompt_token_ids) {
        (Some(p), _) if args.chat => EnginePrompt::user(p.clone()),
        (Some(p), _) => EnginePrompt::Text(p.clone()),
        (None, Some(ids)) => EnginePrompt::TokenIds(ids.clone()),
        (None, None) => bail!("give --prompt or --prompt-token-ids"),
    };
    if args.block_size == 0 {
        bail!("--block-size must be positive");
    }
    let model = Model::load(
        &args.model,
        CpuBackend::new().with_kv_dtype(args.kv_cache_dtype),
    )
    .with_context(|| format!("loading {}", args.model.display()))?;
    let params = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        seed: args.seed,
        max_tokens: args.max_tokens,
        stop: args.stop,
        logprobs: args.logprobs,
        prompt_logprobs: args.prompt_logprobs,
        ..SamplingParams::default()
    };
    let opts = GenerateOptions {
        block_size: args.block_size,
        prefill_chunk: args.prefill_chunk,
    };
    let out = generate(&model, &prompt, &params, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{}", out.text);
    }
    Ok(())
}
