//! Keys through the real processes: the gateway refuses requests without a known API key
//! (401, OpenAI error body) and records each request's tenant, never its key; the engine
//! refuses Engine RPCs without its token, and the gateway sends it.

use journey_tests::{start_engine, start_gateway, tiny_model};
use proto::engine::engine_client::EngineClient;
use proto::engine::generate_request::Prompt;
use proto::engine::{GenerateRequest, SamplingParams};
use serde_json::{Value, json};

async fn complete(base: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/completions"))
        .json(&json!({"model": "journey-tiny", "prompt": "hello", "max_tokens": 4}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn status(url: &str, key: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap().status().as_u16()
}

fn generate(prompt: &str) -> GenerateRequest {
    GenerateRequest {
        request_id: String::new(),
        prompt: Some(Prompt::Text(prompt.into())),
        sampling: Some(SamplingParams {
            max_tokens: Some(2),
            ..Default::default()
        }),
        return_prompt_ids: false,
        return_journey: false,
        priority: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_tenants_and_the_engine_token() {
    let dir = journey_tests::temp_dir("auth");
    let model = tiny_model(&dir);
    let keys = dir.join("keys");
    std::fs::write(&keys, "# tenant keys\nsk-alpha-1 alpha\nsk-beta-1 beta\n").unwrap();
    let engine = start_engine(&model, &["--auth-token", "engine-secret"]);
    let gateway = start_gateway(
        &engine.addr,
        &[
            "--api-key-file",
            keys.to_str().unwrap(),
            "--engine-auth-token",
            "engine-secret",
        ],
    );
    let base = format!("http://{}", gateway.addr);

    // No key, a wrong key, a key's prefix: 401 with an OpenAI error body.
    for key in [None, Some("sk-wrong"), Some("sk-alpha-")] {
        let (code, body) = complete(&base, key).await;
        assert_eq!(code, 401, "{key:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    }
    let (code, body) = complete(&base, Some("sk-beta-1")).await;
    assert_eq!(code, 200, "{body}");
    // /health stays open; /metrics and /journeys too unless --metrics-require-key.
    assert_eq!(status(&format!("{base}/health"), None).await, 200);
    assert_eq!(status(&format!("{base}/metrics"), None).await, 200);
    assert_eq!(status(&format!("{base}/v1/models"), None).await, 401);

    // The tenant is recorded, the key never.
    let kept: Value = reqwest::get(format!("{base}/journeys/api/requests?status=ok"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept[0]["tenant"], "beta", "{kept}");
    let all = reqwest::get(format!("{base}/journeys/api/requests"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !all.contains("sk-beta-1") && !all.contains("sk-wrong"),
        "{all}"
    );

    // The engine: no token, a wrong one, refused; the right one accepted.
    let mut client = EngineClient::connect(format!("http://{}", engine.addr))
        .await
        .unwrap();
    let refused = client.generate(generate("direct")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let mut wrong = tonic::Request::new(generate("direct"));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer engine-secreT".parse().unwrap());
    assert_eq!(
        client.generate(wrong).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let mut right = tonic::Request::new(generate("direct"));
    right
        .metadata_mut()
        .insert("authorization", "Bearer engine-secret".parse().unwrap());
    let mut stream = client.generate(right).await.unwrap().into_inner();
    while stream.message().await.unwrap().is_some() {}

    // A gateway that does not know the engine's token cannot use it.
    let tokenless = start_gateway(&engine.addr, &[]);
    let (code, body) = complete(&format!("http://{}", tokenless.addr), None).await;
    assert_ne!(code, 200, "{body}");

    // With --metrics-require-key, /metrics and /journeys need a key as well.
    let strict = start_gateway(
        &engine.addr,
        &[
            "--api-key",
            "sk-ops",
            "--metrics-require-key",
            "--engine-auth-token",
            "engine-secret",
        ],
    );
    let sbase = format!("http://{}", strict.addr);
    assert_eq!(status(&format!("{sbase}/metrics"), None).await, 401);
    assert_eq!(status(&format!("{sbase}/journeys"), None).await, 401);
    assert_eq!(
        status(&format!("{sbase}/metrics"), Some("sk-ops")).await,
        200
    );
    assert_eq!(status(&format!("{sbase}/health"), None).await, 200);
}

/// A throwaway CA and an engine certificate it signs for 127.0.0.1 and localhost, as PEM
/// files in `dir`: (ca, cert, key).
fn test_ca(dir: &std::path::Path) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_owned()
    };
    (
        write("ca.pem", ca_cert.pem()),
        write("engine.pem", cert.pem()),
        write("engine.key", key.serialize_pem()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_between_the_gateway_and_the_engine() {
    let dir = journey_tests::temp_dir("tls");
    let model = tiny_model(&dir);
    let (ca, cert, key) = test_ca(&dir);
    let engine = start_engine(&model, &["--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("https://{}", engine.addr);
    let gateway = journey_tests::Service::start(
        &journey_tests::binary("api-gateway"),
        &[
            "--engine",
            &url,
            "--engine-tls-ca",
            &ca,
            "--listen",
            "127.0.0.1:0",
        ],
        "api-gateway listening on",
    );
    let (code, body) = complete(&format!("http://{}", gateway.addr), None).await;
    assert_eq!(code, 200, "{body}");

    // A plaintext client gets nowhere.
    let plain = EngineClient::connect(format!("http://{}", engine.addr)).await;
    let refused = match plain {
        Err(_) => true,
        Ok(mut c) => c.generate(generate("plain")).await.is_err(),
    };
    assert!(refused, "a plaintext call to a TLS engine must fail");

    // The container health check speaks TLS too; without the CA it cannot verify the engine.
    let health = |ca: Option<&str>| {
        let mut cmd = std::process::Command::new(journey_tests::binary("engine-core"));
        cmd.args(["health", "--addr", &url]);
        if let Some(ca) = ca {
            cmd.args(["--tls-ca", ca]);
        }
        cmd.output().unwrap()
    };
    assert!(health(Some(&ca)).status.success());
    assert!(!health(None).status.success());

    // An https:// engine without a CA is a clear start-up error.
    let out = std::process::Command::new(journey_tests::binary("api-gateway"))
        .args(["--engine", &url, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--engine-tls-ca"), "{stderr}");
}
