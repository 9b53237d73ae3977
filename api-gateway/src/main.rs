//! `api-gateway`: serves the OpenAI-compatible API in front of one or more Journey engines.
//! It connects to them lazily, so it may start first, balances requests over the ones that
//! are up, and drains in-flight requests on SIGINT or SIGTERM.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use api_gateway::admission::{Admission, DEFAULT_MAX_CONCURRENT_REQUESTS};
use api_gateway::auth::ApiKeys;
use api_gateway::engines::{Backoff, EngineTarget, HealthPolicy};
use api_gateway::journey::{Journey, JourneyStore, StoreConfig};
use api_gateway::metrics::GatewayMetrics;
use api_gateway::server::Timeouts;
use api_gateway::{AppState, DEFAULT_MAX_BODY_BYTES, Engines, app};
use clap::Parser;
use proto::conventions::{scope, service};
use proto::logging::LogArgs;
use proto::telemetry::sampling::JourneySampler;
use proto::telemetry::{Telemetry, TracingArgs};

/// Command line of the gateway.
#[derive(Debug, Parser)]
#[command(version, about = "Journey's OpenAI-compatible HTTP gateway")]
struct Cli {
    /// gRPC address of an engine: `http://host:port`, or `dns:///name:port` for every
    /// address the name resolves to (re-resolved on each health check). Repeat the flag or
    /// give a comma list for several engines.
    #[arg(
        long,
        env = "JOURNEY_ENGINE",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    engine: Vec<EngineTarget>,
    /// Milliseconds between health checks of the engines that are up.
    #[arg(long, env = "JOURNEY_ENGINE_HEALTH_INTERVAL_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    engine_health_interval_ms: u64,
    /// Longest wait, in milliseconds, between probes of an engine that is down (the wait
    /// starts at 250 ms and doubles).
    #[arg(long, env = "JOURNEY_ENGINE_BACKOFF_MAX_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(250..=600_000))]
    engine_backoff_max_ms: u64,
    /// Address to serve HTTP on.
    #[arg(long, env = "JOURNEY_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Served model id (default: the engine's, which is its model file's name); vLLM's flag
    /// name, `--model-name` kept as an alias.
    #[arg(
        long = "served-model-name",
        alias = "model-name",
        env = "JOURNEY_MODEL_NAME"
    )]
    model_name: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    #[command(flatten)]
    tracing: TracingArgs,
    /// Requests the journey store keeps for `/journeys` (the last N, plus the slowest of each
    /// minute and errors besides); 0 turns the store off.
    #[arg(long, env = "JOURNEY_STORE_REQUESTS", default_value_t = 1000)]
    journey_store_requests: usize,
    /// Bytes the journey store may hold.
    #[arg(long, env = "JOURNEY_STORE_BYTES", default_value_t = 64 << 20)]
    journey_store_bytes: usize,
    /// Slowest requests the store keeps per minute, by TTFT and by end-to-end time each.
    #[arg(long, default_value_t = 5)]
    journey_slowest_per_minute: usize,
    /// Link from a journey in `/journeys` to its trace, with `{trace_id}` in it (e.g.
    /// `http://localhost:3000/explore?left={"queries":[{"query":"{trace_id}"}]}`).
    #[arg(long, env = "JOURNEY_TRACE_LINK_TEMPLATE")]
    trace_link_template: Option<String>,
    /// An API key clients must send (`Authorization: Bearer <key>`); repeatable, or a comma
    /// list. Each key is its own tenant. Without any key the gateway is open.
    #[arg(
        long = "api-key",
        env = "JOURNEY_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// A file of API keys: one per line, optionally followed by whitespace and a tenant name
    /// (keys of one tenant share its fairness and metrics); `#` starts a comment.
    #[arg(long, env = "JOURNEY_API_KEY_FILE")]
    api_key_file: Option<std::path::PathBuf>,
    /// With API keys: `/metrics` and `/journeys` need a key too (they show request sizes and
    /// timings of every tenant).
    #[arg(long, env = "JOURNEY_METRICS_REQUIRE_KEY")]
    metrics_require_key: bool,
    /// Seconds a generation may take before the engine aborts it (reason `timeout`; sent to the
    /// engine as the call's gRPC deadline); 0 for none.
    #[arg(long, env = "JOURNEY_REQUEST_TIMEOUT", default_value_t = 600.0,
          value_parser = proto::telemetry::parse_seconds)]
    request_timeout: f64,
    /// Most requests on /v1/chat/completions and /v1/completions in flight at once (a stream
    /// counts until its last chunk is sent or its client leaves); more get 429 with
    /// `Retry-After: 1`.
    #[arg(long, env = "JOURNEY_MAX_CONCURRENT_REQUESTS",
          default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_concurrent_requests: usize,
    /// Most of those one API-key tenant may hold (default: three quarters of
    /// --max-concurrent-requests), so one key's flood leaves room for the others.
    #[arg(long, env = "JOURNEY_MAX_CONCURRENT_REQUESTS_PER_TENANT",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_concurrent_requests_per_tenant: Option<usize>,
    /// Seconds a connection has to send complete request headers (from its first byte, and
    /// for its first byte); slower, or idle that long between requests, it is closed; 0 for
    /// none.
    #[arg(long, env = "JOURNEY_HEADER_READ_TIMEOUT", default_value_t = 10.0,
          value_parser = proto::telemetry::parse_seconds)]
    header_read_timeout: f64,
    /// Seconds a request body may take to arrive once the headers are in; slower gets 408;
    /// 0 for none.
    #[arg(long, env = "JOURNEY_BODY_READ_TIMEOUT", default_value_t = 30.0,
          value_parser = proto::telemetry::parse_seconds)]
    body_read_timeout: f64,
    /// Seconds a streamed chunk may wait for the client to read; a client that stops reading
    /// longer has its request aborted (reason `timeout`) and its connection closed; 0 for none.
    #[arg(long, env = "JOURNEY_STREAM_WRITE_TIMEOUT", default_value_t = 30.0,
          value_parser = proto::telemetry::parse_seconds)]
    stream_write_timeout: f64,
    /// The engines' shared secret (their --auth-token), sent on every call.
    #[arg(long, env = "JOURNEY_ENGINE_AUTH_TOKEN", hide_env_values = true)]
    engine_auth_token: Option<String>,
    /// Trust this CA (PEM) for engines served over TLS (their --tls-cert); engine URLs are
    /// then `https://`.
    #[arg(long, env = "JOURNEY_ENGINE_TLS_CA")]
    engine_tls_ca: Option<std::path::PathBuf>,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    proto::logging::init(&cli.log)?;
    let policy = HealthPolicy {
        interval: Duration::from_millis(cli.engine_health_interval_ms),
        backoff: Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_millis(cli.engine_backoff_max_ms),
        },
    };
    let metrics = Arc::new(GatewayMetrics::new());
    let in_flight = metrics.in_flight();
    let tracer = if cli.tracing.enable_journey_tracing {
        let dest = cli.tracing.destination();
        tracing::info!("tracing to {dest:?}");
        if cli.tracing.configured_sample_key().is_none() {
            tracing::info!(
                "no --trace-sample-key: sampling under a random key of this process \
                 (replicas and direct engine callers decide apart)"
            );
        }
        let sampler = JourneySampler::new(
            cli.tracing.journey_tracing_sample_rate,
            cli.tracing.sample_key(),
        );
        Some(Telemetry::init(service::API_GATEWAY, &dest, sampler)?)
    } else {
        None
    };
    let mut journey = Journey::new(
        tracer.as_ref().map(|t| t.tracer(scope::API)),
        metrics.clone(),
    );
    if cli.journey_store_requests > 0 {
        journey = journey.with_store(JourneyStore::new(StoreConfig {
            max_requests: cli.journey_store_requests,
            max_bytes: cli.journey_store_bytes,
            slowest_per_minute: cli.journey_slowest_per_minute,
        }));
    }
    tracing::info!("engines {:?}", cli.engine);
    let api_keys = ApiKeys::load(
        &cli.api_keys,
        cli.api_key_file.as_deref(),
        cli.metrics_require_key,
    )?;
    match &api_keys {
        Some(k) => tracing::info!("API keys required ({} tenants)", k.num_tenants()),
        None => tracing::warn!("no API key set: anyone who reaches this gateway can use it"),
    }
    // Tenants come from keys: without any, this limit could never apply.
    anyhow::ensure!(
        api_keys.is_some() || cli.max_concurrent_requests_per_tenant.is_none(),
        "--max-concurrent-requests-per-tenant needs tenants: set --api-key or --api-key-file"
    );
    let access = proto::auth::EngineAccess {
        token: proto::auth::SendToken::new(cli.engine_auth_token.as_deref())?,
        tls: proto::auth::client_tls(cli.engine_tls_ca.as_deref())?,
    };
    let call_timeout = seconds(cli.request_timeout);
    let timeouts = Timeouts {
        header_read: seconds(cli.header_read_timeout),
        body_read: seconds(cli.body_read_timeout),
        stream_write: seconds(cli.stream_write_timeout),
    };
    let engines = Engines::new(
        cli.engine,
        cli.model_name,
        policy,
        metrics,
        access,
        call_timeout,
    )
    .await
    .context("setting up the engine pool")?;
    let state = AppState {
        engines,
        max_body_bytes: cli.max_body_bytes,
        journey,
        trace_link_template: cli.trace_link_template,
        api_keys,
        admission: Admission::new(
            cli.max_concurrent_requests,
            cli.max_concurrent_requests_per_tenant,
            in_flight,
        ),
        timeouts,
    };
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot bind {}", cli.listen))?;
    // Tests and scripts read this line (stdout) to learn the bound port.
    println!("api-gateway listening on http://{}", listener.local_addr()?);
    api_gateway::server::serve(
        listener,
        app(state),
        timeouts.header_read,
        shutdown_signal(),
    )
    .await;
    // Requests still open when the drain ended were dropped: their journeys are ended.
    if let Some(t) = &tracer {
        t.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}

/// A duration flag's value: `None` for 0 (no limit). Past a century counts as a century, so
/// no deadline computed from it can overflow a clock.
fn seconds(flag: f64) -> Option<Duration> {
    const CENTURY: f64 = 100.0 * 365.25 * 24.0 * 3600.0;
    (flag > 0.0).then(|| Duration::from_secs_f64(flag.min(CENTURY)))
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
