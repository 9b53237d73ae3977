//! One request's record for the journey store: what the gateway saw (receipt, dispatch,
//! hand-off, first message, departure) joined to what each engine call told of itself
//! (`return_journey`), with the TTFT broken down into named parts that add up to it.

use proto::engine::{BatchContext, EngineJourney, Timings, WaitReason, WaitTimes, journey_event};
use proto::telemetry::Stamp;
use serde_json::{Value, json};

use super::store::{Entry, JourneyStore, Outcome, Summary};

/// Most engine calls (choices) whose journeys one record keeps.
const MAX_CALLS: usize = 8;

/// What the store keeps of a request, gathered as it goes, traced or not.
#[derive(Debug)]
pub(super) struct Recording {
    pub store: JourneyStore,
    pub route: &'static str,
    pub received: Stamp,
    pub request_id: String,
    pub tenant: Option<String>,
    pub model: String,
    pub stream: bool,
    pub n: u32,
    pub dispatched: Option<Stamp>,
    pub accepted: Option<Stamp>,
    pub first_response: Option<Stamp>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub num_preemptions: u64,
    pub finish_reasons: Vec<String>,
    /// Each finished engine call: its timings and journey.
    pub calls: Vec<(Timings, Option<EngineJourney>)>,
}

impl Recording {
    pub fn new(store: JourneyStore, route: &'static str, received: Stamp) -> Self {
        Self {
            store,
            route,
            received,
            request_id: String::new(),
            tenant: None,
            model: String::new(),
            stream: false,
            n: 1,
            dispatched: None,
            accepted: None,
            first_response: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            num_preemptions: 0,
            finish_reasons: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// One engine call's last message.
    pub fn call_finished(&mut self, timings: Timings, journey: Option<EngineJourney>) {
        self.num_preemptions += u64::from(timings.num_preemptions);
        if self.calls.len() < MAX_CALLS {
            self.calls.push((timings, journey));
        }
    }

    /// Files the record: `status`, and the failure's reason and message when it failed.
    pub fn file(
        self,
        status: u16,
        failure: Option<(&'static str, String)>,
        trace_id: Option<String>,
    ) {
        let departed = Stamp::now();
        // Refused before it had an id (bad JSON, unknown model): still worth seeing.
        let id = if self.request_id.is_empty() {
            unnamed_id(self.received)
        } else {
            self.request_id.clone()
        };
        self.file_as(status, failure, trace_id, departed, id)
    }

    fn file_as(
        self,
        status: u16,
        failure: Option<(&'static str, String)>,
        trace_id: Option<String>,
        departed: Stamp,
        request_id: String,
    ) {
        let ms = |a: Stamp, b: Stamp| b.mono_ns.saturating_sub(a.mono_ns) as f64 / 1e6;
        let received_unix_ms = unix_ms(self.received);
        let outcome = match (&failure, status) {
            (None, _) => Outcome::Ok,
            (Some((reason, _)), _)
                if *reason == proto::conventions::abort_reason::CLIENT_DISCONNECT =>
            {
                Outcome::Aborted
            }
            _ => Outcome::Error,
        };
        let ttft_ms = self.first_response.map(|f| ms(self.received, f));
        let e2e_ms = ms(self.received, departed);
        // The first choice's engine side (the earliest first token).
        let first = self
            .calls
            .iter()
            .filter(|(t, _)| t.first_token > 0.0)
            .min_by(|a, b| a.0.first_token.total_cmp(&b.0.first_token))
            .or_else(|| self.calls.first());
        let queue_ms = first
            .filter(|(t, _)| t.scheduled > 0.0 && t.queued > 0.0)
            .map(|(t, _)| (t.scheduled - t.queued) * 1e3);
        let breakdown = match (first, self.dispatched, self.first_response) {
            (Some((t, j)), Some(d), Some(f)) if t.first_token > 0.0 => {
                ttft_breakdown(self.received, d, f, t, j.as_ref())
            }
            _ => Value::Null,
        };
        let summary = Summary {
            request_id: request_id.clone(),
            trace_id: trace_id.clone(),
            tenant: self.tenant.clone(),
            received_unix_ms,
            route: self.route,
            status,
            outcome,
            ttft_ms,
            e2e_ms,
            queue_ms,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            num_preemptions: self.num_preemptions,
        };
        let engine: Vec<Value> = self
            .calls
            .iter()
            .map(|(t, j)| engine_side(self.received, t, j.as_ref()))
            .collect();
        let rel = |s: Option<Stamp>| s.map(|s| ms(self.received, s));
        let detail = json!({
            "request_id": request_id,
            "trace_id": trace_id,
            "route": self.route,
            "tenant": self.tenant,
            "model": self.model,
            "stream": self.stream,
            "n": self.n,
            "status": status,
            "outcome": outcome,
            "reason": failure.as_ref().map(|f| f.0),
            "error": failure.as_ref().map(|f| proto::telemetry::bounded_text(&f.1)),
            "received_unix_ms": received_unix_ms,
            "ttft_ms": ttft_ms,
            "e2e_ms": e2e_ms,
            "queue_ms": queue_ms,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "num_preemptions": self.num_preemptions,
            "finish_reasons": self.finish_reasons,
            "gateway": {
                "dispatched_ms": rel(self.dispatched),
                "handoff_ms": rel(self.accepted),
                "first_response_ms": rel(self.first_response),
                "departed_ms": e2e_ms,
            },
            "ttft_breakdown": breakdown,
            "engine": engine,
        });
        self.store.insert(Entry {
            summary,
            detail: detail.to_string(),
        });
    }
}

/// An id for a request refused before it got one.
fn unnamed_id(received: Stamp) -> String {
    format!("refused-{}", received.mono_ns)
}

fn unix_ms(s: Stamp) -> f64 {
    s.wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The TTFT as named parts, in ms, in order; they add up to `first - received` (engine parts
/// are placed by the engine's wall clock, which the gateway's shares on one host).
fn ttft_breakdown(
    received: Stamp,
    dispatched: Stamp,
    first: Stamp,
    t: &Timings,
    j: Option<&EngineJourney>,
) -> Value {
    let (g0, g1, g2) = (unix_ms(received), unix_ms(dispatched), unix_ms(first));
    let (arrived, queued, scheduled, first_token) = (
        t.arrived * 1e3,
        t.queued * 1e3,
        t.scheduled * 1e3,
        t.first_token * 1e3,
    );
    let mut parts = vec![("gateway", g1 - g0), ("to_engine", arrived - g1)];
    match j {
        Some(j) => {
            let tokenize = j.tokenize * 1e3;
            parts.push(("tokenize", tokenize));
            parts.push(("engine_handoff", queued - arrived - tokenize));
            let q = j.queue.unwrap_or_default();
            let waited = (q.step + q.running_slot + q.kv_blocks + q.token_budget) * 1e3;
            // The engine's monotonic split, scaled onto its wall-clock queue time.
            let wall = scheduled - queued;
            let scale = if waited > 0.0 { wall / waited } else { 0.0 };
            // With no split to scale (a zero wait), the whole wait is the step's.
            let step = if waited > 0.0 {
                q.step * 1e3 * scale
            } else {
                wall
            };
            parts.push(("queue_step", step));
            for (name, v) in [
                ("queue_running_slot", q.running_slot),
                ("queue_kv_blocks", q.kv_blocks),
                ("queue_token_budget", q.token_budget),
            ] {
                parts.push((name, v * 1e3 * scale));
            }
        }
        None => parts.push(("engine_before_queue", queued - arrived)),
    }
    if j.is_none() {
        parts.push(("queue", scheduled - queued));
    }
    parts.push(("prefill", first_token - scheduled));
    parts.push(("to_gateway", g2 - first_token));
    Value::Array(
        parts
            .into_iter()
            .map(|(name, ms)| json!({"name": name, "ms": ms}))
            .collect(),
    )
}

fn wait_times(w: Option<&WaitTimes>) -> Value {
    let w = w.copied().unwrap_or_default();
    json!({
        "step_ms": w.step * 1e3,
        "running_slot_ms": w.running_slot * 1e3,
        "kv_blocks_ms": w.kv_blocks * 1e3,
        "token_budget_ms": w.token_budget * 1e3,
    })
}

fn batch(b: &BatchContext) -> Value {
    json!({
        "step": b.step,
        "num_requests": b.num_requests,
        "num_tokens": b.num_tokens,
        "prefill_tokens": b.prefill_tokens,
        "decode_tokens": b.decode_tokens,
        "duration_ms": b.duration * 1e3,
        "num_running": b.num_running,
        "num_waiting": b.num_waiting,
    })
}

/// One engine call: where its clock starts on the gateway's timeline, its timings and its
/// journey.
fn engine_side(received: Stamp, t: &Timings, j: Option<&EngineJourney>) -> Value {
    let start_ms = t.arrived * 1e3 - unix_ms(received);
    let at = |epoch: f64| (epoch > 0.0).then(|| epoch * 1e3 - unix_ms(received));
    let mut v = json!({
        "arrived_ms": start_ms,
        "queued_ms": at(t.queued),
        "scheduled_ms": at(t.scheduled),
        "first_token_ms": at(t.first_token),
        "finished_ms": at(t.finished),
        "prefill_time_ms": t.prefill_time * 1e3,
        "decode_time_ms": t.decode_time * 1e3,
        "num_preemptions": t.num_preemptions,
    });
    if let Some(j) = j {
        let events: Vec<Value> = j
            .events
            .iter()
            .map(|e| {
                let kind = journey_event::Kind::try_from(e.kind)
                    .map_or("UNKNOWN", |k| k.as_str_name().trim_start_matches("KIND_"));
                let wait = WaitReason::try_from(e.wait_ended)
                    .ok()
                    .filter(|w| *w != WaitReason::Unspecified)
                    .map(|w| {
                        w.as_str_name()
                            .trim_start_matches("WAIT_REASON_")
                            .to_lowercase()
                    });
                json!({
                    "kind": kind,
                    "step": e.step,
                    "at_ms": start_ms + e.offset * 1e3,
                    "resumed": e.resumed,
                    "wait_ended": wait,
                    "batch": e.batch.as_ref().map(batch),
                    "preempt_cause": (!e.preempt_cause.is_empty()).then_some(&e.preempt_cause),
                })
            })
            .collect();
        let chunks: Vec<Value> = j
            .prefill_chunks
            .iter()
            .map(|c| {
                json!({
                    "at_ms": start_ms + c.offset * 1e3,
                    "start": c.start,
                    "num_tokens": c.num_tokens,
                    "batch": c.batch.as_ref().map(batch),
                })
            })
            .collect();
        let tokens: Vec<f64> = j.token_offsets.iter().map(|o| start_ms + o * 1e3).collect();
        v["events"] = Value::Array(events);
        v["prefill_chunks"] = Value::Array(chunks);
        v["token_ms"] = json!(tokens);
        v["tokenize_ms"] = json!(j.tokenize * 1e3);
        v["detokenize_ms"] = json!(j.detokenize * 1e3);
        v["handoff_ms"] = json!(j.handoff * 1e3);
        v["queue"] = wait_times(j.queue.as_ref());
        v["requeue"] = wait_times(j.requeue.as_ref());
    }
    v
}
