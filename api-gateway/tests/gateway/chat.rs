//! `/v1/chat/completions` against the fake engine: request mapping, response shape, n-fanout.

use http::StatusCode;
use proto::engine::generate_request::Prompt;
use serde_json::json;

use super::fake_engine::MODEL;
use super::gateway;

#[tokio::test]
async fn answers_a_chat_completion() {
    let gw = gateway().await;
    let reply = gw
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert!(body["created"].as_u64().unwrap() > 0);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": "[hi] seed=none bye"})
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["logprobs"].is_null());
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5})
    );
}

#[tokio::test]
async fn maps_parameters_onto_the_engine_request() {
    let gw = gateway().await;
    let body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        ],
        "max_tokens": 99, "max_completion_tokens": 2, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "min_p": 0.05, "seed": 1234, "stop": "###", "presence_penalty": 0.5, "frequency_penalty": -0.5,
        "repetition_penalty": 1.1, "logprobs": true, "top_logprobs": 2,
    });
    let reply = gw.post("/v1/chat/completions", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let requests = gw.observed.requests();
    assert_eq!(requests.len(), 1);
    let Some(Prompt::Chat(chat)) = &requests[0].prompt else {
        panic!("not a chat prompt: {:?}", requests[0])
    };
    assert!(chat.add_generation_prompt);
    assert_eq!(chat.messages.len(), 2);
    assert_eq!(
        (
            chat.messages[0].role.as_str(),
            chat.messages[0].content.as_str()
        ),
        ("system", "be brief")
    );
    assert_eq!(chat.messages[1].content, "a\nb");
    let s = requests[0].sampling.clone().unwrap();
    assert_eq!(s.max_tokens, Some(2), "max_completion_tokens wins");
    assert_eq!(
        (s.temperature, s.top_p, s.top_k, s.min_p),
        (Some(0.5), Some(0.9), Some(40), Some(0.05))
    );
    assert_eq!(
        (s.seed, s.stop.clone()),
        (Some(1234), vec!["###".to_owned()])
    );
    assert_eq!(
        (
            s.presence_penalty,
            s.frequency_penalty,
            s.repetition_penalty
        ),
        (Some(0.5), Some(-0.5), Some(1.1))
    );
    assert_eq!((s.logprobs, s.prompt_logprobs), (Some(2), None));

    let body = reply.json();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "length");
    let content = choice["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["token"], "[a\nb]");
    assert_eq!(content[0]["logprob"], -0.5);
    assert_eq!(content[0]["bytes"], json!(b"[a\nb]".to_vec()));
    assert_eq!(content[0]["top_logprobs"].as_array().unwrap().len(), 2);
    assert_eq!(content[0]["top_logprobs"][1]["token"], "alt1");
}

#[tokio::test]
async fn unset_parameters_stay_unset() {
    let gw = gateway().await;
    let body =
        json!({"messages": [{"role": "user", "content": "hi"}], "top_k": -1, "stop": ["", "END"]});
    assert_eq!(
        gw.post("/v1/chat/completions", body).await.status,
        StatusCode::OK
    );
    let s = gw.observed.requests()[0].sampling.clone().unwrap();
    assert_eq!(
        (s.max_tokens, s.temperature, s.top_k, s.seed, s.logprobs),
        (None, None, None, None, None)
    );
    assert_eq!(s.stop, vec!["END".to_owned()]);
}

#[tokio::test]
async fn fans_out_n_choices_in_order_with_distinct_seeds() {
    let gw = gateway().await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "n": 3, "seed": 7});
    let reply = gw.post("/v1/chat/completions", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    let choices = body["choices"].as_array().unwrap();
    for (j, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], j);
        assert_eq!(
            choice["message"]["content"],
            format!("[hi] seed={} bye", 7 + j)
        );
    }
    assert_eq!(choices.len(), 3);
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 9, "total_tokens": 11})
    );
    assert_eq!(gw.observed.requests().len(), 3);
}

#[tokio::test]
async fn lists_the_served_model() {
    let gw = gateway().await;
    let body = gw.get("/v1/models").await.json();
    assert_eq!(body["object"], "list");
    let card = &body["data"][0];
    assert_eq!(
        (
            card["id"].as_str(),
            card["object"].as_str(),
            card["owned_by"].as_str()
        ),
        (Some(MODEL), Some("model"), Some("journey"))
    );
    assert!(card["created"].is_u64());
    // The engine's architecture, as its GetModelInfo reports it.
    assert_eq!(card["architecture"], "qwen3");
}
