//! Every tracing flag of `JOURNEY-SPEC.md` §5, driven through the real command lines (and an
//! environment variable), changes what the processes export; bad values are refused.

use std::process::Command;

use journey_tests::otlp::{Collector, Received, events, hex, int_attr};
use journey_tests::{
    Service, binary, start_engine, start_engine_env, start_gateway, temp_dir, tiny_model,
};
use proto::conventions::{attr, span, step_event};
use proto::telemetry::sampling::{STEP_SALT, step_sampled};
use serde_json::json;

/// Runs `n` small completions through the gateway.
async fn traffic(gateway: &Service, n: usize) {
    let client = reqwest::Client::new();
    for i in 0..n {
        // EOS ignored: every request runs its 4 steps (a sampled EOS used to end one early and
        // leave the step-count test 3 spans short now and then).
        let body = json!({"model": "journey-tiny", "prompt": format!("hello {i}"),
                          "max_tokens": 4, "ignore_eos": true});
        let r = client
            .post(format!("http://{}/v1/completions", gateway.addr))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// Stops both processes with SIGTERM (which flushes their exporters).
fn stop(mut engine: Service, mut gateway: Service) {
    assert!(gateway.terminate(), "gateway did not exit cleanly");
    assert!(engine.terminate(), "engine did not exit cleanly");
}

fn count(spans: &[Received], name: &str) -> usize {
    spans.iter().filter(|r| r.span.name == name).count()
}

#[test]
fn bad_flag_values_are_refused_with_clear_errors() {
    let model = tiny_model(&temp_dir("flags-bad"));
    let m = model.to_str().unwrap();
    let cases: [(&str, &[&str], &str); 9] = [
        (
            "engine-core",
            &[
                "serve",
                "--model",
                m,
                "--journey-tracing-sample-rate",
                "1.5",
            ],
            "outside [0, 1]",
        ),
        (
            "engine-core",
            &["serve", "--model", m, "--step-tracing-sample-rate=-0.1"],
            "outside [0, 1]",
        ),
        (
            "engine-core",
            &[
                "serve",
                "--model",
                m,
                "--step-tracing-rich-subsample-rate",
                "x",
            ],
            "not a number",
        ),
        (
            "engine-core",
            &[
                "serve",
                "--model",
                m,
                "--step-tracing-closure-interval",
                "5",
            ],
            "10..=10000",
        ),
        (
            "engine-core",
            &[
                "serve",
                "--model",
                m,
                "--step-tracing-closure-interval",
                "20000",
            ],
            "10..=10000",
        ),
        (
            "api-gateway",
            &["--journey-tracing-sample-rate", "2"],
            "outside [0, 1]",
        ),
        (
            "api-gateway",
            &["--trace-sample-key", "my-passphrase"],
            "32 hex digits",
        ),
        (
            "engine-core",
            &["serve", "--model", m, "--trace-sample-key", "abcd"],
            "32 hex digits",
        ),
        ("api-gateway", &["--trace-file-max-bytes", "100"], "4096.."),
    ];
    for (bin, args, needle) in cases {
        let out = Command::new(binary(bin)).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bin} {args:?} was accepted");
        assert!(err.contains(needle), "{bin} {args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn journey_flags_change_what_is_exported() {
    let model = tiny_model(&temp_dir("flags-journey"));

    // An endpoint alone traces nothing: tracing is off by default.
    let c = Collector::start().await;
    let ep = c.endpoint();
    let engine = start_engine(&model, &["--otlp-traces-endpoint", &ep]);
    let gateway = start_gateway(&engine.addr, &["--otlp-traces-endpoint", &ep]);
    traffic(&gateway, 3).await;
    stop(engine, gateway);
    assert!(c.spans().is_empty(), "tracing off, yet spans were exported");

    // --enable-journey-tracing on both (the engine's through its environment variable).
    let c = Collector::start().await;
    let ep = c.endpoint();
    let engine = start_engine_env(
        &model,
        &["--otlp-traces-endpoint", &ep],
        &[("JOURNEY_TRACING", "true")],
    );
    let gateway = start_gateway(
        &engine.addr,
        &["--enable-journey-tracing", "--otlp-traces-endpoint", &ep],
    );
    traffic(&gateway, 3).await;
    stop(engine, gateway);
    let spans = c.spans();
    assert_eq!(
        (
            count(&spans, span::LLM_REQUEST),
            count(&spans, span::LLM_CORE)
        ),
        (3, 3)
    );

    // --journey-tracing-sample-rate 0 at the gateway: nothing, in either process.
    let c = Collector::start().await;
    let ep = c.endpoint();
    let on = [
        "--enable-journey-tracing",
        "--otlp-traces-endpoint",
        ep.as_str(),
    ];
    let engine = start_engine(&model, &on);
    let mut g = on.to_vec();
    g.extend(["--journey-tracing-sample-rate", "0"]);
    let gateway = start_gateway(&engine.addr, &g);
    traffic(&gateway, 5).await;
    stop(engine, gateway);
    assert!(c.spans().is_empty(), "rate 0 exported spans");

    // No endpoint: the embedded default, OTLP-JSON lines in --journey-traces-file.
    let dir = temp_dir("flags-file");
    let file = dir.join("traces.jsonl");
    let _ = std::fs::remove_file(&file);
    let f = file.to_str().unwrap();
    let on = ["--enable-journey-tracing", "--journey-traces-file", f];
    let engine = start_engine(&model, &on);
    let gateway = start_gateway(&engine.addr, &on);
    traffic(&gateway, 2).await;
    stop(engine, gateway);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut names = Vec::new();
    let mut services = std::collections::HashSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for rs in v["resourceSpans"].as_array().unwrap() {
            for kv in rs["resource"]["attributes"].as_array().unwrap() {
                if kv["key"] == "service.name" {
                    services.insert(kv["value"]["stringValue"].as_str().unwrap().to_owned());
                }
            }
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    names.push(s["name"].as_str().unwrap().to_owned());
                    assert_eq!(s["traceId"].as_str().unwrap().len(), 32, "hex trace id");
                }
            }
        }
    }
    assert_eq!(
        names.iter().filter(|n| *n == span::LLM_REQUEST).count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == span::LLM_CORE).count(),
        2,
        "{names:?}"
    );
    assert!(
        services.contains("api-gateway") && services.contains("engine-core"),
        "{services:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn step_flags_change_what_is_exported() {
    let model = tiny_model(&temp_dir("flags-steps"));
    let run = |flags: Vec<&'static str>| {
        let model = model.clone();
        async move {
            let c = Collector::start().await;
            let ep = c.endpoint();
            let mut e = vec!["--otlp-traces-endpoint", ep.as_str()];
            e.extend(flags);
            let engine = start_engine(&model, &e);
            let gateway = start_gateway(&engine.addr, &[]);
            traffic(&gateway, 6).await;
            stop(engine, gateway);
            c.spans()
        }
    };
    // Not enabled: no step span even at rate 1.
    let s = run(vec!["--step-tracing-sample-rate", "1"]).await;
    assert_eq!(count(&s, span::SCHEDULER_STEP), 0);
    // Enabled at rate 0: none.
    let s = run(vec![
        "--step-tracing-enabled",
        "--step-tracing-sample-rate",
        "0",
    ])
    .await;
    assert_eq!(
        count(&s, span::SCHEDULER_STEP) + count(&s, span::SCHEDULER_STEPS),
        0
    );
    // Enabled at rate 1 with a huge window and no rich sampling: one window, no snapshots.
    let s = run(vec![
        "--step-tracing-enabled",
        "--step-tracing-sample-rate",
        "1",
        "--step-tracing-rich-subsample-rate",
        "0",
        "--step-tracing-closure-interval",
        "10000",
    ])
    .await;
    let steps = count(&s, span::SCHEDULER_STEP);
    assert!(
        steps >= 6 * 4,
        "{steps} step spans for 6 requests of 4 tokens"
    );
    assert_eq!(count(&s, span::SCHEDULER_STEPS), 1);
    let snapshots: usize = s
        .iter()
        .map(|r| events(&r.span, step_event::REQUEST_SNAPSHOT).len())
        .sum();
    assert_eq!(snapshots, 0);
    // Window of 10 steps: several windows, each a root of its own trace.
    let s = run(vec![
        "--step-tracing-enabled",
        "--step-tracing-sample-rate",
        "1",
        "--step-tracing-closure-interval",
        "10",
    ])
    .await;
    let windows: Vec<&Received> = s
        .iter()
        .filter(|r| r.span.name == span::SCHEDULER_STEPS)
        .collect();
    assert!(windows.len() >= 3, "{} windows", windows.len());
    let traces: std::collections::HashSet<String> =
        windows.iter().map(|w| hex(&w.span.trace_id)).collect();
    assert_eq!(traces.len(), windows.len(), "each window its own trace");
    // Rate 0.5: about half the steps.
    let s = run(vec![
        "--step-tracing-enabled",
        "--step-tracing-sample-rate",
        "0.5",
    ])
    .await;
    let half = count(&s, span::SCHEDULER_STEP);
    assert!(
        half > 0 && half < steps,
        "{half} of {steps} steps at rate 0.5"
    );
    // And exactly the steps the rate's draw picks: every exported step id is one the hash
    // samples at 0.5 (exporting every step, or a rate of 0.9, would fail here).
    for r in s.iter().filter(|r| r.span.name == span::SCHEDULER_STEP) {
        let id = int_attr(&r.span.attributes, attr::STEP_ID).expect("step.id") as u64;
        assert!(
            step_sampled(id, STEP_SALT, 0.5),
            "step {id} exported though the 0.5 draw skips it"
        );
    }
}

