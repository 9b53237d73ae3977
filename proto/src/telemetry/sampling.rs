//! Sampling decisions that are pure functions of an id, so the same trace (or step) always gets
//! the same answer, in any process.
//!
//! [`trace_sampled`] compares the low 63 bits of the trace id with `rate · 2⁶³`, as the OTel
//! SDK's `TraceIdRatioBased` does, so a collector-side ratio sampler at the same rate agrees.
//! [`JourneySampler`] is the gateway's SDK sampler: the client's `sampled` flag is honoured (an
//! unsampled parent is never traced) and the ratio is applied on top, so a client cannot force
//! tracing by sending `sampled=1`.

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

/// Whether a trace with `trace_id` is sampled at `rate` (in `[0, 1]`).
pub fn trace_sampled(trace_id: TraceId, rate: f64) -> bool {
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..16]);
    ratio_hit(u64::from_be_bytes(low), rate)
}

/// The salt of the engine's per-step draw (`--step-tracing-sample-rate`).
pub const STEP_SALT: u64 = 0x5354_4550;
/// The salt of the rich-step draw among sampled steps (`--step-tracing-rich-subsample-rate`),
/// independent of [`STEP_SALT`]'s.
pub const RICH_STEP_SALT: u64 = 0x5249_4348;

/// Whether scheduler step `step` is sampled at `rate` (a hash of the id, so it is the same step
/// set on every run; independent draws for different `salt`s).
pub fn step_sampled(step: u64, salt: u64, rate: f64) -> bool {
    ratio_hit(splitmix64(step ^ salt.rotate_left(32)), rate)
}

fn ratio_hit(x: u64, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let bound = (rate * (1u64 << 63) as f64) as u64;
    (x >> 1) < bound
}

/// A good 64-bit mixer (Steele et al.): consecutive step ids map to uncorrelated values.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SDK sampler: parent's `sampled` flag AND the trace-id ratio.
#[derive(Clone, Debug)]
pub struct JourneySampler {
    rate: f64,
}

impl JourneySampler {
    /// A sampler at `rate`.
    pub fn new(rate: f64) -> Self {
        Self { rate }
    }
}

impl ShouldSample for JourneySampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .filter(|cx| cx.has_active_span())
            .map(|cx| cx.span().span_context().clone());
        let parent_ok = parent.as_ref().is_none_or(|p| p.is_sampled());
        let decision = if parent_ok && trace_sampled(trace_id, self.rate) {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        };
        SamplingResult {
            decision,
            attributes: Vec::new(),
            trace_state: parent.map(|p| p.trace_state().clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(low: u64) -> TraceId {
        TraceId::from(u128::from(low) | (7u128 << 64))
    }

    #[test]
    fn rate_bounds_and_monotonicity() {
        for low in [0, 1, u64::MAX, 1 << 63, 12345] {
            assert!(trace_sampled(id(low), 1.0));
            assert!(!trace_sampled(id(low), 0.0));
        }
        assert!(trace_sampled(id(0), 0.5));
        assert!(!trace_sampled(id(u64::MAX), 0.5));
        // The decision is a threshold on the id's low half: sampled at a rate means sampled at
        // every higher rate, so raising the rate only adds traces (the gateway and the engine,
        // at different rates, never disagree in the other direction).
        let rates = [0.01, 0.1, 0.25, 0.5, 0.75, 0.99];
        for i in 0..2_000u64 {
            let t = id(splitmix64(i));
            let hits: Vec<bool> = rates.iter().map(|&r| trace_sampled(t, r)).collect();
            assert!(hits.windows(2).all(|w| !w[0] || w[1]), "{i}: {hits:?}");
        }
    }

    #[test]
    fn ratio_is_close_to_rate() {
        let hits = (0..10_000u64).filter(|&s| step_sampled(s, 0, 0.25)).count();
        assert!((2_300..2_700).contains(&hits), "{hits}");
        let rich = (0..10_000u64)
            .filter(|&s| step_sampled(s, 0, 0.5) && step_sampled(s, 1, 0.5))
            .count();
        assert!((2_300..2_700).contains(&rich), "{rich}");
    }
}
