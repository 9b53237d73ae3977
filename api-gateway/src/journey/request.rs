//! One request's journey at the gateway: the `llm_request` span guard and its metrics.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, Span as SdkSpan};
use proto::conventions::{abort_reason, api_event, attr, metadata, span, value};
use proto::engine::{GenerateResponse, Timings};
use proto::telemetry::propagation::{self, JourneySampled};
use proto::telemetry::{LiveToken, Stamp, bounded_text};
use tonic::metadata::MetadataMap;

use super::record::Recording;
use super::store::JourneyStore;
use crate::error::ApiError;
use crate::metrics::GatewayMetrics;

/// The request's parameters as span attributes.
#[derive(Clone, Debug, Default)]
pub struct RequestFacts {
    /// The OpenAI id returned to the client.
    pub id: String,
    /// The served model.
    pub model: String,
    /// The model the client named.
    pub requested_model: Option<String>,
    /// Choices per prompt.
    pub n: u32,
    /// Sampling temperature, when set.
    pub temperature: Option<f32>,
    /// Nucleus mass, when set.
    pub top_p: Option<f32>,
    /// Top-k, when set.
    pub top_k: Option<u32>,
    /// Most tokens per choice, when set.
    pub max_tokens: Option<u32>,
    /// Seed, when set.
    pub seed: Option<u64>,
    /// Streaming or not.
    pub stream: bool,
}

/// What the engine's messages said, folded as they pass.
#[derive(Default)]
struct Tally {
    prompt_tokens: u64,
    completion_tokens: u64,
    finish_reasons: Vec<String>,
    timings: Vec<Timings>,
}

struct Live {
    span: SdkSpan,
    tally: Tally,
    _live: LiveToken,
}

/// The journey of one request: its span (when sampled) and its metrics.
pub struct RequestJourney {
    live: Option<Live>,
    /// What the journey store will keep (when it is on).
    recording: Option<Box<Recording>>,
    metrics: Arc<GatewayMetrics>,
    route: &'static str,
    arrived: Instant,
    first_response: Option<Instant>,
    handed_off: bool,
    ended: bool,
    /// The authenticated tenant, sent to the engine for its fair scheduling.
    tenant: Option<String>,
}

impl std::fmt::Debug for RequestJourney {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestJourney")
            .field("sampled", &self.live.is_some())
            .field("route", &self.route)
            .finish()
    }
}

impl RequestJourney {
    pub(super) fn start(
        tracer: Option<&SdkTracer>,
        store: Option<&JourneyStore>,
        metrics: Arc<GatewayMetrics>,
        headers: &http::HeaderMap,
        route: &'static str,
        operation: &'static str,
    ) -> Self {
        let now = Stamp::now();
        let live = tracer.and_then(|t| {
            let parent = propagation::extract_http(headers);
            let mut span = t
                .span_builder(span::LLM_REQUEST)
                .with_kind(SpanKind::Server)
                .with_start_time(now.wall)
                .with_attributes([
                    KeyValue::new(attr::HTTP_ROUTE, route),
                    KeyValue::new(attr::GEN_AI_OPERATION_NAME, operation),
                    KeyValue::new(attr::GEN_AI_PROVIDER_NAME, value::PROVIDER),
                ])
                .start_with_context(t, &parent);
            if !span.span_context().is_sampled() {
                return None;
            }
            span.add_event_with_timestamp(api_event::ARRIVED, now.wall, mono(now));
            Some(Live {
                span,
                tally: Tally::default(),
                _live: LiveToken::new(),
            })
        });
        Self {
            live,
            recording: store.map(|s| Box::new(Recording::new(s.clone(), route, now))),
            metrics,
            route,
            arrived: Instant::now(),
            first_response: None,
            handed_off: false,
            ended: false,
            tenant: None,
        }
    }

    /// Whether this request is traced.
    pub fn is_sampled(&self) -> bool {
        self.live.is_some()
    }

