//! The Prometheus text exposition both services serve on `/metrics`, with the live-span gauge
//! refreshed at every scrape.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::conventions::metric;

/// `Content-Type` of the exposition (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry's exposition, plus the `journey:tracing_live_spans` gauge of this process.
#[derive(Debug, Default)]
pub struct Exposition {
    live_spans: Gauge,
}

impl Exposition {
    /// Registers the live-span gauge in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let live_spans = Gauge::default();
        registry.register(
            metric::TRACING_LIVE_SPANS,
            "Journey spans and per-request tracing states alive",
            live_spans.clone(),
        );
        Self { live_spans }
    }

    /// The text exposition of `registry` (the one this was registered in).
    pub fn render(&self, registry: &Registry) -> String {
        self.live_spans.set(super::live_spans());
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
            out.clear();
        }
        out
    }
}
