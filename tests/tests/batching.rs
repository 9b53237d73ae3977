//! Continuous batching and preemption through the real processes: outputs never depend on
//! what else is running, and the KV pool is empty after every workload.

use journey_tests::{start_engine, start_gateway, tiny_model};
use serde_json::{Value, json};

const PROMPTS: [&str; 8] = [
    "hello world",
    "the quick brown fox",
    "user assistant user",
    "and the world is",
    "a b c d e f g",
    "of the hello and",
    "in to is of a",
    "tiny models talk",
];

async fn complete(client: &reqwest::Client, base: &str, prompt: &str, max_tokens: u32) -> String {
    let body = json!({"model": "journey-tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true});
    let r = client
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["choices"][0]["text"].as_str().unwrap().to_owned()
}

async fn run_all(base: &str, concurrent: bool, max_tokens: u32) -> Vec<String> {
    let client = reqwest::Client::new();
    if concurrent {
        let tasks: Vec<_> = PROMPTS
            .iter()
            .map(|p| {
                let (client, base, p) = (client.clone(), base.to_owned(), p.to_string());
                tokio::spawn(async move { complete(&client, &base, &p, max_tokens).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    } else {
        let mut out = Vec::new();
        for p in PROMPTS {
            out.push(complete(&client, base, p, max_tokens).await);
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_equals_sequential_and_preemption_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("journey-batching-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = tiny_model(&dir);

    let engine = start_engine(&model, &[]);
    let gateway = start_gateway(&engine.addr, &[]);
    let base = format!("http://{}", gateway.addr);
    let sequential = run_all(&base, false, 48).await;
    let concurrent = run_all(&base, true, 48).await;
    assert_eq!(concurrent, sequential, "batching changed greedy output");
    assert!(sequential.iter().all(|t| !t.is_empty()));
    let i = journey_tests::engine_info(&engine.addr).await;
    assert_eq!((i.kv_blocks_used, i.num_running, i.num_waiting), (0, 0, 0));
    assert_eq!(i.num_preemptions_total, 0);

    // A pool of 12 blocks of 16 tokens cannot hold 8 sequences of ~55 tokens: preemption.
    let small = start_engine(&model, &["--kv-cache-blocks", "12", "--block-size", "16"]);
    let small_gw = start_gateway(&small.addr, &[]);
    let preempted = run_all(&format!("http://{}", small_gw.addr), true, 48).await;
    let i = journey_tests::engine_info(&small.addr).await;
    assert!(i.num_preemptions_total > 0, "no preemption happened: {i:?}");
    assert_eq!(
        preempted, sequential,
        "preemption and recompute changed greedy output"
    );
    assert_eq!((i.kv_blocks_used, i.num_running, i.num_waiting), (0, 0, 0));
}

/// One `/metrics` counter of the engine.
async fn counter(engine: &journey_tests::Service, name: &str) -> f64 {
    let text = reqwest::get(engine.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}_total ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name}_total missing:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_prompt_prefix_changes_no_output() {
    use proto::conventions::metric;
    let dir = journey_tests::temp_dir("prefix-cache");
    let model = tiny_model(&dir);
    let cached = start_engine(&model, &[]);
    let uncached = start_engine(&model, &["--enable-prefix-caching", "false"]);
    let (gw_cached, gw_uncached) = (
        start_gateway(&cached.addr, &[]),
        start_gateway(&uncached.addr, &[]),
    );
    let client = reqwest::Client::new();
    // About 70 byte-level tokens: several full blocks of 16 shared by the requests.
    let prefix = "a long shared system prompt that every request repeats word for word ";
    let mut outputs = Vec::new();
    for (gw, tag) in [(&gw_cached, "cached"), (&gw_uncached, "uncached")] {
        let base = format!("http://{}", gw.addr);
        for q in ["and then?", "and then?", "what next"] {
            let text = complete(&client, &base, &format!("{prefix}{q}"), 24).await;
            outputs.push((tag, q, text));
        }
    }
    for q in ["and then?", "what next"] {
        let texts: Vec<&String> = outputs.iter().filter(|o| o.1 == q).map(|o| &o.2).collect();
        assert!(
            texts.windows(2).all(|w| w[0] == w[1]),
            "the prefix cache changed the output of {q:?}: {texts:?}"
        );
    }
    let hits = counter(&cached, metric::PREFIX_CACHE_HITS).await;
    let queries = counter(&cached, metric::PREFIX_CACHE_QUERIES).await;
    // The repeated prompt finds at least its first four blocks; the other request fewer.
    assert!(
        hits >= 64.0 && hits < queries,
        "hits {hits} of {queries} prompt tokens"
    );
    assert_eq!(counter(&uncached, metric::PREFIX_CACHE_HITS).await, 0.0);
    for e in [&cached, &uncached] {
        let i = journey_tests::engine_info(&e.addr).await;
        assert_eq!((i.kv_blocks_used, i.num_running, i.num_waiting), (0, 0, 0));
    }
}
