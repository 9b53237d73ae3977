//! The gateway's one error type. Every failure (bad input, unknown model or route, engine
//! trouble) becomes an [`ApiError`], which renders itself as an OpenAI-shaped JSON body
//! `{"error": {"message", "type", "param", "code"}}` with the matching HTTP status, after the
//! axum `error-handling` example: the mapping is written once, here.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use tonic::Code;

/// Result alias for handlers and everything they call.
pub type ApiResult<T> = Result<T, ApiError>;

/// Everything that can go wrong while serving one request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a parameter is out of range (400).
    #[error("{message}")]
    InvalidRequest {
        /// Human-readable explanation.
        message: String,
        /// The offending parameter, when one is to blame.
        param: Option<&'static str>,
    },
    /// The `model` field names a model this gateway does not serve (404).
    #[error("The model `{0}` does not exist.")]
    ModelNotFound(String),
    /// No route matches the path (404).
    #[error("Unknown request URL: {method} {path}.")]
    RouteNotFound {
        /// HTTP method of the request.
        method: String,
        /// Request path.
        path: String,
    },
    /// No API key, or a key this gateway does not know (401).
    #[error(
        "Incorrect API key provided: send `Authorization: Bearer <key>` with a key of this gateway."
    )]
    Unauthorized,
    /// The route exists but not for this method (405).
    #[error("Method {0} is not allowed for this endpoint.")]
    MethodNotAllowed(String),
    /// The body is not declared `Content-Type: application/json` (415).
    #[error("The request body must be JSON, sent with `Content-Type: application/json`.")]
    UnsupportedMediaType,
    /// The body is larger than `--max-body-bytes` (413).
    #[error("Request body is larger than the limit of {0} bytes.")]
    PayloadTooLarge(usize),
    /// The gateway has `--max-concurrent-requests` requests in flight already (429, with
    /// `Retry-After: 1`).
    #[error("The server is at its limit of {0} concurrent requests; retry in a moment.")]
    TooManyRequests(usize),
    /// The client was too slow: its request body did not arrive within
    /// `--body-read-timeout` (408), or it stopped reading a stream (`--stream-write-timeout`).
    #[error("{0}")]
    ClientTimeout(String),
    /// The engine refused the request because it is at capacity (429).
    #[error("The engine is overloaded: {0}")]
    Overloaded(String),
    /// The engine cannot be reached or is not serving (503).
    #[error("The engine is unavailable: {0}")]
    EngineUnavailable(String),
    /// The call's deadline passed (504); the engine is fine, so it stays in the pool.
    #[error("The request timed out: {0}")]
    Timeout(String),
    /// Anything else: an engine bug, an unexpected gRPC status (500).
    #[error("Internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming the parameter at fault.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(param),
        }
    }

    /// A 400 about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    /// The HTTP status this error is served with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::ModelNotFound(_) | Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) | Self::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::ClientTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::EngineUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI-shaped body, also sent as an SSE `data:` event when a stream fails midway.
    pub fn body(&self) -> ErrorBody {
        let (kind, code, param) = match self {
            Self::InvalidRequest { param, .. } => ("invalid_request_error", None, *param),
            Self::ModelNotFound(_) => (
                "invalid_request_error",
                Some("model_not_found"),
                Some("model"),
            ),
            Self::RouteNotFound { .. } => ("invalid_request_error", Some("unknown_url"), None),
            Self::MethodNotAllowed(_) => {
                ("invalid_request_error", Some("method_not_allowed"), None)
            }
            Self::PayloadTooLarge(_) => ("invalid_request_error", Some("request_too_large"), None),
            Self::Unauthorized => ("invalid_request_error", Some("invalid_api_key"), None),
            Self::UnsupportedMediaType => (
                "invalid_request_error",
                Some("unsupported_media_type"),
                None,
            ),
            // OpenAI's 429: `type` names the limit (`requests`, `tokens`).
            Self::TooManyRequests(_) => ("requests", Some("rate_limit_exceeded"), None),
            Self::ClientTimeout(_) => ("invalid_request_error", Some("request_timeout"), None),
            Self::Overloaded(_) => ("rate_limit_error", Some("engine_overloaded"), None),
            Self::EngineUnavailable(_) => (
                "service_unavailable_error",
                Some("engine_unavailable"),
                None,
            ),
            Self::Timeout(_) => ("timeout_error", Some("timeout"), None),
            Self::Internal(_) => ("internal_error", None, None),
        };
        ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind,
                param,
                code,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self {
            // The rest of an oversized or stalled body was never read: the connection cannot
            // carry another request, so say so rather than let a client reuse it.
            Self::PayloadTooLarge(_) | Self::ClientTimeout(_) => {
                headers.insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            // A place (or the engine's queue) frees as soon as a request ends: retrying after
            // a second is fair.
            Self::TooManyRequests(_) | Self::Overloaded(_) => {
                headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
            }
            _ => {}
        }
        response
    }
}

