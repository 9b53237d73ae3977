//! The whole model on CUDA against the CPU: greedy output of the tiny model (every weight
//! type) and of SmolLM2 must be the same tokens. The tests need a CUDA device, so they are
//! `#[ignore]`d (the runner lists them as such): run them with `-- --ignored` on a GPU
//! machine, where `JOURNEY_REQUIRE_CUDA=1` turns a missing device into a failure; without it
//! they report `skipped: no CUDA device` and check nothing else.
#![cfg(feature = "cuda")]

mod common;

use engine_core::engine::EnginePrompt as Prompt;
use engine_core::generate::{GenerateOptions, generate};
use engine_core::model::Model;
use engine_core::model::tiny::{TinySpec, write_tiny_model};
use engine_core::sampling::SamplingParams;
use kernels::cuda::CudaBackend;
use kernels::{CpuBackend, GgmlType};

fn cuda_or_skip() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => {
            eprintln!("CUDA device: {}", b.device());
            Some(b)
        }
        Err(e) if std::env::var_os("JOURNEY_REQUIRE_CUDA").is_some() => {
            panic!("JOURNEY_REQUIRE_CUDA is set but there is no CUDA device: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            None
        }
    }
}

fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens,
        ignore_eos: true,
        ..SamplingParams::default()
    }
}

fn same_greedy_tokens(
    cuda: &CudaBackend,
    path: &std::path::Path,
    prompts: &[Prompt],
    max_tokens: u32,
) {
    let on_cpu = Model::load(path, CpuBackend::new()).expect("load on CPU");
    let on_gpu = Model::load(path, cuda.clone()).expect("load on CUDA");
    for prompt in prompts {
        // Chunked prefill too: the GPU's result must not depend on the chunking either.
        for chunk in [None, Some(5)] {
            let opts = GenerateOptions {
                prefill_chunk: chunk,
                ..GenerateOptions::default()
            };
            let want = generate(&on_cpu, prompt, &greedy(max_tokens), &opts).unwrap();
            let got = generate(&on_gpu, prompt, &greedy(max_tokens), &opts).unwrap();
            assert_eq!(
                got.token_ids,
                want.token_ids,
                "{}: {prompt:?} (prefill chunk {chunk:?})",
                path.display()
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA device: -- --ignored on a GPU machine"]
fn tiny_model_greedy_output_equals_the_cpu_for_every_weight_type() {
    let Some(cuda) = cuda_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    for ty in GgmlType::ALL {
        let path = dir.path().join(format!("tiny-{}.gguf", ty.name()));
        write_tiny_model(&path, &TinySpec::with_type(ty)).unwrap();
        let prompts = [Prompt::TokenIds(vec![1, 5, 9, 200, 17, 3, 3, 40])];
        same_greedy_tokens(&cuda, &path, &prompts, 24);
    }
}

#[test]
#[ignore = "needs a CUDA device: -- --ignored on a GPU machine"]
fn smollm2_greedy_output_equals_the_cpu() {
    let Some(cuda) = cuda_or_skip() else { return };
    let prompts = [
        Prompt::Text("The capital of France is".into()),
        Prompt::user("What is the capital of France?"),
        Prompt::Text("def fibonacci(n):".into()),
    ];
    same_greedy_tokens(&cuda, &common::real_model_path(), &prompts, 32);
}