/// One direct gRPC `Generate` with a sampled `traceparent`, run to the end.
async fn direct_call(engine: &Service, traceparent: &str) {
    use proto::engine::engine_client::EngineClient;
    use proto::engine::generate_request::Prompt;
    use proto::engine::{GenerateRequest, SamplingParams};
    let mut client = EngineClient::connect(format!("http://{}", engine.addr))
        .await
        .unwrap();
    let mut req = tonic::Request::new(GenerateRequest {
        request_id: String::new(),
        prompt: Some(Prompt::Text("direct".into())),
        sampling: Some(SamplingParams {
            max_tokens: Some(2),
            ..Default::default()
        }),
        return_prompt_ids: false,
        return_journey: false,
        priority: 0,
    });
    req.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let mut stream = client.generate(req).await.unwrap().into_inner();
    while stream.message().await.unwrap().is_some() {}
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_sample_rate_decides_for_direct_callers() {
    let model = tiny_model(&temp_dir("flags-engine-rate"));
    for (rate, want) in [("0", 0), ("1", 3)] {
        let c = Collector::start().await;
        let ep = c.endpoint();
        let mut engine = start_engine(
            &model,
            &[
                "--enable-journey-tracing",
                "--otlp-traces-endpoint",
                &ep,
                "--journey-tracing-sample-rate",
                rate,
            ],
        );
        for i in 0..3 {
            let tp = format!("00-{:032x}-{:016x}-01", 0xabc0 + i, 0x77 + i);
            direct_call(&engine, &tp).await;
        }
        assert!(engine.terminate(), "engine did not exit cleanly");
        assert_eq!(
            count(&c.spans(), span::LLM_CORE),
            want,
            "engine rate {rate}"
        );
    }
}
