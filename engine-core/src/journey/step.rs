//! Step tracing (`JOURNEY-SPEC.md` §1–§2): a `scheduler_steps` window span, root of its own
//! trace, holding a `step.BATCH_SUMMARY` event per sampled step (and `step.REQUEST_SNAPSHOT`s on
//! rich-sampled ones); each sampled step also gets a `scheduler_step` child span covering the
//! whole step, linked to the `llm_core` spans of the traced requests in its batch.
//!
//! A window is opened by the first event after the previous one closed, and closed once it
//! spans `closure_interval` steps; a window with no event is never created, which is how an
//! empty window is "extended". Sampling is a hash of the step id, so runs are reproducible.

use opentelemetry::trace::{Link, Span, SpanContext, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span as SdkSpan};
use proto::conventions::{attr, span, step_event};
use proto::telemetry::sampling::{RICH_STEP_SALT, STEP_SALT, step_sampled};
use proto::telemetry::{LiveToken, Stamp};

use super::config::{StepSampling, StepTracingConfig};
use crate::lifecycle::{RequestSnapshot, StepEnd};

/// Most span links one step span carries (the SDK keeps 128); the rest are counted.
pub const MAX_STEP_LINKS: usize = 64;

struct Window {
    span: SdkSpan,
    first_step: u64,
    _live: LiveToken,
}

/// The step thread's step tracer.
pub struct StepTracer {
    tracer: SdkTracer,
    cfg: StepTracingConfig,
    window: Option<Window>,
}

impl StepTracer {
    /// A tracer of steps with `cfg`.
    pub fn new(tracer: SdkTracer, cfg: StepTracingConfig) -> Self {
        Self {
            tracer,
            cfg,
            window: None,
        }
    }

    /// Whether step `id` is sampled (decided from the id alone).
    pub fn sampling(&self, id: u64) -> StepSampling {
        if !step_sampled(id, STEP_SALT, self.cfg.sample_rate) {
            StepSampling::Off
        } else if step_sampled(id, RICH_STEP_SALT, self.cfg.rich_subsample_rate) {
            StepSampling::Rich
        } else {
            StepSampling::Summary
        }
    }

    /// Records a sampled step: its span (linked to `links`, the `llm_core` spans of the
    /// traced requests in its batch), and its events on the span and the window, with a
    /// snapshot per running request when `snapshots` (rich sampling).
    pub fn record(
        &mut self,
        r: &StepEnd<'_>,
        links: &[SpanContext],
        snapshots: &[RequestSnapshot],
    ) {
        let (start, end) = (r.started, r.ended);
        let summary = summary_attributes(r);
        let window = self.window_for(r.step, start);
        window
            .span
            .add_event_with_timestamp(step_event::BATCH_SUMMARY, end.wall, summary.clone());
        let parent = Context::new().with_remote_span_context(window.span.span_context().clone());
        let kept = links.len().min(MAX_STEP_LINKS);
        let dropped = links.len() - kept;
        let links = links[..kept]
            .iter()
            .map(|sc| Link::with_context(sc.clone()))
            .collect();
        let mut attrs = summary.clone();
        attrs.push(KeyValue::new(attr::KV_DEVICE, self.cfg.kv_device.clone()));
        attrs.push(KeyValue::new(attr::STEP_LINKS_DROPPED, dropped as i64));
        let mut step = self
            .tracer
            .span_builder(span::SCHEDULER_STEP)
            .with_kind(SpanKind::Internal)
            .with_start_time(start.wall)
            .with_attributes(attrs)
            .with_links(links)
            .start_with_context(&self.tracer, &parent);
        step.add_event_with_timestamp(step_event::BATCH_SUMMARY, end.wall, summary);
        for s in snapshots {
            let attrs = snapshot_attributes(r.step, s);
            step.add_event_with_timestamp(step_event::REQUEST_SNAPSHOT, end.wall, attrs.clone());
            if let Some(w) = self.window.as_mut() {
                w.span
                    .add_event_with_timestamp(step_event::REQUEST_SNAPSHOT, end.wall, attrs);
            }
        }
        step.end_with_timestamp(end.wall);
    }

    /// Closes the window once it spans `closure_interval` steps; call after every step.
    pub fn after_step(&mut self, id: u64) {
        if self
            .window
            .as_ref()
            .is_some_and(|w| id + 1 >= w.first_step + self.cfg.closure_interval)
        {
            self.close();
        }
    }

    /// Ends the open window (at shutdown, or at closure).
    pub fn close(&mut self) {
        if let Some(mut w) = self.window.take() {
            w.span.end();
        }
    }

