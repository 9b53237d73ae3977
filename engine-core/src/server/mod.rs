//! The engine's gRPC face: `journey.engine.v1.Engine` over tonic, plus `grpc.health.v1`
//! (NOT_SERVING until the model is loaded and warmed up) and server reflection (v1 and
//! v1alpha, so grpcurl works with no proto files).
//!
//! Handlers only translate: a `Generate` call becomes one [`EngineRequest`] on the step thread,
//! and the request's events stream back as `GenerateResponse`s. Dropping the response stream
//! drops the event receiver, which the step loop notices and turns into an abort.
//!
//! [`EngineRequest`]: crate::engine::EngineRequest

mod convert;
mod service;

use std::net::SocketAddr;

use proto::auth::RequireToken;
use proto::engine::engine_server::EngineServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Interceptor;

use crate::engine::EngineHandle;
use crate::journey::CoreTracer;
pub use service::EngineService;

/// Who may call the engine, and over what.
#[derive(Default)]
pub struct Access {
    /// The shared secret every Engine RPC must carry.
    pub token: Option<RequireToken>,
    /// TLS on every connection (certificate and key).
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

/// Serves the engine on `listener` until `shutdown` resolves (then drains for up to `grace`)
/// or the engine's step thread stops (an error then); `on_ready` runs once the model is warmed
/// up and health says SERVING. Every Engine RPC needs `access`'s token when one is set;
/// connections are TLS when it has a TLS identity.
pub async fn serve(
    listener: TcpListener,
    handle: EngineHandle,
    journey: Option<CoreTracer>,
    Access { token, tls }: Access,
    on_ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_not_serving::<EngineServer<EngineService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    // Warm up through the real path before declaring SERVING.
    let handle_for_drain = handle.clone();
    let failed = handle.clone();
    let warm = handle.clone();
    tokio::task::spawn_blocking(move || service::warm_up(&warm)).await??;
    reporter.set_serving::<EngineServer<EngineService>>().await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    on_ready(listener.local_addr()?);

    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(EngineServer::with_interceptor(
            EngineService::new(handle, journey),
            // Health and reflection stay open (probes, grpcurl's schema); every Engine RPC
            // needs the token when one is set.
            move |req: tonic::Request<()>| match &token {
                Some(t) => t.clone().call(req),
                None => Ok(req),
            },
        ))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            drain(handle_for_drain, reporter, shutdown, grace),
        )
        .await?;
    if failed.failed() {
        anyhow::bail!("the engine's step thread failed; it served nothing more");
    }
    Ok(())
}

/// Resolves when the server must stop taking requests: on `shutdown` (SIGTERM, SIGINT), or
/// when the engine's step thread has stopped (a failed step). Health turns NOT_SERVING at
/// once; requests in flight get `grace` to finish, then whatever is left is aborted (reason
/// `shutdown`), which ends their streams and so the server's drain.
async fn drain(
    handle: EngineHandle,
    reporter: tonic_health::server::HealthReporter,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) {
    tokio::select! {
        () = shutdown => tracing::info!("stopping: draining for up to {grace:?}"),
        () = handle.stopped() => tracing::error!("the engine stopped: refusing work"),
    }
    reporter
        .set_not_serving::<EngineServer<EngineService>>()
        .await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        // Blocking: it joins the step thread.
        let _ = tokio::task::spawn_blocking(move || handle.shutdown()).await;
    });
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    Ok(TcpListener::bind(addr).await?)
}
