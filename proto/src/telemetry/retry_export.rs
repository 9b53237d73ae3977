//! Export retry: a span exporter wrapper that tries a failed batch again with exponential
//! backoff, as the OpenTelemetry Collector's exporters do (`retry_on_failure`: 100 ms doubling
//! to 5 s, giving up after 30 s), so a collector restart costs no spans while the queue has room.
//!
//! Only the SDK's `BatchSpanProcessor` thread runs [`RetryingExporter::export`]: it exports one
//! batch at a time and blocks on each, so the backoff sleeps there (no runtime needed) while
//! request paths keep only enqueueing; while it waits the processor's bounded queue fills and,
//! once full, drops new spans as before. A batch is dropped (with a warning, counted in
//! [`export_dropped_spans`]) when the error is one a retry cannot fix, when the time budget is
//! spent, or when the process is shutting down ([`StopSignal`]): shutdown then costs one last
//! attempt per batch, not 30 s.
//!
//! The OTLP exporter's own retry (3 quick tries, at most ~2 s in all) is turned off where this
//! wraps it, so there is one policy. Its errors carry the gRPC code only as text
//! (`… gRPC code: Unavailable …`); codes that say the collector understood and refused
//! ([`PERMANENT`]) are not retried, anything else is (bounded by the budget), so an error text
//! that changes shape costs at most a retried batch, never a dropped retryable one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// How long failed exports are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry; it doubles after each.
    pub initial_delay: Duration,
    /// Longest wait between two tries.
    pub max_delay: Duration,
    /// Time from a batch's first try after which it is dropped instead of retried.
    pub max_elapsed: Duration,
}

