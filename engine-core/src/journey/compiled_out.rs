//! The tracing types of a build without the `journey` feature: uninhabited, so no value of
//! them can exist, every `Option` of them is `None`, and the code behind those `Option`s is
//! dead and removed by the compiler. Only the tracing-overhead bench builds this.

use opentelemetry::Context;
use opentelemetry::trace::SpanContext;
use proto::telemetry::propagation::JourneySampled;

use super::{Progress, StepRecord, StepSampling, TraceContext, Transition};
use crate::scheduler::FinishReason;

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

/// No span can exist in this build.
#[derive(Debug)]
pub enum CoreSpan {}

impl CoreSpan {
    /// Unreachable: there is no tracer to start one with.
    pub fn queued(tracer: &CoreTracer, _parent: &Context, _id: &str, _p: Progress) -> Self {
        match *tracer {}
    }

    /// Unreachable.
    pub fn record(&mut self, _t: Transition, _p: Progress) {
        match *self {}
    }

    /// Unreachable.
    pub fn span_context(&self) -> Option<SpanContext> {
        match *self {}
    }

    /// Unreachable.
    pub fn finish(self, _reason: FinishReason, _p: Progress) {
        match self {}
    }

    /// Unreachable.
    pub fn finish_shutdown(self, _reason: FinishReason, _p: Progress) {
        match self {}
    }
}

/// No step tracer can exist in this build.
pub enum StepTracer {}

impl StepTracer {
    /// Unreachable.
    pub fn sampling(&self, _id: u64) -> StepSampling {
        match *self {}
    }

    /// Unreachable.
    pub fn record(&mut self, _r: &StepRecord) {
        match *self {}
    }

    /// Unreachable.
    pub fn after_step(&mut self, _id: u64) {
        match *self {}
    }

    /// Unreachable.
    pub fn close(&mut self) {
        match *self {}
    }
}
