//! Any text through the tiny models' tokenizers: it encodes (special tokens parsed or not),
//! every id is in the vocabulary, and byte-level BPE decodes back to exactly the text.
#![no_main]

use std::sync::OnceLock;

use engine_core::model::gguf::GgufFile;
use engine_core::model::llama::Arch;
use engine_core::model::tiny::{TinySpec, tiny_model_bytes};
use engine_core::model::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn tokenizers() -> &'static [Tokenizer] {
    static T: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    T.get_or_init(|| {
        [Arch::Llama, Arch::Gemma3]
            .into_iter()
            .map(|a| {
                let bytes = tiny_model_bytes(&TinySpec::for_arch(a));
                Tokenizer::from_gguf(&GgufFile::from_bytes(bytes).unwrap()).unwrap()
            })
            .collect()
    })
}

fuzz_target!(|text: &str| {
    let [bpe, spm] = tokenizers() else {
        unreachable!()
    };
    let ids = bpe.tokenize(text, false, false).unwrap();
    assert_eq!(bpe.decode(&ids, false).unwrap(), text);
    for t in [bpe, spm] {
        let ids = t.encode(text, true).unwrap();
        assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()));
        let _ = t.detokenize(&ids, true, false);
    }
});
