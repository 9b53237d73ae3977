//! Load bench through the real processes on SmolLM2 (not a test: run it on an idle machine).
//!
//! `cargo bench -p journey-tests --bench load` prints, in one run:
//! - journey tracing overhead at 8 concurrent streams: tracing off, journey on at rate 1.0
//!   with step tracing at 0.01, and everything at 1.0 (aggregate tok/s and TTFT, as ratios);
//! - aggregate tok/s and TTFT p50/p99 at 1, 8 and 32 streams, and, when `LLAMA_SERVER` names a
//!   `llama-server` binary (scripts/build-llama-cpp.sh builds one), the same workload against
//!   `llama-server -np N -cb` on the same GGUF, as ratios (two alternated rounds, best of
//!   each), plus ours without the prefix cache.
//!
//! `JOURNEY_LOAD_STREAMS=8,32` limits the stream counts (empty: none, the gateway overhead only).
//!
//! Each stream sends chat completions of `MAX_TOKENS` greedy tokens (EOS ignored) back to back.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use journey_tests::{real_model, start_engine, start_gateway};
use serde_json::json;

const MAX_TOKENS: u32 = 64;
const PER_STREAM: usize = 3;
/// Rounds of the tracing comparison.
const ROUNDS: usize = 5;

#[derive(Clone, Copy, Debug)]
struct Stats {
    tok_s: f64,
    ttft_p50: f64,
    ttft_p99: f64,
    /// Mean time between content chunks of a request, averaged over requests.
    itl: f64,
}

/// An HTTP client that opens a connection per request (llama-server closes idle
/// keep-alive connections under a pooled client's feet), the same for every server.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client")
}

/// One streaming request: (TTFT, completion tokens, mean inter-chunk gap).
async fn one(client: &reqwest::Client, url: &str, i: usize) -> (f64, u64, f64) {
    let body = json!({
        "messages": [{"role": "user", "content": format!("Write a story about {i}.")}],
        "max_tokens": MAX_TOKENS, "temperature": 0, "ignore_eos": true, "stream": true,
        "stream_options": {"include_usage": true},
    });
    let began = Instant::now();
    let resp = client.post(url).json(&body).send().await.expect("request");
    let mut chunks = resp.bytes_stream();
    let mut ttft = None;
    let mut last = 0.0;
    let mut with_text = 0u32;
    let mut tokens = 0;
    let mut buf = String::new();
    while let Some(c) = chunks.next().await {
        buf.push_str(&String::from_utf8_lossy(&c.expect("chunk")));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
            if v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
            {
                last = began.elapsed().as_secs_f64();
                ttft.get_or_insert(last);
                with_text += 1;
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                tokens = n;
            }
        }
    }
    let ttft = ttft.unwrap_or(f64::NAN);
    let itl = (last - ttft) / f64::from(with_text.saturating_sub(1).max(1));
    (ttft, tokens, itl)
}

async fn load(url: &str, streams: usize) -> Stats {
    let client = http_client();
    for i in 0..2 {
        one(&client, url, i).await; // warm-up
    }
    let began = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|s| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut out = Vec::new();
                for r in 0..PER_STREAM {
                    out.push(one(&client, &url, s * 100 + r).await);
                }
                out
            })
        })
        .collect();
    let mut ttfts = Vec::new();
    let mut itls = Vec::new();
    let mut tokens = 0;
    for t in tasks {
        for (ttft, n, itl) in t.await.unwrap() {
            ttfts.push(ttft);
            itls.push(itl);
            tokens += n;
        }
    }
    let wall = began.elapsed().as_secs_f64();
    ttfts.sort_by(f64::total_cmp);
    let q = |p: f64| ttfts[((ttfts.len() - 1) as f64 * p).round() as usize];
    Stats {
        tok_s: tokens as f64 / wall,
        ttft_p50: q(0.5),
        ttft_p99: q(0.99),
        itl: itls.iter().sum::<f64>() / itls.len() as f64,
    }
}

async fn journey(
    engine_flags: &[&str],
    gateway_flags: &[&str],
    streams: usize,
    traces: &str,
) -> Stats {
    let mut e = vec!["--journey-traces-file", traces];
    e.extend_from_slice(engine_flags);
    let mut g = vec!["--journey-traces-file", traces];
    g.extend_from_slice(gateway_flags);
    let engine = start_engine(&real_model(), &e);
    let gateway = start_gateway(&engine.addr, &g);
    let stats = load(
        &format!("http://{}/v1/chat/completions", gateway.addr),
        streams,
    )
    .await;
    drop(gateway);
    drop(engine);
    stats
}