    fn window_for(&mut self, id: u64, start: Stamp) -> &mut Window {
        let tracer = &self.tracer;
        let device = self.cfg.kv_device.clone();
        let interval = self.cfg.closure_interval;
        self.window.get_or_insert_with(|| {
            let first_step = id - id % interval;
            let span = tracer
                .span_builder(span::SCHEDULER_STEPS)
                .with_kind(SpanKind::Internal)
                .with_start_time(start.wall)
                .with_attributes([
                    KeyValue::new(attr::STEP_ID, first_step as i64),
                    KeyValue::new(attr::KV_DEVICE, device),
                ])
                .start_with_context(tracer, &Context::new());
            Window {
                span,
                first_step,
                _live: LiveToken::new(),
            }
        })
    }
}

impl Drop for StepTracer {
    fn drop(&mut self) {
        self.close();
    }
}

fn summary_attributes(r: &StepEnd<'_>) -> Vec<KeyValue> {
    let ns = |s: Stamp| {
        s.wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
    };
    let (b, load) = (r.batch, r.load);
    let total = load.kv_blocks_total.max(1) as f64;
    let free = load.kv_blocks_total - load.kv_blocks_used.min(load.kv_blocks_total);
    let int = |k: &'static str, v: usize| KeyValue::new(k, v as i64);
    vec![
        KeyValue::new(attr::STEP_ID, r.step as i64),
        KeyValue::new(attr::STEP_TS_START_NS, ns(r.started)),
        KeyValue::new(attr::STEP_TS_END_NS, ns(r.ended)),
        KeyValue::new(
            attr::STEP_DURATION_US,
            (r.ended.mono_ns.saturating_sub(r.started.mono_ns) / 1000) as i64,
        ),
        KeyValue::new(attr::STEP_SCHEDULE_US, r.schedule_time.as_micros() as i64),
        KeyValue::new(attr::STEP_MODEL_US, r.model_time.as_micros() as i64),
        int(attr::QUEUE_RUNNING_DEPTH, b.num_running),
        int(attr::QUEUE_WAITING_DEPTH, b.num_waiting),
        int(attr::BATCH_NUM_PREFILL_REQS, b.num_prefill_reqs),
        int(attr::BATCH_NUM_DECODE_REQS, b.num_decode_reqs),
        int(
            attr::BATCH_SCHEDULED_TOKENS,
            b.prefill_tokens + b.decode_tokens,
        ),
        int(attr::BATCH_PREFILL_TOKENS, b.prefill_tokens),
        int(attr::BATCH_DECODE_TOKENS, b.decode_tokens),
        int(attr::BATCH_NUM_FINISHED, r.num_finished),
        int(attr::BATCH_NUM_PREEMPTED, r.num_preempted),
        KeyValue::new(
            attr::KV_USAGE_GPU_RATIO,
            load.kv_blocks_used.min(load.kv_blocks_total) as f64 / total,
        ),
        int(attr::KV_BLOCKS_TOTAL_GPU, load.kv_blocks_total),
        int(attr::KV_BLOCKS_FREE_GPU, free),
    ]
}

fn snapshot_attributes(step: u64, s: &RequestSnapshot) -> Vec<KeyValue> {
    let int = |k: &'static str, v: usize| KeyValue::new(k, v as i64);
    vec![
        KeyValue::new(attr::STEP_ID, step as i64),
        KeyValue::new(attr::REQUEST_ID, s.request_id.clone()),
        KeyValue::new(attr::REQUEST_PHASE, s.phase.as_str()),
        int(attr::REQUEST_NUM_PROMPT_TOKENS, s.num_prompt_tokens),
        int(attr::REQUEST_NUM_COMPUTED_TOKENS, s.num_computed_tokens),
        int(attr::REQUEST_NUM_OUTPUT_TOKENS, s.num_output_tokens),
        KeyValue::new(attr::REQUEST_NUM_PREEMPTIONS, i64::from(s.num_preemptions)),
        int(attr::REQUEST_SCHEDULED_TOKENS_THIS_STEP, s.scheduled_tokens),
        int(attr::KV_BLOCKS_ALLOCATED_GPU, s.blocks_allocated),
        int(attr::KV_BLOCKS_CACHED_GPU, s.blocks_cached),
        int(
            attr::REQUEST_EFFECTIVE_PROMPT_LEN,
            s.num_prompt_tokens - s.num_cached_tokens.min(s.num_prompt_tokens),
        ),
    ]
}
