//! The engine's Prometheus metrics (vLLM's names with a `journey:` prefix, OTel GenAI buckets):
//! an observer of the request lifecycle ([`crate::lifecycle`]) fed the same events as the
//! journey spans, whether or not tracing is on, and served as text on `/metrics` ([`serve`]).

mod http;
mod observer;

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use proto::conventions::{buckets, metric};
use proto::telemetry::exposition::Exposition;

pub use http::serve;

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
    window_usage: Gauge<f64, AtomicU64>,
    iteration_tokens: Histogram,
    batch_size: Histogram,
    stages: Family<Labels, Histogram, fn() -> Histogram>,
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
            window_usage: Gauge::default(),
            iteration_tokens: hist(buckets::BATCH),
            batch_size: hist(buckets::BATCH),
            stages: Family::new_with_constructor(|| Histogram::new(buckets::STAGE.iter().copied())),
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
            metric::KV_WINDOW_CACHE_USAGE_PERC,
            "Used fraction of the sliding-window layers' KV pool (0..1; 0 without one)",
            self.window_usage.clone(),
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
        r.register(
            metric::REQUEST_STAGE_SECONDS,
            "Time of each stage of a request (label stage), seconds",
            self.stages.clone(),
        );
        self.exposition = Exposition::register(r);
        self
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.exposition.render(&self.registry)
    }
}
