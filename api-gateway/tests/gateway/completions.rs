//! `/v1/completions` against the fake engine: prompt forms, prompt-major choice order, echo
//! and legacy logprobs (including lm-evaluation-harness's `echo` + `max_tokens: 0`).

use http::StatusCode;
use proto::engine::generate_request::Prompt;
use serde_json::{Value, json};

use super::gateway;

async fn complete(body: Value) -> (Value, super::Gateway) {
    let gw = gateway().await;
    let reply = gw.post("/v1/completions", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    (reply.json(), gw)
}

fn texts(body: &Value) -> Vec<String> {
    let choices = body["choices"].as_array().unwrap();
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
    }
    choices
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn answers_a_text_completion_with_default_max_tokens() {
    let (body, gw) = complete(json!({"prompt": "hey"})).await;
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(body["object"], "text_completion");
    assert_eq!(texts(&body), ["[hey] seed=none bye"]);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["choices"][0]["logprobs"].is_null());
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6})
    );
    assert_eq!(
        gw.observed.requests()[0]
            .sampling
            .clone()
            .unwrap()
            .max_tokens,
        Some(16)
    );
}

#[tokio::test]
async fn indexes_choices_prompt_major() {
    let (body, gw) =
        complete(json!({"prompt": ["A", "BB"], "n": 2, "seed": 1, "max_tokens": 2})).await;
    assert_eq!(
        texts(&body),
        ["[A] seed=1", "[A] seed=2", "[BB] seed=1", "[BB] seed=2"]
    );
    assert_eq!(body["choices"][3]["finish_reason"], "length");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11})
    );
    assert_eq!(gw.observed.requests().len(), 4);
}

#[tokio::test]
async fn accepts_token_id_prompts() {
    let (body, gw) = complete(json!({"prompt": [1, 2, 3], "max_tokens": 1})).await;
    assert_eq!(texts(&body), ["[ids:1,2,3]"]);
    let Some(Prompt::TokenIds(ids)) = &gw.observed.requests()[0].prompt else {
        panic!()
    };
    assert_eq!(ids.ids, [1, 2, 3]);
    let (body, _) = complete(json!({"prompt": [[5], [6, 7]], "max_tokens": 1})).await;
    assert_eq!(texts(&body), ["[ids:5]", "[ids:6,7]"]);
}

#[tokio::test]
async fn echo_prepends_the_prompt() {
    let (body, gw) = complete(json!({"prompt": "hey", "echo": true, "max_tokens": 1})).await;
    assert_eq!(texts(&body), ["hey[hey]"]);
    let s = gw.observed.requests()[0].sampling.clone().unwrap();
    assert_eq!(
        s.prompt_logprobs, None,
        "text prompts echo verbatim, no prompt scoring needed"
    );
    let (body, _) = complete(json!({"prompt": [4, 2], "echo": true, "max_tokens": 1})).await;
    assert_eq!(texts(&body), ["<4><2>[ids:4,2]"]);
}

#[tokio::test]
async fn legacy_logprobs_of_generated_tokens() {
    let (body, gw) = complete(json!({"prompt": "hey", "logprobs": 2, "max_tokens": 2})).await;
    let lp = &body["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"], json!(["[hey]", " seed=none"]));
    assert_eq!(lp["token_logprobs"], json!([-0.5, -0.5]));
    assert_eq!(
        lp["top_logprobs"][0],
        json!({"[hey]": -0.5, "alt0": -1.0, "alt1": -2.0})
    );
    assert_eq!(lp["text_offset"], json!([0, 5]));
    let s = gw.observed.requests()[0].sampling.clone().unwrap();
    assert_eq!((s.logprobs, s.prompt_logprobs), (Some(2), None));
}

/// lm-evaluation-harness's loglikelihood request: score the prompt, generate nothing.
#[tokio::test]
async fn echo_with_zero_max_tokens_scores_the_prompt() {
    let body =
        json!({"prompt": "abc", "echo": true, "logprobs": 1, "max_tokens": 0, "temperature": 0});
    let (body, gw) = complete(body).await;
    let request = &gw.observed.requests()[0];
    let s = request.sampling.clone().unwrap();
    assert_eq!(
        (s.max_tokens, s.logprobs, s.prompt_logprobs),
        (Some(1), Some(1), Some(1))
    );
    assert!(request.return_prompt_ids);
    let choice = &body["choices"][0];
    assert_eq!(choice["text"], "abc");
    assert_eq!(choice["finish_reason"], "length");
    let lp = &choice["logprobs"];
    assert_eq!(lp["tokens"], json!(["a", "b", "c"]));
    assert_eq!(lp["token_logprobs"], json!([null, -2.0, -2.0]));
    assert_eq!(
        lp["top_logprobs"],
        json!([null, {"b": -2.0, "alt0": -1.0}, {"c": -2.0, "alt0": -1.0}])
    );
    assert_eq!(lp["text_offset"], json!([0, 1, 2]));
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3})
    );
}

#[tokio::test]
async fn echo_with_logprobs_scores_prompt_then_generation() {
    let (body, _) =
        complete(json!({"prompt": "ab", "echo": true, "logprobs": 0, "max_tokens": 1})).await;
    let choice = &body["choices"][0];
    assert_eq!(choice["text"], "ab[ab]");
    let lp = &choice["logprobs"];
    assert_eq!(lp["tokens"], json!(["a", "b", "[ab]"]));
    assert_eq!(lp["token_logprobs"], json!([null, -2.0, -0.5]));
    assert_eq!(lp["text_offset"], json!([0, 1, 2]));
}
