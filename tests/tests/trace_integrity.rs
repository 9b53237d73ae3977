//! Trace integrity (issue "Safe to share"): a client choosing its `traceparent` cannot force
//! sampling; a collector restart in the middle of a workload loses no span; the embedded trace
//! file rotates by size and `journey` still reads every request from the rotated files. Real
//! processes, a real OTLP receiver (stopped and restarted on its port), the real CLI.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use journey_tests::otlp::{Collector, Received, hex};
use journey_tests::{
    Service, binary, start_engine, start_engine_env, start_gateway, temp_dir, tiny_model,
};
use opentelemetry::trace::TraceId;
use proto::conventions::{metric, span};
use proto::telemetry::sampling::SampleKey;
use rand::Rng;
use serde_json::json;

const MODEL: &str = "journey-tiny";
/// The deployment's shared sampling secret in these tests.
const KEY: &str = "5f0e8d3c2b1a49786a5b4c3d2e1f0a9b";

/// A `traceparent` for `trace` (32 hex digits) with a fresh parent span id, sampled flag set.
fn traceparent(trace: &str) -> String {
    let parent: u64 = rand::rng().random();
    format!("00-{trace}-{parent:016x}-01")
}

/// One small completion with `traceparent`; asserts 200.
async fn complete(client: &reqwest::Client, base: &str, tp: &str) {
    let body = json!({"model": MODEL, "prompt": "hi", "max_tokens": 2});
    let r = client
        .post(format!("{base}/v1/completions"))
        .header("traceparent", tp)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The distinct span ids of one trace's (llm_request, llm_core) spans.
type SpanIds = (HashSet<Vec<u8>>, HashSet<Vec<u8>>);

/// Per trace id, its [`SpanIds`]. Distinct ids, because OTLP delivery is at least once: a
/// retried batch may arrive twice, as Tempo allows.
fn by_trace(spans: &[Received]) -> HashMap<String, SpanIds> {
    let mut out: HashMap<String, SpanIds> = HashMap::new();
    for r in spans {
        let entry = out.entry(hex(&r.span.trace_id)).or_default();
        if r.span.name == span::LLM_REQUEST {
            entry.0.insert(r.span.span_id.clone());
        } else if r.span.name == span::LLM_CORE {
            entry.1.insert(r.span.span_id.clone());
        }
    }
    out
}

/// One `/metrics` sample's value, or `None` when the series is absent.
async fn metric_value(url: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn chosen_trace_ids_are_sampled_at_the_rate_not_always() {
    let collector = Collector::start().await;
    let model = tiny_model(&temp_dir("integrity-sampling"));
    let ep = collector.endpoint();
    // The same key through each service's own route: the engine's environment, the gateway's
    // flag.
    let mut engine = start_engine_env(
        &model,
        &["--enable-journey-tracing", "--otlp-traces-endpoint", &ep],
        &[("JOURNEY_TRACE_SAMPLE_KEY", KEY)],
    );
    let mut gateway = start_gateway(
        &engine.addr,
        &[
            "--enable-journey-tracing",
            "--otlp-traces-endpoint",
            &ep,
            "--journey-tracing-sample-rate",
            "0.25",
            "--trace-sample-key",
            KEY,
        ],
    );
    let base = format!("http://{}", gateway.addr);
    // Trace ids whose low 64 bits are zero: the old rule (the low 63 bits against
    // rate · 2⁶³, as the SDK's TraceIdRatioBased) sampled every one of them at any rate > 0.
    let mut rng = rand::rng();
    let traces: Vec<String> = (0..400)
        .map(|_| format!("{:016x}{:016x}", rng.random::<u64>() | 1, 0u64))
        .collect();
    let client = reqwest::Client::new();
    futures::stream::iter(traces.iter())
        .for_each_concurrent(16, |t| {
            let (client, base) = (client.clone(), base.clone());
            async move { complete(&client, &base, &traceparent(t)).await }
        })
        .await;
    // Stopping flushes both exporters: whatever was sampled has arrived.
    assert!(gateway.terminate(), "gateway did not exit cleanly");
    assert!(engine.terminate(), "engine did not exit cleanly");
    let got = by_trace(&collector.spans());

    let key = SampleKey::parse(KEY).unwrap();
    let sampled: Vec<&String> = traces
        .iter()
        .filter(|t| got.get(*t).is_some_and(|(r, _)| !r.is_empty()))
        .collect();
    eprintln!(
        "{} of 400 chosen trace ids sampled at rate 0.25",
        sampled.len()
    );
    // Binomial(400, 0.25): mean 100, sd 8.7; 40..=180 is beyond ±6 sd.
    assert!(
        (40..=180).contains(&sampled.len()),
        "{} of 400 chosen trace ids sampled at rate 0.25",
        sampled.len()
    );
    for t in &traces {
        let id = TraceId::from(u128::from_str_radix(t, 16).unwrap());
        let want = key.sampled(id, 0.25);
        let (r, c) = got.get(t).cloned().unwrap_or_default();
        // One decision per request, under the shared key: both spans or neither.
        let n = usize::from(want);
        assert_eq!((r.len(), c.len()), (n, n), "trace {t}: sampled {want}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_restart_mid_workload_loses_no_span() {
    let mut collector = Collector::start().await;
    let model = tiny_model(&temp_dir("integrity-restart"));
    let ep = collector.endpoint();
    let on = ["--enable-journey-tracing", "--otlp-traces-endpoint", &ep];
    let mut engine = start_engine(&model, &on);
    let mut gateway = start_gateway(&engine.addr, &on);
    let base = format!("http://{}", gateway.addr);
    let mut rng = rand::rng();
    let traces: Vec<String> = (0..400)
        .map(|_| format!("{:032x}", rng.random::<u128>() | 1))
        .collect();

    // 400 requests paced over ~6 s, so they keep coming through the whole outage.
    let done = Arc::new(AtomicUsize::new(0));
    let workload = {
        let (traces, done, base) = (traces.clone(), Arc::clone(&done), base.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_millis(15));
            let mut calls = futures::stream::FuturesUnordered::new();
            for t in &traces {
                tick.tick().await;
                let (client, base, done) = (client.clone(), base.clone(), Arc::clone(&done));
                let tp = traceparent(t);
                calls.push(async move {
                    complete(&client, &base, &tp).await;
                    done.fetch_add(1, Ordering::SeqCst);
                });
                // Keep finished calls from piling up (and their panics from hiding).
                while let Some(Some(())) = calls.next().now_or_never() {}
            }
            while calls.next().await.is_some() {}
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workload stalled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A collector restart: connections refused for 4 s, then the same port again.
    collector.stop().await;
    let at_stop = done.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let at_restart = done.load(Ordering::SeqCst);
    collector.restart().await;
    workload.await.unwrap();
    eprintln!("requests finished: {at_stop} at the stop, {at_restart} at the restart");
    assert!(
        at_restart > at_stop,
        "no request finished during the outage ({at_stop} before, {at_restart} after): \
         the test would prove nothing"
    );

    // Every request's two spans arrive (the backoff tops out at 5 s: 60 s is generous).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let got = by_trace(&collector.spans());
        let missing: Vec<(&String, usize, usize)> = traces
            .iter()
            .filter_map(|t| {
                let (r, c) = got.get(t).map_or((0, 0), |(r, c)| (r.len(), c.len()));
                ((r, c) != (1, 1)).then_some((t, r, c))
            })
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lost_requests = missing.iter().filter(|m| m.1 == 0).count();
    let lost_cores = missing.iter().filter(|m| m.2 == 0).count();
    assert!(
        missing.is_empty(),
        "after a 4 s collector outage: {lost_requests} llm_request and {lost_cores} llm_core \
         spans of 400 lost; first: {:?}",
        &missing[..missing.len().min(5)]
    );
    for svc in [&engine, &gateway] {
        let dropped = metric_value(
            &svc.metrics_url(),
            &format!("{}_total", metric::TRACING_EXPORT_DROPPED_SPANS),
        )
        .await;
        assert_eq!(dropped, Some(0.0), "{}", svc.metrics_url());
    }
    assert!(gateway.terminate() && engine.terminate());
}

/// Span names in one OTLP-JSON lines file, asserting each line parses and a file past `max`
/// bytes holds a single line (a line is never split, so a big batch stands alone).
fn file_spans(path: &std::path::Path, max: u64) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{}: a cut line", path.display());
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        text.len() as u64 <= max || lines.len() == 1,
        "{}: {} bytes in {} lines",
        path.display(),
        text.len(),
        lines.len()
    );
    let mut out = Vec::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for rs in v["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    out.push((
                        s["name"].as_str().unwrap().to_owned(),
                        s["traceId"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

fn journey(file: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(binary("journey"))
        .args(["--file", file])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "journey {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trace_file_rotates_and_journey_reads_across_rotations() {
    let dir = temp_dir("integrity-rotate");
    let model = tiny_model(&dir);
    let file = dir.join("journey-traces.jsonl");
    for f in proto::telemetry::trace_files(&file) {
        std::fs::remove_file(f).unwrap();
    }
    let f = file.to_str().unwrap();
    // Both services share the file, as under scripts/run.sh; the engine takes the rotation
    // from its environment, the gateway from flags.
    let on = ["--enable-journey-tracing", "--journey-traces-file", f];
    let mut engine = start_engine_env(
        &model,
        &on,
        &[
            ("JOURNEY_TRACE_FILE_MAX_BYTES", "4096"),
            ("JOURNEY_TRACE_FILE_KEEP", "100"),
        ],
    );
    let mut g = on.to_vec();
    g.extend(["--trace-file-max-bytes", "4096", "--trace-file-keep", "100"]);
    let mut gateway = start_gateway(&engine.addr, &g);
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    let mut traces = Vec::new();
    for _ in 0..12 {
        let t = format!("{:032x}", rand::rng().random::<u128>() | 1);
        complete(&client, &base, &traceparent(&t)).await;
        traces.push(t);
        // A batch per request or so (the exporters flush every 0.5 s): many small lines.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    stop_both(&mut engine, &mut gateway);

    let files = proto::telemetry::trace_files(&file);
    assert!(files.len() >= 3, "{} files: no rotation", files.len());
    let spans: Vec<(String, String)> = files.iter().flat_map(|p| file_spans(p, 4096)).collect();
    for t in &traces {
        let n = |name: &str| spans.iter().filter(|s| s.0 == name && &s.1 == t).count();
        assert_eq!(
            (n(span::LLM_REQUEST), n(span::LLM_CORE)),
            (1, 1),
            "trace {t}"
        );
    }
    // `journey` reads the rotated files too: every request, both services' spans joined even
    // where a rotation fell between them.
    let top = journey(f, &["top", "--by", "e2e", "--limit", "100"]);
    assert_eq!(top.lines().count(), 1 + traces.len(), "{top}");
    for t in &traces {
        let shown = journey(f, &["show", t]);
        for needle in ["gateway llm_request", "engine llm_core #1"] {
            assert!(shown.contains(needle), "{t}: {needle:?} missing:\n{shown}");
        }
    }
}

fn stop_both(engine: &mut Service, gateway: &mut Service) {
    assert!(gateway.terminate(), "gateway did not exit cleanly");
    assert!(engine.terminate(), "engine did not exit cleanly");
}
