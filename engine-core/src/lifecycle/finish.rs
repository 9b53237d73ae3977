//! How a request ends: the kind ([`FinishReason`], what metrics and spans count by) and the
//! details that go with it ([`Finish`]).

use serde::Serialize;
use thiserror::Error;

/// Why a request finished, without the details (the label metrics and spans use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End-of-generation token, stop token or stop string.
    Stop,
    /// `max_tokens` or the context length reached.
    Length,
    /// Aborted by the client (explicitly, or by going away) or by shutdown.
    Aborted,
    /// Never run: the prompt can never fit the KV cache.
    Ignored,
    /// The engine failed while running it.
    Error,
}

impl FinishReason {
    /// The spec's `finish.status` (also the metrics' `finished_reason` label).
    pub fn status(self) -> &'static str {
        use proto::conventions::finish_status;
        match self {
            Self::Stop => finish_status::STOPPED,
            Self::Length => finish_status::LENGTH,
            Self::Aborted => finish_status::ABORTED,
            Self::Ignored => finish_status::IGNORED,
            Self::Error => finish_status::ERROR,
        }
    }
}

/// What stopped a request that finished with [`FinishReason::Stop`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-generation token of the model.
    Eos,
    /// One of the request's `stop_token_ids`.
    Token(u32),
    /// One of the request's stop strings.
    Text(String),
}

/// Who or what aborted a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCause {
    /// An explicit abort call.
    Requested,
    /// The client dropped its event stream.
    ClientGone,
    /// The engine is shutting down.
    Shutdown,
    /// Its deadline passed (the caller's gRPC deadline).
    Timeout,
}

/// A request that could not be served, and why (in words a client can read).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RequestFailure {
    /// The prompt can never run (longer than the context or the whole KV cache).
    #[error("{0}")]
    Ignored(String),
    /// The model failed in a step this request was part of.
    #[error("the model failed: {0}")]
    Model(String),
    /// A step panicked and the engine stopped.
    #[error("the engine stopped after a failure")]
    EngineStopped,
}

/// How a request ended, with the details of that ending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Stopped by a stop condition.
    Stop(StopReason),
    /// Reached its token limit.
    Length,
    /// Aborted.
    Aborted(AbortCause),
    /// Refused or failed.
    Failed(RequestFailure),
}

impl Finish {
    /// The kind of ending.
    pub fn reason(&self) -> FinishReason {
        match self {
            Self::Stop(_) => FinishReason::Stop,
            Self::Length => FinishReason::Length,
            Self::Aborted(_) => FinishReason::Aborted,
            Self::Failed(RequestFailure::Ignored(_)) => FinishReason::Ignored,
            Self::Failed(_) => FinishReason::Error,
        }
    }
}
