//! The step loop's observers, in one struct of fixed fields (see [`crate::lifecycle`] for why
//! not a list of trait objects): each event goes to each, in a fixed order.

use std::sync::Arc;

use super::published::Published;
use crate::journal::JournalObserver;
use crate::journey::JourneyObserver;
use crate::lifecycle::{EngineObserver, Event, RequestRef, StepBegin, StepEnd};
use crate::metrics::EngineMetrics;

/// Metrics, journey tracing, the journal and, for a served engine, what its handles read.
pub(crate) struct Observers {
    pub metrics: Arc<EngineMetrics>,
    pub journey: JourneyObserver,
    /// Journeys their callers asked for (the loop takes each at its request's end).
    pub journal: JournalObserver,
    /// `None` for an engine nobody holds a handle to (`generate`).
    pub published: Option<Published>,
}

impl EngineObserver for Observers {
    fn on_request(&mut self, req: &RequestRef<'_>, event: &Event<'_>) {
        self.metrics.on_request(req, event);
        self.journey.on_request(req, event);
        self.journal.on_request(req, event);
        if let Some(p) = self.published.as_mut() {
            p.on_request(req, event);
        }
    }

    fn on_step_begin(&mut self, step: &StepBegin<'_>) {
        self.metrics.on_step_begin(step);
        self.journey.on_step_begin(step);
        self.journal.on_step_begin(step);
        if let Some(p) = self.published.as_mut() {
            p.on_step_begin(step);
        }
    }

    fn on_step_end(&mut self, step: &StepEnd<'_>) {
        self.metrics.on_step_end(step);
        self.journey.on_step_end(step);
        self.journal.on_step_end(step);
        if let Some(p) = self.published.as_mut() {
            p.on_step_end(step);
        }
    }

    fn on_stop(&mut self) {
        self.metrics.on_stop();
        self.journey.on_stop();
        self.journal.on_stop();
        if let Some(p) = self.published.as_mut() {
            p.on_stop();
        }
    }
}
