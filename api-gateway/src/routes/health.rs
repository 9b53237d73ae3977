//! `GET /health`: 200 while the engine's `grpc.health.v1` check says SERVING, else 503 with
//! an OpenAI-shaped error.

use axum::extract::State;
use http::StatusCode;

use crate::AppState;
use crate::error::ApiResult;

/// Probes the engine's health service.
pub async fn health(State(state): State<AppState>) -> ApiResult<StatusCode> {
    state.engines.health().await?;
    Ok(StatusCode::OK)
}
