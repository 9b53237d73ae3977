//! Journey tracing end to end: both real processes export over OTLP/gRPC to a real receiver
//! in this test, and every termination path yields exactly one complete trace with the span
//! tree, parent links, events and attributes of `JOURNEY-SPEC.md`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use journey_tests::otlp::{
    Collector, Received, event_names, events, float_attr, hex, int_attr, string_attr,
};
use journey_tests::{Service, grpcurl, start_engine, start_gateway, temp_dir, tiny_model};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use proto::conventions::{api_event, attr, journey_event, metric, scope, service, span};
use proto::engine::engine_client::EngineClient;
use proto::engine::generate_request::Prompt;
use proto::engine::{AbortRequest, GenerateRequest, SamplingParams};
use rand::Rng;
use serde_json::{Value, json};

const MODEL: &str = "journey-tiny";

/// A fresh W3C trace: (trace id hex, parent span id hex, traceparent header).
fn new_trace() -> (String, String, String) {
    let mut rng = rand::rng();
    let t: [u8; 16] = rng.random();
    let s: [u8; 8] = rng.random();
    let (t, s) = (hex(&t), hex(&s));
    let header = format!("00-{t}-{s}-01");
    (t, s, header)
}

/// Engine and gateway, both tracing to `collector`, with extra flags each.
fn traced_pair(
    model: &std::path::Path,
    collector: &Collector,
    engine_extra: &[&str],
    gateway_extra: &[&str],
) -> (Service, Service) {
    let ep = collector.endpoint();
    let mut e = vec!["--enable-journey-tracing", "--otlp-traces-endpoint", &ep];
    e.extend_from_slice(engine_extra);
    let engine = start_engine(model, &e);
    let mut g = vec!["--enable-journey-tracing", "--otlp-traces-endpoint", &ep];
    g.extend_from_slice(gateway_extra);
    let gateway = start_gateway(&engine.addr, &g);
    (engine, gateway)
}

async fn post(base: &str, path: &str, body: &Value, traceparent: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("traceparent", traceparent)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Spans of one trace id: (llm_request spans, llm_core spans).
fn of_trace<'a>(spans: &'a [Received], trace: &str) -> (Vec<&'a Received>, Vec<&'a Received>) {
    let mine: Vec<&Received> = spans
        .iter()
        .filter(|r| hex(&r.span.trace_id) == trace)
        .collect();
    let req = mine
        .iter()
        .copied()
        .filter(|r| r.span.name == span::LLM_REQUEST)
        .collect();
    let core = mine
        .iter()
        .copied()
        .filter(|r| r.span.name == span::LLM_CORE)
        .collect();
    (req, core)
}

fn has_trace(spans: &[Received], trace: &str, requests: usize, cores: usize) -> bool {
    let (r, c) = of_trace(spans, trace);
    r.len() >= requests && c.len() >= cores
}

/// Asserts the span's events are in time order inside the span, and their monotonic
/// attributes agree with that order.
fn check_times(r: &Received, mono_key: &str) {
    let s = &r.span;
    assert!(s.end_time_unix_nano >= s.start_time_unix_nano, "{}", s.name);
    let mut last_t = s.start_time_unix_nano;
    let mut last_mono = f64::MIN;
    for e in &s.events {
        assert!(
            e.time_unix_nano >= last_t && e.time_unix_nano <= s.end_time_unix_nano,
            "{}: event {} out of order",
            s.name,
            e.name
        );
        last_t = e.time_unix_nano;
        let mono = float_attr(&e.attributes, mono_key)
            .unwrap_or_else(|| panic!("{}: {} lacks {mono_key}", s.name, e.name));
        assert!(mono >= last_mono, "{}: monotonic clock went back", s.name);
        last_mono = mono;
    }
}

/// The request span: its service, scope, kind and parent.
fn check_request_span(r: &Received, client_span: Option<&str>) {
    assert_eq!(r.service, service::API_GATEWAY);
    assert_eq!(r.scope, scope::API);
    assert_eq!(r.span.kind, SpanKind::Server as i32);
    if let Some(parent) = client_span {
        assert_eq!(hex(&r.span.parent_span_id), parent, "llm_request parent");
    }
    check_times(r, attr::EVENT_TS_MONOTONIC);
}

