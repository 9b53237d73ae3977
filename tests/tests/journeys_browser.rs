//! `/journeys` in a real browser (headless Chromium through chromedriver) against the real pair
//! on SmolLM2, tracing to a real OTLP receiver: requests that queue, get preempted, disconnect
//! and fail validation are each found in the table, their waterfalls opened, and what the page
//! draws is checked against the gateway's JSON and the exported `llm_core` spans. Screenshots
//! go to `target/journey-screenshots/` (CI keeps them as artifacts).

use std::time::Duration;

use futures::StreamExt;
use journey_tests::otlp::{Collector, event_names, float_attr, hex};
use journey_tests::webdriver::{self, Browser};
use journey_tests::{real_model, root, start_engine, start_gateway};
use proto::conventions::{attr, journey_event, span};
use serde_json::{Value, json};

const QUESTIONS: [&str; 5] = [
    "Name three rivers.",
    "What is a star?",
    "Say hello in French.",
    "Why is the sky blue?",
    "Count to five.",
];

async fn chat(client: &reqwest::Client, base: &str, model: &str, q: &str) -> String {
    let body = json!({"model": model, "messages": [{"role": "user", "content": q}],
                      "max_tokens": 40, "temperature": 0, "ignore_eos": true});
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journeys_page_draws_what_the_api_and_the_spans_say() {
    assert!(
        webdriver::available(),
        "this test needs Debian's chromium and chromium-driver: run scripts/test-deps.sh"
    );
    let collector = Collector::start().await;
    let ep = collector.endpoint();
    // Two running slots and 8 blocks of 16 tokens for five ~75-token sequences: queueing and
    // preemption.
    let engine = start_engine(
        &real_model(),
        &[
            "--enable-journey-tracing",
            "--otlp-traces-endpoint",
            &ep,
            "--max-num-seqs",
            "2",
            "--kv-cache-blocks",
            "8",
            "--block-size",
            "16",
        ],
    );
    let gateway = start_gateway(
        &engine.addr,
        &[
            "--enable-journey-tracing",
            "--otlp-traces-endpoint",
            &ep,
            "--trace-link-template",
            "http://grafana.example/explore?trace={trace_id}",
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    let model = journey_tests::served_model(&base).await;
    let tasks: Vec<_> = QUESTIONS
        .iter()
        .map(|q| {
            let (client, base, model, q) =
                (client.clone(), base.clone(), model.clone(), q.to_string());
            tokio::spawn(async move { chat(&client, &base, &model, &q).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let refused = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "top_p": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .json(
            &json!({"model": model, "messages": [{"role": "user", "content": "Tell a long story."}],
                      "max_tokens": 400, "ignore_eos": true, "stream": true}),
        )
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    // The gateway records the disconnect when its next write fails: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let kept: Value = client
            .get(format!("{base}/journeys/api/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if kept.as_array().unwrap().len() == QUESTIONS.len() + 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all kept: {kept:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let details: Vec<Value> = {
        let mut v = Vec::new();
        for id in &ids {
            let d: Value = client
                .get(format!("{base}/journeys/api/requests/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v.push(d);
        }
        v
    };
    let traces: Vec<String> = details
        .iter()
        .map(|d| d["trace_id"].as_str().expect("traced").to_owned())
        .collect();
    let spans = collector
        .wait_for("an llm_core span per request", |s| {
            traces.iter().all(|t| {
                s.iter()
                    .any(|r| r.span.name == span::LLM_CORE && &hex(&r.span.trace_id) == t)
            })
        })
        .await;

    let browser = Browser::start().await.expect("headless chromium");
    browser.goto(&format!("{base}/journeys")).await.unwrap();
    let rows = browser
        .wait_for(
            "const n = document.querySelectorAll('tr.row').length; return n >= arguments[0] ? n : 0;",
            json!([QUESTIONS.len() + 2]),
        )
        .await
        .unwrap();
    assert_eq!(rows, json!(QUESTIONS.len() + 2));
    let outcomes = browser
        .script(
            "return [...document.querySelectorAll('tr.row td:nth-child(4)')].map(td => td.className);",
            json!([]),
        )
        .await
        .unwrap();
    let outcomes: Vec<&str> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "error").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "aborted").count(),
        1,
        "{outcomes:?}"
    );
    let shots = root().join("target/journey-screenshots");
    browser
        .screenshot(&shots.join("journeys-table.png"))
        .await
        .unwrap();
    // The refused and the abandoned requests open too, with what went wrong.
    for (outcome, status, why) in [
        ("error", 400, "top_p"),
        ("aborted", 499, "client_disconnect"),
    ] {
        browser
            .click(&format!("tr.row td.{outcome}"))
            .await
            .unwrap();
        let shown = browser
            .wait_for(
                "const h = document.querySelector('#detail h3');
                 return h && h.textContent.includes(arguments[0]) ? document.querySelector('#detail').textContent : null;",
                json!([format!("{status} {outcome}")]),
            )
            .await
            .unwrap();
        let text = shown.as_str().unwrap();
        assert!(text.contains(why), "{outcome}: {text}");
    }

    let (mut queued, mut preempted) = (0, 0);
    for (i, (id, d)) in ids.iter().zip(&details).enumerate() {
        browser
            .click(&format!("tr.row[data-request-id=\"{id}\"]"))
            .await
            .unwrap();
        let drawn = browser
            .wait_for(
                "const d = document.querySelector('#detail');
                 if (d.dataset.requestId !== arguments[0] || !document.querySelector('.ttft-part')) return null;
                 return {
                   parts: [...document.querySelectorAll('.ttft-part')].map(e => [e.dataset.name, +e.dataset.ms]),
                   ticks: document.querySelectorAll('.tick').length,
                   preempted: document.querySelectorAll('.mark[data-kind=PREEMPTED]').length,
                   phases: [...document.querySelectorAll('.phase')].map(e => e.dataset.phase),
                   link: (document.querySelector('#trace-link') || {}).href || null,
                 };",
                json!([id]),
            )
            .await
            .unwrap();
        // The stacked bar is the JSON's breakdown, part for part.
        let want: Vec<(String, f64)> = d["ttft_breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["ms"].as_f64().unwrap(),
                )
            })
            .collect();
        let got: Vec<(String, f64)> = drawn["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_f64().unwrap()))
            .collect();
        assert_eq!(got.len(), want.len(), "{id}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g.0 == w.0 && (g.1 - w.1).abs() < 1e-9,
                "{id}: drew {g:?}, JSON {w:?}"
            );
        }
        assert_eq!(
            drawn["ticks"], d["completion_tokens"],
            "{id}: one tick per token"
        );
        let phases: Vec<&str> = drawn["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert!(
            phases.contains(&"prefill") && phases.contains(&"receipt"),
            "{phases:?}"
        );
        assert_eq!(
            drawn["link"],
            json!(format!(
                "http://grafana.example/explore?trace={}",
                traces[i]
            ))
        );
        // What the page drew against the exported llm_core span of the same request.
        let core = spans
            .iter()
            .find(|r| r.span.name == span::LLM_CORE && hex(&r.span.trace_id) == traces[i])
            .unwrap();
        let span_preemptions = event_names(&core.span)
            .iter()
            .filter(|n| **n == journey_event::PREEMPTED)
            .count();
        assert_eq!(drawn["preempted"], json!(span_preemptions), "{id}");
        assert_eq!(d["num_preemptions"], json!(span_preemptions), "{id}");
        let q = &d["engine"][0]["queue"];
        for (key, a) in [
            ("running_slot_ms", attr::TIME_QUEUE_RUNNING_SLOT),
            ("kv_blocks_ms", attr::TIME_QUEUE_KV_BLOCKS),
            ("step_ms", attr::TIME_QUEUE_STEP),
        ] {
            let from_span = float_attr(&core.span.attributes, a).expect(a) * 1e3;
            let from_json = q[key].as_f64().unwrap();
            assert!(
                (from_span - from_json).abs() < 1e-6,
                "{id} {key}: {from_span} vs {from_json}"
            );
        }
        if q["running_slot_ms"].as_f64().unwrap() > 0.0 {
            queued += 1;
        }
        if span_preemptions > 0 {
            preempted += 1;
            browser
                .screenshot(&shots.join("journeys-preempted.png"))
                .await
                .unwrap();
        }
        if i == ids.len() - 1 {
            browser
                .screenshot(&shots.join("journeys-waterfall.png"))
                .await
                .unwrap();
        }
    }
    assert!(
        queued >= 2,
        "five requests over two slots: {queued} waited for one"
    );
    assert!(preempted >= 1, "the 8-block pool must preempt someone");
    browser.close().await;
}
