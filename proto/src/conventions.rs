//! Journey's tracing conventions: every span, scope, event, attribute, metadata-key and metric
//! name both services use, in one place (`../shared/JOURNEY-SPEC.md` is the specification).
//! The names keep those of the vLLM journey-tracing fork so its dashboards and TraceQL queries
//! carry over; the current OTel GenAI semantic-convention keys are set beside them.
//!
//! No other file of the workspace spells these names as literals (a test greps for that).

/// Span names.
pub mod span {
    /// The gateway's span of one HTTP request (kind SERVER).
    pub const LLM_REQUEST: &str = "llm_request";
    /// The engine's span of one generation, from the waiting queue to being freed.
    pub const LLM_CORE: &str = "llm_core";
    /// A window of scheduler steps: root of its own trace, closed every N steps.
    pub const SCHEDULER_STEPS: &str = "scheduler_steps";
    /// One sampled scheduler step (schedule + forward + output), child of the window.
    pub const SCHEDULER_STEP: &str = "scheduler_step";
}

/// Instrumentation scopes (the tracer names).
pub mod scope {
    /// The gateway's request spans.
    pub const API: &str = "journey.api";
    /// The engine's request spans.
    pub const SCHEDULER: &str = "journey.scheduler";
    /// The engine's step spans.
    pub const SCHEDULER_STEP: &str = "journey.scheduler.step";
}

/// Default `service.name`s (overridable by `OTEL_SERVICE_NAME`).
pub mod service {
    /// The gateway.
    pub const API_GATEWAY: &str = "api-gateway";
    /// The engine.
    pub const ENGINE_CORE: &str = "engine-core";
}

/// gRPC metadata keys set by the gateway (W3C keys come from the propagator).
pub mod metadata {
    /// The gateway's sampling decision, `1` or `0`; never forwarded from a client.
    pub const JOURNEY_SAMPLED: &str = "x-journey-sampled";
    /// The tenant (from the API key) the engine's `fair` scheduling policy shares slots by.
    pub const JOURNEY_TENANT: &str = "x-journey-tenant";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state.
    pub const TRACESTATE: &str = "tracestate";
}

/// Events on `llm_request`.
pub mod api_event {
    /// The HTTP request was received.
    pub const ARRIVED: &str = "api.ARRIVED";
    /// The engine accepted the `Generate` call (response headers received).
    pub const HANDOFF_TO_CORE: &str = "api.HANDOFF_TO_CORE";
    /// The first message from the engine arrived.
    pub const FIRST_RESPONSE_FROM_CORE: &str = "api.FIRST_RESPONSE_FROM_CORE";
    /// The response is complete.
    pub const DEPARTED: &str = "api.DEPARTED";
    /// The request failed; carries [`super::attr::REASON`] and maybe [`super::attr::ERROR`].
    pub const ABORTED: &str = "api.ABORTED";
}

/// `reason` values of `api.ABORTED`.
pub mod abort_reason {
    /// The client went away mid-request.
    pub const CLIENT_DISCONNECT: &str = "client_disconnect";
    /// The request was invalid (400/404/413).
    pub const VALIDATION_ERROR: &str = "validation_error";
    /// The engine failed while generating.
    pub const GENERATION_ERROR: &str = "generation_error";
    /// The engine could not be reached or refused for load.
    pub const ENGINE_UNAVAILABLE: &str = "engine_unavailable";
    /// A deadline passed: the engine's (`--request-timeout`), or the client's own (its body
    /// did not arrive within `--body-read-timeout`, or it stopped reading a stream for
    /// `--stream-write-timeout`).
    pub const TIMEOUT: &str = "timeout";
    /// The gateway refused it for load before any work (`--max-concurrent-requests`, 429).
    pub const REJECTED: &str = "rejected";
    /// Anything else.
    pub const EXCEPTION: &str = "exception";
    /// The process is shutting down.
    pub const SHUTDOWN: &str = "shutdown";
}