/// `{"error": {...}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// The error proper.
    pub error: ErrorDetail,
}

/// The fields of an OpenAI error object.
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    /// Human-readable explanation.
    pub message: String,
    /// Error class (`invalid_request_error`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The parameter at fault, or null.
    pub param: Option<&'static str>,
    /// Machine-readable code, or null.
    pub code: Option<&'static str>,
}

impl From<tonic::Status> for ApiError {
    /// Engine statuses: INVALID_ARGUMENT → 400 with the engine's message, RESOURCE_EXHAUSTED →
    /// 429, UNAVAILABLE (including connect errors) → 503, DEADLINE_EXCEEDED → 504, anything
    /// else → 500. UNAVAILABLE and CANCELLED (a dead engine's connect failure can surface as
    /// either), and a connection that failed under another code, take an engine out of the
    /// pool; a deadline says nothing about its health.
    fn from(status: tonic::Status) -> Self {
        use std::error::Error;
        let message = status.message().to_owned();
        // A status made from a transport error (it carries it as its source) is the
        // connection failing, whatever code it maps to: the engine is unreachable.
        let transport = status.source().is_some();
        match status.code() {
            code if transport && code != Code::DeadlineExceeded => Self::EngineUnavailable(message),
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                Self::bad_request(message)
            }
            Code::ResourceExhausted => Self::Overloaded(message),
            // A dead engine's connect failure can surface as CANCELLED: still unavailable.
            Code::Unavailable | Code::Cancelled => Self::EngineUnavailable(message),
            Code::DeadlineExceeded => Self::Timeout(message),
            code => Self::Internal(format!("engine returned {code:?}: {message}")),
        }
    }
}

impl ApiError {
    /// A status that ended an engine stream midway. One tonic made from a transport error
    /// (it carries the error as its source; statuses the engine sent have none) means the
    /// engine went away: UNAVAILABLE, whatever code the broken connection mapped to.
    pub fn from_stream(status: tonic::Status) -> Self {
        use std::error::Error;
        if status.code() != Code::Unavailable && status.source().is_some() {
            return Self::EngineUnavailable(format!(
                "the engine's stream broke: {}",
                status.message()
            ));
        }
        Self::from(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_statuses_map_to_http_statuses() {
        let cases = [
            (
                tonic::Status::invalid_argument("prompt too long"),
                StatusCode::BAD_REQUEST,
            ),
            (
                tonic::Status::resource_exhausted("full"),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                tonic::Status::unavailable("down"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                tonic::Status::internal("bug"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                tonic::Status::deadline_exceeded("too slow"),
                StatusCode::GATEWAY_TIMEOUT,
            ),
        ];
        // A deadline is not the engine's ill health.
        assert!(!matches!(
            ApiError::from(tonic::Status::deadline_exceeded("x")),
            ApiError::EngineUnavailable(_)
        ));
        for (status, http) in cases {
            assert_eq!(ApiError::from(status).status(), http);
        }
        let error = ApiError::from(tonic::Status::invalid_argument("prompt too long"));
        assert_eq!(
            error.to_string(),
            "prompt too long",
            "the engine's message reaches the client"
        );
    }

    #[test]
    fn a_broken_stream_is_an_unavailable_engine_but_an_engine_status_is_not() {
        let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let status = tonic::Status::from_error(Box::new(broken));
        assert!(matches!(
            ApiError::from_stream(status),
            ApiError::EngineUnavailable(_)
        ));
        let sent = tonic::Status::internal("bug");
        assert!(matches!(ApiError::from_stream(sent), ApiError::Internal(_)));
    }

    #[test]
    fn a_refusal_says_when_to_retry_and_a_client_timeout_closes_the_connection() {
        let refused = ApiError::TooManyRequests(8).into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[http::header::RETRY_AFTER], "1");
        let body = serde_json::to_value(ApiError::TooManyRequests(8).body()).unwrap();
        assert_eq!(body["error"]["type"], "requests");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        let slow = ApiError::ClientTimeout("slow".into()).into_response();
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(slow.headers()[http::header::CONNECTION], "close");
        assert!(!slow.headers().contains_key(http::header::RETRY_AFTER));
    }

    #[test]
    fn body_has_the_openai_shape() {
        let body =
            serde_json::to_value(ApiError::invalid("n", "n must be positive").body()).unwrap();
        let expected = serde_json::json!({"error": {
            "message": "n must be positive", "type": "invalid_request_error", "param": "n", "code": null,
        }});
        assert_eq!(body, expected);
    }
}
