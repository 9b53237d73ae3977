//! The bad-input matrix and engine error mapping, each asserting the OpenAI error shape.

use http::StatusCode;
use serde_json::{Value, json};

use super::fake_engine::{self, MODEL};
use super::{gateway, router, send};

const CHAT: &str = "/v1/chat/completions";
const COMPLETIONS: &str = "/v1/completions";

fn chat_with(extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn malformed_json_is_400() {
    let gw = gateway().await;
    for path in [CHAT, COMPLETIONS] {
        let reply = send(&gw.router, "POST", path, "{\"messages\": [").await;
        let error = reply.assert_error(StatusCode::BAD_REQUEST);
        assert_eq!(error["type"], "invalid_request_error");
    }
    assert!(gw.observed.requests().is_empty());
}

#[tokio::test]
async fn bad_parameters_are_400_with_param() {
    let gw = gateway().await;
    let cases = [
        (json!({"max_tokens": -1}), Some("max_tokens")),
        (json!({"max_tokens": 1u64 << 40}), Some("max_tokens")),
        (json!({"max_tokens": 5000}), Some("max_tokens")), // > context length
        (json!({"max_tokens": 0}), Some("max_tokens")),
        (
            json!({"max_completion_tokens": -5}),
            Some("max_completion_tokens"),
        ),
        (json!({"temperature": 2.5}), Some("temperature")),
        (json!({"temperature": -0.1}), Some("temperature")),
        (json!({"top_p": 0.0}), Some("top_p")),
        (json!({"top_p": 1.5}), Some("top_p")),
        (json!({"n": 0}), Some("n")),
        (json!({"n": 1000}), Some("n")),
        (json!({"presence_penalty": 3.0}), Some("presence_penalty")),
        (
            json!({"repetition_penalty": 0.0}),
            Some("repetition_penalty"),
        ),
        (
            json!({"logprobs": true, "top_logprobs": 21}),
            Some("top_logprobs"),
        ),
        (json!({"top_logprobs": 3}), Some("top_logprobs")),
        (
            json!({"stream_options": {"include_usage": true}}),
            Some("stream_options"),
        ),
        (json!({"messages": []}), Some("messages")),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            Some("messages"),
        ),
        (json!({"temperature": "hot"}), None),
        (json!({"messages": "hi"}), None),
        (json!({"messages": [{"content": "no role"}]}), None),
        (json!({"stream": "yes"}), None),
    ];
    for (extra, param) in cases {
        let reply = gw.post(CHAT, chat_with(extra.clone())).await;
        let error = reply.assert_error(StatusCode::BAD_REQUEST);
        assert_eq!(error["param"].as_str(), param, "case {extra}: {error}");
    }
    let missing = gw.post(CHAT, json!({"model": MODEL})).await;
    assert_eq!(
        missing.assert_error(StatusCode::BAD_REQUEST)["param"],
        "messages"
    );
    assert!(
        gw.observed.requests().is_empty(),
        "no bad request may reach the engine"
    );
}

#[tokio::test]
async fn bad_completion_parameters_are_400() {
    let gw = gateway().await;
    let cases = [
        json!({"prompt": "x", "logprobs": 6}),
        json!({"prompt": "x", "logprobs": -1}),
        json!({"prompt": "x", "max_tokens": 0}),
        json!({"prompt": []}),
        json!({}),
        json!({"prompt": 42}),
        json!({"prompt": vec!["p"; 9], "n": 128}), // 9 × 128 > 1024 engine calls
        json!({"prompt": "x", "best_of": 2}),
        json!({"prompt": "x", "suffix": "y"}),
    ];
    for body in cases {
        gw.post(COMPLETIONS, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    assert!(gw.observed.requests().is_empty());
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let gw = gateway().await;
    let reply = gw
        .post(CHAT, chat_with(json!({"frobnicate": true, "tools": []})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn unknown_model_and_route_are_404() {
    let gw = gateway().await;
    let error = gw
        .post(CHAT, chat_with(json!({"model": "gpt-17"})))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    let body = json!({"model": "nope", "prompt": "x"});
    gw.post(COMPLETIONS, body)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    gw.get("/v1/nothing-here")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    gw.get(CHAT)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED);
    // No model at all means the served one.
    let reply = gw
        .post(
            CHAT,
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn body_over_limit_is_413() {
    let (url, _observed) = fake_engine::start(true).await;
    let router = router(&url, None, 1024);
    let big = json!({"model": MODEL, "prompt": "x".repeat(4096)}).to_string();
    let error = send(&router, "POST", COMPLETIONS, big)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error["code"], "request_too_large");
}

#[tokio::test]
async fn engine_unreachable_is_503() {
    let url = fake_engine::unreachable_url().await;
    let router = router(&url, None, 1 << 20);
    let body = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    send(&router, "POST", CHAT, body)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    send(&router, "GET", "/health", "")
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    send(&router, "GET", "/v1/models", "")
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    // With --model-name the name is known, so the failure is the Generate call's.
    let router = super::router(&url, Some("named"), 1 << 20);
    let body = json!({"model": "named", "prompt": "hi", "stream": true}).to_string();
    send(&router, "POST", COMPLETIONS, body)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    let models = send(&router, "GET", "/v1/models", "").await;
    assert_eq!(models.json()["data"][0]["id"], "named");
}

#[tokio::test]
async fn engine_statuses_map_to_http() {
    let gw = gateway().await;
    let cases = [
        ("TOO_LONG", StatusCode::BAD_REQUEST),
        ("OVERLOAD", StatusCode::TOO_MANY_REQUESTS),
        ("DOWN", StatusCode::SERVICE_UNAVAILABLE),
    ];
    for (word, status) in cases {
        for stream in [false, true] {
            let body = json!({"prompt": word, "stream": stream});
            let error = gw.post(COMPLETIONS, body).await.assert_error(status);
            if word == "TOO_LONG" {
                assert!(
                    error["message"]
                        .as_str()
                        .unwrap()
                        .contains("longer than the context"),
                    "{error}"
                );
            }
        }
    }
}

#[tokio::test]
async fn health_follows_engine_health() {
    let gw = gateway().await;
    let reply = gw.get("/health").await;
    assert_eq!(reply.status, StatusCode::OK);
    let (url, _observed) = fake_engine::start(false).await;
    let router = router(&url, None, 1024);
    let error = send(&router, "GET", "/health", "")
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        error["message"].as_str().unwrap().contains("NOT_SERVING"),
        "{error}"
    );
}
