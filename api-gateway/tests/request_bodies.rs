//! The property the `openai_request` fuzz target (`fuzz/`) checks, as a bounded proptest run
//! in CI: any JSON body, however shaped, is either refused with an error or validated into
//! engine calls; nothing panics. Bodies mix the fields both endpoints know with values of any
//! JSON type, extremes included, so validation itself is exercised, not only the parser.

use api_gateway::engines::fan_out;
use api_gateway::openai::chat::ChatCompletionRequest;
use api_gateway::openai::common::{ModelMeta, check_prompt_sizes};
use api_gateway::openai::completions::CompletionRequest;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const FIELDS: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stop_token_ids",
    "ignore_eos",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "stream",
    "stream_options",
    "logprobs",
    "top_logprobs",
    "echo",
    "priority",
    "role",
    "content",
    "include_usage",
    "unknown_field",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(-1),
            Just(128),
            Just(129),
            Just(u32::MAX as i64)
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::from),
        prop::sample::select(FIELDS).prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// Extra fields of any value, over a well-formed core of each endpoint (so validation goes
/// past the first missing field and meets the odd values).
fn body() -> impl Strategy<Value = Value> {
    let message = (
        prop::sample::select(&["system", "user", "assistant", "tool", "x"][..]),
        prop_oneof![".{0,40}".prop_map(Value::from), value()],
    )
        .prop_map(|(role, content)| json!({"role": role, "content": content}));
    let prompt = prop_oneof![
        ".{0,40}".prop_map(Value::from),
        prop::collection::vec(".{0,8}", 0..4).prop_map(|v| json!(v)),
        prop::collection::vec(0u32..70_000, 0..8).prop_map(|v| json!(v)),
        prop::collection::vec(prop::collection::vec(0u32..70_000, 0..4), 0..3)
            .prop_map(|v| json!(v)),
        value(),
    ];
    let core = prop_oneof![
        prop::collection::vec(message, 0..4).prop_map(|m| json!({"model": "m", "messages": m})),
        prompt.prop_map(|p| json!({"model": "m", "prompt": p})),
    ];
    let extra = prop::collection::vec((prop::sample::select(FIELDS), value()), 0..6);
    (core, extra).prop_map(|(mut core, extra)| {
        let m = core.as_object_mut().expect("an object");
        for (k, v) in extra {
            m.insert(k.to_owned(), v);
        }
        core
    })
}

fn model() -> ModelMeta {
    ModelMeta {
        name: "m".into(),
        context_length: 512,
        architecture: "llama".into(),
        max_token_bytes: 16,
    }
}

/// Runs `v` through both endpoints' validation and fan-out; how many of the two accepted it.
fn check(v: Value) -> usize {
    let mut accepted = 0;
    if let Ok(req) = serde_json::from_value::<ChatCompletionRequest>(v.clone())
        && let Ok(job) = req.validate()
        && job.common.admit(&model()).is_ok()
    {
        let prompts = vec![job.prompt];
        let _ = check_prompt_sizes(&prompts, &model());
        accepted += usize::from(fan_out("chatcmpl-x", prompts, &job.common, false).is_ok());
    }
    if let Ok(req) = serde_json::from_value::<CompletionRequest>(v)
        && let Ok(job) = req.validate()
        && job.common.admit(&model()).is_ok()
    {
        let _ = check_prompt_sizes(&job.prompts, &model());
        accepted += usize::from(fan_out("cmpl-x", job.prompts, &job.common, true).is_ok());
    }
    accepted
}

#[test]
fn the_generated_bodies_reach_past_validation() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = body();
    let n = 2000;
    let accepted: usize = (0..n)
        .map(|_| check(strategy.new_tree(&mut runner).unwrap().current()))
        .sum();
    println!("{accepted} of {n} generated bodies accepted");
    // Otherwise the property below would only ever exercise the refusals.
    assert!(
        accepted * 20 > n,
        "only {accepted} of {n} bodies were accepted"
    );
    assert!(accepted < n, "some bodies must be refused");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_json_body_is_refused_or_validated(v in body()) {
        check(v);
    }

    #[test]
    fn any_json_value_is_refused_or_validated(v in value()) {
        check(v);
    }

    #[test]
    fn any_bytes_are_refused_or_parsed(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            check(v);
        }
    }
}
