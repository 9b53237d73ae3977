//! Telemetry set-up shared by both binaries: the flags of `JOURNEY-SPEC.md` §5, the tracer
//! provider and its exporter, W3C propagation, deterministic sampling, and a live-span gauge.
//!
//! Export goes to OTLP/gRPC when `--otlp-traces-endpoint` or a standard
//! `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` variable is set, otherwise to the embedded default:
//! OTLP-JSON lines appended to `--journey-traces-file`, rotated by size. Either way spans go
//! through the SDK's batch processor (its own thread, a bounded queue that drops when full), so
//! a slow or dead collector costs dropped spans, never a request; a failed OTLP export is
//! retried from that thread ([`retry_export`]), so a collector restart costs none while the
//! queue has room. [`Telemetry::shutdown`] flushes.

pub mod exposition;
mod file_export;
pub mod propagation;
pub mod retry_export;
pub mod sampling;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, ShouldSample,
};

pub use file_export::{JsonLinesExporter, Rotation, rotated_path, trace_files};

use retry_export::{Backoff, RetryingExporter, StopSignal};
use sampling::{SampleKey, SampleKeyFlag, SampleKeyParser};

/// Longest client-supplied text a span attribute (or a kept journey) carries, in bytes.
pub const MAX_ATTR_TEXT: usize = 256;

/// `text` cut to at most [`MAX_ATTR_TEXT`] bytes (on a character boundary) with a marker
/// saying how long it was: client text (a bad value quoted in an error, a model name, a request
/// id) must not make spans unbounded.
pub fn bounded_text(text: &str) -> String {
    if text.len() <= MAX_ATTR_TEXT {
        return text.to_owned();
    }
    let mut cut = MAX_ATTR_TEXT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[truncated from {} bytes]", &text[..cut], text.len())
}

/// Parses a sampling rate in `[0, 1]`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is outside [0, 1]"))
    }
}

/// Parses a duration flag in seconds: finite and not negative (`0.5`, `30`).
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if r.is_finite() && r >= 0.0 {
        Ok(r)
    } else {
        Err(format!("{r} is not a duration: give seconds, 0 or more"))
    }
}

/// Flags both binaries take (each also read from an environment variable).
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct TracingArgs {
    /// OTLP/gRPC endpoint for traces (e.g. http://tempo:4317). Without it (and without the
    /// standard OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), traces go
    /// to --journey-traces-file.
    #[arg(long, env = "JOURNEY_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,
    /// The embedded default exporter's file: OTLP-JSON lines, appended.
    #[arg(
        long,
        env = "JOURNEY_TRACES_FILE",
        default_value = "journey-traces.jsonl"
    )]
    pub journey_traces_file: PathBuf,
    /// Emit request journey spans (llm_request at the gateway, llm_core in the engine).
    #[arg(long, env = "JOURNEY_TRACING")]
    pub enable_journey_tracing: bool,
    /// Fraction of requests traced, decided from the trace id under --trace-sample-key (same
    /// id and key, same decision).
    #[arg(long, env = "JOURNEY_TRACING_SAMPLE_RATE", default_value = "1.0", value_parser = parse_rate)]
    pub journey_tracing_sample_rate: f64,
    /// Secret keying the sampling decision, 32 hex digits (`openssl rand -hex 16`), so a client
    /// cannot pick trace ids that are always sampled. Give every gateway and engine the same
    /// key so they decide alike; without one each process draws a random key at start.
    #[arg(long, env = "JOURNEY_TRACE_SAMPLE_KEY", value_parser = SampleKeyParser,
          hide_env_values = true)]
    pub trace_sample_key: Option<SampleKeyFlag>,
    /// Size in bytes at which --journey-traces-file rotates to `<file>.1`.
    #[arg(long, env = "JOURNEY_TRACE_FILE_MAX_BYTES", default_value_t = Rotation::default().max_bytes,
          value_parser = clap::value_parser!(u64).range(4096..))]
    pub trace_file_max_bytes: u64,
    /// Rotated trace files kept (`<file>.1` … `<file>.N`; the oldest is deleted); 0 keeps none.
    #[arg(long, env = "JOURNEY_TRACE_FILE_KEEP", default_value_t = Rotation::default().keep)]
    pub trace_file_keep: u32,
}

/// Where spans go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// OTLP/gRPC at this endpoint (`None`: from the standard environment variables).
    Otlp(Option<String>),
    /// OTLP-JSON lines in this file, rotated as given.
    File(PathBuf, Rotation),
}

