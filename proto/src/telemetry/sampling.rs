//! Sampling decisions that are functions of an id, so the same trace (or step) always gets the
//! same answer.
//!
//! Traces: [`SampleKey::sampled`] takes SipHash-2-4 of the trace id, keyed by a per-deployment
//! secret (`--trace-sample-key`), and samples the lowest `rate` share of the hash range. A
//! client chooses its `traceparent`, so a plain function of the trace id (the OTel SDK's
//! `TraceIdRatioBased` reads its low bits) lets it pick ids that are always sampled; under a
//! secret key it cannot tell which ids are. Processes sharing the key decide alike; without one
//! each process draws a random key ([`SampleKey::random`]).
//!
//! [`JourneySampler`] is the gateway's SDK sampler: the client's `sampled` flag is honoured (an
//! unsampled parent is never traced) and the keyed ratio is applied on top, so a client cannot
//! force tracing by sending `sampled=1` either.
//!
//! Steps: [`step_sampled`] hashes the step id with a fixed salt (no client chooses step ids).

use std::hash::Hasher as _;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};
use siphasher::sip::SipHasher24;

/// The secret that keys trace sampling: 128 bits, given as 32 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct SampleKey([u8; 16]);

impl SampleKey {
    /// A key from the thread's CSPRNG: this process's decisions, shared with nobody.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// A key from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses 32 hex digits (e.g. `openssl rand -hex 16`); the error never echoes the input,
    /// which is a secret.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "a trace sample key is 32 hex digits (128 bits, e.g. `openssl rand -hex 16`); \
                 got {} characters",
                s.chars().count()
            )
        };
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut key = [0u8; 16];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(key))
    }

    /// Whether a trace with `trace_id` is sampled at `rate` (in `[0, 1]`) under this key.
    pub fn sampled(&self, trace_id: TraceId, rate: f64) -> bool {
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(&trace_id.to_bytes());
        ratio_hit(h.finish(), rate)
    }
}

/// Never prints the key: flags and configs get logged.
impl std::fmt::Debug for SampleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampleKey(<secret>)")
    }
}

/// What `--trace-sample-key` holds: a key, or none when given empty. An empty environment
/// variable counts as unset, as OpenTelemetry's own variables do (compose passes `${VAR:-}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleKeyFlag(pub Option<SampleKey>);

fn parse_flag(s: &str) -> Result<SampleKeyFlag, String> {
    if s.trim().is_empty() {
        return Ok(SampleKeyFlag(None));
    }
    SampleKey::parse(s).map(|k| SampleKeyFlag(Some(k)))
}

/// Parses `--trace-sample-key` with an error that, unlike clap's usual one, does not quote the
/// value: it is a secret, and errors end up in logs.
#[derive(Clone, Debug)]
pub(crate) struct SampleKeyParser;

impl clap::builder::TypedValueParser for SampleKeyParser {
    type Value = SampleKeyFlag;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SampleKeyFlag, clap::Error> {
        // Not UTF-8: not hex either; the replacement character fails the check.
        parse_flag(value.to_str().unwrap_or("\u{fffd}")).map_err(|e| {
            let name = arg.map_or_else(|| "--trace-sample-key".to_owned(), ToString::to_string);
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{name}': {e}\n"),
            )
            .with_cmd(cmd)
        })
    }
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

/// SDK sampler: parent's `sampled` flag AND the keyed trace-id ratio.
#[derive(Clone, Debug)]
pub struct JourneySampler {
    rate: f64,
    key: SampleKey,
}

