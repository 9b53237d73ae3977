//! The journey store and its JSON API through the real processes: requests that queue, get
//! preempted, fail validation and whose client leaves are all kept, each joined to the
//! engine's side, with a TTFT breakdown that adds up.

use futures::StreamExt;
use journey_tests::{start_engine, start_gateway, tiny_model};
use serde_json::{Value, json};

const PROMPTS: [&str; 6] = [
    "hello world and the rest of it",
    "the quick brown fox jumps over",
    "user assistant user assistant",
    "and the world is round and",
    "a b c d e f g h i j k",
    "of the hello and the world",
];

async fn complete(client: &reqwest::Client, base: &str, prompt: &str) -> Value {
    let body = json!({"model": "journey-tiny", "prompt": prompt, "max_tokens": 40,
                      "temperature": 0, "ignore_eos": true});
    let r = client
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_preempted_disconnected_and_refused_requests_are_all_kept_and_add_up() {
    let dir = journey_tests::temp_dir("journeys");
    let model = tiny_model(&dir);
    // Two running slots and a pool too small for six sequences of ~50 tokens.
    let engine = start_engine(
        &model,
        &[
            "--max-num-seqs",
            "2",
            "--kv-cache-blocks",
            "6",
            "--block-size",
            "16",
        ],
    );
    let gateway = start_gateway(
        &engine.addr,
        &[
            "--trace-link-template",
            "http://tempo.example/trace/{trace_id}",
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();

    let tasks: Vec<_> = PROMPTS
        .iter()
        .map(|p| {
            let (client, base, p) = (client.clone(), base.clone(), p.to_string());
            tokio::spawn(async move { complete(&client, &base, &p).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // A refused request.
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .json(
            &json!({"model": "journey-tiny", "messages": [{"role": "user", "content": "hi"}],
                      "temperature": 9}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // (A client that leaves mid-stream: its own test below, with a stream long enough that
    // its leaving is always noticed.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let errors = get(
            &client,
            &format!("{base}/journeys/api/requests?view=errors"),
        )
        .await;
        if errors.as_array().unwrap().len() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refusal was never recorded: {errors:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let all = get(&client, &format!("{base}/journeys/api/requests")).await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), PROMPTS.len() + 1, "{all:#?}");
    let times: Vec<f64> = all.iter().map(|s| f(&s["received_unix_ms"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let errors = get(
        &client,
        &format!("{base}/journeys/api/requests?view=errors"),
    )
    .await;
    let outcomes: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["error"], "{errors:#}");
    let by_ttft = get(
        &client,
        &format!("{base}/journeys/api/requests?status=ok&sort=ttft&order=desc&limit=3"),
    )
    .await;
    let ttfts: Vec<f64> = by_ttft
        .as_array()
        .unwrap()
        .iter()
        .map(|s| f(&s["ttft_ms"]))
        .collect();
    assert_eq!(ttfts.len(), 3);
    assert!(ttfts.windows(2).all(|w| w[0] >= w[1]), "{ttfts:?}");

    let (mut waited_for_slot, mut preempted) = (0, 0);
    for id in &ids {
        let j = get(&client, &format!("{base}/journeys/api/requests/{id}")).await;
        assert_eq!(j["outcome"], "ok");
        assert_eq!(j["request_id"], id.as_str());
        // The TTFT's parts add up to the TTFT (within 1 ms).
        let parts = j["ttft_breakdown"].as_array().expect("a breakdown");
        let sum: f64 = parts.iter().map(|p| f(&p["ms"])).sum();
        let ttft = f(&j["ttft_ms"]);
        assert!(
            (sum - ttft).abs() <= 1.0,
            "parts {sum} ms vs TTFT {ttft} ms: {parts:?}"
        );
        // The engine's queue parts add up to its queue time.
        let e = &j["engine"][0];
        let q = &e["queue"];
        let queue_parts: f64 = [
            "step_ms",
            "running_slot_ms",
            "kv_blocks_ms",
            "token_budget_ms",
        ]
        .iter()
        .map(|k| f(&q[*k]))
        .sum();
        let queue = f(&j["queue_ms"]);
        assert!(
            (queue_parts - queue).abs() <= 1.0,
            "{queue_parts} vs {queue}: {q}"
        );
        if f(&q["running_slot_ms"]) > 0.0 {
            waited_for_slot += 1;
        }
        // Its story: queued first, finished last, one token tick per completion token.
        let kinds: Vec<&str> = e["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ev| ev["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"QUEUED"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"FINISHED"), "{kinds:?}");
        assert_eq!(
            e["token_ms"].as_array().unwrap().len() as u64,
            j["completion_tokens"].as_u64().unwrap()
        );
        assert!(!e["prefill_chunks"].as_array().unwrap().is_empty());
        if j["num_preemptions"].as_u64().unwrap() > 0 {
            preempted += 1;
            let p = e["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|ev| ev["kind"] == "PREEMPTED")
                .expect("a PREEMPTED event");
            assert!(p["batch"]["num_requests"].as_u64().unwrap() >= 1, "{p}");
        }
    }
    assert!(
        waited_for_slot >= 3,
        "6 requests over 2 slots: {waited_for_slot} waited for one"
    );
    assert!(preempted >= 1, "the 6-block pool must preempt");

    let page = client
        .get(format!("{base}/journeys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("\"http://tempo.example/trace/{trace_id}\""));
    assert!(!page.contains("<script src"), "everything is in the page");
    let missing = client
        .get(format!("{base}/journeys/api/requests/no-such-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = client
        .get(format!("{base}/journeys/api/requests?sort=colour"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn journey_show_reads_the_embedded_trace_file_and_exports_to_perfetto() {
    use journey_tests::binary;
    let dir = journey_tests::temp_dir("journey-cli");
    let model = tiny_model(&dir);
    let file = dir.join("journey-traces.jsonl");
    let f = file.to_str().unwrap();
    // As scripts/run.sh runs them: both services tracing to the embedded default file.
    let mut engine = start_engine(
        &model,
        &[
            "--enable-journey-tracing",
            "--journey-traces-file",
            f,
            "--max-num-seqs",
            "1",
        ],
    );
    let mut gateway = start_gateway(
        &engine.addr,
        &["--enable-journey-tracing", "--journey-traces-file", f],
    );
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    let tasks: Vec<_> = PROMPTS[..3]
        .iter()
        .map(|p| {
            let (client, base, p) = (client.clone(), base.clone(), p.to_string());
            tokio::spawn(async move { complete(&client, &base, &p).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let mut details = Vec::new();
    for id in &ids {
        details.push(get(&client, &format!("{base}/journeys/api/requests/{id}")).await);
    }
    // The gateway's API through the command too.
    let top = std::process::Command::new(binary("journey"))
        .args(["--gateway", &base, "top", "--by", "e2e", "--limit", "2"])
        .output()
        .unwrap();
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    let top = String::from_utf8_lossy(&top.stdout);
    assert_eq!(top.lines().count(), 3, "a header and two requests: {top}");
    // Stopping flushes both exporters.
    assert!(gateway.terminate() && engine.terminate());

    let journey = |args: &[&str]| {
        let out = std::process::Command::new(binary("journey"))
            .args(["--file", f])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for d in &details {
        let trace = d["trace_id"].as_str().expect("traced");
        let shown = journey(&["show", &trace[..12]]);
        assert!(shown.contains(trace), "{shown}");
        for needle in [
            "gateway llm_request",
            "engine llm_core #1",
            "api.ARRIVED",
            "api.DEPARTED",
            "stages: tokenize",
        ] {
            assert!(shown.contains(needle), "{needle:?} missing:\n{shown}");
        }
        // The same phases, in the same order, as the gateway's record of the engine side.
        let kinds: Vec<String> = d["engine"][0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("journey.{}", e["kind"].as_str().unwrap()))
            .collect();
        let printed: Vec<String> = shown
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.starts_with("journey."))
            .map(str::to_owned)
            .collect();
        assert_eq!(printed, kinds, "{shown}");
    }
    let top = journey(&["top", "--by", "ttft", "--limit", "3"]);
    assert_eq!(top.lines().count(), 4, "{top}");
    let out = dir.join("perfetto.json");
    journey(&["export", "--out", out.to_str().unwrap()]);
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    let spans = events.iter().filter(|e| e["ph"] == "X").count();
    assert_eq!(
        spans,
        2 * ids.len(),
        "an llm_request and an llm_core per request"
    );
    for e in events {
        assert!(
            e["name"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(),
            "{e}"
        );
        match e["ph"].as_str().unwrap() {
            "X" => assert!(e["ts"].as_f64().unwrap() > 0.0 && e["dur"].as_f64().unwrap() >= 0.0),
            "i" => assert!(e["ts"].as_f64().unwrap() > 0.0 && e["s"] == "t"),
            "M" => assert!(e["args"]["name"].is_string()),
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_text_in_a_kept_journey_is_bounded() {
    let dir = journey_tests::temp_dir("journey-bounded");
    let engine = start_engine(&tiny_model(&dir), &[]);
    let gateway = start_gateway(&engine.addr, &[]);
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    let huge = "m".repeat(100_000);
    let r = client
        .post(format!("{base}/v1/completions"))
        .json(&json!({"model": huge, "prompt": "hi", "max_tokens": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let errors = get(
        &client,
        &format!("{base}/journeys/api/requests?view=errors"),
    )
    .await;
    let id = errors[0]["request_id"].as_str().unwrap();
    let d = get(&client, &format!("{base}/journeys/api/requests/{id}")).await;
    let error = d["error"].as_str().unwrap();
    assert!(error.len() < 400, "{} bytes kept", error.len());
    assert!(error.contains("truncated from"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_stream_is_kept_as_aborted() {
    // A long context, so the stream (thousands of tokens) outlasts any delay in this client's
    // leaving: the gateway learns of it when a write fails, which it always gets to.
    let dir = journey_tests::temp_dir("journeys-leave");
    let model = journey_tests::tiny_model_with_context(&dir, 8192);
    let engine = start_engine(&model, &[]);
    let gateway = start_gateway(&engine.addr, &[]);
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/v1/completions"))
        .json(
            &json!({"model": "journey-tiny", "prompt": "leave early", "max_tokens": 8000,
                      "ignore_eos": true, "stream": true}),
        )
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let errors = loop {
        let errors = get(
            &client,
            &format!("{base}/journeys/api/requests?view=errors"),
        )
        .await;
        if !errors.as_array().unwrap().is_empty() {
            break errors;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the disconnect was never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(errors[0]["outcome"], "aborted", "{errors:#}");
    assert!(
        errors[0]["completion_tokens"].as_u64().unwrap() < 8000,
        "{errors:#}"
    );
    // The engine hears of it when the gateway drops the call: it ends idle.
    journey_tests::wait_engine_idle(&engine.addr).await;
}
