//! SSE framing for both endpoints, mid-stream failures, and cancellation of the engine calls
//! when the client disconnects.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use super::fake_engine::{self, MODEL};
use super::gateway;

/// Per choice index, the concatenated `field` of every chunk.
fn concat(events: &[Value], field: impl Fn(&Value) -> Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for choice in events
        .iter()
        .filter_map(|e| e["choices"].as_array())
        .flatten()
    {
        let i = choice["index"].as_u64().unwrap() as usize;
        out.resize(out.len().max(i + 1), String::new());
        out[i].push_str(field(choice).unwrap_or(""));
    }
    out
}

#[tokio::test]
async fn chat_stream_frames_like_openai() {
    let gw = gateway().await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 2, "seed": 3,
        "stream": true, "stream_options": {"include_usage": true}});
    let reply = gw.post("/v1/chat/completions", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let events = reply.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = &events[..events.len() - 1];
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for c in chunks {
        assert_eq!(
            (c["id"].as_str(), c["object"].as_str(), c["model"].as_str()),
            (Some(id), Some("chat.completion.chunk"), Some(MODEL))
        );
    }
    // Role deltas for every choice come first.
    for (j, c) in chunks[..2].iter().enumerate() {
        assert_eq!(c["choices"][0]["index"], j);
        assert_eq!(
            c["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
    }
    let contents = concat(chunks, |c| c["delta"]["content"].as_str());
    assert_eq!(contents, ["[hi] seed=3 bye", "[hi] seed=4 bye"]);
    let finishes = concat(chunks, |c| c["finish_reason"].as_str());
    assert_eq!(finishes, ["stop", "stop"]);
    // Last chunk: no choices, the usage.
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8})
    );
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.get("usage").is_none())
    );
    assert!(reply.text.contains("data: [DONE]\n\n"));
}

#[tokio::test]
async fn stream_without_usage_ends_with_done() {
    let gw = gateway().await;
    let body =
        json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "logprobs": true});
    let events = gw.post("/v1/chat/completions", body).await.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let last_chunk = &events[events.len() - 2];
    assert_eq!(last_chunk["choices"][0]["finish_reason"], "stop");
    assert!(events.iter().all(|e| e.get("usage").is_none()));
    let with_logprobs = events
        .iter()
        .filter(|e| e["choices"][0]["logprobs"]["content"].is_array())
        .count();
    assert_eq!(with_logprobs, 3, "one per generated token");
}

#[tokio::test]
async fn completion_stream_echoes_and_counts_usage() {
    let gw = gateway().await;
    let body = json!({"prompt": ["ab", "c"], "echo": true, "logprobs": 1, "max_tokens": 2,
        "stream": true, "stream_options": {"include_usage": true}});
    let reply = gw.post("/v1/completions", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let events = reply.events();
    let chunks = &events[..events.len() - 1];
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert_eq!(
        concat(chunks, |c| c["text"].as_str()),
        ["ab[ab] seed=none", "c[c] seed=none"]
    );
    assert_eq!(
        concat(chunks, |c| c["finish_reason"].as_str()),
        ["length", "length"]
    );
    let tokens: Vec<Value> = chunks
        .iter()
        .filter(|c| c["choices"][0]["index"] == 0)
        .flat_map(|c| {
            c["choices"][0]["logprobs"]["tokens"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        tokens,
        json!(["a", "b", "[ab]", " seed=none"])
            .as_array()
            .unwrap()
            .clone()
    );
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage,
        &json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
    );
}

#[tokio::test]
async fn midstream_failure_sends_an_error_event_then_done() {
    let gw = gateway().await;
    let body = json!({"prompt": "MIDFAIL", "stream": true});
    let reply = gw.post("/v1/completions", body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let events = reply.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let error = &events[events.len() - 2]["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("engine exploded"),
        "{error}"
    );
    assert!(error["type"].is_string());
    // The same failure without streaming is a plain error response.
    let reply = gw
        .post("/v1/completions", json!({"prompt": "MIDFAIL"}))
        .await;
    reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn client_disconnect_cancels_engine_calls() {
    let (url, observed) = fake_engine::start(true).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = super::router(&url, None, 1 << 20);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let body = json!({"messages": [{"role": "user", "content": "HANG"}], "n": 2, "stream": true});
    let mut response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    assert_eq!(observed.dropped.load(Ordering::SeqCst), 0);
    drop(response);

    let both_dropped = async {
        while observed.dropped.load(Ordering::SeqCst) < 2 {
            observed.drop_notify.notified().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), both_dropped)
        .await
        .expect("engine streams were not cancelled");
}