    /// The gRPC metadata for the engine: W3C context of `llm_request` (when traced) and the
    /// gateway's `x-journey-sampled` decision.
    pub fn metadata(&self) -> MetadataMap {
        let mut md = MetadataMap::new();
        match &self.live {
            Some(l) => {
                let cx = Context::new().with_remote_span_context(l.span.span_context().clone());
                propagation::inject_metadata(&cx, &mut md);
                propagation::set_sampled(&mut md, JourneySampled::Yes);
            }
            None => propagation::set_sampled(&mut md, JourneySampled::No),
        }
        // Tenant names come from the key file (visible ASCII words): always valid metadata.
        if let Some(v) = self.tenant.as_deref().and_then(|t| t.parse().ok()) {
            md.insert(metadata::JOURNEY_TENANT, v);
        }
        md
    }

    /// The request was authenticated as `tenant`.
    pub fn set_tenant(&mut self, tenant: &str) {
        self.tenant = Some(tenant.to_owned());
        if let Some(r) = self.recording.as_mut() {
            r.tenant = Some(tenant.to_owned());
        }
        if let Some(l) = self.live.as_mut() {
            l.span
                .set_attribute(KeyValue::new(attr::TENANT, tenant.to_owned()));
        }
    }

    /// Whether the engine should send its side of the journey (the store keeps it).
    pub fn wants_engine_journey(&self) -> bool {
        self.recording.is_some()
    }

    /// The calls are about to go to an engine (the first attempt only counts).
    pub fn dispatching(&mut self, at: Stamp) {
        if let Some(r) = self.recording.as_mut() {
            r.dispatched.get_or_insert(at);
        }
    }

    /// Records the request's parameters.
    pub fn set_request(&mut self, f: &RequestFacts) {
        if let Some(r) = self.recording.as_mut() {
            r.request_id = f.id.clone();
            r.model = f.model.clone();
            r.stream = f.stream;
            r.n = f.n;
        }
        let Some(l) = self.live.as_mut() else {
            return;
        };
        let mut attrs = vec![
            KeyValue::new(attr::GEN_AI_REQUEST_ID, f.id.clone()),
            KeyValue::new(attr::GEN_AI_RESPONSE_ID, f.id.clone()),
            KeyValue::new(attr::GEN_AI_RESPONSE_MODEL, f.model.clone()),
            KeyValue::new(attr::GEN_AI_REQUEST_N, i64::from(f.n)),
            KeyValue::new(attr::GEN_AI_REQUEST_STREAM, f.stream),
        ];
        if let Some(m) = &f.requested_model {
            attrs.push(KeyValue::new(attr::GEN_AI_REQUEST_MODEL, bounded_text(m)));
        }
        let opt = [
            (
                attr::GEN_AI_REQUEST_TEMPERATURE,
                f.temperature.map(f64::from).map(Value::F64),
            ),
            (
                attr::GEN_AI_REQUEST_TOP_P,
                f.top_p.map(f64::from).map(Value::F64),
            ),
            (
                attr::GEN_AI_REQUEST_TOP_K,
                f.top_k.map(i64::from).map(Value::I64),
            ),
            (
                attr::GEN_AI_REQUEST_MAX_TOKENS,
                f.max_tokens.map(i64::from).map(Value::I64),
            ),
            (
                attr::GEN_AI_REQUEST_SEED,
                f.seed.map(|s| Value::I64(s as i64)),
            ),
        ];
        attrs.extend(
            opt.into_iter()
                .filter_map(|(k, v)| v.map(|v| KeyValue::new(k, v))),
        );
        l.span.set_attributes(attrs);
    }

    /// The calls went to the engine at `url`, found after `attempts` tries.
    pub fn set_engine(&mut self, url: &str, attempts: usize) {
        if let Some(l) = self.live.as_mut() {
            l.span.set_attributes([
                KeyValue::new(attr::JOURNEY_ENGINE, url.to_owned()),
                KeyValue::new(
                    attr::JOURNEY_ENGINE_ATTEMPTS,
                    i64::try_from(attempts).unwrap_or(i64::MAX),
                ),
            ]);
        }
    }

    /// The engine accepted the calls at `at` (response headers received).
    pub fn handed_off(&mut self, at: Stamp) {
        if std::mem::replace(&mut self.handed_off, true) {
            return;
        }
        if let Some(r) = self.recording.as_mut() {
            r.accepted = Some(at);
        }
        if let Some(l) = self.live.as_mut() {
            l.span
                .add_event_with_timestamp(api_event::HANDOFF_TO_CORE, at.wall, mono(at));
        }
    }

