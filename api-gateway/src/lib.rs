//! Journey's OpenAI-compatible HTTP gateway. It speaks OpenAI to clients and tokens to the
//! engine: requests are validated into engine-ready jobs (`openai`), fanned out into gRPC
//! `Generate` calls on one engine of the pool (`engines`) and answered as JSON or server-sent events
//! (`streaming`). Only this crate knows the OpenAI dialect.
//!
//! [`app`] builds the router apart from `main`, so tests drive it directly (the axum
//! `testing` example's layout).
//!
//! Where it knowingly differs from vLLM's OpenAI server:
//! - each of the `n` choices is its own engine call; with a `seed`, choice `j` uses
//!   `seed + j` (vLLM draws the n samples from one seeded generator);
//! - `echo` + `max_tokens: 0` asks the engine for one token and drops it, as vLLM does, but
//!   reports `completion_tokens: 0`;
//! - echoing a token-id prompt asks the engine for prompt logprobs to get the prompt text;
//! - RESOURCE_EXHAUSTED from the engine is a 429 (TGI's "overloaded"); `n` is capped at 128
//!   and one request at 1024 engine calls; `best_of > n`, `suffix`, non-text content parts
//!   and chat `echo` are not supported (tools and `response_format` are ignored).

#![forbid(unsafe_code)]

pub mod admission;
pub mod auth;
pub mod engines;
pub mod error;
pub mod extract;
pub mod inspect;
pub mod journey;
pub mod metrics;
pub mod openai;
pub mod routes;
pub mod server;
pub mod streaming;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use engines::Engines;
pub use error::{ApiError, ApiResult};

/// Default `--max-body-bytes`: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The engine pool.
    pub engines: Engines,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Request journeys (spans, metrics, the journey store).
    pub journey: journey::Journey,
    /// Link from a journey to its trace, `{trace_id}` replaced (`--trace-link-template`).
    pub trace_link_template: Option<String>,
    /// The API keys, when the gateway requires them.
    pub api_keys: Option<auth::ApiKeys>,
    /// The in-flight limit of the LLM routes (`--max-concurrent-requests`).
    pub admission: admission::Admission,
    /// How long a client may take to send its request and to read a stream.
    pub timeouts: server::Timeouts,
}

/// The gateway's router: the OpenAI endpoints, `/health`, and OpenAI-shaped 404/405s.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/completions", post(routes::completions::completions))
        .route("/v1/models", get(routes::models::list_models))
        .route("/health", get(routes::health::health))
        .route("/metrics", get(metrics::metrics))
        .route("/journeys", get(routes::journeys::page))
        .route("/journeys/api/requests", get(routes::journeys::list))
        .route(
            "/journeys/api/requests/{request_id}",
            get(routes::journeys::one),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}