/// The core span: service, scope, parent = the request span, the snapshot on every event.
fn check_core_span(c: &Received, request: &Received) {
    assert_eq!(c.service, service::ENGINE_CORE);
    assert_eq!(c.scope, scope::SCHEDULER);
    assert_eq!(c.span.kind, SpanKind::Internal as i32);
    assert_eq!(
        c.span.parent_span_id, request.span.span_id,
        "llm_core parent"
    );
    check_times(c, attr::TS_MONOTONIC);
    let mut last_step = 0;
    for e in &c.span.events {
        for key in [
            attr::TS_MONOTONIC_NS,
            attr::SCHEDULER_STEP,
            attr::PREFILL_DONE_TOKENS,
            attr::PREFILL_TOTAL_TOKENS,
            attr::DECODE_DONE_TOKENS,
            attr::DECODE_MAX_TOKENS,
            attr::NUM_PREEMPTIONS,
        ] {
            assert!(
                int_attr(&e.attributes, key).is_some(),
                "{}: no {key}",
                e.name
            );
        }
        let ns = int_attr(&e.attributes, attr::TS_MONOTONIC_NS).unwrap() as f64;
        let secs = float_attr(&e.attributes, attr::TS_MONOTONIC).unwrap();
        assert!((ns / 1e9 - secs).abs() < 1e-6, "one clock read");
        let step = int_attr(&e.attributes, attr::SCHEDULER_STEP).unwrap();
        assert!(step >= last_step, "scheduler.step went back");
        last_step = step;
        assert!(string_attr(&e.attributes, attr::EVENT_TYPE).is_some());
        assert!(string_attr(&e.attributes, attr::PHASE).is_some());
    }
}

fn types(c: &Received) -> Vec<String> {
    c.span
        .events
        .iter()
        .map(|e| string_attr(&e.attributes, attr::EVENT_TYPE).unwrap())
        .collect()
}

fn finish_status(c: &Received) -> String {
    let fin = events(&c.span, journey_event::FINISHED);
    assert_eq!(fin.len(), 1, "exactly one FINISHED");
    string_attr(&fin[0].attributes, attr::FINISH_STATUS).unwrap()
}

fn abort_reason(r: &Received) -> String {
    let ab = events(&r.span, api_event::ABORTED);
    assert_eq!(
        ab.len(),
        1,
        "exactly one ABORTED: {:?}",
        event_names(&r.span)
    );
    string_attr(&ab[0].attributes, attr::REASON).unwrap()
}

const HAPPY: [&str; 4] = [
    api_event::ARRIVED,
    api_event::HANDOFF_TO_CORE,
    api_event::FIRST_RESPONSE_FROM_CORE,
    api_event::DEPARTED,
];

