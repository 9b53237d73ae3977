//! `/metrics` over plain HTTP on its own port (`--metrics-listen`): the engine's gRPC port
//! speaks only HTTP/2, and scrapers speak HTTP/1.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use proto::telemetry::exposition;
use tokio::net::TcpListener;

use super::EngineMetrics;

async fn render(State(m): State<Arc<EngineMetrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        m.render(),
    )
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<EngineMetrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
