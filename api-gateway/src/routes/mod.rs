//! HTTP handlers, one file per endpoint, plus the OpenAI-shaped fallbacks for unknown routes
//! and methods. Handlers stay short: parse, validate, fan out, answer.

pub mod chat;
pub mod completions;
pub mod health;
pub mod journeys;
pub mod models;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiResult};
use crate::journey::{RequestFacts, RequestJourney};
use crate::openai::common::{Common, Delivery};

/// What a handler produced: a whole body, or a stream that takes over the journey.
pub enum Reply {
    /// The whole response; the journey departs just before it is sent.
    Whole(Response),
    /// An SSE response to build around the journey.
    Stream(Box<dyn FnOnce(RequestJourney) -> Response + Send>),
}

/// Ends (or hands over) `journey` according to `result` and renders the response.
pub fn reply(journey: RequestJourney, result: ApiResult<Reply>) -> Response {
    match result {
        Ok(Reply::Whole(response)) => {
            journey.depart();
            response
        }
        Ok(Reply::Stream(stream)) => stream(journey),
        Err(error) => {
            journey.abort(&error);
            error.into_response()
        }
    }
}

/// The span attributes of a validated request.
pub fn facts(meta: &ResponseMeta, common: &Common) -> RequestFacts {
    let s = &common.sampling;
    RequestFacts {
        id: meta.id.clone(),
        model: meta.model.clone(),
        requested_model: common.model.clone(),
        n: common.n,
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        max_tokens: s.max_tokens,
        seed: s.seed,
        stream: matches!(common.delivery, Delivery::Stream { .. }),
    }
}

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