    /// The first message from the engine arrived at `at` (once per request).
    pub fn first_response(&mut self, at: Stamp, instant: Instant) {
        if self.first_response.is_some() {
            return;
        }
        self.first_response = Some(instant);
        if let Some(r) = self.recording.as_mut() {
            r.first_response = Some(at);
        }
        self.metrics
            .on_first_response(self.route, instant.duration_since(self.arrived));
        if let Some(l) = self.live.as_mut() {
            l.span
                .add_event_with_timestamp(api_event::FIRST_RESPONSE_FROM_CORE, at.wall, mono(at));
        }
    }

    /// Folds one engine message into the span's usage, finish reasons and latencies.
    pub fn observe(&mut self, m: &GenerateResponse) {
        if self.first_response.is_none() {
            self.first_response(Stamp::now(), Instant::now());
        }
        if let Some(r) = self.recording.as_mut() {
            if let Some(u) = &m.usage {
                r.prompt_tokens += u64::from(u.prompt_tokens);
                r.completion_tokens += u64::from(u.completion_tokens);
            }
            if m.finish_reason.is_some() {
                r.finish_reasons
                    .push(crate::openai::common::finish_reason_name(m.finish_reason()).to_owned());
            }
            if let Some(t) = m.timings {
                r.call_finished(t, m.journey.clone());
            }
        }
        let Some(l) = self.live.as_mut() else {
            return;
        };
        if let Some(u) = &m.usage {
            l.tally.prompt_tokens += u64::from(u.prompt_tokens);
            l.tally.completion_tokens += u64::from(u.completion_tokens);
        }
        if m.finish_reason.is_some() {
            l.tally
                .finish_reasons
                .push(crate::openai::common::finish_reason_name(m.finish_reason()).to_owned());
        }
        if let Some(t) = m.timings {
            l.tally.timings.push(t);
        }
    }

    /// Success: `api.DEPARTED`, the response attributes, status OK.
    pub fn depart(mut self) {
        self.end(http::StatusCode::OK, None);
    }

    /// Failure with `error`: `api.ABORTED` with the reason its kind implies.
    pub fn abort(mut self, error: &ApiError) {
        self.end(error.status(), Some((reason_of(error), error.to_string())));
    }

    fn end(&mut self, status: http::StatusCode, failure: Option<(&'static str, String)>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.metrics
            .on_finished(self.route, status.as_u16(), self.arrived.elapsed());
        if let Some(r) = self.recording.take() {
            let trace_id = self
                .live
                .as_ref()
                .map(|l| l.span.span_context().trace_id().to_string());
            r.file(status.as_u16(), failure.clone(), trace_id);
        }
        let Some(mut l) = self.live.take() else {
            return;
        };
        let now = Stamp::now();
        l.tally.set_attributes(&mut l.span);
        l.span.set_attribute(KeyValue::new(
            attr::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status.as_u16()),
        ));
        match failure {
            None => {
                l.span
                    .add_event_with_timestamp(api_event::DEPARTED, now.wall, mono(now));
            }
            Some((reason, error)) => {
                let mut attrs = mono(now);
                attrs.push(KeyValue::new(attr::REASON, reason));
                let error = bounded_text(&error);
                attrs.push(KeyValue::new(attr::ERROR, error.clone()));
                l.span
                    .add_event_with_timestamp(api_event::ABORTED, now.wall, attrs);
                l.span
                    .set_attribute(KeyValue::new(attr::ERROR_TYPE, reason));
                l.span.set_status(Status::error(error));
            }
        }
        l.span.end_with_timestamp(now.wall);
    }
}

impl Drop for RequestJourney {
    fn drop(&mut self) {
        // 499: nginx's "client closed request".
        let status = http::StatusCode::from_u16(499).unwrap_or(http::StatusCode::BAD_REQUEST);
        let why = "the client closed the connection before the response was complete";
        self.end(
            status,
            Some((abort_reason::CLIENT_DISCONNECT, why.to_owned())),
        );
    }
}