impl Default for Backoff {
    /// The OpenTelemetry Collector's defaults, minus its randomization: 100 ms doubling to 5 s,
    /// for 30 s.
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// gRPC codes that mean the collector received the batch and refused it: a retry would be
/// refused too.
pub const PERMANENT: [&str; 7] = [
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "FailedPrecondition",
    "Unimplemented",
    "Unauthenticated",
];

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Spans this process dropped because their export failed for good.
pub fn export_dropped_spans() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Tells exporters waiting to retry that the process is stopping; set by
/// [`Telemetry::shutdown`](super::Telemetry::shutdown) before it flushes.
#[derive(Debug, Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    /// Stops: waits end now, and failed exports are no longer retried.
    pub fn stop(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        *stopped = true;
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks for `wait`, or less if stopped meanwhile.
    fn sleep(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        while !*stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stopped = match self.wake.wait_timeout(stopped, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

/// `inner`, with failed exports retried (see the module docs).
#[derive(Debug)]
pub struct RetryingExporter<E> {
    inner: E,
    backoff: Backoff,
    stop: Arc<StopSignal>,
}

impl<E: SpanExporter> RetryingExporter<E> {
    /// Wraps `inner`; `stop` ends the retrying.
    pub fn new(inner: E, backoff: Backoff, stop: Arc<StopSignal>) -> Self {
        Self {
            inner,
            backoff,
            stop,
        }
    }
}

/// Whether a retry might succeed where this error failed.
fn retryable(err: &OTelSdkError) -> bool {
    match err {
        OTelSdkError::AlreadyShutdown => false,
        OTelSdkError::Timeout(_) => true,
        OTelSdkError::InternalFailure(text) => !PERMANENT
            .iter()
            .any(|code| text.contains(&format!("gRPC code: {code}"))),
    }
}

impl<E: SpanExporter> SpanExporter for RetryingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let first = Instant::now();
        let mut delay = self.backoff.initial_delay;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // The inner exporter consumes its batch; this copy is what a retry sends.
            let err = match self.inner.export(batch.clone()).await {
                Ok(()) => {
                    if attempts > 1 {
                        tracing::info!(attempts, spans = batch.len(), "span export recovered");
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            let give_up = if !retryable(&err) {
                Some("a retry would fail too")
            } else if self.stop.is_stopped() {
                Some("shutting down")
            } else if first.elapsed() + delay > self.backoff.max_elapsed {
                Some("retried for too long")
            } else {
                None
            };
            if let Some(why) = give_up {
                DROPPED.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::warn!(
                    spans = batch.len(),
                    attempts,
                    "dropping spans ({why}): {err}"
                );
                return Err(err);
            }
            if attempts == 1 {
                tracing::info!(spans = batch.len(), "span export failed, retrying: {err}");
            }
            // Blocks the batch processor's thread (only it calls export), never a request.
            self.stop.sleep(delay);
            delay = (delay * 2).min(self.backoff.max_delay);
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.stop.stop();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

    /// A collector that answers the first `fail` exports with `code`, then accepts.
    #[derive(Clone)]
    struct Flaky {
        code: tonic::Code,
        fail: usize,
        calls: Arc<AtomicUsize>,
        spans: Arc<AtomicUsize>,
    }

    #[tonic::async_trait]
    impl TraceService for Flaky {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
                return Err(tonic::Status::new(self.code, "not now"));
            }
            let n: usize = request
                .into_inner()
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            self.spans.fetch_add(n, Ordering::SeqCst);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// Exports 3 spans through the real OTLP exporter, wrapped, to a [`Flaky`] collector;
    /// returns (export calls the collector saw, spans it accepted, spans dropped here).
    fn run(code: tonic::Code, fail: usize) -> (usize, usize, u64) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = rt.enter();
        let flaky = Flaky {
            code,
            fail,
            calls: Arc::default(),
            spans: Arc::default(),
        };
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = TraceServiceServer::new(flaky.clone());
        rt.spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let stop = Arc::new(StopSignal::default());
        let exporter = super::super::otlp_exporter(Some(&format!("http://{addr}"))).unwrap();
        let backoff = Backoff {
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_elapsed: Duration::from_secs(20),
        };
        let exporter = RetryingExporter::new(exporter, backoff, Arc::clone(&stop));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(exporter)
                    .with_batch_config(BatchConfigBuilder::default().build())
                    .build(),
            )
            .build();
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};
        let tracer = provider.tracer("test");
        for _ in 0..3 {
            drop(tracer.start("s"));
        }
        let before = export_dropped_spans();
        // Flushing waits for the export, retries included (at most ~0.2 s here).
        let _ = provider.force_flush();
        let dropped = export_dropped_spans() - before;
        stop.stop();
        let _ = provider.shutdown();
        (
            flaky.calls.load(Ordering::SeqCst),
            flaky.spans.load(Ordering::SeqCst),
            dropped,
        )
    }

    #[test]
    fn an_unavailable_collector_is_retried_until_it_accepts() {
        // The real exporter's error for UNAVAILABLE is retried: 4 refusals, then the batch.
        // (The drop counter is shared with tests running beside this one: not asserted here.)
        let (calls, spans, _) = run(tonic::Code::Unavailable, 4);
        assert_eq!((calls, spans), (5, 3));
    }

    #[test]
    fn a_refusal_is_not_retried() {
        // INVALID_ARGUMENT would be refused again: one call, the batch dropped and counted.
        let (calls, spans, dropped) = run(tonic::Code::InvalidArgument, 1);
        assert_eq!((calls, spans), (1, 0));
        assert!(dropped >= 3, "{dropped}");
    }

    #[test]
    fn shutdown_ends_the_wait_at_once() {
        #[derive(Debug)]
        struct Down(Arc<AtomicUsize>);
        impl SpanExporter for Down {
            async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
                self.0.fetch_add(1, Ordering::SeqCst);
                Err(OTelSdkError::InternalFailure(
                    "export failed with gRPC code: Unavailable".into(),
                ))
            }
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(StopSignal::default());
        let e = RetryingExporter::new(
            Down(Arc::clone(&calls)),
            Backoff {
                initial_delay: Duration::from_secs(60),
                max_delay: Duration::from_secs(60),
                max_elapsed: Duration::from_secs(3600),
            },
            Arc::clone(&stop),
        );
        let stopper = {
            let stop = Arc::clone(&stop);
            let calls = Arc::clone(&calls);
            std::thread::spawn(move || {
                while calls.load(Ordering::SeqCst) == 0 {
                    std::thread::yield_now();
                }
                stop.stop();
            })
        };
        let started = Instant::now();
        let result = futures_block_on(e.export(Vec::new()));
        stopper.join().unwrap();
        assert!(result.is_err());
        // Woken from a minute's wait (or stopped before it began): at most one last try,
        // then given up.
        let calls = calls.load(Ordering::SeqCst);
        assert!((1..=2).contains(&calls), "{calls} tries");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn errors_are_classified_by_their_grpc_code() {
        let failure = |code: &str| {
            OTelSdkError::InternalFailure(format!(
                "TonicTracesClient export failed with gRPC code: {code}: transport error"
            ))
        };
        for code in ["Unavailable", "DeadlineExceeded", "Unknown", "Internal"] {
            assert!(retryable(&failure(code)), "{code}");
        }
        for code in PERMANENT {
            assert!(!retryable(&failure(code)), "{code}");
        }
        assert!(retryable(&OTelSdkError::Timeout(Duration::from_secs(5))));
        assert!(!retryable(&OTelSdkError::AlreadyShutdown));
    }

    /// Drives a future to completion on this thread (as the batch processor does).
    fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(f)
    }
}
