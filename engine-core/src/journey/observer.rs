//! Journey tracing as an [`EngineObserver`]: it keeps the `llm_core` span of each traced
//! request, keyed by request, and the step tracer; the step loop only states events.

use std::collections::HashMap;

use opentelemetry::trace::SpanContext;

use super::config::StepSampling;
use super::core_span::{CoreSpan, Transition};
use super::{CoreTracer, StepTracer};
use proto::conventions::abort_reason;

use crate::lifecycle::{
    AbortCause, EngineObserver, Event, Finish, RequestRef, StepBegin, StepEnd, TraceContext,
};
use crate::scheduler::RequestId;

/// The engine's journey tracing: `llm_core` spans (when `core` is set) and step spans (when
/// `steps` is). With neither, every call returns at its first check.
pub struct JourneyObserver {
    core: Option<CoreTracer>,
    steps: Option<StepTracer>,
    spans: HashMap<RequestId, CoreSpan>,
    /// The current step's sampling, and the spans its batch links to (taken at its start,
    /// before any of its requests finish).
    step: (StepSampling, Vec<SpanContext>),
}

impl JourneyObserver {
    /// Traces requests with `core` and steps with `steps`.
    pub fn new(core: Option<CoreTracer>, steps: Option<StepTracer>) -> Self {
        Self {
            core,
            steps,
            spans: HashMap::new(),
            step: (StepSampling::Off, Vec::new()),
        }
    }
}

impl EngineObserver for JourneyObserver {
    fn on_request(&mut self, req: &RequestRef<'_>, event: &Event<'_>) {
        if let Event::Queued {
            trace, placement, ..
        } = event
        {
            if let (Some(core), TraceContext::On(parent)) = (&self.core, trace) {
                let span = CoreSpan::queued(core, parent, req.name, placement, req.progress);
                self.spans.insert(req.id, span);
            }
            return;
        }
        if self.spans.is_empty() {
            return;
        }
        let p = req.progress;
        match event {
            Event::Scheduled {
                admission,
                wait_ended,
                ..
            } => {
                if let Some(span) = self.spans.get_mut(&req.id) {
                    span.record(Transition::Scheduled(*admission, *wait_ended), p);
                }
            }
            Event::Preempted { cause } => {
                if let Some(span) = self.spans.get_mut(&req.id) {
                    span.record(Transition::Preempted(*cause), p);
                }
            }
            Event::FirstToken { .. } => {
                if let Some(span) = self.spans.get_mut(&req.id) {
                    span.record(Transition::FirstToken, p);
                }
            }
            Event::Finished { finished: f, .. } => {
                if let Some(span) = self.spans.remove(&req.id) {
                    let why = match f.finish {
                        Finish::Aborted(AbortCause::Shutdown) => Some(abort_reason::SHUTDOWN),
                        Finish::Aborted(AbortCause::Timeout) => Some(abort_reason::TIMEOUT),
                        _ => None,
                    };
                    span.finish(f.finish.reason(), p, &f.timings, why);
                }
            }
            Event::Queued { .. } | Event::Token { .. } => {}
        }
    }

    fn on_step_begin(&mut self, step: &StepBegin<'_>) {
        let Some(tracer) = &self.steps else {
            return;
        };
        let sampling = tracer.sampling(step.step);
        let links = if sampling == StepSampling::Off {
            Vec::new()
        } else {
            step.scheduled
                .iter()
                .filter_map(|s| self.spans.get(&s.id)?.span_context())
                .collect()
        };
        self.step = (sampling, links);
    }

    fn on_step_end(&mut self, step: &StepEnd<'_>) {
        let Some(tracer) = self.steps.as_mut() else {
            return;
        };
        let (sampling, links) = std::mem::take(&mut self.step);
        if sampling != StepSampling::Off {
            let snapshots = if sampling == StepSampling::Rich {
                (step.snapshots)()
            } else {
                Vec::new()
            };
            tracer.record(step, &links, &snapshots);
        }
        tracer.after_step(step.step);
    }

    fn on_stop(&mut self) {
        if let Some(steps) = self.steps.as_mut() {
            steps.close();
        }
    }
}
