//! The tokenizer and chat template on the real SmolLM2 file, against llama.cpp's goldens
//! (`tests/data/tokenizer_golden.json`, written by `scripts/gen_tokenizer_goldens.py`).

use std::path::PathBuf;

use engine_core::model::chat_template::{ChatMessage, ChatTemplate};
use engine_core::model::gguf::GgufFile;
use engine_core::model::tokenizer::{IncrementalDecoder, Tokenizer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    n_vocab: usize,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_bos: bool,
    eog_ids: Vec<u32>,
    cases: Vec<Case>,
    bos_token: String,
    eos_token: String,
    chats: Vec<Chat>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    ids_add_special: Vec<u32>,
    detok: String,
    detok_skip_special: String,
}

#[derive(Deserialize)]
struct Chat {
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    prompt: String,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_path() -> PathBuf {
    let path = std::env::var_os("JOURNEY_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace()
                .join("models")
                .join("SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.exists(),
        "model file {} not found: run scripts/fetch-model.sh (or set JOURNEY_MODEL)",
        path.display()
    );
    path
}

fn golden() -> Golden {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer_golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

fn load() -> (GgufFile, Tokenizer) {
    let file = GgufFile::open(model_path()).expect("open model");
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    (file, tok)
}

#[test]
fn ids_match_llama_cpp() {
    let (_, tok) = load();
    let g = golden();
    assert!(g.cases.len() >= 30);
    let mut mismatches = Vec::new();
    for c in &g.cases {
        let ids = tok.encode(&c.text, false).unwrap();
        if ids != c.ids {
            mismatches.push(format!(
                "{:?}\n  ours:      {ids:?}\n  llama.cpp: {:?}",
                c.text, c.ids
            ));
        }
        let ids = tok.encode(&c.text, true).unwrap();
        if ids != c.ids_add_special {
            mismatches.push(format!(
                "{:?} (add_special)\n  ours:      {ids:?}\n  llama.cpp: {:?}",
                c.text, c.ids_add_special
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn decode_matches_llama_cpp_and_round_trips() {
    let (_, tok) = load();
    for c in &golden().cases {
        let ids = tok.encode(&c.text, false).unwrap();
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            c.text,
            "round trip of {:?}",
            c.text
        );
        assert_eq!(
            tok.decode(&c.ids, false).unwrap(),
            c.detok,
            "decode of {:?}",
            c.text
        );
        assert_eq!(
            tok.decode(&c.ids, true).unwrap(),
            c.detok_skip_special,
            "decode (skip) of {:?}",
            c.text
        );

        for skip in [false, true] {
            let mut dec = IncrementalDecoder::new(skip);
            let mut out = String::new();
            for &id in &c.ids {
                out.extend(dec.push(&tok, id));
            }
            out.push_str(&dec.finish());
            let want = if skip {
                &c.detok_skip_special
            } else {
                &c.detok
            };
            assert_eq!(&out, want, "incremental (skip={skip}) of {:?}", c.text);
        }
    }
}

#[test]
fn vocabulary_facts() {
    let (_, tok) = load();
    let g = golden();
    assert_eq!(tok.vocab_size(), g.n_vocab);
    assert_eq!(tok.bos_id(), g.bos_id);
    assert_eq!(tok.eos_id(), g.eos_id);
    assert_eq!(tok.add_bos(), g.add_bos);
    assert!(!tok.add_bos(), "SmolLM2 adds no BOS");
    assert_eq!(tok.eog_ids(), &g.eog_ids[..]);
    assert_eq!(tok.eog_ids(), &[0, 2, 4]);
    for id in [0, 2, 4] {
        assert!(tok.is_eog(id));
    }
    assert!(!tok.is_eog(1));
    assert_eq!(tok.token_text(1), Some("<|im_start|>"));
    assert!(tok.is_special(1));
    let hi = tok.encode("hi", true).unwrap();
    assert_eq!(
        hi.first(),
        tok.encode("hi", false).unwrap().first(),
        "no BOS prepended"
    );
}

#[test]
fn chat_template_matches_jinja2() {
    let (file, _) = load();
    let g = golden();
    let tmpl = ChatTemplate::from_gguf(&file)
        .unwrap()
        .expect("SmolLM2 has a chat template");
    assert_eq!(tmpl.bos_token(), g.bos_token);
    assert_eq!(tmpl.eos_token(), g.eos_token);
    assert!(!g.chats.is_empty());
    for c in &g.chats {
        let out = tmpl.render(&c.messages, c.add_generation_prompt).unwrap();
        assert_eq!(out, c.prompt, "messages {:?}", c.messages);
    }

    // ChatML with the default system prompt injected when the first message is not system.
    let out = tmpl
        .render(&[ChatMessage::new("user", "hi")], true)
        .unwrap();
    assert!(
        out.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"),
        "{out:?}"
    );
    assert!(
        out.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        "{out:?}"
    );
    let out = tmpl
        .render(
            &[
                ChatMessage::new("system", "S"),
                ChatMessage::new("user", "u"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n"
    );
}
