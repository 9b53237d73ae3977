//! Tokenizer speed on the largest vocabulary Journey loads: Gemma 3's 262,144 SentencePiece
//! tokens. Prints the GGUF parse, the tokenizer build (best of 3) and the encoding of ~4 KB of
//! mixed text (best of 5).
//!
//! `cargo bench -p engine-core --bench tokenizer`; the model is `$JOURNEY_GEMMA_MODEL` or
//! `models/gemma-3-270m-q4_k_m.gguf` (`scripts/fetch-model.sh gemma3`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use engine_core::model::gguf::GgufFile;
use engine_core::model::tokenizer::Tokenizer;

fn main() {
    let path = std::env::var_os("JOURNEY_GEMMA_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/gemma-3-270m-q4_k_m.gguf")
        });
    let t0 = Instant::now();
    let file = GgufFile::open(&path).expect("open Gemma 3 (scripts/fetch-model.sh gemma3)");
    let parse = t0.elapsed();
    let mut best_load = Duration::MAX;
    let mut tok = None;
    for _ in 0..3 {
        let t = Instant::now();
        tok = Some(Tokenizer::from_gguf(&file).expect("tokenizer"));
        best_load = best_load.min(t.elapsed());
    }
    let tok = tok.expect("built");
    let sample = "The quick brown fox jumps over the lazy dog. Über naïve café — 東京タワー, \
                  Привет мир! fn main() { println!(\"{}\", 42); } 🦀🚀  tabs\tand  spaces\n";
    let text = sample.repeat(4096 / sample.len() + 1);
    let mut best_encode = Duration::MAX;
    let mut n = 0;
    for _ in 0..5 {
        let t = Instant::now();
        n = tok.encode(&text, true).expect("encode").len();
        best_encode = best_encode.min(t.elapsed());
    }
    println!(
        "gemma3 vocabulary: GGUF parse {parse:?}, tokenizer build {best_load:?} (best of 3), \
         encode {} bytes -> {n} tokens in {best_encode:?} (best of 5)",
        text.len()
    );
}
