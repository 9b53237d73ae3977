//! The `llm_core` span guard. Created when the request enters the waiting queue; every journey
//! event carries the progress snapshot of `JOURNEY-SPEC.md` §2; [`CoreSpan::finish`] ends it
//! with `journey.FINISHED`. Dropping a guard that was never finished ends the span as
//! `FINISHED(aborted)`, so no path of the engine can leak an open span.

use opentelemetry::trace::{Span, SpanKind, Status, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::Span as SdkSpan;
use proto::conventions::{attr, journey_event, schedule_kind, span};
use proto::telemetry::{LiveToken, Stamp, bounded_text};

use super::CoreTracer;
use std::time::Duration;

use crate::lifecycle::{Admission, FinishReason, Phase, Progress, Timings, WaitReason};
use crate::scheduler::{Placement, PreemptCause};

/// A journey event between `QUEUED` and `FINISHED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Scheduled from waiting, after what held it back last.
    Scheduled(Admission, WaitReason),
    /// First output token.
    FirstToken,
    /// Lost its blocks, for this reason.
    Preempted(PreemptCause),
}

/// The live `llm_core` span of one request.
#[derive(Debug)]
pub struct CoreSpan {
    span: Option<SdkSpan>,
    last: Progress,
    _live: LiveToken,
}

impl CoreSpan {
    /// Starts the span under `parent` and records `journey.QUEUED`.
    pub fn queued(
        tracer: &CoreTracer,
        parent: &Context,
        id: &str,
        placement: &Placement,
        p: Progress,
    ) -> Self {
        let now = Stamp::now();
        let mut span = tracer
            .tracer()
            .span_builder(span::LLM_CORE)
            .with_kind(SpanKind::Internal)
            .with_start_time(now.wall)
            .with_attributes(
                [
                    // The caller chose it: bounded like all client text.
                    KeyValue::new(attr::GEN_AI_REQUEST_ID, bounded_text(id)),
                    KeyValue::new(attr::PREFILL_TOTAL_TOKENS, p.prompt_tokens as i64),
                    KeyValue::new(attr::DECODE_MAX_TOKENS, p.max_tokens as i64),
                ]
                .into_iter()
                .chain(placement_attributes(placement))
                .chain(tracer.model_attributes().iter().cloned()),
            )
            .start_with_context(tracer.tracer(), parent);
        add_event(
            &mut span,
            now,
            journey_event::QUEUED,
            journey_event::TYPE_QUEUED,
            &p,
            true,
            None,
        );
        Self {
            span: Some(span),
            last: p,
            _live: LiveToken::new(),
        }
    }

    /// Records a transition.
    pub fn record(&mut self, t: Transition, p: Progress) {
        self.last = p;
        let Some(span) = self.span.as_mut() else {
            return;
        };
        let now = Stamp::now();
        match t {
            Transition::Scheduled(admission, waited) => {
                let kind = match admission {
                    Admission::Resume => schedule_kind::RESUME,
                    Admission::New => schedule_kind::FIRST,
                };
                let extra = [
                    KeyValue::new(attr::SCHEDULE_KIND, kind),
                    KeyValue::new(attr::WAIT_ENDED, waited.stage()),
                ];
                add_event(
                    span,
                    now,
                    journey_event::SCHEDULED,
                    journey_event::TYPE_SCHEDULED,
                    &p,
                    false,
                    extra,
                );
            }
            Transition::FirstToken => add_event(
                span,
                now,
                journey_event::FIRST_TOKEN,
                journey_event::TYPE_FIRST_TOKEN,
                &p,
                false,
                None,
            ),
            Transition::Preempted(cause) => add_event(
                span,
                now,
                journey_event::PREEMPTED,
                journey_event::TYPE_PREEMPTED,
                &p,
                false,
                [KeyValue::new(attr::PREEMPT_CAUSE, cause.as_str())],
            ),
        }
    }

    /// The span's context, for step-span links.
    pub fn span_context(&self) -> Option<opentelemetry::trace::SpanContext> {
        self.span.as_ref().map(|s| s.span_context().clone())
    }

    /// Records `journey.FINISHED` (with `reason = why` when the engine cut it short:
    /// `shutdown`, `timeout`), the stage times of `t`, and ends the span.
    pub fn finish(
        mut self,
        reason: FinishReason,
        p: Progress,
        t: &Timings,
        why: Option<&'static str>,
    ) {
        self.end(reason, p, why, Some(t));
    }

