//! W3C trace context in and out of gRPC metadata and HTTP headers, through the OTel
//! `TraceContextPropagator` (never hand-parsed), plus the gateway's `x-journey-sampled` flag.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use crate::conventions::metadata::JOURNEY_SAMPLED;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// The trace context a client sent in HTTP headers; an absent or invalid `traceparent` gives
/// an empty context (a new root), never an error.
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// The trace context in gRPC metadata (as [`extract_http`]).
pub fn extract_metadata(metadata: &MetadataMap) -> Context {
    TraceContextPropagator::new().extract(&MetadataExtractor(metadata))
}

/// Writes `cx` as `traceparent`/`tracestate` into `metadata`.
pub fn inject_metadata(cx: &Context, metadata: &mut MetadataMap) {
    TraceContextPropagator::new().inject_context(cx, &mut MetadataInjector(metadata));
}

/// The gateway's sampling decision as sent to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JourneySampled {
    /// The gateway traces this request: the engine must too.
    Yes,
    /// The gateway does not: the engine must not.
    No,
}

/// Sets `x-journey-sampled`.
pub fn set_sampled(metadata: &mut MetadataMap, sampled: JourneySampled) {
    let v = match sampled {
        JourneySampled::Yes => "1",
        JourneySampled::No => "0",
    };
    metadata.insert(JOURNEY_SAMPLED, MetadataValue::from_static(v));
}

/// Reads `x-journey-sampled`; `None` when absent or not `0`/`1` (a direct gRPC caller).
pub fn sampled(metadata: &MetadataMap) -> Option<JourneySampled> {
    match metadata.get(JOURNEY_SAMPLED).and_then(|v| v.to_str().ok()) {
        Some("1") => Some(JourneySampled::Yes),
        Some("0") => Some(JourneySampled::No),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn round_trip_and_invalid() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let cx = extract_http(&h);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        let mut md = MetadataMap::new();
        inject_metadata(&cx, &mut md);
        assert_eq!(
            md.get("traceparent").unwrap().to_str().unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let back = extract_metadata(&md);
        assert_eq!(back.span().span_context().trace_id(), sc.trace_id());

        let mut bad = http::HeaderMap::new();
        bad.insert("traceparent", "00-zz-yy-01".parse().unwrap());
        assert!(!extract_http(&bad).span().span_context().is_valid());
    }

    #[test]
    fn sampled_flag() {
        let mut md = MetadataMap::new();
        assert_eq!(sampled(&md), None);
        set_sampled(&mut md, JourneySampled::Yes);
        assert_eq!(sampled(&md), Some(JourneySampled::Yes));
        set_sampled(&mut md, JourneySampled::No);
        assert_eq!(sampled(&md), Some(JourneySampled::No));
    }
}