impl Tally {
    fn set_attributes(&self, span: &mut SdkSpan) {
        let mut attrs = vec![
            KeyValue::new(attr::GEN_AI_USAGE_PROMPT_TOKENS, self.prompt_tokens as i64),
            KeyValue::new(
                attr::GEN_AI_USAGE_COMPLETION_TOKENS,
                self.completion_tokens as i64,
            ),
            KeyValue::new(attr::GEN_AI_USAGE_INPUT_TOKENS, self.prompt_tokens as i64),
            KeyValue::new(
                attr::GEN_AI_USAGE_OUTPUT_TOKENS,
                self.completion_tokens as i64,
            ),
        ];
        if !self.finish_reasons.is_empty() {
            let reasons: Vec<opentelemetry::StringValue> = self
                .finish_reasons
                .iter()
                .map(|r| r.clone().into())
                .collect();
            attrs.push(KeyValue::new(
                attr::GEN_AI_RESPONSE_FINISH_REASONS,
                Value::Array(reasons.into()),
            ));
        }
        attrs.extend(latencies(&self.timings));
        span.set_attributes(attrs);
    }
}

/// The latency breakdown over every choice: from the earliest arrival to the first token of
/// any choice and to the last finish; queue, prefill and decode of the slowest choice.
fn latencies(all: &[Timings]) -> Vec<KeyValue> {
    let ran: Vec<&Timings> = all.iter().filter(|t| t.arrived > 0.0).collect();
    if ran.is_empty() {
        return Vec::new();
    }
    let min = |f: fn(&Timings) -> f64| {
        ran.iter()
            .map(|t| f(t))
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min)
    };
    let max = |f: fn(&Timings) -> f64| ran.iter().map(|t| f(t)).fold(0.0, f64::max);
    let arrived = min(|t| t.arrived);
    let first = min(|t| t.first_token);
    let mut out = vec![KeyValue::new(
        attr::GEN_AI_LATENCY_E2E,
        (max(|t| t.finished) - arrived).max(0.0),
    )];
    if first.is_finite() {
        out.push(KeyValue::new(
            attr::GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN,
            (first - arrived).max(0.0),
        ));
    }
    let queue = max(|t| {
        if t.scheduled > 0.0 {
            t.scheduled - t.queued
        } else {
            0.0
        }
    });
    let prefill = max(|t| t.prefill_time);
    let decode = max(|t| t.decode_time);
    out.extend([
        KeyValue::new(attr::GEN_AI_LATENCY_TIME_IN_QUEUE, queue.max(0.0)),
        KeyValue::new(attr::GEN_AI_LATENCY_TIME_IN_MODEL_PREFILL, prefill),
        KeyValue::new(attr::GEN_AI_LATENCY_TIME_IN_MODEL_DECODE, decode),
        KeyValue::new(
            attr::GEN_AI_LATENCY_TIME_IN_MODEL_INFERENCE,
            max(|t| t.prefill_time + t.decode_time),
        ),
    ]);
    out
}

fn mono(at: Stamp) -> Vec<KeyValue> {
    vec![KeyValue::new(attr::EVENT_TS_MONOTONIC, at.mono_secs())]
}

/// The `api.ABORTED` reason of an error.
fn reason_of(e: &ApiError) -> &'static str {
    match e {
        ApiError::InvalidRequest { .. }
        | ApiError::ModelNotFound(_)
        | ApiError::RouteNotFound { .. }
        | ApiError::MethodNotAllowed(_)
        | ApiError::PayloadTooLarge(_)
        | ApiError::Unauthorized
        | ApiError::UnsupportedMediaType => abort_reason::VALIDATION_ERROR,
        ApiError::Overloaded(_) | ApiError::EngineUnavailable(_) => {
            abort_reason::ENGINE_UNAVAILABLE
        }
        ApiError::Timeout(_) | ApiError::ClientTimeout(_) => abort_reason::TIMEOUT,
        ApiError::TooManyRequests(_) => abort_reason::REJECTED,
        ApiError::Internal(_) => abort_reason::GENERATION_ERROR,
    }
}
