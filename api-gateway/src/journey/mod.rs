//! The gateway's side of a request's journey (`JOURNEY-SPEC.md` §1–§4): the `llm_request`
//! span, created by the first line of each LLM handler, and the metrics of the same lifecycle.
//!
//! [`RequestJourney`] is a guard: whatever path a request takes it ends exactly once,
//! `api.DEPARTED` through [`RequestJourney::depart`], `api.ABORTED` through
//! [`RequestJourney::abort`], and, if it is dropped unfinished (the client hung up and axum
//! dropped the handler or the SSE body), `api.ABORTED(client_disconnect)` from `Drop`.
//!
//! Sampling: the SDK sampler is [`JourneySampler`] (the client's `sampled` flag AND a ratio
//! of the trace id's hash under `--trace-sample-key`), so the decision is a function of the
//! trace id that a client choosing its `traceparent` cannot predict. It is made once, here,
//! and goes to the engine as `x-journey-sampled`, with the W3C context of `llm_request`; the
//! gateway builds that metadata itself, so nothing a client sends (a forged
//! `x-journey-sampled`) reaches the engine.
//!
//! [`JourneySampler`]: proto::telemetry::sampling::JourneySampler

mod record;
mod request;
pub mod store;

use std::sync::Arc;

use opentelemetry_sdk::trace::SdkTracer;

pub use request::{RequestFacts, RequestJourney};
pub use store::{JourneyStore, StoreConfig};

use crate::metrics::GatewayMetrics;

/// Starts request journeys; cheap to clone.
#[derive(Clone, Debug)]
pub struct Journey {
    tracer: Option<SdkTracer>,
    metrics: Arc<GatewayMetrics>,
    store: Option<JourneyStore>,
}

impl Journey {
    /// Journeys with spans from `tracer` (`None`: tracing off, metrics only).
    pub fn new(tracer: Option<SdkTracer>, metrics: Arc<GatewayMetrics>) -> Self {
        Self {
            tracer,
            metrics,
            store: None,
        }
    }

    /// Keeps every request's journey in `store` (for `/journeys`), traced or not.
    pub fn with_store(mut self, store: JourneyStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The journey store, when on.
    pub fn store(&self) -> Option<&JourneyStore> {
        self.store.as_ref()
    }

    /// No tracing, fresh metrics (tests and tools).
    pub fn disabled() -> Self {
        Self::new(None, Arc::new(GatewayMetrics::new()))
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Arc<GatewayMetrics> {
        &self.metrics
    }

    /// Starts the journey of a request to `route` (an `http.route` template) that arrived
    /// with `headers`; `operation` is `chat` or `text_completion`.
    pub fn start(
        &self,
        headers: &http::HeaderMap,
        route: &'static str,
        operation: &'static str,
    ) -> RequestJourney {
        RequestJourney::start(
            self.tracer.as_ref(),
            self.store.as_ref(),
            Arc::clone(&self.metrics),
            headers,
            route,
            operation,
        )
    }
}
