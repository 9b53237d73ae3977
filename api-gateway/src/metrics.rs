//! The gateway's Prometheus metrics, from the same lifecycle as its `llm_request` spans and
//! independent of whether tracing is on: requests by route and status, their duration, and the
//! gateway-side time to the first engine message. Served on `GET /metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use proto::conventions::{buckets, metric};
use proto::telemetry::exposition::{self, Exposition};

use crate::AppState;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(buckets::REQUEST_DURATION.iter().copied())
}

fn ttft_histogram() -> Histogram {
    Histogram::new(buckets::TIME_TO_FIRST_TOKEN.iter().copied())
}

/// Every gateway metric.
pub struct GatewayMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    duration: HistogramFamily,
    ttft: HistogramFamily,
    engine_up: Family<Labels, Gauge>,
    engine_outstanding: Family<Labels, Gauge>,
    engine_requests: Family<Labels, Counter>,
    engine_failures: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    in_flight: Gauge,
    exposition: Exposition,
}

impl std::fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayMetrics")
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let ttft: HistogramFamily = Family::new_with_constructor(ttft_histogram);
        let mut m = Self {
            registry: Registry::default(),
            requests: Family::default(),
            duration: duration.clone(),
            ttft: ttft.clone(),
            engine_up: Family::default(),
            engine_outstanding: Family::default(),
            engine_requests: Family::default(),
            engine_failures: Family::default(),
            rejected: Family::default(),
            in_flight: Gauge::default(),
            exposition: Exposition::default(),
        };
        let r = &mut m.registry;
        r.register(
            metric::HTTP_REQUESTS,
            "LLM requests by route and HTTP status",
            m.requests.clone(),
        );
        r.register(
            metric::HTTP_REQUEST_DURATION_SECONDS,
            "LLM request duration at the gateway, seconds",
            duration,
        );
        r.register(
            metric::API_TIME_TO_FIRST_TOKEN_SECONDS,
            "Arrival at the gateway to the first engine message, seconds",
            ttft,
        );
        r.register(
            metric::GATEWAY_ENGINE_UP,
            "1 while the gateway sends requests to the engine, 0 while it is taken out",
            m.engine_up.clone(),
        );
        r.register(
            metric::GATEWAY_ENGINE_OUTSTANDING,
            "Engine calls in flight, per engine",
            m.engine_outstanding.clone(),
        );
        r.register(
            metric::GATEWAY_ENGINE_REQUESTS,
            "Requests routed to each engine",
            m.engine_requests.clone(),
        );
        r.register(
            metric::GATEWAY_ENGINE_FAILURES,
            "Failed health probes or calls, per engine",
            m.engine_failures.clone(),
        );
        r.register(
            metric::GATEWAY_REQUESTS_REJECTED,
            "Requests refused with 429 because --max-concurrent-requests were in flight",
            m.rejected.clone(),
        );
        r.register(
            metric::GATEWAY_REQUESTS_IN_FLIGHT,
            "LLM requests in flight, out of --max-concurrent-requests",
            m.in_flight.clone(),
        );
        m.exposition = Exposition::register(r);
        m
    }

    /// A request to `route` ended with `status` after `took`.
    pub fn on_finished(&self, route: &'static str, status: u16, took: Duration) {
        let labels = vec![
            (metric::LABEL_ROUTE, route.to_owned()),
            (metric::LABEL_STATUS, status.to_string()),
        ];
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&vec![(metric::LABEL_ROUTE, route.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// The gauge of requests in flight, for the admission that counts them.
    pub fn in_flight(&self) -> Gauge {
        self.in_flight.clone()
    }

    /// A request to `route` was refused: the gateway had its limit of requests in flight.
    pub fn on_rejected(&self, route: &'static str) {
        self.rejected
            .get_or_create(&vec![(metric::LABEL_ROUTE, route.to_owned())])
            .inc();
    }

    /// The first engine message of a request to `route` came `after` its arrival.
    pub fn on_first_response(&self, route: &'static str, after: Duration) {
        self.ttft
            .get_or_create(&vec![(metric::LABEL_ROUTE, route.to_owned())])
            .observe(after.as_secs_f64());
    }

    /// The engine at `url` joined the pool: its series start at zero (so rates and alerts
    /// see them before the first failure), and it counts as up.
    pub fn on_engine_added(&self, url: &str) {
        let labels = engine(url);
        self.engine_requests.get_or_create(&labels).inc_by(0);
        self.engine_failures.get_or_create(&labels).inc_by(0);
        self.engine_outstanding.get_or_create(&labels).set(0);
        self.engine_up.get_or_create(&labels).set(1);
    }

    /// The engine at `url` was taken out (`up: false`) or is in use again.
    pub fn on_engine_health(&self, url: &str, up: bool) {
        self.engine_up
            .get_or_create(&engine(url))
            .set(i64::from(up));
    }

    /// The engine at `url` has `calls` calls in flight.
    pub fn on_engine_outstanding(&self, url: &str, calls: usize) {
        let calls = i64::try_from(calls).unwrap_or(i64::MAX);
        self.engine_outstanding
            .get_or_create(&engine(url))
            .set(calls);
    }

    /// A request was sent to the engine at `url`.
    pub fn on_engine_routed(&self, url: &str) {
        self.engine_requests.get_or_create(&engine(url)).inc();
    }

    /// A probe or call of the engine at `url` failed.
    pub fn on_engine_failure(&self, url: &str) {
        self.engine_failures.get_or_create(&engine(url)).inc();
    }

    /// The engine at `url` left the pool (its DNS name no longer resolves to it).
    pub fn forget_engine(&self, url: &str) {
        let labels = engine(url);
        self.engine_up.remove(&labels);
        self.engine_outstanding.remove(&labels);
        self.engine_requests.remove(&labels);
        self.engine_failures.remove(&labels);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.exposition.render(&self.registry)
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        state.journey.metrics().render(),
    )
}

fn engine(url: &str) -> Labels {
    vec![(metric::LABEL_ENGINE, url.to_owned())]
}
