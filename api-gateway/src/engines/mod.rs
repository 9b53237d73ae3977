//! The gateway's door to its engines: a pool of engine processes, each a lazily connected
//! tonic channel, balanced by least outstanding calls, health-checked on a timer, taken out
//! when a call or probe fails and probed again with backoff until it answers.
//!
//! - [`target`]: `--engine` values (fixed URLs, or `dns:///name:port` re-resolved on each
//!   health tick, for compose replicas and headless services).
//! - [`health`]: an engine's health state and the backoff between probes of a down one.
//! - [`balance`]: which engine takes the next request.
//! - [`replica`]: one engine, and the [`Lease`](replica::Lease) a request holds on it.
//! - [`choices`]: the fan-out of one OpenAI request into `Generate` calls and the merge of
//!   their streams.
//!
//! All calls of one request go to one engine, so an abort (the dropped streams cancel their
//! calls) reaches the engine that holds the request. A request whose calls could not be
//! opened on an engine (UNAVAILABLE before any token) is tried on the next one; a stream that
//! breaks midway is not retried (tokens already reached the client) and ends with a clean
//! `engine_unavailable` error. Every engine is assumed to serve the same model.

pub mod balance;
pub mod choices;
pub mod health;
pub mod replica;
pub mod target;

use proto::auth::EngineAccess;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use proto::engine::{GenerateRequest, GetModelInfoRequest};
use proto::telemetry::Stamp;
use tokio::sync::OnceCell;

pub use choices::{ChoiceOutput, Choices, fan_out};
pub use health::{Backoff, Health, HealthPolicy};
pub use target::EngineTarget;

use balance::Load;
use choices::ChoiceStream;
use replica::Replica;

use crate::error::{ApiError, ApiResult};
use crate::journey::RequestJourney;
use crate::metrics::GatewayMetrics;
use crate::openai::common::ModelMeta;

/// How long `/health`, probes and `GetModelInfo` wait for an engine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The engine pool; cheap to clone.
#[derive(Clone)]
pub struct Engines {
    inner: Arc<Inner>,
}

struct Inner {
    targets: Vec<EngineTarget>,
    replicas: RwLock<Vec<Arc<Replica>>>,
    model_override: Option<String>,
    meta: OnceCell<ModelMeta>,
    policy: HealthPolicy,
    metrics: Arc<GatewayMetrics>,
    rotation: AtomicUsize,
    /// The engines' shared secret and TLS trust.
    access: EngineAccess,
    /// Deadline of each generation call (`--request-timeout`), sent as `grpc-timeout`.
    call_timeout: Option<Duration>,
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field("targets", &self.inner.targets)
            .field("replicas", &self.replicas())
            .finish()
    }
}

