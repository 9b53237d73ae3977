//! Both services as real processes, driven by real clients: the `openai` SDK over HTTP and
//! grpcurl over gRPC (through reflection, with no proto files).

use std::process::Command;

use journey_tests::{
    assert_engine_idle, grpcurl, python, real_model, root, start_engine, start_gateway, tiny_model,
};
use serde_json::Value;

fn openai_sdk(base: &str) -> Value {
    let out = Command::new(python())
        .arg(root().join("tests/python/openai_client.py"))
        .arg(base)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "openai client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from the client")
}

fn check_sdk_results(v: &Value) {
    for key in ["chat", "chat_stream", "completion", "completion_stream"] {
        let usage = &v[key]["usage"];
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{key}: {v}");
        let completion = usage["completion_tokens"].as_u64().unwrap();
        assert!(completion > 0 && completion <= 12, "{key}: {v}");
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + completion
        );
    }
    assert_eq!(v["chat"]["object"], "chat.completion");
    // Greedy: streaming and not give the same text.
    assert_eq!(v["chat"]["text"], v["chat_stream"]["text"], "{v}");
    assert_eq!(
        v["completion"]["text"], v["completion_stream"]["text"],
        "{v}"
    );
    assert!(["stop", "length"].contains(&v["chat"]["finish_reason"].as_str().unwrap()));
    assert_eq!(v["empty_messages"]["status"], 400, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_against_the_tiny_model() {
    let dir = std::env::temp_dir().join(format!("journey-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = start_engine(&tiny_model(&dir), &[]);
    let gateway = start_gateway(&engine.addr, &[]);
    let v = tokio::task::spawn_blocking({
        let base = format!("http://{}", gateway.addr);
        move || openai_sdk(&base)
    })
    .await
    .unwrap();
    assert_eq!(v["model"], "journey-tiny");
    check_sdk_results(&v);
    assert_engine_idle(&engine.addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_against_smollm2() {
    let engine = start_engine(&real_model(), &[]);
    let gateway = start_gateway(&engine.addr, &[]);
    let v = tokio::task::spawn_blocking({
        let base = format!("http://{}", gateway.addr);
        move || openai_sdk(&base)
    })
    .await
    .unwrap();
    check_sdk_results(&v);
    // The goldens' greedy continuation of this prompt (llama.cpp agrees): " Paris."
    assert!(
        v["completion"]["text"]
            .as_str()
            .unwrap()
            .starts_with(" Paris"),
        "{v}"
    );
    assert_engine_idle(&engine.addr).await;
}

fn grpc(addr: &str, args: &[&str]) -> String {
    let out = Command::new(grpcurl())
        .arg("-plaintext")
        .arg(addr)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "grpcurl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn grpcurl_through_reflection() {
    let dir = std::env::temp_dir().join(format!("journey-grpcurl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = start_engine(&tiny_model(&dir), &[]);
    let list = grpc(&engine.addr, &["list"]);
    for service in [
        "journey.engine.v1.Engine",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(list.contains(service), "{list}");
    }
    let describe = grpc(&engine.addr, &["describe", "journey.engine.v1.Engine"]);
    assert!(
        describe.contains("rpc Generate")
            && describe.contains("stream .journey.engine.v1.GenerateResponse"),
        "{describe}"
    );

    let out = Command::new(grpcurl())
        .args([
            "-plaintext",
            "-d",
            r#"{"token_ids":{"ids":[5,6,7]},"sampling":{"temperature":0,"max_tokens":4}}"#,
        ])
        .arg(&engine.addr)
        .arg("journey.engine.v1.Engine/Generate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FINISH_REASON_LENGTH") && text.contains("\"completionTokens\": 4"),
        "{text}"
    );

    let health = grpc(&engine.addr, &["grpc.health.v1.Health/Check"]);
    assert!(health.contains("SERVING"), "{health}");

    let out = Command::new(grpcurl())
        .args(["-plaintext", "-d", r#"{"sampling":{"max_tokens":4}}"#])
        .arg(&engine.addr)
        .arg("journey.engine.v1.Engine/Generate")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("InvalidArgument") && err.contains("no prompt"),
        "{err}"
    );
}