#[tokio::test(flavor = "multi_thread")]
async fn every_termination_path_yields_one_complete_trace() {
    let collector = Collector::start().await;
    let model = tiny_model(&temp_dir("trace-paths"));
    let (engine, gateway) = traced_pair(&model, &collector, &[], &[]);
    let base = format!("http://{}", gateway.addr);
    let msgs = json!([{"role": "user", "content": "hello there"}]);

    // Streaming chat, success (length).
    let (t_stream, p_stream, tp) = new_trace();
    let body = json!({"model": MODEL, "messages": msgs, "max_tokens": 6, "temperature": 0,
                      "ignore_eos": true, "stream": true});
    let text = post(&base, "/v1/chat/completions", &body, &tp)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    // Non-streaming completion, success (length).
    let (t_whole, p_whole, tp) = new_trace();
    let body = json!({"model": MODEL, "prompt": "hello world", "max_tokens": 5, "temperature": 0,
                      "ignore_eos": true});
    let v: Value = post(&base, "/v1/completions", &body, &tp)
        .await
        .json()
        .await
        .unwrap();
    let whole_id = v["id"].as_str().unwrap().to_owned();
    let probe = json!({"model": MODEL, "prompt": "hello world", "max_tokens": 3,
                       "temperature": 0, "ignore_eos": true});
    let probe: Value = post(&base, "/v1/completions", &probe, &new_trace().2)
        .await
        .json()
        .await
        .unwrap();

    // Stop: greedy reproduces the probe's text, which is the stop string.
    let stop = probe["choices"][0]["text"].as_str().unwrap().to_owned();
    assert!(!stop.is_empty(), "{probe}");
    let (t_stop, _, tp) = new_trace();
    let body = json!({"model": MODEL, "prompt": "hello world", "max_tokens": 20, "temperature": 0,
                      "ignore_eos": true, "stop": [stop]});
    let v: Value = post(&base, "/v1/completions", &body, &tp)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");

    // Client disconnect mid-stream.
    let (t_gone, _, tp) = new_trace();
    let body = json!({"model": MODEL, "prompt": "hello", "max_tokens": 400, "temperature": 0,
                      "ignore_eos": true, "stream": true});
    {
        let resp = post(&base, "/v1/completions", &body, &tp).await;
        let mut chunks = resp.bytes_stream();
        let first = chunks.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
    } // dropped: the connection closes

    // Validation error.
    let (t_bad, p_bad, tp) = new_trace();
    let body = json!({"model": MODEL, "messages": msgs, "temperature": 3.5});
    let r = post(&base, "/v1/chat/completions", &body, &tp).await;
    assert_eq!(r.status(), 400);

    // n = 2 and a multi-prompt completion.
    let (t_n2, _, tp) = new_trace();
    let body = json!({"model": MODEL, "messages": msgs, "max_tokens": 3, "n": 2, "seed": 1});
    assert_eq!(
        post(&base, "/v1/chat/completions", &body, &tp)
            .await
            .status(),
        200
    );
    let (t_multi, _, tp) = new_trace();
    let body = json!({"model": MODEL, "prompt": ["one", "two", "three"], "max_tokens": 2});
    assert_eq!(
        post(&base, "/v1/completions", &body, &tp).await.status(),
        200
    );

    // Abort RPC on a direct gRPC call that carries a traceparent.
    let (t_abort, p_abort, tp) = new_trace();
    let mut client = EngineClient::connect(format!("http://{}", engine.addr))
        .await
        .unwrap();
    let mut req = tonic::Request::new(GenerateRequest {
        request_id: "abort-me".into(),
        prompt: Some(Prompt::Text("abort this".into())),
        sampling: Some(SamplingParams {
            max_tokens: Some(400),
            ignore_eos: true,
            ..Default::default()
        }),
        return_prompt_ids: false,
        return_journey: false,
        priority: 0,
    });
    req.metadata_mut()
        .insert("traceparent", tp.parse().unwrap());
    let mut stream = client.generate(req).await.unwrap().into_inner();
    stream.message().await.unwrap();
    let found = client
        .abort(AbortRequest {
            request_id: "abort-me".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .found;
    assert!(found);
    while stream.message().await.unwrap().is_some() {}

    let spans = collector
        .wait_for("every path's spans", |s| {
            has_trace(s, &t_stream, 1, 1)
                && has_trace(s, &t_whole, 1, 1)
                && has_trace(s, &t_stop, 1, 1)
                && has_trace(s, &t_gone, 1, 1)
                && has_trace(s, &t_bad, 1, 0)
                && has_trace(s, &t_n2, 1, 2)
                && has_trace(s, &t_multi, 1, 3)
                && has_trace(s, &t_abort, 0, 1)
        })
        .await;

    // Streaming success.
    let (r, c) = of_trace(&spans, &t_stream);
    assert_eq!((r.len(), c.len()), (1, 1));
    check_request_span(r[0], Some(&p_stream));
    check_core_span(c[0], r[0]);
    assert_eq!(event_names(&r[0].span), HAPPY);
    assert_eq!(
        types(c[0]),
        ["QUEUED", "SCHEDULED", "FIRST_TOKEN", "FINISHED"]
    );
    assert_eq!(finish_status(c[0]), "length");
    let sched = &events(&c[0].span, journey_event::SCHEDULED)[0];
    assert_eq!(
        string_attr(&sched.attributes, attr::SCHEDULE_KIND).unwrap(),
        "FIRST"
    );
    let queued = &c[0].span.events[0];
    assert_eq!(
        string_attr(&queued.attributes, attr::PHASE).unwrap(),
        "WAITING"
    );
    let fin = &events(&c[0].span, journey_event::FINISHED)[0];
    assert_eq!(int_attr(&fin.attributes, attr::DECODE_DONE_TOKENS), Some(6));
    assert_eq!(string_attr(&fin.attributes, attr::PHASE).unwrap(), "DECODE");
    let total = int_attr(&fin.attributes, attr::PREFILL_TOTAL_TOKENS).unwrap();
    assert_eq!(
        int_attr(&fin.attributes, attr::PREFILL_DONE_TOKENS),
        Some(total)
    );
    let a = &r[0].span.attributes;
    assert_eq!(int_attr(a, attr::GEN_AI_USAGE_COMPLETION_TOKENS), Some(6));
    assert_eq!(int_attr(a, attr::GEN_AI_USAGE_OUTPUT_TOKENS), Some(6));
    assert_eq!(int_attr(a, attr::GEN_AI_USAGE_PROMPT_TOKENS), Some(total));
    assert_eq!(
        string_attr(a, attr::HTTP_ROUTE).unwrap(),
        "/v1/chat/completions"
    );
    assert_eq!(string_attr(a, attr::GEN_AI_OPERATION_NAME).unwrap(), "chat");
    assert_eq!(string_attr(a, attr::GEN_AI_RESPONSE_MODEL).unwrap(), MODEL);
    assert_eq!(float_attr(a, attr::GEN_AI_REQUEST_TEMPERATURE), Some(0.0));
    assert_eq!(int_attr(a, attr::GEN_AI_REQUEST_MAX_TOKENS), Some(6));
    for key in [
        attr::GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN,
        attr::GEN_AI_LATENCY_E2E,
        attr::GEN_AI_LATENCY_TIME_IN_QUEUE,
        attr::GEN_AI_LATENCY_TIME_IN_MODEL_PREFILL,
        attr::GEN_AI_LATENCY_TIME_IN_MODEL_DECODE,
        attr::GEN_AI_LATENCY_TIME_IN_MODEL_INFERENCE,
    ] {
        let v = float_attr(a, key).unwrap_or_else(|| panic!("no {key}"));
        assert!(v >= 0.0, "{key} = {v}");
    }
    assert!(
        float_attr(a, attr::GEN_AI_LATENCY_E2E).unwrap()
            >= float_attr(a, attr::GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN).unwrap()
    );
    assert!(journey_tests::otlp::attr(a, attr::GEN_AI_RESPONSE_FINISH_REASONS).is_some());

    // Non-streaming success.
    let (r, c) = of_trace(&spans, &t_whole);
    check_request_span(r[0], Some(&p_whole));
    check_core_span(c[0], r[0]);
    assert_eq!(event_names(&r[0].span), HAPPY);
    assert_eq!(
        string_attr(&r[0].span.attributes, attr::GEN_AI_REQUEST_ID).unwrap(),
        whole_id
    );
    assert_eq!(finish_status(c[0]), "length");

    // Stop.
    let (r, c) = of_trace(&spans, &t_stop);
    check_core_span(c[0], r[0]);
    assert_eq!(finish_status(c[0]), "stopped");
    assert_eq!(event_names(&r[0].span), HAPPY);

    // Disconnect.
    let (r, c) = of_trace(&spans, &t_gone);
    check_request_span(r[0], None);
    check_core_span(c[0], r[0]);
    assert_eq!(abort_reason(r[0]), "client_disconnect");
    assert_eq!(
        r[0].span.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    assert_eq!(finish_status(c[0]), "aborted");

    // Validation error: ARRIVED then ABORTED, no core span.
    let (r, c) = of_trace(&spans, &t_bad);
    assert!(c.is_empty());
    check_request_span(r[0], Some(&p_bad));
    assert_eq!(
        event_names(&r[0].span),
        [api_event::ARRIVED, api_event::ABORTED]
    );
    assert_eq!(abort_reason(r[0]), "validation_error");
    assert_eq!(
        string_attr(&r[0].span.attributes, attr::ERROR_TYPE).unwrap(),
        "validation_error"
    );

    // n = 2: two core spans under the one request span; multi-prompt: one per prompt.
    for (t, n) in [(&t_n2, 2), (&t_multi, 3)] {
        let (r, c) = of_trace(&spans, t);
        assert_eq!((r.len(), c.len()), (1, n));
        for core in &c {
            check_core_span(core, r[0]);
            assert_eq!(finish_status(core), "length");
        }
        assert_eq!(event_names(&r[0].span), HAPPY);
    }

    // Abort RPC: a child of the caller's traceparent, finished as aborted.
    let (r, c) = of_trace(&spans, &t_abort);
    assert!(r.is_empty());
    assert_eq!(hex(&c[0].span.parent_span_id), p_abort);
    assert_eq!(finish_status(c[0]), "aborted");

    // The engine is idle again: no KV block held, nothing running or waiting.
    journey_tests::assert_engine_idle(&engine.addr).await;

    // Every span ended exactly once: one copy of each span id.
    let mut seen = HashSet::new();
    for s in &spans {
        assert!(seen.insert(s.span.span_id.clone()), "span exported twice");
        assert!(s.span.end_time_unix_nano > 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn preemption_and_step_tracing() {
    let collector = Collector::start().await;
    let model = tiny_model(&temp_dir("trace-preempt"));
    let engine_flags = [
        "--kv-cache-blocks",
        "12",
        "--block-size",
        "16",
        "--step-tracing-enabled",
        "--step-tracing-sample-rate",
        "1.0",
        "--step-tracing-rich-subsample-rate",
        "1.0",
        "--step-tracing-closure-interval",
        "10",
    ];
    let (_engine, gateway) = traced_pair(&model, &collector, &engine_flags, &[]);
    let base = format!("http://{}", gateway.addr);
    let mut tasks = Vec::new();
    let mut traces = Vec::new();
    for i in 0..8 {
        let (t, _, tp) = new_trace();
        traces.push(t);
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let prompt = format!("request number {i} tells a long story about ");
            let body = json!({"model": MODEL, "prompt": prompt, "max_tokens": 48,
                              "temperature": 0, "ignore_eos": true});
            post(&base, "/v1/completions", &body, &tp).await.status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let spans = collector
        .wait_for("8 journeys", |s| {
            traces.iter().all(|t| has_trace(s, t, 1, 1))
        })
        .await;

    let mut preempted = 0;
    for t in &traces {
        let (r, c) = of_trace(&spans, t);
        check_core_span(c[0], r[0]);
        let ty = types(c[0]);
        let n = ty.iter().filter(|t| *t == "PREEMPTED").count();
        if n == 0 {
            continue;
        }
        preempted += 1;
        // QUEUED → SCHEDULED(FIRST) → … → PREEMPTED → SCHEDULED(RESUME) → … → FINISHED.
        assert_eq!(ty.first().unwrap(), "QUEUED");
        assert_eq!(ty.last().unwrap(), "FINISHED");
        let ev = &c[0].span.events;
        let mut count = 0;
        let mut high = 0;
        for (i, e) in ev.iter().enumerate() {
            let done = int_attr(&e.attributes, attr::PREFILL_DONE_TOKENS).unwrap();
            assert!(done >= high, "prefill high-water went down");
            high = done;
            if e.name == journey_event::PREEMPTED {
                count += 1;
                assert_eq!(int_attr(&e.attributes, attr::NUM_PREEMPTIONS), Some(count));
                let next = &ev[i + 1];
                assert_eq!(next.name, journey_event::SCHEDULED);
                assert_eq!(
                    string_attr(&next.attributes, attr::SCHEDULE_KIND).unwrap(),
                    "RESUME"
                );
            }
        }
        assert_eq!(finish_status(c[0]), "length");
    }
    assert!(preempted > 0, "no journey shows a preemption");

    // Step spans: windows closed every 10 steps, each sampled step a child span with the
    // summary as attributes and links to llm_core spans; the spec's invariants on every one.
    let steps = collector
        .wait_for("step spans", |s| {
            s.iter()
                .filter(|r| r.span.name == span::SCHEDULER_STEPS)
                .count()
                >= 3
        })
        .await;
    let windows: Vec<&Received> = steps
        .iter()
        .filter(|r| r.span.name == span::SCHEDULER_STEPS)
        .collect();
    let window_ids: HashSet<_> = windows.iter().map(|w| w.span.span_id.clone()).collect();
    let core_ids: HashSet<_> = steps
        .iter()
        .filter(|r| r.span.name == span::LLM_CORE)
        .map(|r| r.span.span_id.clone())
        .collect();
    for w in &windows {
        assert_eq!(w.scope, scope::SCHEDULER_STEP);
        assert!(w.span.parent_span_id.is_empty(), "window is a root");
        let ids: Vec<i64> = events(&w.span, proto::conventions::step_event::BATCH_SUMMARY)
            .iter()
            .map(|e| int_attr(&e.attributes, attr::STEP_ID).unwrap())
            .collect();
        assert!(!ids.is_empty() && ids.len() <= 10, "{ids:?}");
        assert!(ids.last().unwrap() - ids.first().unwrap() < 10);
    }
    let step_spans: Vec<&Received> = steps
        .iter()
        .filter(|r| r.span.name == span::SCHEDULER_STEP)
        .collect();
    assert!(!step_spans.is_empty());
    let mut linked = 0;
    let mut snapshots = 0;
    let last_closed = windows
        .iter()
        .flat_map(|w| events(&w.span, proto::conventions::step_event::BATCH_SUMMARY))
        .map(|e| int_attr(&e.attributes, attr::STEP_ID).unwrap())
        .max()
        .unwrap();
    for s in &step_spans {
        let a = &s.span.attributes;
        // Under a closed window, or under the one still open (later steps).
        assert!(
            window_ids.contains(&s.span.parent_span_id)
                || int_attr(a, attr::STEP_ID).unwrap() > last_closed,
            "step span outside its window"
        );
        let get = |k: &str| int_attr(a, k).unwrap_or_else(|| panic!("step lacks {k}"));
        assert_eq!(
            get(attr::BATCH_PREFILL_TOKENS) + get(attr::BATCH_DECODE_TOKENS),
            get(attr::BATCH_SCHEDULED_TOKENS)
        );
        assert!(get(attr::KV_BLOCKS_FREE_GPU) <= get(attr::KV_BLOCKS_TOTAL_GPU));
        let usage = float_attr(a, attr::KV_USAGE_GPU_RATIO).unwrap();
        assert!((0.0..=1.0).contains(&usage));
        assert!(
            get(attr::BATCH_NUM_PREFILL_REQS) + get(attr::BATCH_NUM_DECODE_REQS)
                <= get(attr::QUEUE_RUNNING_DEPTH)
        );
        for k in [
            attr::STEP_DURATION_US,
            attr::STEP_SCHEDULE_US,
            attr::STEP_MODEL_US,
        ] {
            assert!(get(k) >= 0);
        }
        assert_eq!(string_attr(a, attr::KV_DEVICE).unwrap(), "cpu");
        assert!(s.span.links.len() <= 64);
        for l in &s.span.links {
            if core_ids.contains(&l.span_id) {
                linked += 1;
            }
        }
        let snaps = events(&s.span, proto::conventions::step_event::REQUEST_SNAPSHOT);
        assert_eq!(
            snaps.len() as i64,
            get(attr::QUEUE_RUNNING_DEPTH)
                - get(attr::BATCH_NUM_FINISHED).min(get(attr::QUEUE_RUNNING_DEPTH)),
            "one snapshot per running request"
        );
        snapshots += snaps.len();
        for e in snaps {
            for k in [
                attr::REQUEST_NUM_PROMPT_TOKENS,
                attr::REQUEST_NUM_COMPUTED_TOKENS,
                attr::REQUEST_NUM_OUTPUT_TOKENS,
                attr::REQUEST_NUM_PREEMPTIONS,
                attr::REQUEST_SCHEDULED_TOKENS_THIS_STEP,
                attr::KV_BLOCKS_ALLOCATED_GPU,
                attr::REQUEST_EFFECTIVE_PROMPT_LEN,
            ] {
                assert!(int_attr(&e.attributes, k).is_some(), "snapshot lacks {k}");
            }
        }
    }
    assert!(linked > 0, "no step span links to an llm_core span");
    assert!(snapshots > 0, "rich sampling at 1.0 gave no snapshot");
}

/// One `/metrics` value (first sample of `name`).
async fn metric_value(url: &str, name: &str) -> f64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("{name} missing from {url}:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sampling_is_atomic_deterministic_and_unforgeable() {
    let collector = Collector::start().await;
    let model = tiny_model(&temp_dir("trace-sampling"));
    // Both services share the deployment's sampling key, so this test can predict each
    // decision; the engine follows the gateway's word either way.
    const KEY: &str = "00112233445566778899aabbccddeeff";
    let key = proto::telemetry::sampling::SampleKey::parse(KEY).unwrap();
    let (_engine, gateway) = traced_pair(
        &model,
        &collector,
        &["--trace-sample-key", KEY],
        &[
            "--journey-tracing-sample-rate",
            "0.5",
            "--trace-sample-key",
            KEY,
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    let mut expected = HashMap::new();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (t, _, tp) = new_trace();
        let trace_id = u128::from_str_radix(&t, 16).unwrap();
        let want = key.sampled(opentelemetry::trace::TraceId::from(trace_id), 0.5);
        expected.insert(t, want);
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"model": MODEL, "prompt": "hi", "max_tokens": 1});
            let mut r = client
                .post(format!("{base}/v1/completions"))
                .header("traceparent", tp)
                .json(&body);
            if i % 2 == 0 {
                r = r.header("x-journey-sampled", "1"); // forged: must change nothing
            }
            r.send().await.unwrap().status()
        }));
        if tasks.len() == 16 {
            for t in tasks.drain(..) {
                assert_eq!(t.await.unwrap(), 200);
            }
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let sampled = expected.values().filter(|v| **v).count();
    assert!(
        (60..=140).contains(&sampled),
        "{sampled} of 200 at rate 0.5"
    );
    let spans = collector
        .wait_for("the sampled journeys", |s| {
            expected
                .iter()
                .filter(|(_, on)| **on)
                .all(|(t, _)| has_trace(s, t, 1, 1))
        })
        .await;
    for (t, on) in &expected {
        let (r, c) = of_trace(&spans, t);
        let want = usize::from(*on);
        assert_eq!(
            (r.len(), c.len()),
            (want, want),
            "trace {t}: both or neither"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_span_or_state_leaks_after_random_disconnects() {
    let collector = Collector::start().await;
    let model = tiny_model(&temp_dir("trace-leaks"));
    let (engine, gateway) = traced_pair(&model, &collector, &[], &[]);
    let base = format!("http://{}", gateway.addr);
    let mut traces = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (t, _, tp) = new_trace();
        traces.push(t);
        let base = base.clone();
        let disconnect = i % 5 == 0; // 20%
        tasks.push(tokio::spawn(async move {
            let body = json!({"model": MODEL, "prompt": "tell me", "max_tokens": 40,
                              "temperature": 0, "ignore_eos": true, "stream": true});
            let resp = post(&base, "/v1/completions", &body, &tp).await;
            let mut chunks = resp.bytes_stream();
            if disconnect {
                chunks.next().await;
                return;
            }
            while let Some(c) = chunks.next().await {
                c.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let spans = collector
        .wait_for("30 journeys", |s| {
            traces.iter().all(|t| has_trace(s, t, 1, 1))
        })
        .await;
    for t in &traces {
        let (r, c) = of_trace(&spans, t);
        assert_eq!((r.len(), c.len()), (1, 1));
        assert!(r[0].span.end_time_unix_nano >= r[0].span.start_time_unix_nano);
        assert!(c[0].span.end_time_unix_nano >= c[0].span.start_time_unix_nano);
    }
    let live = metric::TRACING_LIVE_SPANS;
    for svc in [&engine, &gateway] {
        let url = svc.metrics_url();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let v = metric_value(&url, live).await;
            if v == 0.0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url}: {v} live spans"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        metric_value(&engine.metrics_url(), metric::NUM_REQUESTS_RUNNING).await,
        0.0
    );
    journey_tests::assert_engine_idle(&engine.addr).await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_collector_costs_nothing_but_spans() {
    // A port nobody listens on.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ep = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let model = tiny_model(&temp_dir("trace-dead"));
    let flags = [
        "--enable-journey-tracing",
        "--otlp-traces-endpoint",
        ep.as_str(),
    ];
    let engine = start_engine(&model, &flags);
    let gateway = start_gateway(&engine.addr, &flags);
    let base = format!("http://{}", gateway.addr);
    let run = |n: usize| {
        let base = base.clone();
        async move {
            for _ in 0..n {
                let body = json!({"model": MODEL, "prompt": "hi", "max_tokens": 4});
                let r = post(&base, "/v1/completions", &body, &new_trace().2).await;
                assert_eq!(r.status(), 200);
            }
        }
    };
    run(50).await;
    let (e0, g0) = (rss_kib(engine.pid()), rss_kib(gateway.pid()));
    run(150).await;
    let (e1, g1) = (rss_kib(engine.pid()), rss_kib(gateway.pid()));
    // 150 more traced requests with nowhere to send their spans: memory stays put.
    assert!(e1 < e0 + 32 * 1024, "engine RSS grew from {e0} to {e1} KiB");
    assert!(
        g1 < g0 + 32 * 1024,
        "gateway RSS grew from {g0} to {g1} KiB"
    );
    // And every span was ended: a leak of one per request is far below what RSS can see, but
    // not below the live-span gauge.
    for svc in [&engine, &gateway] {
        let url = svc.metrics_url();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let v = metric_value(&url, metric::TRACING_LIVE_SPANS).await;
            if v == 0.0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url}: {v} live spans after 200 requests to a dead collector"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_with_a_traceparent_gets_a_child_llm_core() {
    let collector = Collector::start().await;
    let model = tiny_model(&temp_dir("trace-grpcurl"));
    let ep = collector.endpoint();
    let engine = start_engine(
        &model,
        &["--enable-journey-tracing", "--otlp-traces-endpoint", &ep],
    );
    let (t, p, tp) = new_trace();
    let out = std::process::Command::new(grpcurl())
        .args([
            "-plaintext",
            "-H",
            &format!("traceparent: {tp}"),
            "-d",
            r#"{"text": "hi", "sampling": {"max_tokens": 3}}"#,
            &engine.addr,
            "journey.engine.v1.Engine/Generate",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = collector
        .wait_for("the llm_core", |s| has_trace(s, &t, 0, 1))
        .await;
    let (_, c) = of_trace(&spans, &t);
    assert_eq!(hex(&c[0].span.parent_span_id), p);
    assert_eq!(
        types(c[0]),
        ["QUEUED", "SCHEDULED", "FIRST_TOKEN", "FINISHED"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_engine_gives_a_503_and_an_aborted_journey() {
    let collector = Collector::start().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let engine_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let ep = collector.endpoint();
    let gateway = start_gateway(
        &engine_addr,
        &["--enable-journey-tracing", "--otlp-traces-endpoint", &ep],
    );
    let base = format!("http://{}", gateway.addr);
    let (t, p, tp) = new_trace();
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&base, "/v1/chat/completions", &body, &tp).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{v}"
    );
    let spans = collector
        .wait_for("the request span", |s| has_trace(s, &t, 1, 0))
        .await;
    let (r, c) = of_trace(&spans, &t);
    assert!(c.is_empty());
    check_request_span(r[0], Some(&p));
    assert_eq!(
        event_names(&r[0].span),
        [api_event::ARRIVED, api_event::ABORTED]
    );
    assert_eq!(abort_reason(r[0]), "engine_unavailable");
    assert_eq!(
        r[0].span.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
}
