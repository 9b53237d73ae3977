//! Two tenants on one engine (SmolLM2, through the real gateway; not a test: run it on an idle
//! machine). `cargo bench -p journey-tests --bench tenants` prints, in one run:
//! - the short tenant's TTFT p50/p99 alone, and while the flood tenant runs, under `fcfs` and
//!   `fair`, as ratios to alone (issue target under `fair`: p99 <= 3x alone);
//! - aggregate tok/s (flood plus short: every token streamed in the 15 s from the short
//!   tenant's first request) under `fair` against `fcfs` (target >= 0.95x).
//!
//! The flood keeps `FLOOD_STREAMS` streaming chat completions of `n = FLOOD_N` long choices in
//! flight, each stream sending its next as soon as one ends (more engine requests than
//! `--max-num-seqs`, all the time); the short tenant sends `SHORT_REQUESTS` short requests, one
//! every `SHORT_GAP` whether earlier ones finished or not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use journey_tests::{real_model, start_engine, start_gateway};
use serde_json::{Value, json};

const MAX_NUM_SEQS: &str = "16";
const FLOOD_STREAMS: usize = 6;
const FLOOD_N: u32 = 8;
const FLOOD_TOKENS: u32 = 96;
const SHORT_TOKENS: u32 = 8;
const SHORT_GAP: Duration = Duration::from_millis(150);
const SHORT_REQUESTS: usize = 30;
/// How long the flood runs before the short tenant starts.
const FLOOD_WARM_UP: Duration = Duration::from_secs(2);
/// How long aggregate throughput is measured, from the short tenant's first request.
const WINDOW: Duration = Duration::from_secs(15);

/// Tokens streamed to every client so far (one per non-empty content chunk).
static STREAMED: AtomicU64 = AtomicU64::new(0);

/// One streaming chat completion: its TTFT in seconds; each token counts in [`STREAMED`].
async fn stream(client: &reqwest::Client, base: &str, key: &str, body: Value) -> f64 {
    let began = Instant::now();
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_success(), "{}", resp.status());
    let mut chunks = resp.bytes_stream();
    let mut ttft = None;
    let mut buf = String::new();
    while let Some(c) = chunks.next().await {
        buf.push_str(&String::from_utf8_lossy(&c.expect("chunk")));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            let v: Value = serde_json::from_str(data).unwrap_or_default();
            // The first chunk only opens the assistant's turn (empty content): not a token.
            let text = v["choices"][0]["delta"]["content"].as_str();
            if text.is_some_and(|t| !t.is_empty()) {
                ttft.get_or_insert(began.elapsed().as_secs_f64());
                STREAMED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    ttft.unwrap_or(f64::NAN)
}

/// `max_tokens` of flood stream `i`: 48 to 128 over the streams.
fn flood_tokens(i: usize) -> u32 {
    FLOOD_TOKENS / 2 + FLOOD_TOKENS / 6 * i as u32
}

fn short_body(i: usize) -> Value {
    json!({
        "messages": [{"role": "user", "content": format!("Name a color ({i}).")}],
        "max_tokens": SHORT_TOKENS, "temperature": 0, "ignore_eos": true, "stream": true,
        "stream_options": {"include_usage": true},
    })
}

struct Phase {
    short_ttft: Vec<f64>,
    tok_s: f64,
}

/// Starts the pair under `policy` and runs the short tenant alone or beside the flood.
async fn phase(policy: &str, flood: bool) -> Phase {
    let dir = std::env::temp_dir().join(format!("journey-tenants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys");
    std::fs::write(&keys, "sk-flood flood\nsk-short short\n").unwrap();
    let engine = start_engine(
        &real_model(),
        &[
            "--max-num-seqs",
            MAX_NUM_SEQS,
            "--scheduling-policy",
            policy,
        ],
    );
    let gateway = start_gateway(&engine.addr, &["--api-key-file", keys.to_str().unwrap()]);
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    stream(&client, &base, "sk-short", short_body(usize::MAX)).await;

    // The flood: each stream sends its next request as soon as one ends, for as long as the
    // phase lasts, so the engine stays saturated under either policy.
    let floods: Vec<_> = (0..if flood { FLOOD_STREAMS } else { 0 })
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                for round in 0.. {
                    let body = json!({
                        "messages": [{"role": "user",
                                      "content": format!("Write a long story ({i}, {round}).")}],
                        // Lengths differ between streams, so their requests do not end in
                        // lockstep waves.
                        "max_tokens": flood_tokens(i),
                        "n": FLOOD_N, "temperature": 0.8,
                        "seed": i, "ignore_eos": true, "stream": true,
                    });
                    stream(&client, &base, "sk-flood", body).await;
                }
            })
        })
        .collect();
    if flood {
        tokio::time::sleep(FLOOD_WARM_UP).await;
    }
    // Open loop: the same short requests at the same times under every policy.
    let began = Instant::now();
    let streamed_before = STREAMED.load(Ordering::Relaxed);
    let shorts: Vec<_> = (0..SHORT_REQUESTS)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                tokio::time::sleep(SHORT_GAP * i as u32).await;
                stream(&client, &base, "sk-short", short_body(i)).await
            })
        })
        .collect();
    // Throughput over the same window under every policy: every token streamed to anyone in
    // the `WINDOW` after the short tenant's first request.
    tokio::time::sleep_until((began + WINDOW).into()).await;
    let tok_s = (STREAMED.load(Ordering::Relaxed) - streamed_before) as f64 / WINDOW.as_secs_f64();
    let mut short_ttft = Vec::new();
    for s in shorts {
        short_ttft.push(s.await.expect("short request"));
    }
    for f in floods {
        f.abort();
    }
    Phase { short_ttft, tok_s }
}

fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "SmolLM2-135M Q4_1, --max-num-seqs {MAX_NUM_SEQS}; flood: {FLOOD_STREAMS} streams x n={FLOOD_N} x \
         {}-{} tokens; short: {SHORT_REQUESTS} x {SHORT_TOKENS} tokens, one every {SHORT_GAP:?}",
        flood_tokens(0),
        flood_tokens(FLOOD_STREAMS - 1)
    );
    let alone = phase("fair", false).await;
    let fcfs = phase("fcfs", true).await;
    let fair = phase("fair", true).await;
    let (a50, a99) = (
        percentile(&alone.short_ttft, 0.5),
        percentile(&alone.short_ttft, 0.99),
    );
    println!(
        "{:28} {:>9} {:>9} {:>8} {:>8} {:>10}",
        "short tenant", "TTFT p50", "TTFT p99", "p50/alone", "p99/alone", "requests"
    );
    for (name, p) in [
        ("alone", &alone),
        ("beside the flood, fcfs", &fcfs),
        ("beside the flood, fair", &fair),
    ] {
        let (p50, p99) = (
            percentile(&p.short_ttft, 0.5),
            percentile(&p.short_ttft, 0.99),
        );
        println!(
            "{name:28} {:>7.0}ms {:>7.0}ms {:>8.2}x {:>8.2}x {:>10}",
            p50 * 1e3,
            p99 * 1e3,
            p50 / a50,
            p99 / a99,
            p.short_ttft.len()
        );
    }
    println!(
        "aggregate tok/s with the flood: fcfs {:.1}, fair {:.1} (fair/fcfs {:.3}x)",
        fcfs.tok_s,
        fair.tok_s,
        fair.tok_s / fcfs.tok_s
    );
}
