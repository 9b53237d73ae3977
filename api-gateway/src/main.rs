//! `api-gateway`: serves the OpenAI-compatible API in front of a Journey engine. It connects
//! to the engine lazily, so it may start first, and drains in-flight requests on SIGINT or
//! SIGTERM.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use api_gateway::journey::Journey;
use api_gateway::metrics::GatewayMetrics;
use api_gateway::{AppState, DEFAULT_MAX_BODY_BYTES, Engine, app};
use clap::Parser;
use proto::conventions::{scope, service};
use proto::telemetry::sampling::JourneySampler;
use proto::telemetry::{Telemetry, TracingArgs};

/// Command line of the gateway.
#[derive(Debug, Parser)]
#[command(version, about = "Journey's OpenAI-compatible HTTP gateway")]
struct Cli {
    /// gRPC address of the engine.
    #[arg(long, env = "JOURNEY_ENGINE", default_value = "http://127.0.0.1:50051")]
    engine: String,
    /// Address to serve HTTP on.
    #[arg(long, env = "JOURNEY_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Served model id (default: the engine's model name).
    #[arg(long, env = "JOURNEY_MODEL_NAME")]
    model_name: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    #[command(flatten)]
    tracing: TracingArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let engine = Engine::connect_lazy(&cli.engine, cli.model_name)
        .with_context(|| format!("invalid engine address {}", cli.engine))?;
    let tracer = if cli.tracing.enable_journey_tracing {
        let dest = cli.tracing.destination();
        eprintln!("api-gateway: tracing to {dest:?}");
        let sampler = JourneySampler::new(cli.tracing.journey_tracing_sample_rate);
        Some(Telemetry::init(service::API_GATEWAY, &dest, sampler)?)
    } else {
        None
    };
    let journey = Journey::new(
        tracer.as_ref().map(|t| t.tracer(scope::API)),
        Arc::new(GatewayMetrics::new()),
    );
    let state = AppState {
        engine,
        max_body_bytes: cli.max_body_bytes,
        journey,
    };
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot bind {}", cli.listen))?;
    eprintln!("api-gateway: engine {}", cli.engine);
    // Tests and scripts read this line (stdout) to learn the bound port.
    println!("api-gateway listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // Requests still open when the drain ended were dropped: their journeys are ended.
    if let Some(t) = &tracer {
        t.shutdown();
    }
    eprintln!("api-gateway stopped");
    Ok(())
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
