//! Bad model files: each gives a clear error naming what is wrong, never a panic.

use engine_core::model::Model;
use engine_core::model::gguf::{GgufFile, GgufWriter, MetadataValue, keys};
use engine_core::model::llama::Arch;
use engine_core::model::tiny::{TinySpec, tiny_model_bytes};
use kernels::{CpuBackend, GgmlType};

fn load_err(bytes: Vec<u8>) -> String {
    match GgufFile::from_bytes(bytes) {
        Err(e) => e.to_string(),
        Ok(file) => match Model::from_gguf(&file, CpuBackend::new()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("the bad file loaded"),
        },
    }
}

#[test]
fn missing_file() {
    let err = Model::load("/nonexistent/model.gguf", CpuBackend::new())
        .err()
        .expect("error")
        .to_string();
    assert!(
        err.contains("cannot read model file /nonexistent/model.gguf"),
        "{err}"
    );
}

#[test]
fn not_gguf() {
    let err = load_err(b"PK\x03\x04 this is a zip file, not a model".to_vec());
    assert!(
        err.contains("not a GGUF file") && err.contains("PK"),
        "{err}"
    );
    let err = load_err(Vec::new());
    assert!(err.contains("truncated") && err.contains("magic"), "{err}");
}

#[test]
fn truncated_everywhere() {
    let full = tiny_model_bytes(&TinySpec::default());
    // Cut in the header, the metadata, the tensor infos and the data: never a panic.
    for cut in [6, 20, 100, 1000, 5000, full.len() / 2, full.len() - 1] {
        let err = load_err(full[..cut].to_vec());
        assert!(
            err.contains("truncated") || err.contains("cannot fit"),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn absurd_counts_do_not_allocate() {
    let mut bytes = tiny_model_bytes(&TinySpec::default());
    // n_kv (bytes 16..24) claims 2^60 entries.
    bytes[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let err = load_err(bytes);
    assert!(
        err.contains("metadata count") && err.contains("cannot fit"),
        "{err}"
    );

    // A string claiming to be 2^62 bytes long.
    let mut w = GgufWriter::new();
    w.meta_str("general.name", "x");
    let mut bytes = w.to_bytes();
    let len_at = 24 + 8 + "general.name".len() + 4;
    bytes[len_at..len_at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let err = load_err(bytes);
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn unsupported_version() {
    let mut bytes = tiny_model_bytes(&TinySpec::default());
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(load_err(bytes).contains("unsupported GGUF version 1"));
}

#[test]
fn unknown_architecture() {
    let mut w = GgufWriter::new();
    w.meta_str(keys::ARCHITECTURE, "mamba");
    let err = load_err(w.to_bytes());
    assert!(
        err.contains("unsupported model architecture \"mamba\""),
        "{err}"
    );
}

#[test]
fn unsupported_tensor_type() {
    let mut bytes = tiny_model_bytes(&TinySpec::with_type(GgmlType::Q8_0));
    // Rewrite the type id of the first Q8_0 tensor to Q8_K (15, ggml's activation-only type, which
    // Journey does not load): find it through the parsed infos.
    let file = GgufFile::from_bytes(bytes.clone()).unwrap();
    let name = &file.tensors[0].name;
    let needle: Vec<u8> = [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let type_at = at + needle.len() + 4 + 8 * file.tensors[0].dims.len();
    assert_eq!(bytes[type_at], GgmlType::Q8_0.id() as u8);
    bytes[type_at] = 15;
    let err = load_err(bytes);
    assert!(
        err.contains(&format!(
            "tensor {name:?} has type Q8_K, which Journey does not support"
        )),
        "{err}"
    );
}

#[test]
fn wrong_metadata_type_and_missing_key() {
    let mut w = GgufWriter::new();
    w.meta_str(keys::ARCHITECTURE, "llama").meta(
        &format!("llama.{}", keys::arch::BLOCK_COUNT),
        MetadataValue::String("thirty".into()),
    );
    let err = load_err(w.to_bytes());
    assert!(
        err.contains("llama.block_count") && err.contains("String"),
        "{err}"
    );
    let mut w = GgufWriter::new();
    w.meta_str(keys::ARCHITECTURE, "llama");
    let err = load_err(w.to_bytes());
    assert!(err.contains("\"llama.block_count\" is missing"), "{err}");
}

/// The tiny model of `arch` rewritten without the tensors `drop` names and with `meta` added.
fn tiny_edited(arch: Arch, drop: &[&str], meta: &[(&str, MetadataValue)]) -> Vec<u8> {
    let file = GgufFile::from_bytes(tiny_model_bytes(&TinySpec::for_arch(arch))).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in &file.metadata {
        w.meta(k, v.clone());
    }
    for (k, v) in meta {
        w.meta(k, v.clone());
    }
    for t in file
        .tensors
        .iter()
        .filter(|t| !drop.contains(&t.name.as_str()))
    {
        let data = file.tensor_data(t).unwrap().to_vec();
        w.tensor(&t.name, &t.dims, t.ggml_type().unwrap(), data);
    }
    w.to_bytes()
}

#[test]
fn an_architecture_missing_a_required_tensor_names_it() {
    for (arch, name) in [
        (Arch::Qwen2, "blk.1.attn_k.bias"),
        (Arch::Qwen3, "blk.0.attn_q_norm.weight"),
        (Arch::Gemma3, "blk.5.post_ffw_norm.weight"),
        (Arch::Llama, "blk.0.ffn_gate.weight"),
    ] {
        // The untouched file loads: only the missing tensor makes the difference.
        let whole = tiny_edited(arch, &[], &[]);
        Model::from_gguf(&GgufFile::from_bytes(whole).unwrap(), CpuBackend::new())
            .unwrap_or_else(|e| panic!("the intact tiny {arch} model: {e}"));
        let err = load_err(tiny_edited(arch, &[name], &[]));
        assert!(
            err.contains(name) && err.contains("missing"),
            "{arch} without {name}: {err}"
        );
    }
}

#[test]
fn an_unsupported_rope_scaling_is_refused_by_name() {
    let key = |arch: Arch, k: &str| format!("{}.{k}", arch.name());
    for (arch, kind) in [(Arch::Llama, "yarn"), (Arch::Qwen2, "longrope")] {
        let err = load_err(tiny_edited(
            arch,
            &[],
            &[(
                &key(arch, keys::arch::ROPE_SCALING_TYPE),
                MetadataValue::String(kind.into()),
            )],
        ));
        assert!(
            err.contains(&format!("rope scaling type \"{kind}\" is not supported")),
            "{err}"
        );
    }
    // Linear scaling loads; a factor below 1 does not.
    let linear = |f: f32| {
        tiny_edited(
            Arch::Llama,
            &[],
            &[
                (
                    &key(Arch::Llama, keys::arch::ROPE_SCALING_TYPE),
                    MetadataValue::String("linear".into()),
                ),
                (
                    &key(Arch::Llama, keys::arch::ROPE_SCALING_FACTOR),
                    MetadataValue::F32(f),
                ),
            ],
        )
    };
    let file = GgufFile::from_bytes(linear(4.0)).unwrap();
    assert!(Model::from_gguf(&file, CpuBackend::new()).is_ok());
    let err = load_err(linear(0.5));
    assert!(err.contains("rope scaling factor 0.5"), "{err}");
}

#[test]
fn gemma_logit_softcapping_is_refused() {
    let err = load_err(tiny_edited(
        Arch::Gemma3,
        &[],
        &[("gemma3.final_logit_softcapping", MetadataValue::F32(30.0))],
    ));
    assert!(err.contains("soft-capping"), "{err}");
}
