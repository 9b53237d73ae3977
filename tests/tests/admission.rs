//! Client limits through the real processes: `--max-concurrent-requests` (429 with
//! `Retry-After`, while the admitted requests finish), the header and body read timeouts (a
//! raw client that stalls mid-headers is closed, mid-body gets 408), and the stream write
//! deadline (a client that stops reading is cut off and its engine work aborted, while a
//! stalled stream never holds up other requests on the same engine). Each refused or cut-off
//! request has its one `llm_request` span, `ABORTED` with the reason the conventions give.

use std::time::{Duration, Instant};

use journey_tests::otlp::{Collector, Received, events, int_attr, string_attr};
use journey_tests::{Service, start_engine, start_gateway, temp_dir, tiny_model};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use proto::conventions::{abort_reason, api_event, attr, finish_status, metric, span};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MODEL: &str = "journey-tiny";

/// How long anything polled may take on a loaded machine; only a failure waits that long.
const PATIENCE: Duration = Duration::from_secs(60);

/// A gateway in front of `engine`, tracing every request to `collector`.
fn traced_gateway(engine: &Service, collector: &Collector, extra: &[&str]) -> Service {
    let endpoint = collector.endpoint();
    let mut args = vec![
        "--enable-journey-tracing",
        "--otlp-traces-endpoint",
        &endpoint,
    ];
    args.extend_from_slice(extra);
    start_gateway(&engine.addr, &args)
}

/// The head of a JSON POST of `len` bytes, as a raw client sends it.
fn post_head(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n\r\n"
    )
}

/// Reads a response head: its status and its header lines, lower-cased. Fails after
/// [`PATIENCE`].
async fn read_head(stream: &mut TcpStream) -> (u16, String) {
    tokio::time::timeout(PATIENCE, read_head_now(stream))
        .await
        .expect("no response head")
}

async fn read_head_now(stream: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream
            .read(&mut byte)
            .await
            .expect("read the response head");
        assert_eq!(n, 1, "closed mid-head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head)
}

/// Reads a whole response with a `Content-Length`: status, head, body as JSON.
async fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    let (status, head) = read_head(stream).await;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {head:?}"));
    let mut body = vec![0u8; len];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut body))
        .await
        .expect("no response body")
        .unwrap();
    (status, head, serde_json::from_slice(&body).unwrap())
}

