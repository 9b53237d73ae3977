//! Unit tests on a small in-memory byte-level vocabulary.

use super::metadata::ADD_SPACE_PREFIX;
use super::*;
use crate::model::gguf::keys::tokenizer as keys;
use crate::model::gguf::{GgufWriter, MetadataValue, ValueType};

const CONTROL: i32 = 3;
const USER: i32 = 4;
const NORMAL: i32 = 1;

/// Specials first (ids 0..=3), then the 256 byte characters (ids 4..=259), then merges.
struct Vocab {
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: Vec<String>,
}

fn vocab() -> Vocab {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![CONTROL, CONTROL, CONTROL, USER];
    for b in 0..=255u8 {
        tokens.push(bytes::encode(&[b]));
        types.push(NORMAL);
    }
    let merges: Vec<String> = [
        "h e", "l l", "ll o", "he llo", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "1 2", "Ġ 1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in &merges {
        tokens.push(m.replace(' ', ""));
        types.push(NORMAL);
    }
    Vocab {
        tokens,
        types,
        merges,
    }
}

fn strings(v: &[String]) -> Vec<MetadataValue> {
    v.iter().map(|s| MetadataValue::String(s.clone())).collect()
}

/// A writer holding the full test vocabulary with `pre` and eos = 0.
fn writer(pre: &str) -> GgufWriter {
    let v = vocab();
    let mut w = GgufWriter::new();
    w.meta_str(keys::MODEL, "gpt2")
        .meta_str(keys::PRE, pre)
        .meta_array(keys::TOKENS, ValueType::String, strings(&v.tokens))
        .meta_array(
            keys::TOKEN_TYPE,
            ValueType::I32,
            v.types.iter().map(|&t| MetadataValue::I32(t)).collect(),
        )
        .meta_array(keys::MERGES, ValueType::String, strings(&v.merges))
        .meta_u32(keys::EOS_ID, 0);
    w
}

fn load(w: &GgufWriter) -> Result<Tokenizer> {
    let file = GgufFile::from_bytes(w.to_bytes()).expect("valid gguf");
    Tokenizer::from_gguf(&file)
}

fn tok() -> Tokenizer {
    load(&writer("smollm")).unwrap()
}

fn id(t: &Tokenizer, text: &str) -> u32 {
    t.token_id(text)
        .unwrap_or_else(|| panic!("no token {text:?}"))
}

#[test]
fn merges_apply() {
    let t = tok();
    let ids = t.encode("hello world", false).unwrap();
    assert_eq!(ids, vec![id(&t, "hello"), id(&t, "Ġworld")]);
    assert_eq!(t.decode(&ids, false).unwrap(), "hello world");
    assert_eq!(t.vocab_size(), 4 + 256 + 11);
    assert_eq!(t.token_text(id(&t, "Ġworld")), Some("Ġworld"));
    assert_eq!(t.piece(id(&t, "Ġworld"), false), Some(&b" world"[..]));
}

#[test]
fn special_tokens_match_in_text() {
    let t = tok();
    let ids = t.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    assert_eq!(ids.len(), 1 + 4 + 1 + 2 + 1);
    assert_eq!(
        t.decode(&ids, false).unwrap(),
        "<|im_start|>user\nhi<|im_end|>"
    );
    assert_eq!(t.decode(&ids, true).unwrap(), "user\nhi");
    assert!(t.is_special(1) && t.is_special(2) && !t.is_special(3) && !t.is_special(id(&t, "he")));
    assert!(!t.is_special(100_000));

    // Adjacent specials, spaces kept as they are (no lstrip/rstrip).
    let ids = t.encode(" <|im_end|><|im_end|> ", false).unwrap();
    assert_eq!(ids, vec![id(&t, "Ġ"), 2, 2, id(&t, "Ġ")]);

    // Without parse_special, control tokens are plain text; user-defined ones still match.
    let ids = t.tokenize("<|im_end|><tool>", false, false).unwrap();
    assert!(!ids.contains(&2));
    assert_eq!(ids.last(), Some(&3));
    assert_eq!(t.decode(&ids, false).unwrap(), "<|im_end|><tool>");
    // User-defined tokens always render, even when skipping specials.
    assert_eq!(t.decode(&[3, 2], true).unwrap(), "<tool>");
}

