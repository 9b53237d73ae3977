//! [`CoreTracer`]: where `llm_core` spans come from, and the engine's sampling decision.

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use proto::telemetry::propagation::JourneySampled;
use proto::telemetry::sampling::SampleKey;

use super::TraceContext;

/// Creates the `llm_core` spans; `None` in the engine when journey tracing is off.
#[derive(Clone, Debug)]
pub struct CoreTracer {
    tracer: SdkTracer,
    sample_rate: f64,
    /// Keys the decision for direct callers that send a trace id (the gateway's key, when the
    /// deployment shares one).
    sample_key: SampleKey,
    /// Attributes every `llm_core` span starts with (the served model).
    model: Vec<KeyValue>,
}

impl CoreTracer {
    /// Spans from `tracer`; direct gRPC callers are sampled at `sample_rate` under
    /// `sample_key`.
    pub fn new(tracer: SdkTracer, sample_rate: f64, sample_key: SampleKey) -> Self {
        Self {
            tracer,
            sample_rate,
            sample_key,
            model: Vec::new(),
        }
    }

    /// Every `llm_core` span names the served model and its architecture.
    pub fn with_model(mut self, name: &str, architecture: &str) -> Self {
        use proto::conventions::attr;
        self.model = vec![
            KeyValue::new(attr::GEN_AI_RESPONSE_MODEL, name.to_owned()),
            KeyValue::new(attr::MODEL_ARCHITECTURE, architecture.to_owned()),
        ];
        self
    }

    pub(crate) fn model_attributes(&self) -> &[KeyValue] {
        &self.model
    }

    /// The decision for a request carrying `parent` (extracted from its metadata) and the
    /// gateway's `x-journey-sampled` flag: the gateway's word is final when present (one
    /// decision per request, made once, so both spans exist or neither); a direct caller is
    /// sampled at this engine's rate, from its trace id under this engine's key when it sent
    /// one.
    pub fn decide(&self, parent: Context, gateway: Option<JourneySampled>) -> TraceContext {
        let sc = parent.span().span_context().clone();
        let on = match gateway {
            Some(JourneySampled::Yes) => true,
            Some(JourneySampled::No) => false,
            None if sc.is_valid() => {
                sc.is_sampled() && self.sample_key.sampled(sc.trace_id(), self.sample_rate)
            }
            None => rand::random::<f64>() < self.sample_rate,
        };
        match (on, sc.is_valid()) {
            (false, _) => TraceContext::Off,
            (true, true) => TraceContext::On(parent),
            (true, false) => TraceContext::On(Context::new()),
        }
    }

    pub(crate) fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }
}
