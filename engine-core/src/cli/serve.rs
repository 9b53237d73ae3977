//! `engine-core serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use engine_core::engine::{EngineConfig, spawn_engine};
use engine_core::model::Model;
use engine_core::server;
use kernels::CpuBackend;

/// Compute device.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Device {
    /// The CPU backend (default).
    Cpu,
    /// NVIDIA GPUs through cudarc (needs a build with the `cuda` feature).
    Cuda,
}

/// Arguments of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// GGUF model file.
    #[arg(long, env = "JOURNEY_MODEL")]
    model: PathBuf,
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, env = "JOURNEY_ENGINE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// Token slots per KV block.
    #[arg(long, default_value_t = 16)]
    block_size: usize,
    /// KV blocks in the pool (default: as many as --kv-cache-memory-mb holds).
    #[arg(long)]
    kv_cache_blocks: Option<usize>,
    /// KV pool budget in MiB, used when --kv-cache-blocks is not given.
    #[arg(long, default_value_t = 1024)]
    kv_cache_memory_mb: usize,
    /// Most tokens one scheduler step runs (prefill chunks + decode tokens).
    #[arg(long, default_value_t = 512)]
    max_num_batched_tokens: usize,
    /// Most sequences running at once.
    #[arg(long, default_value_t = 64)]
    max_num_seqs: usize,
    /// Most requests waiting for admission; more are refused (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = 4096)]
    max_waiting: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if let Device::Cuda = args.device {
        bail!("--device cuda: this build has no CUDA backend (build with the `cuda` feature)");
    }
    if args.block_size == 0 || args.max_num_batched_tokens == 0 || args.max_num_seqs == 0 {
        bail!("--block-size, --max-num-batched-tokens and --max-num-seqs must be positive");
    }
    let model = Model::load(&args.model, CpuBackend::new())
        .with_context(|| format!("loading {}", args.model.display()))?;
    let per_block = model.llama.kv_pool_config(1, args.block_size).bytes_f32();
    let kv_blocks = args
        .kv_cache_blocks
        .unwrap_or(args.kv_cache_memory_mb * (1 << 20) / per_block);
    if kv_blocks == 0 {
        bail!("the KV cache holds no block: raise --kv-cache-blocks or --kv-cache-memory-mb");
    }
    let cfg = EngineConfig {
        block_size: args.block_size,
        kv_blocks,
        max_num_batched_tokens: args.max_num_batched_tokens,
        max_num_seqs: args.max_num_seqs,
        max_waiting: args.max_waiting,
    };
    eprintln!(
        "engine-core: {} ({} layers, context {}), KV {} blocks x {} tokens, device cpu",
        args.model.display(),
        model.llama.config().n_layers,
        model.llama.config().context_length,
        kv_blocks,
        args.block_size
    );
    let handle = spawn_engine(model, cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = server::bind(args.listen).await?;
        server::serve(
            listener,
            handle.clone(),
            |addr| println!("engine-core listening on {addr}"),
            shutdown_signal(),
        )
        .await
    })?;
    handle.shutdown();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