/// `JOURNEY_LOAD_STREAMS=8,32` picks the stream counts (default 1, 8 and 32; empty: none).
fn stream_counts() -> Vec<usize> {
    std::env::var("JOURNEY_LOAD_STREAMS")
        .ok()
        .map(|v| {
            v.split(',')
                .filter(|n| !n.trim().is_empty())
                .map(|n| n.trim().parse().expect("stream count"))
                .collect()
        })
        .unwrap_or_else(|| vec![1, 8, 32])
}

/// The gateway's journey store (the viewer's data) on vs off (`--journey-store-requests 0`),
/// alternated over two rounds, best of each.
async fn viewer_overhead(streams: usize, traces: &str) {
    let (mut on, mut off) = (None::<Stats>, None::<Stats>);
    for _ in 0..2 {
        keep_best(
            &mut off,
            journey(&[], &["--journey-store-requests", "0"], streams, traces).await,
        );
        keep_best(&mut on, journey(&[], &[], streams, traces).await);
    }
    let (on, off) = (on.expect("measured"), off.expect("measured"));
    row(&format!("{streams} streams, viewer store off"), off, off);
    row(&format!("{streams} streams, viewer store on"), on, off);
}

struct LlamaServer(Child);

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn llama_server(bin: &str, streams: usize) -> Stats {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctx = (streams * 512).to_string();
    let child = Command::new(bin)
        .args([
            "-m",
            real_model().to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["-np", &streams.to_string(), "-cb", "-t", "2", "-c", &ctx])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama-server");
    let _guard = LlamaServer(child);
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reqwest::get(&health)
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "llama-server did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load(
        &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        streams,
    )
    .await
}

fn row(name: &str, s: Stats, base: Stats) {
    println!(
        "{name:46} {:7.1} tok/s {:7.3} s {:7.3} s {:6.1} ms   {:5.3}x tok/s  {:5.3}x TTFT p50",
        s.tok_s,
        s.ttft_p50,
        s.ttft_p99,
        s.itl * 1e3,
        s.tok_s / base.tok_s,
        s.ttft_p50 / base.ttft_p50
    );
}

/// TTFT p50 of `n` sequential chat requests straight to the engine over gRPC, and through the
/// gateway over REST: same prompts, same process pair.
async fn gateway_overhead(n: usize) -> (f64, f64) {
    use proto::engine::engine_client::EngineClient;
    use proto::engine::generate_request::Prompt;
    use proto::engine::{ChatMessage, ChatPrompt, GenerateRequest, SamplingParams};
    // Without the prefix cache: each prompt goes once over gRPC and once over REST, and the
    // second would otherwise find it cached.
    let engine = start_engine(&real_model(), &["--enable-prefix-caching", "false"]);
    let gateway = start_gateway(&engine.addr, &[]);
    let mut client = EngineClient::connect(format!("http://{}", engine.addr))
        .await
        .unwrap();
    let url = format!("http://{}/v1/chat/completions", gateway.addr);
    let http = http_client();
    let (mut grpc, mut rest) = (Vec::new(), Vec::new());
    // The two paths alternate request by request, so drift on the VM hits both alike.
    for i in 0..n {
        let req = GenerateRequest {
            request_id: String::new(),
            prompt: Some(Prompt::Chat(ChatPrompt {
                messages: vec![ChatMessage {
                    role: "user".into(),
                    content: format!("Write a story about {i}."),
                }],
                add_generation_prompt: true,
            })),
            sampling: Some(SamplingParams {
                temperature: Some(0.0),
                max_tokens: Some(MAX_TOKENS),
                ignore_eos: true,
                ..Default::default()
            }),
            return_prompt_ids: false,
            return_journey: false,
            priority: 0,
        };
        let began = Instant::now();
        let mut stream = client.generate(req).await.unwrap().into_inner();
        let mut first = None;
        while let Some(m) = stream.message().await.unwrap() {
            if first.is_none() && !m.token_ids.is_empty() {
                first = Some(began.elapsed().as_secs_f64());
            }
        }
        grpc.push(first.unwrap_or(f64::NAN));
        rest.push(one(&http, &url, i).await.0);
    }
    let p50 = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (p50(grpc), p50(rest))
}

/// Keeps the round with the higher aggregate tok/s (the least disturbed by the shared VM).
fn keep_best(best: &mut Option<Stats>, s: Stats) {
    if best.is_none_or(|b| s.tok_s > b.tok_s) {
        *best = Some(s);
    }
}

