//! `engine-core serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::sync::Arc;

use engine_core::engine::{ChatSpecials, EngineConfig, EngineTelemetry, spawn_engine_with};
#[cfg(feature = "journey")]
use engine_core::journey::StepTracingConfig;
use engine_core::journey::{CoreTracer, StepTracer};
use engine_core::kv_cache::KvBudget;
use engine_core::metrics::{self, EngineMetrics};
use engine_core::model::Model;
use engine_core::server;
use kernels::{Backend, CpuBackend, KvDtype};
#[cfg(feature = "journey")]
use proto::conventions::scope;
use proto::conventions::service;
use proto::telemetry::{Telemetry, TracingArgs, parse_rate};

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
    /// The model name reported to clients (GetModelInfo, the gateway's /v1/models); default:
    /// the file name without `.gguf` (vLLM's `--served-model-name`).
    #[arg(long, env = "JOURNEY_SERVED_MODEL_NAME")]
    served_model_name: Option<String>,
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, env = "JOURNEY_ENGINE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Seconds SIGTERM lets in-flight requests finish before aborting them (reason
    /// `shutdown`); health says NOT_SERVING from the signal on.
    #[arg(long, env = "JOURNEY_SHUTDOWN_GRACE_PERIOD", default_value_t = 30.0,
          value_parser = proto::telemetry::parse_seconds)]
    shutdown_grace_period: f64,
    /// Who goes first: `fair` shares running slots equally between tenants (the gateway's API
    /// key tenants; with one tenant it is `fcfs`), `fcfs` is arrival order, `priority` runs
    /// lower `priority` values first. See docs/scheduling.md.
    #[arg(long, env = "JOURNEY_SCHEDULING_POLICY", default_value = "fair")]
    scheduling_policy: engine_core::scheduler::SchedulingPolicy,
    /// Tokenize special-token text that users type inside chat messages (`<|im_start|>`, ...)
    /// as control tokens, as llama.cpp and vLLM do. Off by default: such text stays text, so a
    /// message cannot open a turn of another role.
    #[arg(long, env = "JOURNEY_PARSE_CHAT_SPECIAL_TOKENS")]
    parse_chat_special_tokens: bool,
    /// Test-only fault hook: this scheduler step panics.
    #[arg(long, hide = true)]
    fault_panic_at_step: Option<u64>,
    /// A shared secret every Engine RPC must carry (`authorization: Bearer <token>`; the
    /// gateway's --engine-auth-token). Health and reflection stay open.
    #[arg(long, env = "JOURNEY_ENGINE_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM; with --tls-key). The gateway
    /// then reaches the engine at an `https://` URL with --engine-tls-ca.
    #[arg(long, env = "JOURNEY_ENGINE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "JOURNEY_ENGINE_TLS_KEY")]
    tls_key: Option<PathBuf>,
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
    /// How the KV cache stores keys and values: `f32` (exact) or `f16` (llama.cpp's default
    /// cache type: half the memory, so twice the blocks in --kv-cache-memory-mb, and half the
    /// attention traffic; each key and value rounded to nearest; CPU only).
    #[arg(long, env = "JOURNEY_KV_CACHE_DTYPE", default_value = "f32")]
    kv_cache_dtype: KvDtype,
    /// Most tokens one scheduler step runs (prefill chunks + decode tokens).
    #[arg(long, default_value_t = 512)]
    max_num_batched_tokens: usize,
    /// Most sequences running at once.
    #[arg(long, default_value_t = 64)]
    max_num_seqs: usize,
    /// Most requests waiting for admission; more are refused (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = 4096)]
    max_waiting: usize,
    /// Share the KV blocks of common prompt prefixes between requests (vLLM's automatic
    /// prefix caching); `false` computes every prompt in full.
    #[arg(long, env = "JOURNEY_ENABLE_PREFIX_CACHING", default_value_t = true,
          action = clap::ArgAction::Set)]
    enable_prefix_caching: bool,
    /// Address of the Prometheus `/metrics` endpoint (HTTP/1; port 0 picks a free one).
    #[arg(
        long,
        env = "JOURNEY_ENGINE_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    metrics_listen: SocketAddr,
    #[command(flatten)]
    tracing: TracingArgs,
    #[command(flatten)]
    steps: StepTracingArgs,
}