/// Reads until the server closes the connection (end of stream or reset); what came, and
/// how long the close took. Fails after [`PATIENCE`].
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let read = tokio::time::timeout_at((started + PATIENCE).into(), stream.read(&mut buf))
            .await
            .expect("the gateway never closed the connection");
        match read {
            Ok(0) | Err(_) => return (got, started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A connection whose receive buffer is as small as the kernel allows, so that a client that
/// does not read stalls the server's writes after a few kilobytes.
async fn small_window_connection(addr: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

/// Posts the chat completion `body` on a [`small_window_connection`] and reads the response
/// head, then nothing more: (the connection, status, head).
async fn stalled_chat(addr: &str, body: &[u8]) -> (TcpStream, u16, String) {
    let mut stalled = small_window_connection(addr).await;
    let head = post_head("/v1/chat/completions", body.len());
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(body).await.unwrap();
    let (status, head) = read_head(&mut stalled).await;
    (stalled, status, head)
}

/// One sample of a `/metrics` text: the value of the line `series value`, or 0 when absent.
async fn sample(url: &str, series: &str) -> f64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Polls `check` every 50 ms until it holds; fails after [`PATIENCE`] naming `what`.
async fn wait_until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The engine at `addr`: (running, waiting, KV blocks used).
async fn engine_load(addr: &str) -> (u32, u32, u32) {
    let info = journey_tests::engine_info(addr).await;
    (info.num_running, info.num_waiting, info.kv_blocks_used)
}

/// The gateway's `llm_request` spans answered with `status`, once `count` have arrived.
async fn request_spans(collector: &Collector, status: i64, count: usize) -> Vec<Received> {
    let answered = |r: &Received| {
        r.span.name == span::LLM_REQUEST
            && int_attr(&r.span.attributes, attr::HTTP_RESPONSE_STATUS_CODE) == Some(status)
    };
    let spans = collector
        .wait_for(&format!("{count} llm_request spans of {status}"), |s| {
            s.iter().filter(|r| answered(r)).count() >= count
        })
        .await;
    spans.into_iter().filter(|r| answered(r)).collect()
}

/// Asserts `r` ended `ABORTED` with `reason`, status ERROR.
fn assert_aborted(r: &Received, reason: &str) {
    let aborted = events(&r.span, api_event::ABORTED);
    assert_eq!(aborted.len(), 1, "{:?}", r.span.events);
    assert_eq!(
        string_attr(&aborted[0].attributes, attr::REASON).as_deref(),
        Some(reason)
    );
    let status = r.span.status.as_ref().expect("a span status");
    assert_eq!(status.code, StatusCode::Error as i32);
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_limit_requests_get_429_with_retry_after_while_admitted_ones_finish() {
    let model = tiny_model(&temp_dir("admission-limit"));
    let engine = start_engine(&model, &[]);
    let collector = Collector::start().await;
    let gateway = traced_gateway(
        &engine,
        &collector,
        &[
            "--max-concurrent-requests",
            "2",
            "--body-read-timeout",
            "60",
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let metrics = gateway.metrics_url();
    let in_flight = metric::GATEWAY_REQUESTS_IN_FLIGHT;

    // Two requests are admitted (a request takes its place before its body is read) and
    // held: half their bodies are still to come.
    let body =
        serde_json::to_vec(&json!({"model": MODEL, "prompt": "hello", "max_tokens": 4})).unwrap();
    let half = body.len() / 2;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&gateway.addr).await.unwrap();
        let head = post_head("/v1/completions", body.len());
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body[..half]).await.unwrap();
        held.push(s);
    }
    wait_until("both requests hold a place", || async {
        sample(&metrics, in_flight).await == 2.0
    })
    .await;

    // A third, streaming or not, is refused at once.
    let client = reqwest::Client::new();
    for (path, request) in [
        (
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/completions",
            json!({"model": MODEL, "prompt": "hi", "stream": true}),
        ),
    ] {
        let r = client
            .post(format!("{base}{path}"))
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429, "{path}");
        assert_eq!(r.headers()["retry-after"], "1");
        let error: Value = r.json().await.unwrap();
        assert_eq!(error["error"]["type"], "requests", "{error}");
        assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains('2'),
            "the message names the limit: {error}"
        );
    }

    // The admitted ones finish normally.
    for mut s in held {
        s.write_all(&body[half..]).await.unwrap();
        let (status, _, answer) = read_response(&mut s).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["usage"]["completion_tokens"], 4, "{answer}");
    }
    // Their places are given back: the next request is served.
    wait_until("the places are given back", || async {
        sample(&metrics, in_flight).await == 0.0
    })
    .await;
    let r = client
        .post(format!("{base}/v1/completions"))
        .json(&json!({"model": MODEL, "prompt": "hello", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    for route in ["/v1/chat/completions", "/v1/completions"] {
        let series = format!(
            "{}_total{{route=\"{route}\"}}",
            metric::GATEWAY_REQUESTS_REJECTED
        );
        assert_eq!(sample(&metrics, &series).await, 1.0, "{series}");
    }
    // One span per refused request, ABORTED(rejected); the served ones departed.
    let rejected = request_spans(&collector, 429, 2).await;
    assert_eq!(rejected.len(), 2);
    for r in &rejected {
        assert_aborted(r, abort_reason::REJECTED);
    }
    let served = request_spans(&collector, 200, 3).await;
    assert_eq!(served.len(), 3);
    journey_tests::assert_engine_idle(&engine.addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_headers_are_closed_and_a_stalled_body_gets_408() {
    let model = tiny_model(&temp_dir("admission-read"));
    let engine = start_engine(&model, &[]);
    let collector = Collector::start().await;
    let gateway = traced_gateway(
        &engine,
        &collector,
        &["--header-read-timeout", "1", "--body-read-timeout", "1"],
    );
    let one_second = Duration::from_millis(950);

    // Half the headers, then nothing: closed without an answer once the timeout passes.
    let mut s = TcpStream::connect(&gateway.addr).await.unwrap();
    s.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: gateway\r\nContent-Ty")
        .await
        .unwrap();
    let (got, took) = read_until_closed(&mut s).await;
    eprintln!("half the headers: closed after {took:?}");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(
        took >= one_second,
        "closed after {took:?}, before the timeout"
    );

    // Not a byte: the same.
    let mut s = TcpStream::connect(&gateway.addr).await.unwrap();
    let (got, took) = read_until_closed(&mut s).await;
    eprintln!("no byte: closed after {took:?}");
    assert!(got.is_empty());
    assert!(
        took >= one_second,
        "closed after {took:?}, before the timeout"
    );

    // A keep-alive connection idle after an answer waits for headers too: closed as well.
    let mut s = TcpStream::connect(&gateway.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let (status, _) = read_head(&mut s).await;
    assert_eq!(status, 200);
    let (_, took) = read_until_closed(&mut s).await;
    eprintln!("idle keep-alive: closed after {took:?}");
    assert!(
        took >= one_second,
        "closed after {took:?}, before the timeout"
    );

    // Complete headers, a body that stops a third of the way: 408, OpenAI body, and the
    // connection closes (the rest of the body will never be read).
    let body = serde_json::to_vec(&json!({"model": MODEL, "prompt": "hello"})).unwrap();
    let mut s = TcpStream::connect(&gateway.addr).await.unwrap();
    let head = post_head("/v1/completions", body.len());
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..body.len() / 3]).await.unwrap();
    let sent = Instant::now();
    let (status, head, error) = read_response(&mut s).await;
    let took = sent.elapsed();
    eprintln!("a third of the body: 408 after {took:?}");
    assert_eq!(status, 408, "{error}");
    assert!(took >= one_second, "408 after {took:?}, before the timeout");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(error["error"]["code"], "request_timeout", "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    let (rest, _) = read_until_closed(&mut s).await;
    assert!(rest.is_empty());

    // A prompt client is not bothered by the short limits.
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/completions", gateway.addr))
        .json(&json!({"model": MODEL, "prompt": "hello", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The 408 has its span, ABORTED(timeout); the connections that never sent a request
    // have none.
    let timed_out = request_spans(&collector, 408, 1).await;
    assert_eq!(timed_out.len(), 1);
    assert_aborted(&timed_out[0], abort_reason::TIMEOUT);
    let all = request_spans(&collector, 200, 1).await;
    assert_eq!(all.len(), 1);
    let requests = collector
        .spans()
        .into_iter()
        .filter(|r| r.span.name == span::LLM_REQUEST)
        .count();
    assert_eq!(requests, 2, "one span per request that reached a handler");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_client_that_stops_reading_is_cut_off_and_its_engine_work_aborted() {
    // A long context, so that one request's work outlasts the test by far: 60 000 tokens
    // take the tiny model a minute; it can only end early by being aborted.
    let model = journey_tests::tiny_model_with_context(&temp_dir("admission-stall"), 65_536);
    let engine = start_engine(&model, &[]);
    let collector = Collector::start().await;
    let gateway = traced_gateway(
        &engine,
        &collector,
        &[
            "--stream-write-timeout",
            "2",
            "--max-concurrent-requests",
            "1",
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let aborted_at_engine = format!(
        "{}_total{{{}=\"{}\"}}",
        metric::REQUEST_SUCCESS,
        metric::LABEL_FINISHED_REASON,
        finish_status::ABORTED
    );
    assert_eq!(sample(&engine.metrics_url(), &aborted_at_engine).await, 0.0);

    // Reads the response head, then nothing more.
    // 20 alternatives per token make each chunk a few kilobytes: the socket fills fast.
    let body = serde_json::to_vec(&json!({
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 60_000, "ignore_eos": true, "logprobs": true, "top_logprobs": 20,
        "stream": true,
    }))
    .unwrap();
    let (mut stalled, status, head) = stalled_chat(&gateway.addr, &body).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    let head_at = Instant::now();

    // While it is stalled it keeps its place: with a limit of 1 another request is refused
    // (the cut-off comes 2 s after its chunks stop being taken; this takes milliseconds).
    let client = reqwest::Client::new();
    let tiny = json!({"model": MODEL, "prompt": "hello", "max_tokens": 4});
    let r = client
        .post(format!("{base}/v1/completions"))
        .json(&tiny)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "the stalled stream should still hold its place"
    );

    // Cut off: the gateway ends the request (408, reason timeout) ...
    let cut = request_spans(&collector, 408, 1).await;
    eprintln!(
        "stalled stream: its 408 span arrived {:?} after the response head",
        head_at.elapsed()
    );
    assert_eq!(cut.len(), 1);
    assert_aborted(&cut[0], abort_reason::TIMEOUT);
    let kept: Value = reqwest::get(format!("{base}/journeys/api/requests?view=errors"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept = kept.as_array().unwrap();
    assert_eq!(kept.len(), 2, "the 429 and the cut-off: {kept:?}");
    let cut_off = kept
        .iter()
        .find(|j| j["status"] == 408)
        .expect("the cut-off");
    eprintln!(
        "stalled stream: cut off {} ms after it arrived",
        cut_off["e2e_ms"]
    );
    // ... and aborts its engine call: the engine counts an abort and frees everything.
    wait_until("the engine is idle", || async {
        engine_load(&engine.addr).await == (0, 0, 0)
    })
    .await;
    assert!(sample(&engine.metrics_url(), &aborted_at_engine).await >= 1.0);
    let tokens = int_attr(
        &cut[0].span.attributes,
        attr::GEN_AI_USAGE_COMPLETION_TOKENS,
    );
    assert!(
        tokens.is_some_and(|t| t < 60_000),
        "{tokens:?} completion tokens"
    );
    // ... and closes the connection: reading again drains what was buffered, then ends,
    // without the stream's end.
    let (got, _) = read_until_closed(&mut stalled).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("data: {"),
        "some chunks were sent before the stall"
    );
    assert!(
        !text.contains("[DONE]"),
        "a cut-off stream has no end marker"
    );

    // Its place is free again.
    wait_until("a request is admitted again", || async {
        let r = client
            .post(format!("{base}/v1/completions"))
            .json(&tiny)
            .send()
            .await
            .unwrap();
        r.status() == 200
    })
    .await;
    journey_tests::assert_engine_idle(&engine.addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_stream_does_not_hold_up_other_requests_on_the_same_engine() {
    let model = tiny_model(&temp_dir("admission-isolation"));
    let engine = start_engine(&model, &[]);
    // The default write deadline (30 s): the stalled stream stays stalled while others run.
    let gateway = start_gateway(&engine.addr, &[]);
    let base = format!("http://{}", gateway.addr);

    // 64 choices × 480 tokens with 20 alternatives each: many megabytes of engine messages,
    // more than the flow-control window of the one gRPC connection all requests share.
    let body = serde_json::to_vec(&json!({
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 64,
        "max_tokens": 480, "ignore_eos": true, "logprobs": true, "top_logprobs": 20,
        "stream": true,
    }))
    .unwrap();
    let (stalled, status, _) = stalled_chat(&gateway.addr, &body).await;
    assert_eq!(status, 200);
    // The engine has generated all of it (the client read none).
    wait_until("the engine is done with the stalled request", || async {
        engine_load(&engine.addr).await == (0, 0, 0)
    })
    .await;

    // Another client is served meanwhile, whole and streamed.
    let client = reqwest::Client::new();
    for stream in [false, true] {
        let r = tokio::time::timeout(
            PATIENCE,
            client
                .post(format!("{base}/v1/completions"))
                .json(&json!({"model": MODEL, "prompt": "hello", "max_tokens": 8,
                              "ignore_eos": true, "stream": stream}))
                .send(),
        )
        .await
        .expect("a request behind a stalled stream was held up")
        .unwrap();
        assert_eq!(r.status(), 200);
        let text = tokio::time::timeout(PATIENCE, r.text())
            .await
            .expect("a response behind a stalled stream was held up")
            .unwrap();
        assert!(
            text.contains("\"completion_tokens\":8") || text.contains("[DONE]"),
            "{text}"
        );
    }

    // The stalled client leaves: its request is recorded as a disconnect.
    drop(stalled);
    let metrics = gateway.metrics_url();
    let series = format!(
        "{}_total{{route=\"/v1/chat/completions\",status=\"499\"}}",
        metric::HTTP_REQUESTS
    );
    wait_until("the disconnect is recorded", || async {
        sample(&metrics, &series).await == 1.0
    })
    .await;
}

/// More choices than the engine runs at once, each with more output than a stream's flow
/// window holds: the gateway reads every accepted choice as it comes, so the later choices'
/// first tokens, which wait for earlier choices to finish, cannot deadlock the connection
/// (it did when the gateway waited for every choice's first message before reading any).
#[tokio::test(flavor = "multi_thread")]
async fn a_fan_out_beyond_the_running_slots_streams_to_the_end() {
    let dir = temp_dir("fan-out-beyond-slots");
    let model = tiny_model(&dir);
    let engine = start_engine(&model, &["--max-num-seqs", "1"]);
    let gateway = start_gateway(&engine.addr, &[]);
    // 128 choices x 400 tokens x 21 logprob entries: ~100 KB per choice, ~13 MB in all,
    // more than the connection's 5 MiB window.
    let body = json!({"model": MODEL, "n": 128, "max_tokens": 400, "ignore_eos": true,
                      "logprobs": true, "top_logprobs": 20, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let read = async {
        let text = reqwest::Client::new()
            .post(format!("http://{}/v1/chat/completions", gateway.addr))
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v["choices"][0]["finish_reason"] == "length")
            .count()
    };
    let finished = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the stream never ended: a flow-control deadlock");
    assert_eq!(finished, 128);
    assert_eq!(engine_load(&engine.addr).await, (0, 0, 0));
}

/// With API-key tenants, one tenant holding its share (three quarters of the places by
/// default) is refused while another tenant still gets in.
#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_holding_its_share_leaves_room_for_another() {
    let dir = temp_dir("admission-tenants");
    let model = tiny_model(&dir);
    let keys = dir.join("keys");
    std::fs::write(&keys, "sk-flood flood\nsk-other other\n").unwrap();
    let engine = start_engine(&model, &[]);
    let gateway = start_gateway(
        &engine.addr,
        &[
            "--api-key-file",
            keys.to_str().unwrap(),
            "--max-concurrent-requests",
            "4",
            "--body-read-timeout",
            "60",
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let metrics = gateway.metrics_url();
    // The flood's tenant takes three places (3/4 of 4) with requests whose bodies stall.
    let body =
        serde_json::to_vec(&json!({"model": MODEL, "prompt": "hello", "max_tokens": 4})).unwrap();
    let half = body.len() / 2;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(&gateway.addr).await.unwrap();
        let head = post_head("/v1/completions", body.len())
            .replace("\r\n\r\n", "\r\nAuthorization: Bearer sk-flood\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body[..half]).await.unwrap();
        held.push(s);
    }
    wait_until("the flood holds three places", || async {
        sample(&metrics, metric::GATEWAY_REQUESTS_IN_FLIGHT).await == 3.0
    })
    .await;
    let client = reqwest::Client::new();
    let complete = |key: &'static str| {
        client
            .post(format!("{base}/v1/completions"))
            .bearer_auth(key)
            .json(&json!({"model": MODEL, "prompt": "hi", "max_tokens": 2}))
            .send()
    };
    // A fourth of the flood's is refused although a place is free; the other tenant's is not.
    let refused = complete("sk-flood").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let served = complete("sk-other").await.unwrap();
    assert_eq!(served.status(), 200);
    // The held ones finish, and then the flood's tenant gets in again.
    for mut s in held {
        s.write_all(&body[half..]).await.unwrap();
        let (status, _, answer) = read_response(&mut s).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(complete("sk-flood").await.unwrap().status(), 200);
}

/// Without API keys there are no tenants, so a per-tenant limit could never apply: refused.
#[test]
fn a_per_tenant_limit_without_keys_is_a_start_up_error() {
    let out = std::process::Command::new(journey_tests::binary("api-gateway"))
        .args(["--engine", "http://127.0.0.1:9", "--listen", "127.0.0.1:0"])
        .args(["--max-concurrent-requests-per-tenant", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--max-concurrent-requests-per-tenant needs tenants"),
        "{stderr}"
    );
}
