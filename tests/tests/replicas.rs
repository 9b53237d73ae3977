//! One gateway over two real engine processes: load spreads over both, traces from both
//! parent under the gateway's spans, and killing one mid-run leaves the other serving while
//! the streams it held end cleanly with `engine_unavailable` journeys.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use journey_tests::otlp::{Collector, Received, events, hex, int_attr, string_attr};
use journey_tests::{Service, start_engine, start_gateway_over, temp_dir, tiny_model};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use proto::conventions::{abort_reason, api_event, attr, metric, span};
use rand::Rng;
use serde_json::{Value, json};

const MODEL: &str = "journey-tiny";

fn traceparent() -> (String, String) {
    let t: [u8; 16] = rand::rng().random();
    let s: [u8; 8] = rand::rng().random();
    let trace = hex(&t);
    let header = format!("00-{trace}-{}-01", hex(&s));
    (trace, header)
}

fn traced_engine(model: &std::path::Path, collector: &Collector) -> Service {
    let ep = collector.endpoint();
    start_engine(
        model,
        &["--enable-journey-tracing", "--otlp-traces-endpoint", &ep],
    )
}

/// `journey:gateway_engine_requests_total` (or another per-engine metric) by engine URL.
async fn per_engine(gateway: &Service, name: &str) -> HashMap<String, f64> {
    let text = reqwest::get(gateway.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name}{{{}=\"", metric::LABEL_ENGINE);
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (url, value) = rest.split_once("\"} ")?;
            Some((url.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

async fn complete(base: &str, header: &str, max_tokens: u32) -> reqwest::StatusCode {
    let body = json!({"model": MODEL, "prompt": "hello world", "max_tokens": max_tokens,
                      "temperature": 0, "ignore_eos": true});
    reqwest::Client::new()
        .post(format!("{base}/v1/completions"))
        .header("traceparent", header)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

/// How a streamed request ended.
#[derive(Debug, PartialEq)]
enum Ending {
    /// A finish reason, then `[DONE]`.
    Finished,
    /// An error event with this code, then `[DONE]`.
    Failed(String),
}

/// Opens a stream and returns once its first token arrived; the task finishes the stream.
async fn start_stream(base: &str, header: &str) -> tokio::task::JoinHandle<(Ending, Vec<Value>)> {
    let body = json!({"model": MODEL, "prompt": "the quick brown fox", "max_tokens": 480,
                      "temperature": 0, "ignore_eos": true, "stream": true});
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/completions"))
        .header("traceparent", header)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    let mut events: Vec<Value> = Vec::new();
    // Read until the first data event, so the request is surely running on its engine.
    while events.is_empty() {
        let chunk = bytes.next().await.expect("stream ended early").unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        drain_events(&mut buffer, &mut events);
    }
    tokio::spawn(async move {
        while let Some(chunk) = bytes.next().await {
            let Ok(chunk) = chunk else { break };
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            drain_events(&mut buffer, &mut events);
        }
        assert_eq!(events.last(), Some(&Value::from("[DONE]")), "{events:?}");
        let ending = match events.iter().rev().find_map(|e| e.get("error")) {
            Some(error) => Ending::Failed(error["code"].as_str().unwrap_or_default().to_owned()),
            None => {
                let finished = events.iter().any(|e| {
                    e["choices"][0]["finish_reason"]
                        .as_str()
                        .is_some_and(|r| !r.is_empty())
                });
                assert!(finished, "no finish reason and no error: {events:?}");
                Ending::Finished
            }
        };
        (ending, events)
    })
}

fn drain_events(buffer: &mut String, events: &mut Vec<Value>) {
    while let Some(end) = buffer.find("\n\n") {
        let event: String = buffer.drain(..end + 2).collect();
        for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
            events.push(if data == "[DONE]" {
                Value::from("[DONE]")
            } else {
                serde_json::from_str(data).unwrap()
            });
        }
    }
}

fn requests_of<'a>(spans: &'a [Received], trace: &str) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|r| r.span.name == span::LLM_REQUEST && hex(&r.span.trace_id) == trace)
        .collect()
}

fn cores_of<'a>(spans: &'a [Received], trace: &str) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|r| r.span.name == span::LLM_CORE && hex(&r.span.trace_id) == trace)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_engines_share_the_load_and_survive_one_dying() {
    let collector = Collector::start().await;
    let model = tiny_model(&temp_dir("replicas"));
    let mut doomed = traced_engine(&model, &collector);
    let survivor = traced_engine(&model, &collector);
    let ep = collector.endpoint();
    let gateway = start_gateway_over(
        &[&doomed.addr, &survivor.addr],
        &[
            "--enable-journey-tracing",
            "--otlp-traces-endpoint",
            &ep,
            "--engine-health-interval-ms",
            "200",
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let url_of = |s: &Service| format!("http://{}", s.addr);
    let pid_of: HashMap<String, u32> = [
        (url_of(&doomed), doomed.pid()),
        (url_of(&survivor), survivor.pid()),
    ]
    .into();

    // 1. Concurrent requests spread over both engines.
    let traces: Vec<(String, String)> = (0..16).map(|_| traceparent()).collect();
    let calls = traces.iter().map(|(_, h)| complete(&base, h, 16));
    let statuses = futures::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let routed = per_engine(
        &gateway,
        &format!("{}_total", metric::GATEWAY_ENGINE_REQUESTS),
    )
    .await;
    eprintln!("16 requests routed: {routed:?}");
    assert_eq!(routed.len(), 2, "{routed:?}");
    for (engine, n) in &routed {
        assert!(*n >= 4.0, "{engine} served only {n} of 16: {routed:?}");
    }

    // Both engines' core spans parent under the gateway's request spans, and each comes
    // from the engine the gateway says served it.
    let spans = collector
        .wait_for("a request and a core span per trace", |s| {
            traces
                .iter()
                .all(|(t, _)| requests_of(s, t).len() == 1 && cores_of(s, t).len() == 1)
        })
        .await;
    let mut instances = HashSet::new();
    for (trace, _) in &traces {
        let request = requests_of(&spans, trace)[0];
        let core = cores_of(&spans, trace)[0];
        assert_eq!(core.span.parent_span_id, request.span.span_id);
        let engine = string_attr(&request.span.attributes, attr::JOURNEY_ENGINE)
            .expect("llm_request names its engine");
        assert_eq!(
            int_attr(&request.span.attributes, attr::JOURNEY_ENGINE_ATTEMPTS),
            Some(1)
        );
        let pid = pid_of[&engine];
        assert!(
            core.instance.ends_with(&format!("/{pid}")),
            "core span from {} but the gateway sent it to {engine} (pid {pid})",
            core.instance
        );
        instances.insert(core.instance.clone());
    }
    assert_eq!(instances.len(), 2, "core spans came from {instances:?}");

    // 2. Long streams on both engines; kill one while they run.
    let stream_traces: Vec<(String, String)> = (0..6).map(|_| traceparent()).collect();
    let mut streams = Vec::new();
    for (_, header) in &stream_traces {
        streams.push(start_stream(&base, header).await);
    }
    doomed.kill();
    let mut endings = Vec::new();
    for s in streams {
        endings.push(s.await.unwrap().0);
    }
    let failed = endings.iter().filter(|e| **e != Ending::Finished).count();
    eprintln!("streams after the kill: {endings:?}");
    assert!(
        failed >= 1,
        "no stream was on the killed engine: {endings:?}"
    );
    assert!(failed < endings.len(), "every stream failed: {endings:?}");
    for e in &endings {
        if let Ending::Failed(code) = e {
            assert_eq!(code, "engine_unavailable", "{endings:?}");
        }
    }

    // The gateway's spans of the streams record where each went and how it ended.
    let spans = collector
        .wait_for("the streams' request spans", |s| {
            stream_traces
                .iter()
                .all(|(t, _)| requests_of(s, t).len() == 1)
        })
        .await;
    let doomed_url = url_of(&doomed);
    for ((trace, _), ending) in stream_traces.iter().zip(&endings) {
        let request = requests_of(&spans, trace)[0];
        let engine = string_attr(&request.span.attributes, attr::JOURNEY_ENGINE).unwrap();
        let aborted = events(&request.span, api_event::ABORTED);
        match ending {
            Ending::Failed(_) => {
                assert_eq!(engine, doomed_url, "a stream failed on the live engine");
                assert_eq!(aborted.len(), 1);
                assert_eq!(
                    string_attr(&aborted[0].attributes, attr::REASON).as_deref(),
                    Some(abort_reason::ENGINE_UNAVAILABLE)
                );
                let status = request.span.status.as_ref().expect("status");
                assert_eq!(status.code, StatusCode::Error as i32);
            }
            Ending::Finished => {
                assert!(aborted.is_empty());
                assert_eq!(events(&request.span, api_event::DEPARTED).len(), 1);
            }
        }
        assert!(request.span.end_time_unix_nano >= request.span.start_time_unix_nano);
    }

    // 3. The survivor serves everything from now on; the dead engine is taken out.
    let after: Vec<(String, String)> = (0..8).map(|_| traceparent()).collect();
    let statuses =
        futures::future::join_all(after.iter().map(|(_, h)| complete(&base, h, 8))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let health = reqwest::get(format!("{base}/health"))
        .await
        .unwrap()
        .status();
    assert_eq!(health, 200, "one engine is still up");
    let up = per_engine(&gateway, metric::GATEWAY_ENGINE_UP).await;
    assert_eq!(up.get(&doomed_url), Some(&0.0), "{up:?}");
    assert_eq!(up.get(&url_of(&survivor)), Some(&1.0), "{up:?}");
    let outstanding = per_engine(&gateway, metric::GATEWAY_ENGINE_OUTSTANDING).await;
    assert!(outstanding.values().all(|v| *v == 0.0), "{outstanding:?}");
    let spans = collector
        .wait_for("the later requests' spans", |s| {
            after
                .iter()
                .all(|(t, _)| requests_of(s, t).len() == 1 && cores_of(s, t).len() == 1)
        })
        .await;
    for (trace, _) in &after {
        let request = requests_of(&spans, trace)[0];
        let engine = string_attr(&request.span.attributes, attr::JOURNEY_ENGINE).unwrap();
        assert_eq!(engine, url_of(&survivor));
        assert_eq!(
            cores_of(&spans, trace)[0].span.parent_span_id,
            request.span.span_id
        );
    }
    journey_tests::assert_engine_idle(&survivor.addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_engine_is_skipped_and_rejoins_when_it_returns() {
    let model = tiny_model(&temp_dir("replicas-rejoin"));
    let live = start_engine(&model, &[]);
    // An engine that is not there yet: a port that was free a moment ago.
    let absent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let absent_addr = absent.local_addr().unwrap().to_string();
    drop(absent);
    let gateway = start_gateway_over(
        &[&absent_addr, &live.addr],
        &[
            "--engine-health-interval-ms",
            "100",
            "--engine-backoff-max-ms",
            "400",
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let (_, header) = traceparent();
    for _ in 0..6 {
        assert_eq!(complete(&base, &header, 4).await, 200);
    }
    let absent_url = format!("http://{absent_addr}");
    let up = per_engine(&gateway, metric::GATEWAY_ENGINE_UP).await;
    assert_eq!(up.get(&absent_url), Some(&0.0), "{up:?}");

    // The engine comes up on that port: the probes find it and it takes requests again.
    let port = absent_addr.rsplit_once(':').unwrap().1;
    let _back = start_engine_on(&model, &format!("127.0.0.1:{port}"), &[]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let up = per_engine(&gateway, metric::GATEWAY_ENGINE_UP).await;
        if up.get(&absent_url) == Some(&1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never rejoined: {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = format!("{}_total", metric::GATEWAY_ENGINE_REQUESTS);
    let before = per_engine(&gateway, &requests)
        .await
        .get(&absent_url)
        .copied()
        .unwrap_or(0.0);
    for _ in 0..8 {
        assert_eq!(complete(&base, &header, 4).await, 200);
    }
    let after = per_engine(&gateway, &requests)
        .await
        .get(&absent_url)
        .copied()
        .unwrap_or(0.0);
    assert!(
        after - before >= 2.0,
        "the returned engine took {} of 8",
        after - before
    );
}

fn start_engine_on(model: &std::path::Path, listen: &str, extra: &[&str]) -> Service {
    let mut args = vec![
        "serve",
        "--model",
        model.to_str().unwrap(),
        "--listen",
        listen,
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Service::start(
        &journey_tests::binary("engine-core"),
        &args,
        "engine-core listening on",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_loses_no_request_and_no_trace() {
    let model = tiny_model(&temp_dir("replicas-rolling"));
    let collector = Collector::start().await;
    let ep = collector.endpoint();
    let traced = ["--enable-journey-tracing", "--otlp-traces-endpoint", &ep];
    let mut first = start_engine(&model, &traced);
    let second = traced_engine(&model, &collector);
    let gateway = start_gateway_over(
        &[&first.addr, &second.addr],
        &[
            "--enable-journey-tracing",
            "--otlp-traces-endpoint",
            &ep,
            "--engine-health-interval-ms",
            "100",
            "--engine-backoff-max-ms",
            "400",
        ],
    );
    let base = format!("http://{}", gateway.addr);
    // Four clients send requests back to back until the first engine has been restarted and
    // has served again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (base, stop) = (base.clone(), stop.clone());
            tokio::spawn(async move {
                let mut traces = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (trace, header) = traceparent();
                    assert_eq!(complete(&base, &header, 24).await, 200);
                    traces.push(trace);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                traces
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // SIGTERM: it drains (in-flight requests finish) and exits; then it starts again on the
    // same port and rejoins.
    let listen = first.addr.clone();
    let first_url = format!("http://{listen}");
    let requests_metric = format!("{}_total", metric::GATEWAY_ENGINE_REQUESTS);
    first.signal_term();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let clean = loop {
        if let Some(ok) = first.try_exit() {
            break ok;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(clean, "a drained engine exits 0");
    let served_before = per_engine(&gateway, &requests_metric).await[&first_url];
    let _restarted = start_engine_on(&model, &listen, &traced);
    loop {
        let served = per_engine(&gateway, &requests_metric).await[&first_url];
        if served >= served_before + 2.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline + Duration::from_secs(30),
            "the restarted engine never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut traces = Vec::new();
    for w in workers {
        traces.extend(w.await.expect("every request succeeded"));
    }
    // Every request's trace is whole: its gateway span and one engine span under it.
    let spans = collector
        .wait_for("a gateway and an engine span per request", |s| {
            traces
                .iter()
                .all(|t| requests_of(s, t).len() == 1 && cores_of(s, t).len() == 1)
        })
        .await;
    println!(
        "{} requests across the restart, all answered, all traced",
        traces.len()
    );
    for t in &traces {
        let core = cores_of(&spans, t)[0];
        let request = requests_of(&spans, t)[0];
        assert_eq!(core.span.parent_span_id, request.span.span_id, "trace {t}");
    }
}
