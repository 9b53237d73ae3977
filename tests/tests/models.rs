//! Architectures beyond Llama served end to end: Gemma 3 270M Q4_K_M (SentencePiece vocabulary,
//! sliding-window layers, Q5_0/Q4_K/Q6_K/Q8_0 weights) through the gateway with journey tracing
//! on, exported to a real OTLP receiver.

use journey_tests::otlp::{Collector, hex, string_attr};
use journey_tests::{gemma3_model, start_engine, start_gateway};
use proto::conventions::{attr, span};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn gemma3_serves_through_the_gateway_with_a_complete_trace() {
    let collector = Collector::start().await;
    let ep = collector.endpoint();
    let tracing = ["--enable-journey-tracing", "--otlp-traces-endpoint", &ep];
    let engine = start_engine(&gemma3_model(), &tracing);
    let gateway = start_gateway(&engine.addr, &tracing);
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();

    let models: Value = client
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let card = &models["data"][0];
    // The served name is the file's, not general.name ("Gemma 3 270m").
    assert_eq!(card["id"], "gemma-3-270m-q4_k_m", "{models}");
    assert_eq!(card["architecture"], "gemma3", "{models}");

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let body = json!({
        "model": "gemma-3-270m-q4_k_m",
        "prompt": "1, 2, 3, 4, 5,",
        "max_tokens": 8,
        "temperature": 0,
    });
    let reply: Value = client
        .post(format!("{base}/v1/completions"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // llama.cpp's greedy continuation (engine-core/tests/data/gemma3_golden.json), every
    // step decisive (top-1/top-2 gaps of 2.9 to 5.6 over the 8 tokens).
    assert_eq!(reply["choices"][0]["text"], " 6, 7, 8", "{reply}");
    assert_eq!(reply["usage"]["prompt_tokens"], 15, "{reply}");

    let spans = collector
        .wait_for("the Gemma request's two spans", |s| {
            s.iter()
                .filter(|r| hex(&r.span.trace_id) == trace)
                .filter(|r| [span::LLM_REQUEST, span::LLM_CORE].contains(&r.span.name.as_str()))
                .count()
                >= 2
        })
        .await;
    let core = spans
        .iter()
        .find(|r| hex(&r.span.trace_id) == trace && r.span.name == span::LLM_CORE)
        .expect("llm_core");
    assert_eq!(
        string_attr(&core.span.attributes, attr::MODEL_ARCHITECTURE).as_deref(),
        Some("gemma3")
    );
    assert_eq!(
        string_attr(&core.span.attributes, attr::GEN_AI_RESPONSE_MODEL).as_deref(),
        Some("gemma-3-270m-q4_k_m")
    );
}