/// Events on `llm_core`, and their `event.type` values.
pub mod journey_event {
    /// Accepted into the waiting queue.
    pub const QUEUED: &str = "journey.QUEUED";
    /// Scheduled from waiting (first time or after preemption).
    pub const SCHEDULED: &str = "journey.SCHEDULED";
    /// First output token sampled.
    pub const FIRST_TOKEN: &str = "journey.FIRST_TOKEN";
    /// Lost its KV blocks; requeued.
    pub const PREEMPTED: &str = "journey.PREEMPTED";
    /// Freed by the engine, on any path.
    pub const FINISHED: &str = "journey.FINISHED";

    /// `event.type` of [`QUEUED`].
    pub const TYPE_QUEUED: &str = "QUEUED";
    /// `event.type` of [`SCHEDULED`].
    pub const TYPE_SCHEDULED: &str = "SCHEDULED";
    /// `event.type` of [`FIRST_TOKEN`].
    pub const TYPE_FIRST_TOKEN: &str = "FIRST_TOKEN";
    /// `event.type` of [`PREEMPTED`].
    pub const TYPE_PREEMPTED: &str = "PREEMPTED";
    /// `event.type` of [`FINISHED`].
    pub const TYPE_FINISHED: &str = "FINISHED";
}

/// `phase` values of the progress snapshot.
pub mod phase {
    /// Queued, never scheduled.
    pub const WAITING: &str = "WAITING";
    /// No output token yet.
    pub const PREFILL: &str = "PREFILL";
    /// At least one output token.
    pub const DECODE: &str = "DECODE";
}

/// `schedule.kind` values.
pub mod schedule_kind {
    /// Scheduled from waiting for the first time.
    pub const FIRST: &str = "FIRST";
    /// Scheduled again after a preemption.
    pub const RESUME: &str = "RESUME";
}

/// `finish.status` values.
pub mod finish_status {
    /// EOS or a stop sequence.
    pub const STOPPED: &str = "stopped";
    /// max_tokens or the context.
    pub const LENGTH: &str = "length";
    /// Client gone, `Abort` RPC or shutdown.
    pub const ABORTED: &str = "aborted";
    /// The prompt can never fit.
    pub const IGNORED: &str = "ignored";
    /// The engine failed.
    pub const ERROR: &str = "error";
}

/// Step events.
pub mod step_event {
    /// One per sampled step, on the window span and the step span.
    pub const BATCH_SUMMARY: &str = "step.BATCH_SUMMARY";
    /// One per running request on rich-sampled steps.
    pub const REQUEST_SNAPSHOT: &str = "step.REQUEST_SNAPSHOT";
}

/// Attribute keys.
pub mod attr {
    // --- api.* events
    /// Gateway monotonic clock, float seconds.
    pub const EVENT_TS_MONOTONIC: &str = "event.ts.monotonic";
    /// Why a request was aborted.
    pub const REASON: &str = "reason";
    /// The error message of an abort.
    pub const ERROR: &str = "error";

    // --- journey.* progress snapshot
    /// `QUEUED` … `FINISHED`.
    pub const EVENT_TYPE: &str = "event.type";
    /// Engine monotonic clock, float seconds.
    pub const TS_MONOTONIC: &str = "ts.monotonic";
    /// Engine monotonic clock, integer ns.
    pub const TS_MONOTONIC_NS: &str = "ts.monotonic_ns";
    /// Scheduler step counter.
    pub const SCHEDULER_STEP: &str = "scheduler.step";
    /// `WAITING`, `PREFILL` or `DECODE`.
    pub const PHASE: &str = "phase";
    /// High-water mark of prompt tokens processed.
    pub const PREFILL_DONE_TOKENS: &str = "prefill.done_tokens";
    /// Prompt length.
    pub const PREFILL_TOTAL_TOKENS: &str = "prefill.total_tokens";
    /// Output tokens so far.
    pub const DECODE_DONE_TOKENS: &str = "decode.done_tokens";
    /// The request's max_tokens.
    pub const DECODE_MAX_TOKENS: &str = "decode.max_tokens";
    /// Preemptions so far.
    pub const NUM_PREEMPTIONS: &str = "num_preemptions";
    /// `FIRST` or `RESUME`.
    pub const SCHEDULE_KIND: &str = "schedule.kind";
    /// How the request ended.
    pub const FINISH_STATUS: &str = "finish.status";
    /// `SCHEDULED`: what held it back at the last step it was not admitted (a [`super::stage`]
    /// queue stage, or `queue_step` when the engine had not looked yet).
    pub const WAIT_ENDED: &str = "wait.ended";
    /// `PREEMPTED`: why the scheduler took its blocks: `kv_blocks` (another running request
    /// needed them), `fair_share` (its tenant held more than its share of running slots while
    /// another waited) or `priority` (a higher-priority request waited).
    pub const PREEMPT_CAUSE: &str = "preempt.cause";
    /// `llm_core`: the request's `priority` (set when not 0).
    pub const PRIORITY: &str = "journey.priority";

