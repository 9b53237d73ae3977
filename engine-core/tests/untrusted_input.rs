//! The properties the fuzz targets (`fuzz/`, run with `cargo +nightly fuzz run <target>`) check,
//! as a bounded proptest run in CI: the parsers that take outside input never panic, and the
//! tokenizer gives back the text it was given.
//!
//! - GGUF files: any bytes, and the tiny model with random bytes overwritten and truncated,
//!   load or fail with an error (header, metadata, tensors, tokenizer, chat template, weights).
//! - Tokenizer input: any text encodes; byte-level BPE decodes back to exactly that text.
//! - Chat template input: any roles and contents render or fail with an error.

use engine_core::model::Model;
use engine_core::model::chat_template::{ChatMessage, ChatTemplate};
use engine_core::model::gguf::GgufFile;
use engine_core::model::llama::Arch;
use engine_core::model::tiny::{TinySpec, tiny_model_bytes};
use engine_core::model::tokenizer::Tokenizer;
use kernels::CpuBackend;
use proptest::prelude::*;

fn tiny_bytes() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| tiny_model_bytes(&TinySpec::default()))
}

fn tokenizer(arch: Arch) -> &'static Tokenizer {
    static TOKS: std::sync::OnceLock<Vec<(Arch, Tokenizer)>> = std::sync::OnceLock::new();
    let all = TOKS.get_or_init(|| {
        [Arch::Llama, Arch::Gemma3]
            .into_iter()
            .map(|a| {
                let file = GgufFile::from_bytes(tiny_model_bytes(&TinySpec::for_arch(a))).unwrap();
                (a, Tokenizer::from_gguf(&file).unwrap())
            })
            .collect()
    });
    &all.iter().find(|(a, _)| *a == arch).expect("built").1
}

/// Everything loading does with a file, none of which may panic.
fn load(bytes: Vec<u8>) {
    let Ok(file) = GgufFile::from_bytes(bytes) else {
        return;
    };
    let _ = Tokenizer::from_gguf(&file);
    let _ = ChatTemplate::from_gguf(&file);
    let _ = Model::from_gguf(&file, CpuBackend::new());
}

fn config() -> ProptestConfig {
    // Bounded for CI; the fuzz targets run as long as one likes.
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_load_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        load(bytes);
    }

    #[test]
    fn a_damaged_model_loads_or_fails_cleanly(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        keep in any::<prop::sample::Index>(),
        // Most damage lands in the header and metadata, where the parser makes its decisions.
        header_only in any::<bool>(),
    ) {
        let mut bytes = tiny_bytes().to_vec();
        let span = if header_only { bytes.len().min(64 << 10) } else { bytes.len() };
        for (at, value) in edits {
            bytes[at.index(span)] = value;
        }
        if !header_only {
            bytes.truncate(keep.index(bytes.len() + 1));
        }
        load(bytes);
    }

    #[test]
    fn any_text_encodes_and_bpe_decodes_back_to_it(text in any::<String>()) {
        let bpe = tokenizer(Arch::Llama);
        let ids = bpe.tokenize(&text, false, false).unwrap();
        prop_assert_eq!(bpe.decode(&ids, false).unwrap(), text.clone());
        // With special tokens parsed, and through SentencePiece: no panic, ids in range.
        for t in [bpe, tokenizer(Arch::Gemma3)] {
            let ids = t.encode(&text, true).unwrap();
            prop_assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()));
            let _ = t.detokenize(&ids, true, false);
        }
    }

    #[test]
    fn any_chat_renders_or_fails_cleanly(
        messages in proptest::collection::vec(("[a-z]{0,12}|system|user|assistant", any::<String>()), 0..6),
        add_generation_prompt in any::<bool>(),
    ) {
        let file = GgufFile::from_bytes(tiny_bytes().to_vec()).unwrap();
        let template = ChatTemplate::from_gguf(&file).unwrap().expect("the tiny model has one");
        let messages: Vec<ChatMessage> = messages
            .into_iter()
            .map(|(role, content)| ChatMessage::new(role, content))
            .collect();
        if let Ok(text) = template.render(&messages, add_generation_prompt) {
            let t = tokenizer(Arch::Llama);
            let _ = t.encode(&text, true).unwrap();
        }
    }
}