/// Step-tracing flags (`JOURNEY-SPEC.md` §5).
#[derive(Args, Debug, Clone, PartialEq)]
pub struct StepTracingArgs {
    /// Emit scheduler step spans (scheduler_steps windows, scheduler_step spans).
    #[arg(long, env = "JOURNEY_STEP_TRACING")]
    step_tracing_enabled: bool,
    /// Fraction of scheduler steps traced (a hash of the step id).
    #[arg(long, env = "JOURNEY_STEP_TRACING_SAMPLE_RATE", default_value = "0.01", value_parser = parse_rate)]
    step_tracing_sample_rate: f64,
    /// Fraction of traced steps that also get a snapshot of every running request.
    #[arg(long, env = "JOURNEY_STEP_TRACING_RICH_SUBSAMPLE_RATE", default_value = "0.001", value_parser = parse_rate)]
    step_tracing_rich_subsample_rate: f64,
    /// Steps per scheduler_steps window span.
    #[arg(long, env = "JOURNEY_STEP_TRACING_CLOSURE_INTERVAL", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(10..=10000))]
    step_tracing_closure_interval: u64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.block_size == 0 || args.max_num_batched_tokens == 0 || args.max_num_seqs == 0 {
        bail!("--block-size, --max-num-batched-tokens and --max-num-seqs must be positive");
    }
    match args.device {
        Device::Cpu => {
            let backend = CpuBackend::new().with_kv_dtype(args.kv_cache_dtype);
            serve_on(args, backend)
        }
        Device::Cuda if args.kv_cache_dtype == KvDtype::F16 => {
            bail!("--kv-cache-dtype f16: the CUDA kernels store the KV cache as f32 only")
        }
        Device::Cuda => serve_on_cuda(args),
    }
}

#[cfg(feature = "cuda")]
fn serve_on_cuda(args: ServeArgs) -> anyhow::Result<()> {
    let backend = kernels::cuda::CudaBackend::new(0).context("--device cuda")?;
    let (free, total) = backend.memory();
    tracing::info!(
        device = backend.device(),
        free_mib = free >> 20,
        total_mib = total >> 20,
        "CUDA device"
    );
    serve_on(args, backend)
}

#[cfg(not(feature = "cuda"))]
fn serve_on_cuda(_args: ServeArgs) -> anyhow::Result<()> {
    bail!(
        "--device cuda: this engine-core was built without CUDA support \
         (rebuild with `cargo build --release -p engine-core --features cuda`)"
    )
}

/// `--served-model-name`, else the model file's name without its `.gguf`: what users call
/// the file, where `general.name` is often generic ("Gemma 3 270m" for every quant).
fn served_name(args: &ServeArgs) -> String {
    args.served_model_name.clone().unwrap_or_else(|| {
        let file = args.model.file_name().unwrap_or_default().to_string_lossy();
        file.strip_suffix(".gguf").unwrap_or(&file).to_owned()
    })
}

