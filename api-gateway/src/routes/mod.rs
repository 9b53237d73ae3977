//! HTTP handlers, one file per endpoint, plus the OpenAI-shaped fallbacks for unknown routes
//! and methods. Handlers stay short: parse, validate, fan out, answer.

pub mod chat;
pub mod completions;
pub mod health;
pub mod models;

use axum::extract::Request;

use crate::error::ApiError;

/// Fallback for unknown paths: a 404 with an OpenAI error body.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::RouteNotFound {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}

/// Fallback for known paths with the wrong method: a 405 with an OpenAI error body.
pub async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(request.method().to_string())
}

/// What every response object of one request repeats: id, creation time, model.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    /// `chatcmpl-...` or `cmpl-...`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Served model id.
    pub model: String,
}

impl ResponseMeta {
    /// A fresh id with `prefix`, created now.
    pub fn new(prefix: &str, model: String) -> Self {
        Self {
            id: crate::openai::common::response_id(prefix),
            created: crate::openai::common::unix_now(),
            model,
        }
    }
}
