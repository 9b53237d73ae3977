//! Fair scheduling through the real processes: one tenant floods the engine's running slots
//! with long streams; another tenant's short request is admitted at the next step under `fair`
//! (the default), taking a slot from the flood (whose trace says `preempt.cause=fair_share`),
//! and waits for a flood request to end under `fcfs`. Judged in scheduler steps, from the
//! `llm_core` spans, so a slow machine cannot flip the outcome.

use futures::StreamExt;
use journey_tests::otlp::{Collector, Received, events, int_attr, string_attr};
use journey_tests::{assert_engine_idle, start_engine, start_gateway, temp_dir, tiny_model};
use proto::conventions::{attr, journey_event, span};
use serde_json::{Value, json};

/// Steps between the victim's `QUEUED` and `SCHEDULED` events.
fn queued_to_scheduled(core: &Received) -> i64 {
    let step = |name| {
        let e = events(&core.span, name)[0];
        int_attr(&e.attributes, attr::SCHEDULER_STEP).expect("scheduler.step")
    };
    step(journey_event::SCHEDULED) - step(journey_event::QUEUED)
}

async fn run(policy: &str) -> (i64, usize) {
    let dir = temp_dir(&format!("fairness-{policy}"));
    let model = tiny_model(&dir);
    let keys = dir.join("keys");
    std::fs::write(&keys, "sk-flood flood\nsk-victim victim\n").unwrap();
    let collector = Collector::start().await;
    let ep = collector.endpoint();
    let engine = start_engine(
        &model,
        &[
            "--enable-journey-tracing",
            "--otlp-traces-endpoint",
            &ep,
            "--max-num-seqs",
            "2",
            "--scheduling-policy",
            policy,
        ],
    );
    let gateway = start_gateway(
        &engine.addr,
        &[
            "--enable-journey-tracing",
            "--otlp-traces-endpoint",
            &ep,
            "--api-key-file",
            keys.to_str().unwrap(),
        ],
    );
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();

    // The flood: two streams of n=4 long choices, eight engine requests for two slots.
    let mut floods = Vec::new();
    for i in 0..2 {
        let body = json!({
            "model": "journey-tiny", "prompt": format!("flood {i}"), "n": 4,
            "max_tokens": 480, "ignore_eos": true, "stream": true,
        });
        let resp = client
            .post(format!("{base}/v1/completions"))
            .bearer_auth("sk-flood")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        floods.push(resp.bytes_stream());
    }
    // Both slots are the flood's once its first tokens flow.
    let first = floods[0].next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");

    let victim: Value = client
        .post(format!("{base}/v1/completions"))
        .bearer_auth("sk-victim")
        .json(&json!({"model": "journey-tiny", "prompt": "short", "max_tokens": 4}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(victim["choices"][0]["finish_reason"], "length", "{victim}");
    drop(floods); // the flood's client leaves: its requests are aborted

    let spans = collector
        .wait_for("the victim's and the flood's engine spans", |s| {
            let cores: Vec<_> = s.iter().filter(|r| r.span.name == span::LLM_CORE).collect();
            cores.len() >= 9
        })
        .await;
    let cores: Vec<&Received> = spans
        .iter()
        .filter(|r| r.span.name == span::LLM_CORE)
        .collect();
    let tenant = |r: &&Received| string_attr(&r.span.attributes, attr::TENANT);
    let victim_core = cores
        .iter()
        .find(|r| tenant(r).as_deref() == Some("victim"))
        .expect("the victim's llm_core span, with its tenant");
    let fair_share = cores
        .iter()
        .filter(|r| tenant(r).as_deref() == Some("flood"))
        .flat_map(|r| events(&r.span, journey_event::PREEMPTED))
        .filter(|e| {
            string_attr(&e.attributes, attr::PREEMPT_CAUSE).as_deref() == Some("fair_share")
        })
        .count();
    assert_engine_idle(&engine.addr).await;
    (queued_to_scheduled(victim_core), fair_share)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_tenant_holds_another_back_only_under_fcfs() {
    let (fair_wait, fair_preemptions) = run("fair").await;
    assert!(
        fair_wait <= 2,
        "fair: the victim was admitted {fair_wait} steps after it queued"
    );
    assert_eq!(fair_preemptions, 1, "one flood request gave up its slot");

    let (fcfs_wait, fcfs_preemptions) = run("fcfs").await;
    // A flood request of 480 tokens had to end first.
    assert!(
        fcfs_wait >= 100,
        "fcfs: the victim was admitted after only {fcfs_wait} steps"
    );
    assert_eq!(fcfs_preemptions, 0);
    println!("victim admitted {fair_wait} steps after queueing under fair, {fcfs_wait} under fcfs");
}
