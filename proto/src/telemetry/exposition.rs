//! The Prometheus text exposition both services serve on `/metrics`, with the live-span gauge
//! and the export-drop counter of this process read at every scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::conventions::metric;

/// `Content-Type` of the exposition (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry's exposition, plus the `journey:tracing_live_spans` gauge and the
/// `journey:tracing_export_dropped_spans` counter of this process.
#[derive(Debug, Default)]
pub struct Exposition {
    live_spans: Gauge,
}

/// Reads the process-wide export-drop count at each scrape (a counter only its owner adds to).
#[derive(Debug)]
struct ExportDrops;

impl Collector for ExportDrops {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(super::retry_export::export_dropped_spans());
        let metric = encoder.encode_descriptor(
            metric::TRACING_EXPORT_DROPPED_SPANS,
            "Spans dropped because their export failed for good",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

impl Exposition {
    /// Registers the live-span gauge and the export-drop counter in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let live_spans = Gauge::default();
        registry.register(
            metric::TRACING_LIVE_SPANS,
            "Journey spans and per-request tracing states alive",
            live_spans.clone(),
        );
        registry.register_collector(Box::new(ExportDrops));
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