impl Engines {
    /// A pool over `targets`. DNS targets are resolved once here (a failed lookup is retried
    /// by the health checks); when called inside a Tokio runtime, the health checks start.
    /// `model_override` replaces the engines' model name as the served id.
    pub async fn new(
        targets: Vec<EngineTarget>,
        model_override: Option<String>,
        policy: HealthPolicy,
        metrics: Arc<GatewayMetrics>,
        access: EngineAccess,
        call_timeout: Option<Duration>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!targets.is_empty(), "no engine address given");
        let pool = Self::unresolved(
            targets,
            model_override,
            policy,
            metrics,
            access,
            call_timeout,
        );
        for target in &pool.inner.targets {
            if let EngineTarget::Fixed(url) = target {
                pool.add(url)?;
            }
        }
        pool.inner.refresh_dns().await;
        pool.spawn_health_checks();
        Ok(pool)
    }

    /// A pool of the one engine at `url`, connected on first use, default policy, fresh
    /// metrics (tests and tools).
    pub fn connect_lazy(url: &str, model_override: Option<String>) -> anyhow::Result<Self> {
        let pool = Self::unresolved(
            vec![EngineTarget::Fixed(url.to_owned())],
            model_override,
            HealthPolicy::default(),
            Arc::new(GatewayMetrics::new()),
            EngineAccess::default(),
            None,
        );
        pool.add(url)?;
        pool.spawn_health_checks();
        Ok(pool)
    }

    fn unresolved(
        targets: Vec<EngineTarget>,
        model_override: Option<String>,
        policy: HealthPolicy,
        metrics: Arc<GatewayMetrics>,
        access: EngineAccess,
        call_timeout: Option<Duration>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                access,
                call_timeout,
                targets,
                replicas: RwLock::default(),
                model_override,
                meta: OnceCell::new(),
                policy,
                metrics,
                rotation: AtomicUsize::new(0),
            }),
        }
    }

    fn add(&self, url: &str) -> anyhow::Result<()> {
        let replica = Replica::new(
            url,
            self.inner.policy.backoff,
            self.inner.metrics.clone(),
            self.inner.access.clone(),
        )?;
        self.inner.write().push(Arc::new(replica));
        Ok(())
    }

    fn spawn_health_checks(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(watch(Arc::downgrade(&self.inner)));
        }
    }

    /// The engines now in the pool: URL, health, calls in flight.
    pub fn replicas(&self) -> Vec<(String, Health, usize)> {
        self.inner
            .read()
            .iter()
            .map(|r| (r.url().to_owned(), r.health(), r.outstanding()))
            .collect()
    }

    /// The served model's id and context length, fetched once from the first engine that
    /// answers; with a `--served-model-name` the name is known even while every engine is down.
    pub async fn model_meta(&self) -> ApiResult<ModelMeta> {
        let fetched = self
            .inner
            .meta
            .get_or_try_init(|| async {
                let info = self.model_info().await?;
                let name = self.inner.model_override.clone().unwrap_or(info.model_name);
                Ok::<_, ApiError>(ModelMeta {
                    name,
                    context_length: info.context_length,
                    architecture: info.architecture,
                    max_token_bytes: info.max_token_bytes,
                })
            })
            .await;
        match (fetched, &self.inner.model_override) {
            (Ok(meta), _) => Ok(meta.clone()),
            (Err(_), Some(name)) => Ok(ModelMeta {
                name: name.clone(),
                context_length: 0,
                architecture: String::new(),
                max_token_bytes: 0,
            }),
            (Err(e), None) => Err(e),
        }
    }

    async fn model_info(&self) -> ApiResult<proto::engine::ModelInfo> {
        let mut failover = Failover::new(&self.inner);
        while let Some(replica) = failover.next() {
            let mut client = replica.client();
            let call = client.get_model_info(GetModelInfoRequest {});
            let reply = tokio::time::timeout(PROBE_TIMEOUT, call)
                .await
                .map_err(|_| ApiError::EngineUnavailable("GetModelInfo timed out".into()))
                .and_then(|r| r.map_err(ApiError::from));
            if let Some(done) = failover.settle(replica, reply) {
                return done.map(tonic::Response::into_inner);
            }
        }
        failover.exhausted()
    }

    /// Probes every engine now; Ok when at least one reports SERVING.
    pub async fn health(&self) -> ApiResult<()> {
        let replicas = self.inner.read().clone();
        let probes = replicas.iter().map(|r| r.probe(PROBE_TIMEOUT));
        let outcomes = futures::future::join_all(probes).await;
        let mut last = Err(no_engine());
        for outcome in outcomes {
            if outcome.is_ok() {
                return Ok(());
            }
            last = outcome;
        }
        last
    }

    /// Starts every call of a fan-out on one engine, with the journey's trace metadata, and
    /// reads each one's first message, failing as a whole if any call is refused. When an
    /// engine is unreachable the whole fan-out moves to the next one. The journey records
    /// the engine, the earliest hand-off (response headers) and the earliest first message.
    pub async fn open(
        &self,
        requests: Vec<GenerateRequest>,
        journey: &mut RequestJourney,
    ) -> ApiResult<Choices> {
        let mut requests = requests;
        if journey.wants_engine_journey() {
            for r in &mut requests {
                r.return_journey = true;
            }
        }
        journey.dispatching(Stamp::now());
        let mut failover = Failover::new(&self.inner);
        while let Some(replica) = failover.next() {
            let lease = replica.lease(requests.len());
            let opened =
                open_on(&replica, requests.clone(), journey, self.inner.call_timeout).await;
            let attempts = failover.attempts();
            if let Some(done) = failover.settle(replica, opened) {
                let opened = done?;
                journey.set_engine(lease.replica().url(), attempts);
                record_arrivals(&opened, journey);
                let streams = opened.into_iter().map(|o| o.stream).collect();
                return Ok(Choices { streams, lease });
            }
        }
        failover.exhausted()
    }
}

/// Trying engines in the balancer's order for one call: an unreachable engine
/// (`EngineUnavailable`) is taken out and the next one tried; any other outcome settles it.
struct Failover<'a> {
    pool: &'a Inner,
    tried: Vec<Arc<Replica>>,
    last_error: ApiError,
}

impl<'a> Failover<'a> {
    fn new(pool: &'a Inner) -> Self {
        Self {
            pool,
            tried: Vec::new(),
            last_error: no_engine(),
        }
    }

    /// The next engine to try, or `None` when all were tried.
    fn next(&self) -> Option<Arc<Replica>> {
        self.pool.choose(&self.tried)
    }

    /// Engines tried, counting the one being tried now.
    fn attempts(&self) -> usize {
        self.tried.len() + 1
    }

    /// Records how `replica`'s attempt went: `None` to try the next engine, else the result.
    fn settle<T>(&mut self, replica: Arc<Replica>, outcome: ApiResult<T>) -> Option<ApiResult<T>> {
        match outcome {
            Ok(done) => {
                replica.succeeded();
                Some(Ok(done))
            }
            Err(error @ ApiError::EngineUnavailable(_)) => {
                replica.failed(&error.to_string());
                self.last_error = error;
                self.tried.push(replica);
                None
            }
            Err(error) => Some(Err(error)),
        }
    }