impl Destination {
    /// The file `path` with the default rotation.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File(path.into(), Rotation::default())
    }
}

impl TracingArgs {
    /// The sampling key set by flag or environment, if any.
    pub fn configured_sample_key(&self) -> Option<&SampleKey> {
        self.trace_sample_key.as_ref().and_then(|f| f.0.as_ref())
    }

    /// The sampling key: the configured one, else a fresh random one for this process.
    pub fn sample_key(&self) -> SampleKey {
        self.configured_sample_key()
            .cloned()
            .unwrap_or_else(SampleKey::random)
    }

    /// The exporter these flags and the environment choose.
    pub fn destination(&self) -> Destination {
        let env_set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        match &self.otlp_traces_endpoint {
            Some(e) => Destination::Otlp(Some(e.clone())),
            None if env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                || env_set("OTEL_EXPORTER_OTLP_ENDPOINT") =>
            {
                Destination::Otlp(None)
            }
            None => Destination::File(
                self.journey_traces_file.clone(),
                Rotation {
                    max_bytes: self.trace_file_max_bytes,
                    keep: self.trace_file_keep,
                },
            ),
        }
    }
}

/// An installed tracer provider. Dropping it without [`shutdown`](Self::shutdown) loses
/// queued spans.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// Ends export retries at shutdown.
    stop: Arc<StopSignal>,
}

/// How many events one span may hold: a step window at closure interval 10000 with every step
/// sampled needs that many; per-token events are never emitted.
const MAX_EVENTS_PER_SPAN: u32 = 20_000;

impl Telemetry {
    /// Builds the provider for `service` (unless `OTEL_SERVICE_NAME` names it) exporting to
    /// `dest`, sampling with `sampler`. OTLP needs a Tokio runtime to be entered.
    pub fn init(
        service: &'static str,
        dest: &Destination,
        sampler: impl ShouldSample + 'static,
    ) -> anyhow::Result<Self> {
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none_or(|v| v.is_empty()) {
            resource = resource.with_service_name(service);
        }
        let set_by_env = std::env::var("OTEL_RESOURCE_ATTRIBUTES")
            .is_ok_and(|v| v.contains(crate::conventions::attr::SERVICE_INSTANCE_ID));
        if !set_by_env {
            resource = resource.with_attribute(opentelemetry::KeyValue::new(
                crate::conventions::attr::SERVICE_INSTANCE_ID,
                instance_id(),
            ));
        }
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(8192)
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let builder = SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_sampler(sampler)
            .with_max_events_per_span(MAX_EVENTS_PER_SPAN);
        let stop = Arc::new(StopSignal::default());
        let builder = match dest {
            Destination::Otlp(endpoint) => {
                let exporter = RetryingExporter::new(
                    otlp_exporter(endpoint.as_deref())?,
                    Backoff::default(),
                    Arc::clone(&stop),
                );
                builder.with_span_processor(
                    BatchSpanProcessor::builder(exporter)
                        .with_batch_config(batch)
                        .build(),
                )
            }
            Destination::File(path, rotation) => {
                let exporter = JsonLinesExporter::open(path, *rotation)
                    .with_context(|| format!("opening the trace file {}", path.display()))?;
                builder.with_span_processor(
                    BatchSpanProcessor::builder(exporter)
                        .with_batch_config(batch)
                        .build(),
                )
            }
        };
        Ok(Self {
            provider: builder.build(),
            stop,
        })
    }

    /// A provider that samples every span the code asks for (the code decides).
    pub fn init_always_on(service: &'static str, dest: &Destination) -> anyhow::Result<Self> {
        Self::init(service, dest, Sampler::AlwaysOn)
    }

    /// A tracer for instrumentation scope `scope`.
    pub fn tracer(&self, scope: &'static str) -> SdkTracer {
        self.provider
            .tracer_with_scope(InstrumentationScope::builder(scope).build())
    }

    /// Exports everything queued; called on shutdown, after live spans were ended. A batch
    /// waiting to be retried gets one last try instead of its remaining backoff.
    pub fn shutdown(&self) {
        self.stop.stop();
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!("flushing spans at shutdown: {e}");
        }
    }
}

/// The OTLP/gRPC exporter (its own retry off: [`RetryingExporter`] retries), to `endpoint` or
/// where the standard environment variables say. Needs a Tokio runtime to be entered.
pub(crate) fn otlp_exporter(
    endpoint: Option<&str>,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
        .with_timeout(Duration::from_secs(5));
    if let Some(e) = endpoint {
        exporter = exporter.with_endpoint(e);
    }
    exporter.build().context("building the OTLP exporter")
}