    fn end(
        &mut self,
        reason: FinishReason,
        p: Progress,
        why: Option<&'static str>,
        t: Option<&Timings>,
    ) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        let now = Stamp::now();
        let status = reason.status();
        let mut extra = vec![KeyValue::new(attr::FINISH_STATUS, status)];
        extra.extend(why.map(|w| KeyValue::new(attr::REASON, w)));
        add_event(
            &mut span,
            now,
            journey_event::FINISHED,
            journey_event::TYPE_FINISHED,
            &p,
            false,
            extra,
        );
        span.set_attributes([
            KeyValue::new(attr::GEN_AI_USAGE_INPUT_TOKENS, p.prompt_tokens as i64),
            KeyValue::new(attr::GEN_AI_USAGE_OUTPUT_TOKENS, p.output_tokens as i64),
            KeyValue::new(attr::GEN_AI_USAGE_PROMPT_TOKENS, p.prompt_tokens as i64),
            KeyValue::new(attr::GEN_AI_USAGE_COMPLETION_TOKENS, p.output_tokens as i64),
            KeyValue::new(attr::NUM_PREEMPTIONS, i64::from(p.preemptions)),
            KeyValue::new(attr::FINISH_STATUS, status),
        ]);
        if let Some(t) = t {
            let s = |k: &'static str, d: Duration| KeyValue::new(k, d.as_secs_f64());
            let q = &t.queue_wait;
            span.set_attributes([
                s(attr::TIME_TOKENIZE, t.tokenize),
                s(attr::TIME_HANDOFF, t.handoff().unwrap_or_default()),
                s(attr::TIME_QUEUE_STEP, q.step),
                s(attr::TIME_QUEUE_RUNNING_SLOT, q.running_slot),
                s(attr::TIME_QUEUE_KV_BLOCKS, q.kv_blocks),
                s(attr::TIME_QUEUE_TOKEN_BUDGET, q.token_budget),
                s(attr::TIME_REQUEUE, t.requeue_wait.total()),
                s(attr::TIME_DETOKENIZE, t.detokenize),
            ]);
        }
        if reason == FinishReason::Error {
            span.set_status(Status::error("the engine failed"));
            span.set_attribute(KeyValue::new(attr::ERROR_TYPE, status));
        }
        span.end_with_timestamp(now.wall);
    }
}

/// The tenant (when named; bounded: it is the caller's text, checked at the server) and the
/// priority (when not 0).
fn placement_attributes(p: &Placement) -> impl Iterator<Item = KeyValue> {
    let tenant =
        (!p.tenant.is_empty()).then(|| KeyValue::new(attr::TENANT, bounded_text(&p.tenant)));
    let priority = (p.priority != 0).then(|| KeyValue::new(attr::PRIORITY, i64::from(p.priority)));
    tenant.into_iter().chain(priority)
}

impl Drop for CoreSpan {
    fn drop(&mut self) {
        let p = self.last;
        self.end(FinishReason::Aborted, p, None, None);
    }
}

fn add_event(
    span: &mut SdkSpan,
    now: Stamp,
    name: &'static str,
    ty: &'static str,
    p: &Progress,
    waiting: bool,
    extra: impl IntoIterator<Item = KeyValue>,
) {
    let ph = if waiting {
        Phase::Waiting
    } else {
        p.running_phase()
    };
    let mut attrs = vec![
        KeyValue::new(attr::EVENT_TYPE, ty),
        KeyValue::new(attr::TS_MONOTONIC, now.mono_secs()),
        KeyValue::new(attr::TS_MONOTONIC_NS, now.mono_ns as i64),
        KeyValue::new(attr::SCHEDULER_STEP, p.step as i64),
        KeyValue::new(attr::PHASE, ph.as_str()),
        KeyValue::new(attr::PREFILL_DONE_TOKENS, p.prefill_done as i64),
        KeyValue::new(attr::PREFILL_TOTAL_TOKENS, p.prompt_tokens as i64),
        KeyValue::new(attr::DECODE_DONE_TOKENS, p.output_tokens as i64),
        KeyValue::new(attr::DECODE_MAX_TOKENS, p.max_tokens as i64),
        KeyValue::new(attr::NUM_PREEMPTIONS, i64::from(p.preemptions)),
    ];
    attrs.extend(extra);
    span.add_event_with_timestamp(name, now.wall, attrs);
}
