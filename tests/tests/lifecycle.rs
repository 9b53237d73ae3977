//! The engine process's own life: a failed step makes it refuse work and exit non-zero; SIGTERM
//! lets streams in flight finish for the grace period, then ends them (aborted) and exits.

use std::time::{Duration, Instant};

use journey_tests::{real_model, start_engine, tiny_model};
use proto::engine::engine_client::EngineClient;
use proto::engine::generate_request::Prompt;
use proto::engine::{FinishReason, GenerateRequest, SamplingParams};

fn generate(max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        request_id: String::new(),
        prompt: Some(Prompt::Text("Once upon a time".into())),
        sampling: Some(SamplingParams {
            max_tokens: Some(max_tokens),
            ignore_eos: true,
            temperature: Some(0.0),
            ..Default::default()
        }),
        return_prompt_ids: false,
        return_journey: false,
        priority: 0,
    }
}

/// Reads `stream` to its end: the last finish reason, if a message carried one.
async fn finish_of(
    stream: &mut tonic::Streaming<proto::engine::GenerateResponse>,
) -> Option<FinishReason> {
    let mut finish = None;
    while let Ok(Some(m)) = stream.message().await {
        if m.finish_reason.is_some() {
            finish = Some(m.finish_reason());
        }
    }
    finish
}

/// Waits up to `limit` for `pid` to exit; its exit status (`None`: still running).
fn wait_exit(engine: &mut journey_tests::Service, limit: Duration) -> Option<bool> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(ok) = engine.try_exit() {
            return Some(ok);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_fails_its_requests_and_the_process_exits_non_zero() {
    let dir = journey_tests::temp_dir("fault");
    let model = tiny_model(&dir);
    // The warm-up request takes the first steps; step 20 is a client's.
    let mut engine = start_engine(&model, &["--fault-panic-at-step", "20"]);
    let mut client = EngineClient::connect(format!("http://{}", engine.addr))
        .await
        .unwrap();
    let mut stream = client.generate(generate(200)).await.unwrap().into_inner();
    assert_eq!(finish_of(&mut stream).await, Some(FinishReason::Error));
    let exited = wait_exit(&mut engine, Duration::from_secs(10));
    assert_eq!(
        exited,
        Some(false),
        "a dead engine must exit, and not with success"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_for_the_grace_period_then_aborts_and_exits() {
    let mut engine = start_engine(&real_model(), &["--shutdown-grace-period", "1"]);
    let mut client = EngineClient::connect(format!("http://{}", engine.addr))
        .await
        .unwrap();
    // Far more than a second of tokens on SmolLM2.
    let mut stream = client.generate(generate(3000)).await.unwrap().into_inner();
    stream.message().await.unwrap().expect("a first token");
    let signalled = Instant::now();
    engine.signal_term();
    let finish = finish_of(&mut stream).await;
    let took = signalled.elapsed();
    assert_eq!(finish, Some(FinishReason::Aborted));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "the stream ended {took:?} after SIGTERM; the grace period is 1 s"
    );
    assert_eq!(wait_exit(&mut engine, Duration::from_secs(10)), Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_s_request_timeout_becomes_the_engine_s_deadline() {
    let engine = start_engine(&real_model(), &[]);
    let gateway = journey_tests::start_gateway(&engine.addr, &["--request-timeout", "0.5"]);
    let model = journey_tests::served_model(&format!("http://{}", gateway.addr)).await;
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/completions", gateway.addr))
        .json(
            &serde_json::json!({"model": model, "prompt": "Once upon a time", "max_tokens": 3000,
                                  "ignore_eos": true}),
        )
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "abort", "{body}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "ended after {took:?} with a 0.5 s timeout"
    );
    let n = body["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(n > 0 && n < 3000, "{n} tokens");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_request_whose_client_left_is_dropped_before_it_costs_a_prefill() {
    use proto::engine::GetModelInfoRequest;
    let engine = start_engine(&real_model(), &["--max-num-seqs", "1"]);
    let url = format!("http://{}", engine.addr);
    let mut client = EngineClient::connect(url.clone()).await.unwrap();
    let mut long = client.generate(generate(3000)).await.unwrap().into_inner();
    long.message()
        .await
        .unwrap()
        .expect("the long request runs");
    // Waits behind it: one running slot.
    let waiting = client.generate(generate(8)).await.unwrap().into_inner();
    let info = |mut c: EngineClient<tonic::transport::Channel>| async move {
        c.get_model_info(GetModelInfoRequest {})
            .await
            .unwrap()
            .into_inner()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while info(client.clone()).await.num_waiting != 1 {
        assert!(Instant::now() < deadline, "the second request never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(waiting);
    // Gone from the queue while the long request still runs.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let i = info(client.clone()).await;
        if i.num_waiting == 0 {
            assert_eq!(i.num_running, 1, "{i:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned request still waits: {i:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(long);
    let deadline = Instant::now() + Duration::from_secs(2);
    while info(client.clone()).await.num_running != 0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned long request still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