static LIVE: AtomicI64 = AtomicI64::new(0);

/// Proof that one journey span (or per-request tracing state) is live; counted in
/// [`live_spans`] from creation to drop, so a leak shows as a non-zero gauge.
#[derive(Debug)]
pub struct LiveToken(());

impl LiveToken {
    /// Counts one more live span.
    pub fn new() -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Default for LiveToken {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Journey spans and tracing states alive in this process.
pub fn live_spans() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Monotonic seconds of this process (since its first call), the clock of the
/// `event.ts.monotonic` / `ts.monotonic*` attributes.
pub fn monotonic_ns() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    origin.elapsed().as_nanos() as u64
}

/// One instant read on both clocks: wall (for the event timestamp) and monotonic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Wall clock.
    pub wall: std::time::SystemTime,
    /// Monotonic ns of this process.
    pub mono_ns: u64,
}

impl Stamp {
    /// Now.
    pub fn now() -> Self {
        Self {
            mono_ns: monotonic_ns(),
            wall: std::time::SystemTime::now(),
        }
    }

    /// Monotonic seconds.
    pub fn mono_secs(&self) -> f64 {
        self.mono_ns as f64 / 1e9
    }
}

/// `service.instance.id` unless the environment sets one: `<hostname>/<pid>`, distinct for
/// every replica (a container's hostname is its id).
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "localhost"
    } else {
        host.as_str()
    };
    format!("{host}/{}", std::process::id())
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_flags_refuse_what_no_duration_is() {
        assert_eq!(super::parse_seconds(" 0.5 "), Ok(0.5));
        assert_eq!(super::parse_seconds("0"), Ok(0.0));
        for bad in ["-1", "NaN", "inf", "soon"] {
            assert!(super::parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_text_in_attributes_is_bounded() {
        use super::{MAX_ATTR_TEXT, bounded_text};
        assert_eq!(bounded_text("short"), "short");
        let long = "é".repeat(1000);
        let cut = bounded_text(&long);
        assert!(cut.len() < MAX_ATTR_TEXT + 40, "{}", cut.len());
        assert!(cut.ends_with("…[truncated from 2000 bytes]"), "{cut}");
        assert!(cut.starts_with("éé"));
    }

    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        tracing: TracingArgs,
    }

    fn parse(args: &[&str]) -> Result<TracingArgs, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.tracing)
    }

    #[test]
    fn the_sample_key_flag_takes_hex_and_empty_means_unset() {
        let key = "000102030405060708090a0b0c0d0e0f";
        let t = parse(&["--trace-sample-key", key]).unwrap();
        assert_eq!(
            t.configured_sample_key(),
            Some(&SampleKey::parse(key).unwrap())
        );
        assert_eq!(t.sample_key(), SampleKey::parse(key).unwrap());
        for unset in [&[][..], &["--trace-sample-key", ""][..]] {
            let t = parse(unset).unwrap();
            assert_eq!(t.configured_sample_key(), None);
            // Unset: a random key per process, so two draws differ.
            assert_ne!(t.sample_key(), t.sample_key());
        }
        let err = parse(&["--trace-sample-key", "secret-words"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("32 hex digits") && !err.contains("secret-words"),
            "{err}"
        );
    }

    #[test]
    fn rotation_flags_reach_the_file_destination() {
        let t = parse(&[
            "--journey-traces-file",
            "t.jsonl",
            "--trace-file-max-bytes",
            "5000",
            "--trace-file-keep",
            "0",
        ])
        .unwrap();
        assert_eq!(
            t.destination(),
            Destination::File(
                "t.jsonl".into(),
                Rotation {
                    max_bytes: 5000,
                    keep: 0
                }
            )
        );
        let t = parse(&[]).unwrap();
        assert_eq!(
            t.destination(),
            Destination::file("journey-traces.jsonl"),
            "defaults: 100 MiB, 3 files"
        );
        assert!(parse(&["--trace-file-max-bytes", "100"]).is_err());
    }

    #[test]
    fn rates_are_validated() {
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert_eq!(parse_rate("1"), Ok(1.0));
        assert!(parse_rate("1.5").unwrap_err().contains("outside"));
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("x").unwrap_err().contains("not a number"));
    }
}