impl JourneySampler {
    /// A sampler at `rate`, deciding under `key`.
    pub fn new(rate: f64, key: SampleKey) -> Self {
        Self { rate, key }
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
        let decision = if parent_ok && self.key.sampled(trace_id, self.rate) {
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

    const KEY: &str = "000102030405060708090a0b0c0d0e0f";

    /// Ids the old unkeyed rule (low 63 bits below `rate · 2⁶³`) sampled at every rate above 0.
    fn chosen(i: u64) -> TraceId {
        TraceId::from(u128::from(splitmix64(i)) << 64)
    }

    #[test]
    fn rate_bounds_and_monotonicity() {
        let key = SampleKey::parse(KEY).unwrap();
        for i in 0..100 {
            assert!(key.sampled(chosen(i), 1.0));
            assert!(!key.sampled(chosen(i), 0.0));
        }
        // A threshold on the keyed hash: sampled at a rate means sampled at every higher rate,
        // so raising the rate only adds traces (a gateway and an engine at different rates,
        // under one key, never disagree in the other direction).
        let rates = [0.01, 0.1, 0.25, 0.5, 0.75, 0.99];
        for i in 0..2_000u64 {
            let t = TraceId::from(u128::from(splitmix64(i)) | (7u128 << 64));
            let hits: Vec<bool> = rates.iter().map(|&r| key.sampled(t, r)).collect();
            assert!(hits.windows(2).all(|w| !w[0] || w[1]), "{i}: {hits:?}");
        }
    }

    #[test]
    fn chosen_trace_ids_are_sampled_at_the_rate_not_always() {
        // Under the old rule every one of these was sampled at rate 0.25; under a key about a
        // quarter are (binomial sd ≈ 43 of 4000: the bounds are ±7 sd).
        let key = SampleKey::random();
        let hits = (0..4_000u64)
            .filter(|&i| key.sampled(chosen(i), 0.25))
            .count();
        assert!((700..1_300).contains(&hits), "{hits} of 4000");
        // Same key, same decision; another key, other decisions.
        let again = (0..4_000u64)
            .filter(|&i| key.sampled(chosen(i), 0.25))
            .count();
        assert_eq!(hits, again);
        let other = SampleKey::random();
        let differ = (0..4_000u64)
            .filter(|&i| key.sampled(chosen(i), 0.25) != other.sampled(chosen(i), 0.25))
            .count();
        assert!(
            differ > 800,
            "two random keys agreed on {} of 4000",
            4000 - differ
        );
    }

    #[test]
    fn keys_parse_from_hex_and_never_show() {
        let key = SampleKey::parse(&KEY.to_uppercase()).unwrap();
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(key, SampleKey::from_bytes(bytes));
        assert_eq!(format!("{key:?}"), "SampleKey(<secret>)");
        for bad in [
            "",
            "xyz",
            &KEY[..30],
            &format!("{KEY}00"),
            "g00102030405060708090a0b0c0d0e0",
        ] {
            let err = SampleKey::parse(bad).unwrap_err();
            assert!(err.contains("32 hex digits"), "{bad}: {err}");
            assert!(
                bad.len() < 4 || !err.contains(bad),
                "the error echoes the secret: {err}"
            );
        }
    }

    #[test]
    fn the_sampler_honours_an_unsampled_parent_and_the_key() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
        let key = SampleKey::parse(KEY).unwrap();
        let sampler = JourneySampler::new(0.5, key.clone());
        let decide = |trace: TraceId, flags: TraceFlags| {
            let parent = Context::new().with_remote_span_context(SpanContext::new(
                trace,
                SpanId::from(1u64),
                flags,
                true,
                TraceState::default(),
            ));
            sampler
                .should_sample(Some(&parent), trace, "x", &SpanKind::Server, &[], &[])
                .decision
        };
        let mut on = 0;
        for i in 0..200 {
            let t = chosen(i);
            let want = key.sampled(t, 0.5);
            on += usize::from(want);
            let got = decide(t, TraceFlags::SAMPLED) == SamplingDecision::RecordAndSample;
            assert_eq!(got, want, "trace {t}");
            assert_eq!(decide(t, TraceFlags::default()), SamplingDecision::Drop);
        }
        assert!((50..150).contains(&on), "{on} of 200");
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
