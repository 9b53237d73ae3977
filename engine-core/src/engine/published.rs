//! What the engine's handles read, as an observer: the admission state ([`Gate`]: a request
//! leaves the `max_waiting` count when first scheduled, its id is free again when it leaves)
//! and the live counters ([`EngineStats`], published after every step and before every
//! `Finished` reaches its client, so a client that saw its `Finished` sees the blocks freed).

use std::sync::Arc;

use super::handle::Shared;
use crate::lifecycle::{Admission, EngineObserver, Event, RequestRef, StepEnd};

/// Publishes the step loop's state to the handles through `Shared`.
pub(crate) struct Published {
    pub(super) shared: Arc<Shared>,
}

impl EngineObserver for Published {
    fn on_request(&mut self, req: &RequestRef<'_>, event: &Event<'_>) {
        match event {
            Event::Scheduled {
                admission: Admission::New,
                ..
            } => self.shared.gate().scheduled(req.name),
            Event::Finished { load, .. } => {
                self.shared.gate().left(req.name);
                self.shared.publish(**load);
            }
            _ => {}
        }
    }

    fn on_step_end(&mut self, step: &StepEnd<'_>) {
        self.shared.publish(*step.load);
    }
}