    // --- llm_core stage times (seconds), set when it finishes
    /// Prompt rendering and tokenization.
    pub const TIME_TOKENIZE: &str = "time.tokenize";
    /// Tokenized to in the step thread's queue.
    pub const TIME_HANDOFF: &str = "time.handoff";
    /// First wait, for the running step to end.
    pub const TIME_QUEUE_STEP: &str = "time.queue.step";
    /// First wait, for a running slot.
    pub const TIME_QUEUE_RUNNING_SLOT: &str = "time.queue.running_slot";
    /// First wait, for KV blocks.
    pub const TIME_QUEUE_KV_BLOCKS: &str = "time.queue.kv_blocks";
    /// First wait, for the token budget.
    pub const TIME_QUEUE_TOKEN_BUDGET: &str = "time.queue.token_budget";
    /// Waits after preemptions, all reasons.
    pub const TIME_REQUEUE: &str = "time.requeue";
    /// Turning tokens into text.
    pub const TIME_DETOKENIZE: &str = "time.detokenize";

    // --- step events and the step span
    /// Step id.
    pub const STEP_ID: &str = "step.id";
    /// Wall-clock ns at the step's start.
    pub const STEP_TS_START_NS: &str = "step.ts_start_ns";
    /// Wall-clock ns at the step's end.
    pub const STEP_TS_END_NS: &str = "step.ts_end_ns";
    /// Whole step, µs.
    pub const STEP_DURATION_US: &str = "step.duration_us";
    /// Scheduling part, µs.
    pub const STEP_SCHEDULE_US: &str = "step.schedule_us";
    /// Model forward and output part, µs.
    pub const STEP_MODEL_US: &str = "step.model_us";
    /// Running requests after scheduling.
    pub const QUEUE_RUNNING_DEPTH: &str = "queue.running_depth";
    /// Waiting requests after scheduling.
    pub const QUEUE_WAITING_DEPTH: &str = "queue.waiting_depth";
    /// Requests computing prompt tokens.
    pub const BATCH_NUM_PREFILL_REQS: &str = "batch.num_prefill_reqs";
    /// Requests decoding one token.
    pub const BATCH_NUM_DECODE_REQS: &str = "batch.num_decode_reqs";
    /// Tokens scheduled.
    pub const BATCH_SCHEDULED_TOKENS: &str = "batch.scheduled_tokens";
    /// Prefill tokens.
    pub const BATCH_PREFILL_TOKENS: &str = "batch.prefill_tokens";
    /// Decode tokens.
    pub const BATCH_DECODE_TOKENS: &str = "batch.decode_tokens";
    /// Requests finished in the step.
    pub const BATCH_NUM_FINISHED: &str = "batch.num_finished";
    /// Requests preempted in the step.
    pub const BATCH_NUM_PREEMPTED: &str = "batch.num_preempted";
    /// Used fraction of the KV pool.
    pub const KV_USAGE_GPU_RATIO: &str = "kv.usage_gpu_ratio";
    /// Blocks in the KV pool.
    pub const KV_BLOCKS_TOTAL_GPU: &str = "kv.blocks_total_gpu";
    /// Free blocks in the KV pool.
    pub const KV_BLOCKS_FREE_GPU: &str = "kv.blocks_free_gpu";
    /// The KV pool's device (`cpu`, `cuda`).
    pub const KV_DEVICE: &str = "kv.device";
    /// The model's architecture (`llama`, `qwen2`, `qwen3`, `gemma3`), on `llm_core`.
    pub const MODEL_ARCHITECTURE: &str = "model.architecture";
    /// Links to `llm_core` spans left out by the cap.
    pub const STEP_LINKS_DROPPED: &str = "step.links_dropped";
    /// Request id in a snapshot.
    pub const REQUEST_ID: &str = "request.id";
    /// Request phase in a snapshot.
    pub const REQUEST_PHASE: &str = "request.phase";
    /// Prompt tokens in a snapshot.
    pub const REQUEST_NUM_PROMPT_TOKENS: &str = "request.num_prompt_tokens";
    /// Computed tokens in a snapshot.
    pub const REQUEST_NUM_COMPUTED_TOKENS: &str = "request.num_computed_tokens";
    /// Output tokens in a snapshot.
    pub const REQUEST_NUM_OUTPUT_TOKENS: &str = "request.num_output_tokens";
    /// Preemptions in a snapshot.
    pub const REQUEST_NUM_PREEMPTIONS: &str = "request.num_preemptions";
    /// Tokens scheduled for the request in this step.
    pub const REQUEST_SCHEDULED_TOKENS_THIS_STEP: &str = "request.scheduled_tokens_this_step";
    /// Blocks the request holds.
    pub const KV_BLOCKS_ALLOCATED_GPU: &str = "kv.blocks_allocated_gpu";
    /// Blocks of the request found in a prefix cache.
    pub const KV_BLOCKS_CACHED_GPU: &str = "kv.blocks_cached_gpu";
    /// Prompt minus prefix-cache hits.
    pub const REQUEST_EFFECTIVE_PROMPT_LEN: &str = "request.effective_prompt_len";

