//! The engine's Prometheus metrics (vLLM's names with a `journey:` prefix, OTel GenAI buckets),
//! updated by the step loop at the same lifecycle points as the journey events, whether or not
//! tracing is on, and served as text on `/metrics` ([`serve`]).

mod http;

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use proto::conventions::{buckets, metric};
use proto::telemetry::exposition::Exposition;

pub use http::serve;

use crate::engine::{FinishReason, Timings};
use crate::journey::finish_status_of;

type Labels = Vec<(&'static str, &'static str)>;

/// Every engine metric, registered once.
pub struct EngineMetrics {
    registry: Registry,
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
    queue: Histogram,
    prefill: Histogram,
    decode: Histogram,
    preemptions: Counter,
    prefix_queries: Counter,
    prefix_hits: Counter,
    finished: Family<Labels, Counter>,
    prompt_tokens: Counter,
    generation_tokens: Counter,
    running: Gauge,
    waiting: Gauge,
    kv_usage: Gauge<f64, AtomicU64>,
    iteration_tokens: Histogram,
    batch_size: Histogram,
    exposition: Exposition,
}

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineMetrics")
    }
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineMetrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let hist = |b: &[f64]| Histogram::new(b.iter().copied());
        let m = Self {
            registry: Registry::default(),
            ttft: hist(buckets::TIME_TO_FIRST_TOKEN),
            itl: hist(buckets::TIME_PER_OUTPUT_TOKEN),
            e2e: hist(buckets::REQUEST_DURATION),
            queue: hist(buckets::REQUEST_DURATION),
            prefill: hist(buckets::REQUEST_DURATION),
            decode: hist(buckets::REQUEST_DURATION),
            preemptions: Counter::default(),
            prefix_queries: Counter::default(),
            prefix_hits: Counter::default(),
            finished: Family::default(),
            prompt_tokens: Counter::default(),
            generation_tokens: Counter::default(),
            running: Gauge::default(),
            waiting: Gauge::default(),
            kv_usage: Gauge::default(),
            iteration_tokens: hist(buckets::BATCH),
            batch_size: hist(buckets::BATCH),
            exposition: Exposition::default(),
        };
        m.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            metric::TIME_TO_FIRST_TOKEN_SECONDS,
            "Arrival to first token, seconds",
            self.ttft.clone(),
        );
        r.register(
            metric::INTER_TOKEN_LATENCY_SECONDS,
            "Time between consecutive output tokens, seconds",
            self.itl.clone(),
        );
        r.register(
            metric::E2E_REQUEST_LATENCY_SECONDS,
            "Arrival to finish, seconds",
            self.e2e.clone(),
        );
        r.register(
            metric::REQUEST_QUEUE_TIME_SECONDS,
            "Queued to first scheduled, seconds",
            self.queue.clone(),
        );
        r.register(
            metric::REQUEST_PREFILL_TIME_SECONDS,
            "Time in steps computing prompt tokens, seconds",
            self.prefill.clone(),
        );
        r.register(
            metric::REQUEST_DECODE_TIME_SECONDS,
            "Time in decode steps, seconds",
            self.decode.clone(),
        );
        r.register(
            metric::NUM_PREEMPTIONS,
            "Preemptions",
            self.preemptions.clone(),
        );
        r.register(
            metric::PREFIX_CACHE_QUERIES,
            "Prompt tokens looked up in the prefix cache",
            self.prefix_queries.clone(),
        );
        r.register(
            metric::PREFIX_CACHE_HITS,
            "Prompt tokens found in the prefix cache",
            self.prefix_hits.clone(),
        );
        r.register(
            metric::REQUEST_SUCCESS,
            "Finished requests by finish status",
            self.finished.clone(),
        );
        r.register(
            metric::PROMPT_TOKENS,
            "Prompt tokens of finished requests",
            self.prompt_tokens.clone(),
        );
        r.register(
            metric::GENERATION_TOKENS,
            "Generated tokens of finished requests",
            self.generation_tokens.clone(),
        );
        r.register(
            metric::NUM_REQUESTS_RUNNING,
            "Requests running",
            self.running.clone(),
        );
        r.register(
            metric::NUM_REQUESTS_WAITING,
            "Requests waiting (preempted included)",
            self.waiting.clone(),
        );
        r.register(
            metric::KV_CACHE_USAGE_PERC,
            "Used fraction of the KV pool (0..1)",
            self.kv_usage.clone(),
        );
        r.register(
            metric::ITERATION_TOKENS,
            "Tokens per scheduler step",
            self.iteration_tokens.clone(),
        );
        r.register(
            metric::BATCH_SIZE,
            "Requests per scheduler step",
            self.batch_size.clone(),
        );
        self.exposition = Exposition::register(r);
        self
    }

    /// A token was sampled `since_last` seconds after the request's previous one.
    pub fn on_token(&self, since_last: f64) {
        self.itl.observe(since_last);
    }

    /// The first token of a request arrived `ttft` seconds after arrival.
    pub fn on_first_token(&self, ttft: f64) {
        self.ttft.observe(ttft);
    }

    /// A request was preempted.
    pub fn on_preempted(&self) {
        self.preemptions.inc();
    }

    /// A request was admitted with `hit` of its `queried` prompt tokens cached.
    pub fn on_prefix_lookup(&self, queried: usize, hit: usize) {
        self.prefix_queries.inc_by(queried as u64);
        self.prefix_hits.inc_by(hit as u64);
    }

    /// A request left the engine.
    pub fn on_finished(&self, reason: FinishReason, t: &Timings, prompt: usize, output: usize) {
        self.finished
            .get_or_create(&vec![(
                metric::LABEL_FINISHED_REASON,
                finish_status_of(reason),
            )])
            .inc();
        self.prompt_tokens.inc_by(prompt as u64);
        self.generation_tokens.inc_by(output as u64);
        if t.finished > 0.0 && t.arrived > 0.0 {
            self.e2e.observe((t.finished - t.arrived).max(0.0));
        }
        if t.scheduled > 0.0 {
            self.queue.observe((t.scheduled - t.queued).max(0.0));
            self.prefill.observe(t.prefill_time);
            self.decode.observe(t.decode_time);
        }
    }

    /// The shape of one step.
    pub fn on_step(&self, tokens: usize, requests: usize) {
        self.iteration_tokens.observe(tokens as f64);
        self.batch_size.observe(requests as f64);
    }

    /// Queue depths and KV usage after a step.
    pub fn set_load(&self, running: usize, waiting: usize, kv_used: usize, kv_total: usize) {
        self.running.set(running as i64);
        self.waiting.set(waiting as i64);
        self.kv_usage.set(kv_used as f64 / kv_total.max(1) as f64);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.exposition.render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_render() {
        let m = EngineMetrics::new();
        m.on_preempted();
        m.on_finished(FinishReason::Stop, &Timings::default(), 5, 7);
        m.set_load(2, 3, 1, 4);
        let text = m.render();
        for needle in [
            "journey:num_preemptions_total 1",
            "journey:request_success_total{finished_reason=\"stopped\"} 1",
            "journey:prompt_tokens_total 5",
            "journey:generation_tokens_total 7",
            "journey:num_requests_running 2",
            "journey:kv_cache_usage_perc 0.25",
            "journey:time_to_first_token_seconds_bucket{le=\"0.001\"} 0",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }
}
