//! One engine process: its lazily connected channel, its health, and its count of calls in
//! flight (held by [`Lease`]s, so a request that ends on any path gives its share back).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::auth::{EngineAccess, SendToken};
use proto::engine::engine_client::EngineClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::health::{Backoff, Health};
use crate::error::{ApiError, ApiResult};
use crate::metrics::GatewayMetrics;

/// Largest engine message the gateway decodes (prompt logprobs of long prompts are big).
const MAX_ENGINE_MESSAGE_BYTES: usize = 64 << 20;

/// How long connecting to an engine may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of an engine's Engine service (the engine token added to every call).
pub type EngineRpc = EngineClient<InterceptedService<Channel, SendToken>>;

/// One engine.
pub struct Replica {
    url: String,
    client: EngineRpc,
    health_client: HealthClient<Channel>,
    outstanding: AtomicUsize,
    health: Mutex<Health>,
    backoff: Backoff,
    metrics: Arc<GatewayMetrics>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("url", &self.url)
            .field("outstanding", &self.outstanding())
            .field("health", &self.health())
            .finish()
    }
}

impl Replica {
    /// An engine at `url`, connected on first use.
    pub fn new(
        url: &str,
        backoff: Backoff,
        metrics: Arc<GatewayMetrics>,
        access: EngineAccess,
    ) -> anyhow::Result<Self> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())?.connect_timeout(CONNECT_TIMEOUT);
        if url.starts_with("https://") {
            let tls = access.tls.clone().ok_or_else(|| {
                anyhow::anyhow!("{url}: an https:// engine needs --engine-tls-ca")
            })?;
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect_lazy();
        let token = access.token;
        metrics.on_engine_added(url);
        Ok(Self {
            url: url.to_owned(),
            client: EngineClient::with_interceptor(channel.clone(), token)
                .max_decoding_message_size(MAX_ENGINE_MESSAGE_BYTES),
            health_client: HealthClient::new(channel),
            outstanding: AtomicUsize::new(0),
            health: Mutex::new(Health::Unknown),
            backoff,
            metrics,
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client on its channel.
    pub fn client(&self) -> EngineRpc {
        self.client.clone()
    }

    /// Engine calls in flight.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// What the gateway knows of its health.
    pub fn health(&self) -> Health {
        *self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `calls` engine calls against it until the lease is dropped.
    pub fn lease(self: &Arc<Self>, calls: usize) -> Lease {
        let now = self.outstanding.fetch_add(calls, Ordering::Relaxed) + calls;
        self.metrics.on_engine_outstanding(&self.url, now);
        self.metrics.on_engine_routed(&self.url);
        Lease {
            replica: Arc::clone(self),
            calls,
        }
    }

    /// A probe or call reached it.
    pub fn succeeded(&self) {
        let was = std::mem::replace(&mut *self.lock(), Health::Up);
        if !was.available() {
            tracing::info!(engine = %self.url, "engine is back");
            self.metrics.on_engine_health(&self.url, true);
        }
    }

    /// A probe or call found it unreachable or not serving.
    pub fn failed(&self, why: &str) {
        let mut health = self.lock();
        let was = *health;
        *health = was.failed(Instant::now(), self.backoff);
        drop(health);
        self.metrics.on_engine_failure(&self.url);
        if was.available() {
            tracing::warn!(engine = %self.url, "engine taken out: {why}");
            self.metrics.on_engine_health(&self.url, false);
        }
    }

    /// One `grpc.health.v1` check within `timeout`; records the outcome.
    pub async fn probe(&self, timeout: Duration) -> ApiResult<()> {
        let outcome = self.check(timeout).await;
        match &outcome {
            Ok(()) => self.succeeded(),
            Err(e) => self.failed(&e.to_string()),
        }
        outcome
    }

    async fn check(&self, timeout: Duration) -> ApiResult<()> {
        let mut health = self.health_client.clone();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let reply = tokio::time::timeout(timeout, health.check(request))
            .await
            .map_err(|_| ApiError::EngineUnavailable("health check timed out".into()))?
            .map_err(|s| {
                ApiError::EngineUnavailable(format!("health check failed: {}", s.message()))
            })?;
        match reply.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            status => Err(ApiError::EngineUnavailable(format!(
                "engine health is {}",
                status.as_str_name()
            ))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request's share of one engine's outstanding calls; given back on drop.
#[derive(Debug)]
pub struct Lease {
    replica: Arc<Replica>,
    calls: usize,
}

impl Lease {
    /// The engine holding the request.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let r = &self.replica;
        let now = r.outstanding.fetch_sub(self.calls, Ordering::Relaxed) - self.calls;
        r.metrics.on_engine_outstanding(&r.url, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::health::HealthPolicy;

    #[tokio::test]
    async fn leases_count_calls_until_dropped() {
        let metrics = Arc::new(GatewayMetrics::new());
        let backoff = HealthPolicy::default().backoff;
        let r = Arc::new(
            Replica::new(
                "http://127.0.0.1:9",
                backoff,
                metrics.clone(),
                EngineAccess::default(),
            )
            .unwrap(),
        );
        let a = r.lease(2);
        let b = r.lease(1);
        assert_eq!(r.outstanding(), 3);
        drop(a);
        assert_eq!(r.outstanding(), 1);
        drop(b);
        assert_eq!(r.outstanding(), 0);
        assert!(metrics.render().contains("engine=\"http://127.0.0.1:9\""));
    }

    #[tokio::test]
    async fn an_unreachable_engine_is_marked_down_then_up_again() {
        let metrics = Arc::new(GatewayMetrics::new());
        let backoff = HealthPolicy::default().backoff;
        // Port 9 (discard) is closed on test machines: the probe is refused.
        let r = Replica::new(
            "http://127.0.0.1:9",
            backoff,
            metrics,
            EngineAccess::default(),
        )
        .unwrap();
        assert!(r.probe(Duration::from_secs(2)).await.is_err());
        assert!(matches!(r.health(), Health::Down { failures: 1, .. }));
        assert!(r.probe(Duration::from_secs(2)).await.is_err());
        assert!(matches!(r.health(), Health::Down { failures: 2, .. }));
        r.succeeded();
        assert_eq!(r.health(), Health::Up);
    }
}