    // --- span attributes (the fork's names)
    /// The OpenAI id (gateway) or the engine's id (engine).
    pub const GEN_AI_REQUEST_ID: &str = "gen_ai.request.id";
    /// The route template.
    pub const HTTP_ROUTE: &str = "http.route";
    /// The tenant an API key belongs to (never the key).
    pub const TENANT: &str = "journey.tenant";
    /// The HTTP status the gateway answered with (OTel `http.response.status_code`).
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// The served model.
    pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// Prompt tokens (the fork's, deprecated semconv name).
    pub const GEN_AI_USAGE_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
    /// Completion tokens (the fork's, deprecated semconv name).
    pub const GEN_AI_USAGE_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
    /// Sampling temperature.
    pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
    /// Nucleus mass.
    pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
    /// Most tokens to generate.
    pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
    /// Choices asked for.
    pub const GEN_AI_REQUEST_N: &str = "gen_ai.request.n";
    /// Finish reasons of the choices.
    pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    /// Arrival to first token, s.
    pub const GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN: &str = "gen_ai.latency.time_to_first_token";
    /// Arrival to finish, s.
    pub const GEN_AI_LATENCY_E2E: &str = "gen_ai.latency.e2e";
    /// Queued to scheduled, s.
    pub const GEN_AI_LATENCY_TIME_IN_QUEUE: &str = "gen_ai.latency.time_in_queue";
    /// Time of prefill steps, s.
    pub const GEN_AI_LATENCY_TIME_IN_MODEL_PREFILL: &str = "gen_ai.latency.time_in_model_prefill";
    /// Time of decode steps, s.
    pub const GEN_AI_LATENCY_TIME_IN_MODEL_DECODE: &str = "gen_ai.latency.time_in_model_decode";
    /// Prefill plus decode, s.
    pub const GEN_AI_LATENCY_TIME_IN_MODEL_INFERENCE: &str =
        "gen_ai.latency.time_in_model_inference";

    // --- current OTel GenAI semantic conventions
    /// `chat` or `text_completion`.
    pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
    /// `journey`.
    pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// The model the client asked for.
    pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
    /// Prompt tokens.
    pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Generated tokens.
    pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Top-k.
    pub const GEN_AI_REQUEST_TOP_K: &str = "gen_ai.request.top_k";
    /// Seed.
    pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
    /// Streaming or not.
    pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
    /// The response id.
    pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
    /// Failure class.
    pub const ERROR_TYPE: &str = "error.type";

