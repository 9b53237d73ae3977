//! Agreement with llama.cpp for every architecture (goldens from `scripts/gen_arch_goldens.py`):
//! the tiny random-weight model of each (several weight types; Llama also with Llama 3's RoPE
//! frequency factors; prompts longer than the tiny Gemma 3's sliding window), and the real
//! Gemma 3 270M Q4_K_M, one prompt of which is longer than its 512-token window. Same rule as
//! SmolLM2's (`common::golden`).

mod common;

use common::golden::{Case, GAP, check_teacher_forcing, dequantized_copy, errors_against_exact};
use engine_core::engine::EnginePrompt as Prompt;
use engine_core::generate::tokenize_prompt;
use engine_core::model::Model;
use engine_core::model::gguf::GgufFile;
use engine_core::model::llama::{Arch, Llama};
use engine_core::model::tiny::{TinySpec, tiny_model_bytes};
use kernels::{CpuBackend, GgmlType};
use serde::Deserialize;

#[derive(Deserialize)]
struct TinyGolden {
    models: Vec<TinyModel>,
}

#[derive(Deserialize)]
struct TinyModel {
    arch: String,
    rope_freqs: bool,
    weight_type: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

fn read<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(common::data_path(name)).expect("golden file");
    serde_json::from_str(&text).expect("golden json")
}

#[test]
fn every_tiny_architecture_agrees_with_llama_cpp() {
    let golden: TinyGolden = read("tiny_arch_golden.json");
    let mut failures = Vec::new();
    let mut archs = std::collections::BTreeSet::new();
    for m in &golden.models {
        let arch = Arch::from_name(&m.arch).expect("known architecture");
        let ty = GgmlType::ALL
            .into_iter()
            .find(|t| t.name() == m.weight_type)
            .expect("known weight type");
        let spec = TinySpec {
            weight_type: ty,
            rope_freqs: m.rope_freqs,
            ..TinySpec::for_arch(arch)
        };
        let file = GgufFile::from_bytes(tiny_model_bytes(&spec)).unwrap();
        let llama = Llama::load(&file, CpuBackend::new()).unwrap();
        let (checked, fails) = check_teacher_forcing(&llama, &m.cases);
        let name = format!("{arch} {ty} rope_freqs={}", m.rope_freqs);
        eprintln!(
            "{name}: {} steps exact (gap > {GAP}), {} in top-2",
            checked.exact, checked.top2
        );
        // Random weights still give decisive steps; a model checked only on near-ties proves
        // little.
        if checked.exact < 10 {
            failures.push(format!("{name}: only {checked:?} steps decisive"));
        }
        failures.extend(fails.into_iter().map(|f| format!("{name}: {f}")));
        archs.insert(arch.name());
    }
    assert_eq!(
        archs.len(),
        Arch::ALL.len(),
        "goldens cover {archs:?}, not every architecture"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn gemma_path() -> std::path::PathBuf {
    common::models_path("gemma-3-270m-q4_k_m.gguf", "gemma3")
}

fn gemma() -> Model<CpuBackend> {
    Model::load(gemma_path(), CpuBackend::new()).expect("load Gemma 3")
}

#[test]
fn gemma3_agrees_with_llama_cpp_past_its_sliding_window() {
    let golden: Golden = read("gemma3_golden.json");
    // The network alone: the goldens give llama.cpp's prompt ids.
    let file = GgufFile::open(gemma_path()).unwrap();
    let llama = Llama::load(&file, CpuBackend::new()).expect("load Gemma 3");
    let config = llama.config();
    assert_eq!(config.arch, Arch::Gemma3);
    let window = config.sliding_window.expect("Gemma 3 has a sliding window");
    assert!(
        golden.cases.iter().any(|c| c.prompt_ids.len() > window),
        "no prompt is longer than the {window}-token window"
    );
    assert!(golden.cases.len() >= 8, "at least 8 prompts");
    let (checked, disagreements) = check_teacher_forcing(&llama, &golden.cases);
    eprintln!(
        "gemma3 teacher forcing: {} steps exact (gap > {GAP}), {} in top-2",
        checked.exact, checked.top2
    );
    assert!(checked.exact > 60, "too few decisive steps: {checked:?}");
    // Gemma's activations have large outliers, where llama.cpp's 256-element activation blocks
    // (Q8_K, for K-quant weights) and its fp16 GELU table round more than we do. A step where we
    // disagree is excused only when the same network without any quantization (the dequantized
    // weights in F32) sides with us: our relative logits closer to it than llama.cpp's.
    if disagreements.is_empty() {
        return;
    }
    let exact = Llama::load(&dequantized_copy(&file), CpuBackend::new()).unwrap();
    let mut steps: Vec<(usize, usize)> = disagreements.iter().map(|d| (d.case, d.step)).collect();
    steps.dedup();
    let mut failures = Vec::new();
    for (case, step) in &steps {
        let (ours, theirs) = errors_against_exact(&llama, &exact, &golden.cases[*case], *step);
        let line = format!(
            "{} step {step}: vs unquantized, ours off by {ours:.3}, llama.cpp by {theirs:.3}",
            golden.cases[*case].label()
        );
        eprintln!("{line}");
        if ours >= theirs {
            failures.push(line);
        }
    }
    let messages: Vec<String> = disagreements.iter().map(|d| d.to_string()).collect();
    assert!(
        failures.is_empty(),
        "disagreements with llama.cpp where it is the closer one:\n{}\nall:\n{}",
        failures.join("\n"),
        messages.join("\n")
    );
    assert!(
        steps.len() <= 2,
        "{} steps excused: more than llama.cpp's rounding explains\n{}",
        steps.len(),
        messages.join("\n")
    );
}

#[test]
fn gemma3_prompt_ids_match_llama_cpp() {
    let golden: Golden = read("gemma3_golden.json");
    let model = gemma();
    for case in &golden.cases {
        let prompt = match case.kind.as_str() {
            "raw" => Prompt::Text(case.text.clone()),
            "chat" => Prompt::user(case.text.clone()),
            other => panic!("unknown case kind {other}"),
        };
        let ids = tokenize_prompt(&model, &prompt).unwrap();
        assert_eq!(ids, case.prompt_ids, "prompt ids of {}", case.label());
    }
}