    /// The error once every engine was tried.
    fn exhausted<T>(self) -> ApiResult<T> {
        Err(self.last_error)
    }
}

/// One opened call: its stream (first message read), when its headers and first message came.
struct Opened {
    stream: ChoiceStream,
    accepted: Stamp,
}

async fn open_on(
    replica: &Replica,
    requests: Vec<GenerateRequest>,
    journey: &RequestJourney,
    timeout: Option<Duration>,
) -> ApiResult<Vec<Opened>> {
    let metadata = journey.metadata();
    let calls = requests.into_iter().map(|request| {
        let mut client = replica.client();
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = metadata.clone();
        if let Some(t) = timeout {
            // The engine aborts the request at this deadline (reason `timeout`).
            request.set_timeout(t);
        }
        // Settled by the engine's answer to the call (accepted, or refused with a status),
        // not by a first message: with more choices than the engine runs at once, the later
        // ones' first messages wait for earlier ones to finish, whose output must be read
        // meanwhile or it fills the connection's window for every call on it.
        async move {
            let rest = client.generate(request).await?.into_inner();
            Ok::<_, ApiError>(Opened {
                stream: ChoiceStream { rest },
                accepted: Stamp::now(),
            })
        }
    });
    futures::future::try_join_all(calls).await
}

fn record_arrivals(opened: &[Opened], journey: &mut RequestJourney) {
    if let Some(at) = opened.iter().map(|o| o.accepted).min_by_key(|s| s.mono_ns) {
        journey.handed_off(at);
    }
}

fn no_engine() -> ApiError {
    ApiError::EngineUnavailable("no engine is serving".into())
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Replica>>> {
        self.replicas.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Replica>>> {
        self.replicas.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine for the next request, skipping `tried`.
    fn choose(&self, tried: &[Arc<Replica>]) -> Option<Arc<Replica>> {
        let replicas = self.read();
        let loads: Vec<Load> = replicas
            .iter()
            .map(|r| Load {
                outstanding: r.outstanding(),
                available: r.health().available(),
                tried: tried.iter().any(|t| Arc::ptr_eq(t, r)),
            })
            .collect();
        let rotation = self.rotation.fetch_add(1, Ordering::Relaxed);
        balance::pick(&loads, rotation).map(|i| Arc::clone(&replicas[i]))
    }

    /// Re-resolves the DNS targets: new addresses join the pool, vanished ones leave it
    /// (requests they hold keep them alive until they end). A failed lookup changes nothing.
    async fn refresh_dns(&self) {
        for target in &self.targets {
            if !matches!(target, EngineTarget::Dns { .. }) {
                continue;
            }
            let urls = match target.resolve().await {
                Ok(urls) => urls,
                Err(e) => {
                    tracing::warn!("cannot resolve {target:?}: {e}");
                    continue;
                }
            };
            let fixed: Vec<&str> = self
                .targets
                .iter()
                .filter_map(|t| match t {
                    EngineTarget::Fixed(url) => Some(url.as_str()),
                    EngineTarget::Dns { .. } => None,
                })
                .collect();
            let mut replicas = self.write();
            let before = replicas.len();
            replicas.retain(|r| {
                let keep = fixed.contains(&r.url()) || urls.iter().any(|u| u == r.url());
                if !keep {
                    self.metrics.forget_engine(r.url());
                }
                keep
            });
            for url in &urls {
                if replicas.iter().any(|r| r.url() == url) {
                    continue;
                }
                match Replica::new(
                    url,
                    self.policy.backoff,
                    self.metrics.clone(),
                    self.access.clone(),
                ) {
                    Ok(r) => replicas.push(Arc::new(r)),
                    Err(e) => tracing::warn!("bad engine address {url}: {e}"),
                }
            }
            if replicas.len() != before {
                let now: Vec<&str> = replicas.iter().map(|r| r.url()).collect();
                tracing::info!("engines now {now:?}");
            }
        }
    }
}

/// The health checks: every `interval`, re-resolve DNS targets and probe the engines that are
/// up; probe a down engine when its backoff has passed. Ends when the pool is dropped.
async fn watch(pool: Weak<Inner>) {
    loop {
        let Some(inner) = pool.upgrade() else { return };
        let interval = inner.policy.interval;
        let next_tick = Instant::now() + interval;
        inner.refresh_dns().await;
        let due: Vec<Arc<Replica>> = inner
            .read()
            .iter()
            .filter(|r| r.health().probe_due(Instant::now()))
            .cloned()
            .collect();
        let timeout = interval.clamp(Duration::from_millis(100), PROBE_TIMEOUT);
        futures::future::join_all(due.iter().map(|r| r.probe(timeout))).await;
        // Wake for the next tick, or earlier for a down engine's retry.
        let wake = inner
            .read()
            .iter()
            .filter_map(|r| match r.health() {
                Health::Down { retry_at, .. } => Some(retry_at),
                _ => None,
            })
            .fold(next_tick, Instant::min);
        drop(inner);
        tokio::time::sleep_until(wake.into()).await;
    }
}
