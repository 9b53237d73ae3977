//! HTTP handlers, one file per endpoint, plus the OpenAI-shaped fallbacks for unknown routes
//! and methods. Handlers stay short: parse, validate, fan out, answer.

pub mod chat;
pub mod completions;
pub mod health;
pub mod journeys;
pub mod models;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::admission::Permit;
use crate::error::{ApiError, ApiResult};
use crate::journey::{RequestFacts, RequestJourney};
use crate::openai::common::{Common, Delivery};
use crate::server::Hangup;
use crate::streaming::InFlight;

/// What a handler produced: a whole body, or a stream that takes over the request.
pub enum Reply {
    /// The whole response; the journey departs just before it is sent.
    Whole(Response),
    /// An SSE response to build around the request's journey and permit.
    Stream(Box<dyn FnOnce(InFlight) -> Response + Send>),
}

/// A request to an LLM route that was let in: its journey, and its place until it ends.
pub struct Admitted {
    /// The request's journey, started before the body is read.
    pub journey: RequestJourney,
    permit: Permit,
    hangup: Option<Hangup>,
}

/// Starts the journey of a request to the LLM route `route` (an `http.route` template) and
/// admits it, or refuses it when `--max-concurrent-requests` are in flight: its journey is
/// then over (`ABORTED(rejected)`), and the error is the 429 to answer.
pub fn admit(
    state: &AppState,
    request: &Request,
    route: &'static str,
    operation: &'static str,
) -> ApiResult<Admitted> {
    let mut journey = state.journey.start(request.headers(), route, operation);
    if let Some(t) = request.extensions().get::<crate::auth::Tenant>() {
        journey.set_tenant(&t.0);
    }
    let tenant = request
        .extensions()
        .get::<crate::auth::Tenant>()
        .map(|t| &t.0);
    match state.admission.try_admit(tenant) {
        Ok(permit) => Ok(Admitted {
            journey,
            permit,
            hangup: request.extensions().get::<Hangup>().cloned(),
        }),
        Err(error) => {
            state.journey.metrics().on_rejected(route);
            journey.abort(&error);
            Err(error)
        }
    }
}

/// Ends (or hands over) the request according to `result` and renders the response.
pub fn reply(state: &AppState, admitted: Admitted, result: ApiResult<Reply>) -> Response {
    let Admitted {
        journey,
        permit,
        hangup,
    } = admitted;
    match result {
        Ok(Reply::Whole(response)) => {
            journey.depart();
            response
        }
        Ok(Reply::Stream(stream)) => stream(InFlight {
            journey,
            permit,
            write_timeout: state.timeouts.stream_write,
            hangup,
        }),
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