    // --- gateway routing and resources
    /// The URL of the engine that served the request.
    pub const JOURNEY_ENGINE: &str = "journey.engine";
    /// Engines tried for the request (more than 1 when one was unreachable).
    pub const JOURNEY_ENGINE_ATTEMPTS: &str = "journey.engine.attempts";
    /// Resource attribute telling replicas of one service apart.
    pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
}

/// Attribute values that are not free-form.
pub mod value {
    /// `gen_ai.provider.name`.
    pub const PROVIDER: &str = "journey";
    /// `gen_ai.operation.name` of chat completions.
    pub const OPERATION_CHAT: &str = "chat";
    /// `gen_ai.operation.name` of completions.
    pub const OPERATION_TEXT_COMPLETION: &str = "text_completion";
}

/// Prometheus metric names (vLLM's, with a `journey:` prefix). Counters are registered without
/// the `_total` suffix, which the exposition adds.
pub mod metric {
    /// Histogram: arrival to first token, s.
    pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "journey:time_to_first_token_seconds";
    /// Histogram: between consecutive tokens, s.
    pub const INTER_TOKEN_LATENCY_SECONDS: &str = "journey:inter_token_latency_seconds";
    /// Histogram: arrival to finish, s.
    pub const E2E_REQUEST_LATENCY_SECONDS: &str = "journey:e2e_request_latency_seconds";
    /// Histogram: queued to first scheduled, s.
    pub const REQUEST_QUEUE_TIME_SECONDS: &str = "journey:request_queue_time_seconds";
    /// Histogram: time in prefill steps, s.
    pub const REQUEST_PREFILL_TIME_SECONDS: &str = "journey:request_prefill_time_seconds";
    /// Histogram: time in decode steps, s.
    pub const REQUEST_DECODE_TIME_SECONDS: &str = "journey:request_decode_time_seconds";
    /// Counter: preemptions.
    pub const NUM_PREEMPTIONS: &str = "journey:num_preemptions";
    /// Counter: finished requests, label `finished_reason`.
    pub const REQUEST_SUCCESS: &str = "journey:request_success";
    /// Counter: prompt tokens of finished requests.
    pub const PROMPT_TOKENS: &str = "journey:prompt_tokens";
    /// Counter: generated tokens of finished requests.
    pub const GENERATION_TOKENS: &str = "journey:generation_tokens";
    /// Gauge: running requests.
    pub const NUM_REQUESTS_RUNNING: &str = "journey:num_requests_running";
    /// Gauge: waiting requests.
    pub const NUM_REQUESTS_WAITING: &str = "journey:num_requests_waiting";
    /// Counter: prompt tokens looked up in the prefix cache (at each admission).
    pub const PREFIX_CACHE_QUERIES: &str = "journey:prefix_cache_queries";
    /// Counter: of those, tokens found cached.
    pub const PREFIX_CACHE_HITS: &str = "journey:prefix_cache_hits";
    /// Gauge: used fraction of the KV pool, 0..1.
    pub const KV_CACHE_USAGE_PERC: &str = "journey:kv_cache_usage_perc";
    /// Gauge: used fraction of the sliding-window layers' KV pool, 0..1 (Gemma 3; 0 for
    /// models without such layers).
    pub const KV_WINDOW_CACHE_USAGE_PERC: &str = "journey:kv_window_cache_usage_perc";
    /// Histogram: tokens per step.
    pub const ITERATION_TOKENS: &str = "journey:iteration_tokens_total";
    /// Histogram: requests per step.
    pub const BATCH_SIZE: &str = "journey:batch_size";
    /// Gauge: spans started and not yet ended, plus per-request tracing state.
    pub const TRACING_LIVE_SPANS: &str = "journey:tracing_live_spans";
    /// Counter: spans dropped because their export failed for good (refused, retried past the
    /// budget, or failing at shutdown); queue-full drops are the SDK's and not counted here.
    pub const TRACING_EXPORT_DROPPED_SPANS: &str = "journey:tracing_export_dropped_spans";
    /// Counter: HTTP requests, labels `route` and `status`.
    pub const HTTP_REQUESTS: &str = "journey:http_requests";
    /// Histogram: HTTP request duration at the gateway, s.
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "journey:http_request_duration_seconds";
    /// Histogram: gateway-side arrival to first engine message, s.
    pub const API_TIME_TO_FIRST_TOKEN_SECONDS: &str = "journey:api_time_to_first_token_seconds";