fn serve_on<B: Backend + 'static>(args: ServeArgs, backend: B) -> anyhow::Result<()> {
    let (device, kv_dtype) = (backend.device_name(), backend.kv_dtype().name());
    let model = Model::load(&args.model, backend)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let (full_block_bytes, window_block_bytes) = model.llama.kv_block_bytes(args.block_size);
    let budget = KvBudget {
        full_block_bytes,
        window_block_bytes,
        block_size: args.block_size,
        window: model.llama.kv_window(),
        max_num_seqs: args.max_num_seqs,
        max_num_batched_tokens: args.max_num_batched_tokens,
    };
    let (kv_blocks, window_kv_blocks) = match args.kv_cache_blocks {
        Some(n) => budget.with_full_blocks(n),
        None => budget.split(args.kv_cache_memory_mb * (1 << 20)),
    };
    if kv_blocks == 0 || (budget.window.is_some() && window_kv_blocks < 2) {
        bail!("the KV cache holds no block: raise --kv-cache-blocks or --kv-cache-memory-mb");
    }
    let cfg = EngineConfig {
        block_size: args.block_size,
        kv_blocks,
        max_num_batched_tokens: args.max_num_batched_tokens,
        max_num_seqs: args.max_num_seqs,
        max_waiting: args.max_waiting,
        enable_prefix_caching: args.enable_prefix_caching,
        served_model_name: Some(served_name(&args)),
        window_kv_blocks: budget.window.map(|_| window_kv_blocks),
        fault_panic_at_step: args.fault_panic_at_step,
        scheduling_policy: args.scheduling_policy,
        chat_specials: if args.parse_chat_special_tokens {
            ChatSpecials::Parse
        } else {
            ChatSpecials::Literal
        },
    };
    let window_note = match budget.window {
        Some(w) => format!(
            " (+ {window_kv_blocks} blocks for the {}-key sliding-window layers; prefix caching off)",
            w
        ),
        None => String::new(),
    };
    tracing::info!(
        "{} ({} {} layers, context {}), KV {} blocks x {} tokens{window_note} in {}, device {device}",
        args.model.display(),
        model.llama.config().n_layers,
        model.llama.config().arch,
        model.llama.config().context_length,
        kv_blocks,
        args.block_size,
        kv_dtype
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let _entered = runtime.enter();
    let tracing_on = args.tracing.enable_journey_tracing || args.steps.step_tracing_enabled;
    let telemetry = if tracing_on {
        let dest = args.tracing.destination();
        tracing::info!("tracing to {dest:?}");
        Some(Telemetry::init_always_on(service::ENGINE_CORE, &dest)?)
    } else {
        None
    };
    let (core, steps) = tracers(&args, telemetry.as_ref(), device)?;
    let core = core.map(|t| t.with_model(&served_name(&args), model.llama.config().arch.name()));
    let metrics = Arc::new(EngineMetrics::new());
    let handle = spawn_engine_with(
        model,
        cfg,
        EngineTelemetry {
            core: core.clone(),
            steps,
            metrics: Arc::clone(&metrics),
        },
    )?;
    let served = runtime.block_on(async {
        let metrics_listener = server::bind(args.metrics_listen).await?;
        println!(
            "engine-core metrics on http://{}/metrics",
            metrics_listener.local_addr()?
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let metrics_task = tokio::spawn(metrics::serve(metrics_listener, metrics, {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.changed().await;
            }
        }));
        let listener = server::bind(args.listen).await?;
        let tls = proto::auth::server_tls(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
        let result = server::serve(
            listener,
            handle.clone(),
            core,
            server::Access {
                token: args
                    .auth_token
                    .as_deref()
                    .map(proto::auth::RequireToken::new),
                tls,
            },
            |addr| println!("engine-core listening on {addr}"),
            shutdown_signal(),
            std::time::Duration::from_secs_f64(args.shutdown_grace_period),
        )
        .await;
        let _ = stop_tx.send(true);
        let _ = metrics_task.await;
        result
    });
    // Live requests end (their spans with reason `shutdown`) before the exporter flushes.
    handle.shutdown();
    if let Some(t) = &telemetry {
        t.shutdown();
    }
    served
}

/// The request and step tracers the flags ask for.
#[cfg(feature = "journey")]
fn tracers(
    args: &ServeArgs,
    telemetry: Option<&Telemetry>,
    device: &str,
) -> anyhow::Result<(Option<CoreTracer>, Option<StepTracer>)> {
    let core = telemetry
        .filter(|_| args.tracing.enable_journey_tracing)
        .map(|t| {
            CoreTracer::new(
                t.tracer(scope::SCHEDULER),
                args.tracing.journey_tracing_sample_rate,
                args.tracing.sample_key(),
            )
        });
    let steps = telemetry
        .filter(|_| args.steps.step_tracing_enabled)
        .map(|t| {
            StepTracer::new(
                t.tracer(scope::SCHEDULER_STEP),
                StepTracingConfig {
                    sample_rate: args.steps.step_tracing_sample_rate,
                    rich_subsample_rate: args.steps.step_tracing_rich_subsample_rate,
                    closure_interval: args.steps.step_tracing_closure_interval,
                    kv_device: device.into(),
                },
            )
        });
    Ok((core, steps))
}

/// This build has no tracing code: the flags that ask for it are refused.
#[cfg(not(feature = "journey"))]
fn tracers(
    _args: &ServeArgs,
    telemetry: Option<&Telemetry>,
    _device: &str,
) -> anyhow::Result<(Option<CoreTracer>, Option<StepTracer>)> {
    if telemetry.is_some() {
        bail!("this engine-core was built without the `journey` feature: no tracing");
    }
    Ok((None, None))
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
