//! The `engine-core generate` command, run as a real process.

mod common;

use std::process::Command;

use engine_core::model::tiny::{TinySpec, write_tiny_model};
use serde_json::Value;

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_engine-core"))
}

fn run_json(args: &[&str]) -> Value {
    let out = engine()
        .arg("generate")
        .args(args)
        .arg("--json")
        .output()
        .expect("run engine-core");
    assert!(
        out.status.success(),
        "engine-core failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn generate_json_on_smollm2_matches_the_documented_shape() {
    let model = common::real_model_path();
    let v = run_json(&[
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "What is the capital of France?",
        "--chat",
        "--max-tokens",
        "8",
        "--logprobs",
        "3",
        "--prompt-logprobs",
        "2",
    ]);
    let prompt = v["prompt_token_ids"].as_array().unwrap();
    assert_eq!(prompt[0], 1, "ChatML starts with <|im_start|>");
    let tokens = v["token_ids"].as_array().unwrap();
    assert!(!tokens.is_empty() && tokens.len() <= 8);
    assert!(["stop", "length"].contains(&v["finish_reason"].as_str().unwrap()));
    // SmolLM2-135M's greedy answer (llama.cpp gives the same tokens: see the goldens).
    assert!(v["text"].as_str().unwrap().starts_with("L'"), "{v}");
    let logprobs = v["logprobs"].as_array().unwrap();
    assert_eq!(logprobs.len(), tokens.len());
    for (step, tok) in logprobs.iter().zip(tokens) {
        let step = step.as_array().unwrap();
        assert!(step.len() >= 3);
        assert!(step.iter().any(|c| c["id"] == *tok), "sampled token listed");
        assert!(
            step.windows(2)
                .take(2)
                .all(|w| w[0]["logprob"].as_f64() >= w[1]["logprob"].as_f64())
        );
    }
    let plp = v["prompt_logprobs"].as_array().unwrap();
    assert_eq!(plp.len(), prompt.len());
    assert!(plp[0].is_null());
    for entry in &plp[1..] {
        let top = entry.as_array().unwrap();
        assert_eq!(top.len(), 2);
        assert!(top[0]["logprob"].as_f64().unwrap() >= top[1]["logprob"].as_f64().unwrap());
        assert!(top[0]["logprob"].as_f64().unwrap() <= 0.0);
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_token_id_prompts_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_model(&path, &TinySpec::default()).unwrap();
    let p = path.to_str().unwrap();
    let args = [
        "--model",
        p,
        "--prompt-token-ids",
        "5,6,7,8",
        "--temperature",
        "1.0",
        "--seed",
        "42",
        "--max-tokens",
        "12",
    ];
    let a = run_json(&args);
    let b = run_json(&args);
    assert_eq!(a["token_ids"], b["token_ids"]);
    assert_eq!(a["prompt_token_ids"], serde_json::json!([5, 6, 7, 8]));
    let c = run_json(&[
        "--model",
        p,
        "--prompt-token-ids",
        "5,6,7,8",
        "--temperature",
        "1.0",
        "--seed",
        "43",
        "--max-tokens",
        "12",
    ]);
    assert_ne!(
        a["token_ids"], c["token_ids"],
        "another seed should change 12 sampled tokens"
    );
}

#[test]
fn bad_input_fails_cleanly() {
    let out = engine()
        .args(["generate", "--model", "/nonexistent.gguf", "--prompt", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read model file /nonexistent.gguf"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_model(&path, &TinySpec::default()).unwrap();
    let out = engine()
        .args([
            "generate",
            "--model",
            path.to_str().unwrap(),
            "--prompt",
            "hi",
            "--temperature",
            "7",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("temperature"), "{err}");
    let out = engine()
        .args([
            "generate",
            "--model",
            path.to_str().unwrap(),
            "--prompt-token-ids",
            "999999",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the vocabulary"));
}

#[test]
fn serve_on_cuda_without_a_gpu_fails_cleanly_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_model(&model, &TinySpec::default()).unwrap();
    // Checked before starting it: with a device, the server would start and serve forever.
    if cfg!(feature = "cuda") && std::path::Path::new("/dev/nvidiactl").exists() {
        eprintln!("skipped: this machine has an NVIDIA device; the no-GPU error is not reachable");
        return;
    }
    let out = engine()
        .args(["serve", "--device", "cuda", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0", "--model"])
        .arg(&model)
        .output()
        .expect("run engine-core");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "serve --device cuda started without a GPU"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let expected = if cfg!(feature = "cuda") {
        "no NVIDIA driver"
    } else {
        "built without CUDA support"
    };
    assert!(stderr.contains(expected), "{stderr}");
}

/// Starts `serve` on `model` with `log_flags`, waits until it listens, stops it, and returns
/// its stderr.
fn serve_log(model: &std::path::Path, log_flags: &[&str]) -> String {
    use std::io::{BufRead, BufReader, Read};
    let mut child = engine()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--model")
        .arg(model)
        .args(log_flags)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start engine-core serve");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let listening = stdout
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("engine-core listening on"));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(listening, "serve never listened: {stderr}");
    stderr
}

#[test]
fn logs_go_to_stderr_with_levels_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-log.gguf");
    write_tiny_model(&model, &TinySpec::default()).unwrap();
    let json = serve_log(&model, &["--log-format", "json"]);
    let lines: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let model_line = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("tiny-log.gguf"))
        })
        .unwrap_or_else(|| panic!("no start-up line naming the model in {json}"));
    assert_eq!(model_line["level"], "INFO", "{model_line}");
    let quiet = serve_log(&model, &["--log-level", "warn"]);
    assert!(
        !quiet.contains("tiny-log.gguf"),
        "info line at level warn: {quiet}"
    );
}
