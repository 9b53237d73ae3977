//! `engine-core health`: one `grpc.health.v1` check of a running engine, for container health
//! checks (what `grpc_health_probe` does, without another binary in the image).

use std::time::Duration;

use anyhow::Context;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Arguments of `health`.
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// The engine's gRPC URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
    /// Trust this CA (PEM) for an engine served over TLS (`https://` addresses).
    #[arg(long, env = "JOURNEY_ENGINE_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
}

/// Exits with success when the engine reports SERVING.
pub fn run(args: HealthArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let timeout = Duration::from_secs(args.timeout);
        let check = async {
            let mut endpoint = tonic::transport::Endpoint::from_shared(args.addr.clone())?
                .connect_timeout(timeout);
            if let Some(tls) = proto::auth::client_tls(args.tls_ca.as_deref())? {
                endpoint = endpoint.tls_config(tls)?;
            }
            let channel = endpoint
                .connect()
                .await
                .with_context(|| format!("cannot connect to {}", args.addr))?;
            let reply = HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .map_err(|s| anyhow::anyhow!("health check failed: {}", s.message()))?;
            anyhow::Ok(reply.into_inner().status())
        };
        let status = tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {} within {timeout:?}", args.addr))??;
        anyhow::ensure!(
            status == ServingStatus::Serving,
            "{} is {}",
            args.addr,
            status.as_str_name()
        );
        println!("{} is SERVING", args.addr);
        Ok(())
    })
}