    /// Gauge: 1 while the gateway considers an engine up, label `engine`.
    pub const GATEWAY_ENGINE_UP: &str = "journey:gateway_engine_up";
    /// Gauge: engine calls in flight, label `engine`.
    pub const GATEWAY_ENGINE_OUTSTANDING: &str = "journey:gateway_engine_outstanding";
    /// Counter: requests routed to an engine, label `engine`.
    pub const GATEWAY_ENGINE_REQUESTS: &str = "journey:gateway_engine_requests";
    /// Counter: failed probes or calls of an engine, label `engine`.
    pub const GATEWAY_ENGINE_FAILURES: &str = "journey:gateway_engine_failures";
    /// Counter: requests refused with 429 because `--max-concurrent-requests` were in flight,
    /// label `route`.
    pub const GATEWAY_REQUESTS_REJECTED: &str = "journey:gateway_requests_rejected";
    /// Gauge: LLM requests holding one of the `--max-concurrent-requests` places.
    pub const GATEWAY_REQUESTS_IN_FLIGHT: &str = "journey:gateway_requests_in_flight";

    /// Label of the gateway's per-engine metrics: the engine's URL.
    pub const LABEL_ENGINE: &str = "engine";
    /// Histogram: time of each stage of a request, s, label `stage` ([`super::stage`]).
    pub const REQUEST_STAGE_SECONDS: &str = "journey:request_stage_seconds";
    /// Label of [`REQUEST_STAGE_SECONDS`].
    pub const LABEL_STAGE: &str = "stage";
    /// Label of [`REQUEST_SUCCESS`].
    pub const LABEL_FINISHED_REASON: &str = "finished_reason";
    /// Label of [`HTTP_REQUESTS`].
    pub const LABEL_ROUTE: &str = "route";
    /// Label of [`HTTP_REQUESTS`].
    pub const LABEL_STATUS: &str = "status";
}

/// The stages of a request (values of the `stage` label), arrival to finish.
pub mod stage {
    /// Prompt rendering and tokenization.
    pub const TOKENIZE: &str = "tokenize";
    /// Tokenized to in the step thread's queue.
    pub const HANDOFF: &str = "handoff";
    /// Waiting for the running step to end (the engine had not looked yet).
    pub const QUEUE_STEP: &str = "queue_step";
    /// Waiting for a running slot (`max_num_seqs`).
    pub const QUEUE_RUNNING_SLOT: &str = "queue_running_slot";
    /// Waiting for KV blocks.
    pub const QUEUE_KV_BLOCKS: &str = "queue_kv_blocks";
    /// Waiting for room in a step's token budget.
    pub const QUEUE_TOKEN_BUDGET: &str = "queue_token_budget";
    /// First scheduled to first token.
    pub const PREFILL: &str = "prefill";
    /// Time in decode steps.
    pub const DECODE: &str = "decode";
    /// Turning tokens into text.
    pub const DETOKENIZE: &str = "detokenize";
    /// Every stage, in order.
    pub const ALL: [&str; 9] = [
        TOKENIZE,
        HANDOFF,
        QUEUE_STEP,
        QUEUE_RUNNING_SLOT,
        QUEUE_KV_BLOCKS,
        QUEUE_TOKEN_BUDGET,
        PREFILL,
        DECODE,
        DETOKENIZE,
    ];
}

/// Histogram bucket boundaries (OTel GenAI server metrics).
pub mod buckets {
    /// `gen_ai.server.time_to_first_token`.
    pub const TIME_TO_FIRST_TOKEN: &[f64] = &[
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
    /// `gen_ai.server.time_per_output_token`.
    pub const TIME_PER_OUTPUT_TOKEN: &[f64] = &[
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ];
    /// Stages of a request, from sub-millisecond tokenization to minutes of decode.
    pub const STAGE: &[f64] = &[
        0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ];
    /// `gen_ai.server.request.duration`.
    pub const REQUEST_DURATION: &[f64] = &[
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ];
    /// Tokens or requests per step.
    pub const BATCH: &[f64] = &[
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
    ];
}
