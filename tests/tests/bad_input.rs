//! The bad-input matrix against the real pair: each gets a clear OpenAI-style error with the
//! right status, and a good request running meanwhile is unaffected.

use journey_tests::{assert_engine_idle, start_engine, start_gateway, tiny_model};
use serde_json::{Value, json};

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: reqwest::Body,
    ctype: &str,
) -> (u16, Value) {
    let r = client
        .post(url)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v)
}

fn assert_error(status: u16, v: &Value, want: u16, needle: &str, case: &str) {
    assert_eq!(status, want, "{case}: {v}");
    let msg = v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: no OpenAI error body: {v}"));
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "{case}: {msg:?} lacks {needle:?}"
    );
    assert!(v["error"]["type"].is_string(), "{case}: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_others_carry_on() {
    let dir = std::env::temp_dir().join(format!("journey-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = start_engine(&tiny_model(&dir), &[]);
    let gateway = start_gateway(&engine.addr, &[]);
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    let chat = format!("{base}/v1/chat/completions");
    let comp = format!("{base}/v1/completions");

    // A long request in flight the whole time.
    let good = {
        let (client, comp) = (client.clone(), comp.clone());
        tokio::spawn(async move {
            let body = json!({"model": "journey-tiny", "prompt": "hello world", "max_tokens": 200, "temperature": 0, "ignore_eos": true});
            let r = client.post(&comp).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };

    let j = |v: Value| reqwest::Body::from(v.to_string());
    let msg = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(&str, &String, reqwest::Body, u16, &str)> = vec![
        (
            "malformed JSON",
            &chat,
            reqwest::Body::from("{\"model\": "),
            400,
            "json",
        ),
        (
            "wrong type",
            &chat,
            j(json!({"model": "journey-tiny", "messages": "hi"})),
            400,
            "messages",
        ),
        (
            "negative max_tokens",
            &chat,
            j(json!({"model": "journey-tiny", "messages": msg, "max_tokens": -5})),
            400,
            "max_tokens",
        ),
        (
            "huge max_tokens",
            &comp,
            j(json!({"model": "journey-tiny", "prompt": "hi", "max_tokens": 100000000})),
            400,
            "max_tokens",
        ),
        (
            "temperature",
            &chat,
            j(json!({"model": "journey-tiny", "messages": msg, "temperature": 3.5})),
            400,
            "temperature",
        ),
        (
            "empty messages",
            &chat,
            j(json!({"model": "journey-tiny", "messages": []})),
            400,
            "messages",
        ),
        (
            "prompt too long",
            &comp,
            j(json!({"model": "journey-tiny", "prompt": "hello ".repeat(2000), "max_tokens": 4})),
            400,
            "context",
        ),
        (
            "unknown model",
            &chat,
            j(json!({"model": "gpt-5", "messages": msg})),
            404,
            "gpt-5",
        ),
        (
            "body over limit",
            &comp,
            j(json!({"model": "journey-tiny", "prompt": "x".repeat(5 << 20)})),
            413,
            "large",
        ),
    ];
    for (case, url, body, want, needle) in cases {
        let (status, v) = post(&client, url, body, "application/json").await;
        assert_error(status, &v, want, needle, case);
    }
    // Only JSON bodies: a form or text/plain POST (a cross-site "simple request") is refused.
    for ctype in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let body = j(json!({"model": "journey-tiny", "prompt": "hi", "max_tokens": 1}));
        let (status, v) = post(&client, &comp, body, ctype).await;
        assert_error(status, &v, 415, "application/json", ctype);
    }
    let body = j(json!({"model": "journey-tiny", "prompt": "hi", "max_tokens": 1}));
    let (status, v) = post(&client, &comp, body, "Application/JSON; charset=utf-8").await;
    assert_eq!(status, 200, "{v}");
    let r = client.get(format!("{base}/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let (status, v) = good.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 200, "{v}");
    assert_engine_idle(&engine.addr).await;

    // Engine gone: 503 with an OpenAI body.
    drop(engine);
    let (status, v) = post(
        &client,
        &chat,
        j(json!({"model": "journey-tiny", "messages": msg})),
        "application/json",
    )
    .await;
    assert_error(status, &v, 503, "engine", "engine unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_the_kv_pool_can_never_hold_is_a_400() {
    let dir = journey_tests::temp_dir("kv-too-small");
    let model = journey_tests::tiny_model(&dir);
    // 2 blocks of 16 tokens: 32 slots in all.
    let engine =
        journey_tests::start_engine(&model, &["--kv-cache-blocks", "2", "--block-size", "16"]);
    let gateway = journey_tests::start_gateway(&engine.addr, &[]);
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/completions", gateway.addr))
        .json(&serde_json::json!({"model": "journey-tiny",
                                  "prompt": "a prompt of far more than thirty-two tokens, byte by byte",
                                  "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("KV cache"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_too_large_for_the_context_is_refused_before_its_fan_out() {
    let dir = journey_tests::temp_dir("too-large");
    let model = journey_tests::tiny_model(&dir);
    let engine = journey_tests::start_engine(&model, &[]);
    let gateway = journey_tests::start_gateway(&engine.addr, &[]);
    let client = reqwest::Client::new();
    let finished_before = journey_tests::engine_info(&engine.addr)
        .await
        .num_requests_finished;
    // 3 MB of text: more bytes than the tiny model's 512-token context can hold at any
    // token length, with n=128 (which would be 384 MB of copies and 128 tokenizations).
    let big = "word ".repeat(600_000);
    for (path, body) in [
        (
            "/v1/completions",
            json!({"model": "journey-tiny", "prompt": big, "n": 128, "max_tokens": 1}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "journey-tiny", "n": 128, "max_tokens": 1,
                   "messages": [{"role": "user", "content": big}]}),
        ),
    ] {
        let url = format!("http://{}{path}", gateway.addr);
        let (status, v) = post(&client, &url, body.to_string().into(), "application/json").await;
        assert_error(status, &v, 400, "does not fit the model's context", path);
        assert_eq!(v["error"]["param"], "prompt", "{v}");
    }
    // The engine never saw them: it finished no request beyond its warm-up.
    assert_eq!(
        journey_tests::engine_info(&engine.addr)
            .await
            .num_requests_finished,
        finished_before
    );
    assert_engine_idle(&engine.addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_response_too_large_to_hold_must_stream() {
    let dir = journey_tests::temp_dir("whole-too-large");
    let model = journey_tests::tiny_model(&dir);
    let engine = journey_tests::start_engine(&model, &[]);
    let gateway = journey_tests::start_gateway(&engine.addr, &[]);
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", gateway.addr);
    // 128 choices of up to the 512-token context with 20 alternatives each: 1.4M entries.
    let body = |stream: bool| {
        json!({"model": "journey-tiny", "n": 128, "logprobs": true, "top_logprobs": 20,
               "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    };
    let (status, v) = post(
        &client,
        &url,
        body(false).to_string().into(),
        "application/json",
    )
    .await;
    assert_error(status, &v, 400, "set \"stream\": true", "whole");
    assert_eq!(v["error"]["param"], "stream", "{v}");
    // Streamed, it is accepted (and aborted when this client leaves).
    let r = client.post(&url).json(&body(true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    // Small enough, a whole response is fine.
    let small = json!({"model": "journey-tiny", "n": 2, "logprobs": true, "top_logprobs": 5,
                       "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    let (status, v) = post(&client, &url, small.to_string().into(), "application/json").await;
    assert_eq!(status, 200, "{v}");
    // The streamed request was aborted when its client left.
    journey_tests::wait_engine_idle(&engine.addr).await;
}
