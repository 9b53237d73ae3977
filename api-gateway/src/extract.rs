//! [`ApiJson`]: axum's `Json` extractor with OpenAI-shaped rejections. The body is read
//! under the router's `DefaultBodyLimit` (over it: 413) and within `--body-read-timeout` of
//! the handler's start (a body that stalls: 408, so a slow sender cannot hold a connection
//! and an admission place for long), then parsed; malformed JSON and wrong field types are
//! 400s whose message is serde's, never axum's plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A JSON request body deserialized into `T`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // Only JSON: a form or text/plain POST is what a cross-site page can send without a
        // preflight, so it is refused before its body is read.
        let json = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let read = Bytes::from_request(req, state);
        let read = match state.timeouts.body_read {
            Some(limit) => tokio::time::timeout(limit, read).await.map_err(|_| {
                ApiError::ClientTimeout(format!(
                    "The request body did not arrive within {} s.",
                    limit.as_secs_f64()
                ))
            })?,
            None => read.await,
        };
        let bytes = read.map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(state.max_body_bytes),
            _ => ApiError::bad_request(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            )),
        })?;
        // The path names the field at fault ("messages: invalid type ..."), as axum's own
        // `Json` rejection does.
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                match path.as_str() {
                    "." | "" => ApiError::bad_request(format!("Invalid JSON body: {inner}")),
                    _ => ApiError::bad_request(format!("Invalid JSON body: {path}: {inner}")),
                }
            })
    }
}
