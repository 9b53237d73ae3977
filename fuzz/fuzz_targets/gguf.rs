//! Any bytes as a GGUF file: it loads (header, metadata, tensors, tokenizer, chat template,
//! weights) or fails with an error; nothing panics or allocates without bound. Seed the corpus
//! with the tiny model (`engine-core write-tiny-model --out corpus/gguf/tiny.gguf`).
#![no_main]

use engine_core::model::Model;
use engine_core::model::chat_template::ChatTemplate;
use engine_core::model::gguf::GgufFile;
use engine_core::model::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = Tokenizer::from_gguf(&file);
    let _ = ChatTemplate::from_gguf(&file);
    let _ = Model::from_gguf(&file, kernels::CpuBackend::new());
});