#[test]
fn round_trips() {
    let t = tok();
    for s in [
        "",
        "hello",
        "  leading and trailing  ",
        "\n\n\nlines\r\n",
        "tab\tindent\n\t\tx",
        "naïve café — 東京 مرحبا",
        "emoji 😀 👨‍👩‍👧 🇫🇷",
        "digits 1234567890 3.14",
        "<|im_start|>x<|im_end|><|endoftext|>",
    ] {
        let ids = t.encode(s, false).unwrap();
        assert_eq!(t.decode(&ids, false).unwrap(), s, "{s:?} -> {ids:?}");
    }
    assert!(t.encode("", true).unwrap().is_empty());
}

#[test]
fn pre_tokenizers_split_digits_differently() {
    // smollm: each digit alone, so the "1 2" merge never applies.
    let t = tok();
    let ids = t.encode("12", false).unwrap();
    assert_eq!(ids, vec![id(&t, "1"), id(&t, "2")]);
    let ids = t.encode(" 1", false).unwrap();
    assert_eq!(ids, vec![id(&t, "Ġ"), id(&t, "1")]);
    // gpt-2: " 12" is one word.
    let t = load(&writer("gpt-2")).unwrap();
    assert_eq!(t.pre_tokenizer().unwrap().kind, PreTokenizerKind::Gpt2);
    assert_eq!(t.encode("12", false).unwrap(), vec![id(&t, "12")]);
    assert_eq!(t.encode(" 1", false).unwrap(), vec![id(&t, "Ġ1")]);
    // Every implemented family compiles and round-trips.
    for pre in [
        "qwen2",
        "llama-bpe",
        "default",
        "qwen35",
        "deepseek-llm",
        "deepseek-coder",
        "deepseek-v3",
        "falcon",
        "gpt-4o",
        "tekken",
        "bloom",
        "viking",
        "seed-coder",
        "bailingmoe",
        "ufakzeka",
        "laguna",
        "minicpm5",
    ] {
        let mut w = writer(pre);
        w.meta_u32(keys::BOS_ID, 1);
        let t = load(&w).unwrap_or_else(|e| panic!("{pre}: {e}"));
        let s = "It's 2024!\n  x = 12345; ÉCOLE école 日本語 한국어 😀\r\n\t";
        assert_eq!(
            t.decode(&t.encode(s, false).unwrap(), false).unwrap(),
            s,
            "{pre}"
        );
    }
    // An unknown name is refused with the name in the message.
    let err = load(&writer("no-such-pre")).unwrap_err();
    assert!(
        matches!(err, TokenizerError::UnknownPreTokenizer(ref n) if n == "no-such-pre"),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-pre"), "{err}");
    // An absent key is llama.cpp's `default`.
    let mut w = GgufWriter::new();
    let v = vocab();
    w.meta_str(keys::MODEL, "gpt2")
        .meta_array(keys::TOKENS, ValueType::String, strings(&v.tokens))
        .meta_array(keys::MERGES, ValueType::String, strings(&v.merges));
    let t = load(&w).unwrap();
    assert_eq!(t.pre_tokenizer().unwrap().kind, PreTokenizerKind::Default);
}

#[test]
fn bos_and_eos_flags() {
    let t = tok();
    assert_eq!(t.bos_id(), None);
    assert!(!t.add_bos());
    assert_eq!(t.encode("hello", true).unwrap(), vec![id(&t, "hello")]);

    let mut w = writer("smollm");
    w.meta_u32(keys::BOS_ID, 1)
        .meta(keys::ADD_BOS, MetadataValue::Bool(true));
    let t = load(&w).unwrap();
    assert_eq!(t.bos_id(), Some(1));
    assert_eq!(t.encode("hello", true).unwrap(), vec![1, id(&t, "hello")]);
    assert_eq!(t.encode("hello", false).unwrap(), vec![id(&t, "hello")]);

    let mut w = writer("smollm");
    w.meta(keys::ADD_EOS, MetadataValue::Bool(true));
    let t = load(&w).unwrap();
    assert_eq!(t.encode("hello", true).unwrap(), vec![id(&t, "hello"), 0]);

    // llama-bpe defaults add_bos to true, which needs a BOS id.
    let err = load(&writer("llama-bpe")).err();
    assert!(err.is_some_and(|e| matches!(e, TokenizerError::Invalid(_))));
    let mut w = writer("llama-bpe");
    w.meta(keys::ADD_BOS, MetadataValue::Bool(false));
    assert!(!load(&w).unwrap().add_bos());
}

#[test]
fn eog_set() {
    let t = tok();
    // eos (0, also "<|endoftext|>") and "<|im_end|>" (detected as EOT by text).
    assert_eq!(t.eog_ids(), &[0, 2]);
    assert_eq!(t.eos_id(), Some(0));
    assert_eq!(t.eot_id(), Some(0));
    assert!(t.is_eog(2) && t.is_eog(0) && !t.is_eog(1) && !t.is_eog(99_999));

    // Out-of-range ids in the file are ignored.
    let mut w = writer("smollm");
    w.meta_u32(keys::EOT_ID, 1_000_000);
    assert_eq!(load(&w).unwrap().eog_ids(), &[0, 2]);

    // An explicit EOT id joins the set.
    let mut w = writer("smollm");
    w.meta_u32(keys::EOT_ID, 1);
    let t = load(&w).unwrap();
    assert_eq!(t.eog_ids(), &[0, 1, 2]);
}

#[test]
fn incremental_decoder_holds_split_characters() {
    let t = tok();
    let emoji = "😀".as_bytes();
    let ids: Vec<u32> = emoji
        .iter()
        .map(|&b| id(&t, &bytes::encode(&[b])))
        .collect();
    assert_eq!(t.encode("😀", false).unwrap(), ids, "4 byte tokens");
    let mut d = IncrementalDecoder::new(false);
    assert_eq!(d.push(&t, ids[0]), None);
    assert_eq!(d.push(&t, ids[1]), None);
    assert_eq!(d.push(&t, ids[2]), None);
    assert_eq!(d.pending_bytes().len(), 3);
    assert_eq!(d.push(&t, ids[3]).as_deref(), Some("😀"));
    assert_eq!(d.finish(), "");

    // Streams equal whole decodes, with and without specials.
    for s in [
        "hello 😀 world é 東京 👨‍👩‍👧",
        "<|im_start|>user\nsalut ça va?<|im_end|>",
        "",
    ] {
        let ids = t.encode(s, false).unwrap();
        for skip in [false, true] {
            let mut d = IncrementalDecoder::new(skip);
            let mut out = String::new();
            for &i in &ids {
                if let Some(piece) = d.push(&t, i) {
                    assert!(!piece.is_empty());
                    out.push_str(&piece);
                }
            }
            out.push_str(&d.finish());
            assert_eq!(out, t.decode(&ids, skip).unwrap(), "{s:?} skip={skip}");
        }
    }

    // Invalid and truncated sequences render as decode does (lossy).
    let b = |x: u8| id(&t, &bytes::encode(&[x]));
    let ids = [
        b(b'a'),
        b(0x80),
        b(0xE2),
        b(0x82),
        b(b'z'),
        b(0xF0),
        b(0x9F),
    ];
    let mut d = IncrementalDecoder::new(false);
    let mut out = String::new();
    for &i in &ids {
        out.extend(d.push(&t, i));
    }
    out.push_str(&d.finish());
    assert_eq!(out, t.decode(&ids, false).unwrap());
    assert_eq!(out, "a\u{FFFD}\u{FFFD}z\u{FFFD}");
    // Unknown ids contribute nothing.
    assert_eq!(IncrementalDecoder::new(false).push(&t, 1_000_000), None);
}

#[test]
fn decode_rejects_unknown_ids() {
    let t = tok();
    let err = t.decode(&[5, 1_000_000], false).unwrap_err();
    assert!(
        matches!(err, TokenizerError::InvalidId { id: 1_000_000, .. }),
        "{err}"
    );
    assert_eq!(t.token_text(1_000_000), None);
}

#[test]
fn metadata_errors() {
    let v = vocab();
    // No tokenizer.ggml.model.
    let mut w = GgufWriter::new();
    w.meta_array(keys::TOKENS, ValueType::String, strings(&v.tokens));
    let err = load(&w).unwrap_err();
    assert!(
        matches!(err, TokenizerError::Gguf(GgufError::MissingKey(ref k)) if k == keys::MODEL),
        "{err}"
    );

    // Other tokenizer families are refused by name.
    let mut w = GgufWriter::new();
    w.meta_str(keys::MODEL, "t5");
    let err = load(&w).unwrap_err();
    assert!(
        matches!(err, TokenizerError::Unsupported(ref m) if m == "t5"),
        "{err}"
    );
    assert!(err.to_string().contains("t5"));

    // Missing merges.
    let mut w = GgufWriter::new();
    w.meta_str(keys::MODEL, "gpt2")
        .meta_array(keys::TOKENS, ValueType::String, strings(&v.tokens));
    let err = load(&w).unwrap_err();
    assert!(
        matches!(err, TokenizerError::Gguf(GgufError::MissingKey(ref k)) if k == keys::MERGES),
        "{err}"
    );

    // Missing tokens.
    let mut w = GgufWriter::new();
    w.meta_str(keys::MODEL, "gpt2");
    let err = load(&w).unwrap_err();
    assert!(
        matches!(err, TokenizerError::Gguf(GgufError::MissingKey(ref k)) if k == keys::TOKENS),
        "{err}"
    );

    // Token types shorter than the vocabulary.
    let mut w = GgufWriter::new();
    w.meta_str(keys::MODEL, "gpt2")
        .meta_array(keys::TOKENS, ValueType::String, strings(&v.tokens))
        .meta_array(
            keys::TOKEN_TYPE,
            ValueType::I32,
            vec![MetadataValue::I32(1)],
        )
        .meta_array(keys::MERGES, ValueType::String, strings(&v.merges));
    assert!(matches!(load(&w).unwrap_err(), TokenizerError::Invalid(_)));

    // A merge whose result is not in the vocabulary.
    let mut w = GgufWriter::new();
    w.meta_str(keys::MODEL, "gpt2")
        .meta_array(keys::TOKENS, ValueType::String, strings(&v.tokens))
        .meta_array(
            keys::MERGES,
            ValueType::String,
            vec![MetadataValue::String("q z".into())],
        );
    assert!(matches!(load(&w).unwrap_err(), TokenizerError::Invalid(_)));

    // Wrong key type.
    let mut w = writer("smollm");
    w.meta_str(keys::BOS_ID, "one");
    assert!(matches!(
        load(&w).unwrap_err(),
        TokenizerError::Gguf(GgufError::WrongType { .. })
    ));
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
    check::<IncrementalDecoder>();
}

/// A small SentencePiece vocabulary: `<unk>`, `<s>`, `</s>`, `<start>` (control), the bytes
/// 0x00..=0xFF as `<0xXX>`, then pieces with scores.
fn spm_writer(pieces: &[(&str, f32)]) -> GgufWriter {
    spm_writer_scores(pieces, true)
}

/// [`spm_writer`], with `tokenizer.ggml.scores` left out unless `with_scores`.
fn spm_writer_scores(pieces: &[(&str, f32)], with_scores: bool) -> GgufWriter {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>", "<start>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![2, CONTROL, CONTROL, CONTROL];
    let mut scores = vec![0.0f32; 4];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for &(p, s) in pieces {
        tokens.push(p.to_string());
        types.push(NORMAL);
        scores.push(s);
    }
    let mut w = GgufWriter::new();
    w.meta_str(keys::MODEL, "llama")
        .meta_array(keys::TOKENS, ValueType::String, strings(&tokens))
        .meta_array(
            keys::TOKEN_TYPE,
            ValueType::I32,
            types.iter().map(|&t| MetadataValue::I32(t)).collect(),
        );
    if with_scores {
        w.meta_array(
            keys::SCORES,
            ValueType::F32,
            scores.iter().map(|&s| MetadataValue::F32(s)).collect(),
        );
    }
    w
}

#[test]
fn sentencepiece_defaults_prefix_and_decoding() {
    let t = load(&spm_writer(&[
        ("▁", -3.0),
        ("a", -2.0),
        ("▁a", -1.0),
        ("é", -2.0),
    ]))
    .unwrap();
    assert!(t.is_sentencepiece() && t.pre_tokenizer().is_none());
    // llama.cpp's SPM defaults.
    assert_eq!(
        (t.bos_id(), t.eos_id(), t.unk_id()),
        (Some(1), Some(2), Some(0))
    );
    assert!(t.add_bos() && !t.add_eos() && t.add_space_prefix());
    let sa = id(&t, "▁a");
    // A space is prepended at the start and after a special token, not after plain text.
    assert_eq!(
        t.encode("a<start>a a", true).unwrap(),
        vec![1, sa, 3, sa, sa]
    );
    // Byte fallback: "ü" is no piece, so its two bytes become <0xC3> <0xBC>.
    let ids = t.encode("aü", false).unwrap();
    assert_eq!(ids, vec![sa, 4 + 0xC3, 4 + 0xBC]);
    assert_eq!(t.decode(&ids, false).unwrap(), " aü");
    // llama_detokenize: the prefix space goes unless a removed BOS came first.
    assert_eq!(t.detokenize(&ids, true, false).unwrap(), "aü");
    let mut with_bos = vec![1];
    with_bos.extend(&ids);
    assert_eq!(t.detokenize(&with_bos, true, false).unwrap(), " aü");
    assert_eq!(t.detokenize(&with_bos, false, true).unwrap(), "<s> aü");

    // The file's keys override the defaults.
    let mut w = spm_writer(&[("a", -1.0)]);
    w.meta(ADD_SPACE_PREFIX, MetadataValue::Bool(false))
        .meta(keys::ADD_BOS, MetadataValue::Bool(false))
        .meta_u32(keys::BOS_ID, 2);
    let t = load(&w).unwrap();
    assert!(!t.add_space_prefix() && !t.add_bos());
    assert_eq!(t.bos_id(), Some(2));
    assert_eq!(t.encode("a", true).unwrap(), vec![id(&t, "a")]);
}

#[test]
fn sentencepiece_metadata_errors() {
    // Without scores every merge ties and the leftmost wins ("▁aaa" -> "▁" "aa" "a").
    let t = load(&spm_writer_scores(&[("a", 0.0), ("aa", 0.0)], false)).unwrap();
    assert_eq!(
        t.encode("aaa", false).unwrap(),
        vec![
            4 + u32::from(b'\xE2'),
            4 + 0x96,
            4 + 0x81,
            id(&t, "aa"),
            id(&t, "a")
        ]
    );
    // Scores shorter than the vocabulary.
    let mut w = spm_writer_scores(&[("a", -1.0)], false);
    w.meta_array(keys::SCORES, ValueType::F32, vec![MetadataValue::F32(0.0)]);
    assert!(matches!(load(&w).unwrap_err(), TokenizerError::Invalid(_)));
    // Scores of the wrong type.
    let mut w = spm_writer_scores(&[], false);
    w.meta_array(
        keys::SCORES,
        ValueType::String,
        vec![MetadataValue::String("x".into()); 260],
    );
    assert!(matches!(load(&w).unwrap_err(), TokenizerError::Invalid(_)));
    // Two tokens with one text (llama.cpp asserts).
    let w = spm_writer(&[("a", -1.0), ("a", -2.0)]);
    let err = load(&w).unwrap_err();
    assert!(err.to_string().contains("same text"), "{err}");
    // No merges and no pre-tokenizer are needed; a pre-tokenizer name is ignored as in llama.cpp.
    let mut w = spm_writer(&[]);
    w.meta_str(keys::PRE, "no-such-pre");
    assert!(load(&w).is_ok());
}
