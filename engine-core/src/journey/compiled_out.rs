//! The tracing types of a build without the `journey` feature: the tracers are uninhabited, so
//! no value of them can exist, and the journey observer does nothing. Only the
//! tracing-overhead bench's baseline (and CI's check that this build keeps working) builds it.

use opentelemetry::Context;
use proto::telemetry::propagation::JourneySampled;

use super::TraceContext;
use crate::lifecycle::EngineObserver;

/// No tracer can exist in this build.
#[derive(Clone, Debug)]
pub enum CoreTracer {}

impl CoreTracer {
    /// Unreachable: there is no tracer.
    pub fn with_model(self, _name: &str, _architecture: &str) -> Self {
        match self {}
    }

    /// Unreachable: there is no tracer.
    pub fn decide(&self, _parent: Context, _gateway: Option<JourneySampled>) -> TraceContext {
        match *self {}
    }
}

/// No step tracer can exist in this build.
pub enum StepTracer {}

/// Watches nothing: this build has no tracing.
#[derive(Default)]
pub struct JourneyObserver;

impl JourneyObserver {
    /// The observer; the tracers cannot exist in this build.
    pub fn new(_core: Option<CoreTracer>, _steps: Option<StepTracer>) -> Self {
        Self
    }
}

impl EngineObserver for JourneyObserver {}