/// Tracing off vs on at 8 streams, alternated `ROUNDS` times.
async fn tracing_overhead(traces: &str) {
    let on = ["--enable-journey-tracing"];
    let steps_low = [
        "--enable-journey-tracing",
        "--step-tracing-enabled",
        "--step-tracing-sample-rate",
        "0.01",
    ];
    let all = [
        "--enable-journey-tracing",
        "--step-tracing-enabled",
        "--step-tracing-sample-rate",
        "1",
        "--step-tracing-rich-subsample-rate",
        "1",
    ];
    // Alternate the three configurations ROUNDS times and keep each one's best round, so that
    // drift on a shared machine does not masquerade as overhead.
    let configs: [(&[&str], &[&str]); 3] = [(&[], &[]), (&steps_low, &on), (&all, &on)];
    let mut best: [Option<Stats>; 3] = [None; 3];
    for _ in 0..ROUNDS {
        for (slot, (e, g)) in best.iter_mut().zip(configs) {
            let s = journey(e, g, 8, traces).await;
            keep_best(slot, s);
        }
    }
    let [off, journey_on, everything] = best.map(|b| b.expect("measured"));
    row("8 streams, tracing off", off, off);
    row("8 streams, journey 1.0 + steps 0.01", journey_on, off);
    row(
        "8 streams, journey 1.0 + steps 1.0 + rich 1.0",
        everything,
        off,
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("journey-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let traces = dir.join("traces.jsonl");
    let traces = traces.to_str().unwrap();
    println!(
        "SmolLM2-135M Q4_1, {MAX_TOKENS} tokens per request, {PER_STREAM} requests per stream"
    );
    println!(
        "{:46} {:>13} {:>9} {:>9} {:>9}",
        "", "aggregate", "TTFT p50", "TTFT p99", "ITL"
    );

    // `JOURNEY_LOAD_SKIP_TRACING=1` skips the tracing comparison (the throughput table only).
    if std::env::var_os("JOURNEY_LOAD_SKIP_TRACING").is_none() {
        tracing_overhead(traces).await;
    }
    if std::env::var_os("JOURNEY_LOAD_TRACING_ONLY").is_some() {
        return;
    }
    // `JOURNEY_LOAD_VIEWER=1`: the journey viewer's store on vs off, at each stream count.
    if std::env::var_os("JOURNEY_LOAD_VIEWER").is_some() {
        for streams in stream_counts() {
            viewer_overhead(streams, traces).await;
        }
        return;
    }
    let llama = std::env::var("LLAMA_SERVER").ok();
    // `JOURNEY_LOAD_STREAMS=8,32` picks the stream counts (default 1, 8 and 32; empty: none).
    for streams in stream_counts() {
        // llama-server reuses each slot's cached prompt prefix (`cache_prompt`); this row
        // shows what our prefix cache contributes.
        let no_cache = ["--enable-prefix-caching", "false"];
        let uncached = journey(&no_cache, &[], streams, traces).await;
        match &llama {
            Some(bin) => {
                // Alternate the two servers and keep each one's best round: this VM's speed
                // drifts by 20% over minutes, more than the difference being measured.
                let (mut ours, mut theirs) = (None::<Stats>, None::<Stats>);
                for _ in 0..2 {
                    let o = journey(&[], &[], streams, traces).await;
                    let t = llama_server(bin, streams).await;
                    keep_best(&mut ours, o);
                    keep_best(&mut theirs, t);
                }
                let (ours, theirs) = (ours.expect("measured"), theirs.expect("measured"));
                row(
                    &format!("{streams} streams, llama-server -np {streams} -cb"),
                    theirs,
                    theirs,
                );
                row(
                    &format!("{streams} streams, journey (vs llama-server)"),
                    ours,
                    theirs,
                );
                row(
                    &format!("{streams} streams, journey, no prefix cache"),
                    uncached,
                    theirs,
                );
            }
            None => {
                let ours = journey(&[], &[], streams, traces).await;
                row(&format!("{streams} streams, journey"), ours, ours);
                row(
                    &format!("{streams} streams, no prefix cache"),
                    uncached,
                    ours,
                );
            }
        }
    }
    if llama.is_none() {
        println!("(set LLAMA_SERVER to compare with llama-server)");
    }
    let (grpc, rest) = gateway_overhead(30).await;
    println!(
        "gateway overhead, TTFT p50 of 30 sequential chat requests each, alternated: gRPC {:.1} ms, REST {:.1} ms ({:.3}x)",
        grpc * 1e3,
        rest * 1e3,
        rest / grpc
    );
}
