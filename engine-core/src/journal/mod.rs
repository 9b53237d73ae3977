//! The journal: an observer that writes down the journey of each request whose caller asked
//! for it (`return_journey`), to be sent on its last response. Requests nobody asked about
//! cost it one emptiness check per event.

use std::collections::HashMap;

use proto::telemetry::Stamp;

use crate::lifecycle::{
    Admission, BatchContext, ChunkRun, EngineObserver, Event, JourneyMark, MarkKind,
    RequestJourney, RequestRef, StepBegin, StepEnd, between,
};
use crate::scheduler::{BatchStats, RequestId, ScheduleKind};

struct Record {
    arrived: Stamp,
    num_prompt: usize,
    journey: RequestJourney,
}

/// A chunk or preemption of the current step whose batch context is filled at its end.
enum Pending {
    Chunk(RequestId, usize),
    Preempted(RequestId, usize),
}

/// Journeys being written down.
#[derive(Default)]
pub struct JournalObserver {
    records: HashMap<RequestId, Record>,
    pending: Vec<Pending>,
    step: Option<(u64, Stamp, BatchStats)>,
}

impl JournalObserver {
    /// No journeys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends `id`'s journey with `FINISHED` at step `step` and hands it over (`None` when its
    /// caller did not ask for it).
    pub fn finish(&mut self, id: RequestId, step: u64) -> Option<RequestJourney> {
        if self.records.is_empty() {
            return None;
        }
        let mut rec = self.records.remove(&id)?;
        let now = Stamp::now();
        // Its last step is still running: its chunks and preemptions get the batch so far.
        if let Some(ctx) = self.context(now) {
            for p in self.pending.iter().filter(|p| p.id() == id) {
                p.fill(&mut rec.journey, ctx);
            }
        }
        rec.journey.events.push(JourneyMark {
            kind: MarkKind::Finished,
            step,
            offset: between(rec.arrived, now),
            batch: None,
        });
        Some(rec.journey)
    }

    fn context(&self, now: Stamp) -> Option<BatchContext> {
        let (step, started, b) = self.step?;
        Some(BatchContext {
            step,
            num_requests: b.num_prefill_reqs + b.num_decode_reqs,
            prefill_tokens: b.prefill_tokens,
            decode_tokens: b.decode_tokens,
            duration: between(started, now),
            num_running: b.num_running,
            num_waiting: b.num_waiting,
        })
    }
}

impl Pending {
    fn id(&self) -> RequestId {
        match *self {
            Pending::Chunk(id, _) | Pending::Preempted(id, _) => id,
        }
    }

    /// Gives the chunk or preemption, in its request's `journey`, the batch context `ctx`.
    fn fill(&self, journey: &mut RequestJourney, ctx: BatchContext) {
        match *self {
            Pending::Chunk(_, i) => journey.prefill_chunks[i].batch = ctx,
            Pending::Preempted(_, i) => journey.events[i].batch = Some(ctx),
        }
    }
}

impl EngineObserver for JournalObserver {
    fn on_request(&mut self, req: &RequestRef<'_>, event: &Event<'_>) {
        if let Event::Queued {
            arrived,
            record_journey: true,
            ..
        } = *event
        {
            let mut journey = RequestJourney::default();
            journey.events.push(JourneyMark {
                kind: MarkKind::Queued,
                step: req.progress.step,
                offset: between(arrived, Stamp::now()),
                batch: None,
            });
            let rec = Record {
                arrived,
                num_prompt: req.progress.prompt_tokens,
                journey,
            };
            self.records.insert(req.id, rec);
            return;
        }
        if self.records.is_empty() {
            return;
        }
        let Some(rec) = self.records.get_mut(&req.id) else {
            return;
        };
        let now = Stamp::now();
        let offset = between(rec.arrived, now);
        let mark = |kind| JourneyMark {
            kind,
            step: req.progress.step,
            offset,
            batch: None,
        };
        match *event {
            Event::Scheduled {
                admission,
                wait_ended,
                ..
            } => {
                let m = mark(MarkKind::Scheduled {
                    resumed: admission == Admission::Resume,
                    wait_ended,
                });
                rec.journey.events.push(m);
            }
            Event::Preempted { cause } => {
                self.pending
                    .push(Pending::Preempted(req.id, rec.journey.events.len()));
                rec.journey.events.push(mark(MarkKind::Preempted(cause)));
            }
            Event::FirstToken { .. } => {
                rec.journey.events.push(mark(MarkKind::FirstToken));
                rec.journey.token_offsets.push(offset);
            }
            Event::Token { .. } => rec.journey.token_offsets.push(offset),
            Event::Queued { .. } | Event::Finished { .. } => {}
        }
    }

    fn on_step_begin(&mut self, step: &StepBegin<'_>) {
        self.step = Some((step.step, step.started, *step.batch));
        if self.records.is_empty() {
            return;
        }
        for s in step.scheduled {
            let Some(rec) = self.records.get_mut(&s.id) else {
                continue;
            };
            let decode = s.num_tokens == 1
                && s.samples
                && s.start >= rec.num_prompt
                && s.kind == ScheduleKind::Continue;
            if decode {
                continue;
            }
            self.pending
                .push(Pending::Chunk(s.id, rec.journey.prefill_chunks.len()));
            rec.journey.prefill_chunks.push(ChunkRun {
                offset: between(rec.arrived, step.started),
                start: s.start,
                num_tokens: s.num_tokens,
                batch: BatchContext::default(),
            });
        }
    }

    fn on_step_end(&mut self, step: &StepEnd<'_>) {
        let pending = std::mem::take(&mut self.pending);
        if let Some(ctx) = self.context(step.ended) {
            for p in pending {
                if let Some(rec) = self.records.get_mut(&p.id()) {
                    p.fill(&mut rec.journey, ctx);
                }
            }
        }
        self.step = None;
    }
}
