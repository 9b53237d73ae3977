//! Pre-tokenizers: how text is cut into words before byte-level BPE, chosen by the GGUF key
//! `tokenizer.ggml.pre` with the same names and regexes as llama.cpp (`llama-vocab.cpp`).
//!
//! Each kind is a list of regexes applied in turn: every regex splits each piece left by the
//! previous one into its matches and the text between them (both kept). The pieces are then
//! mapped to the byte-level alphabet. This is expressed with the `tokenizers` crate as a
//! `Sequence` of `Split(Isolated)` pre-tokenizers followed by `ByteLevel` without its own regex.

use tokenizers::SplitDelimiterBehavior;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

/// GPT-2's word regex as llama.cpp writes it (the trailing `|\s+` of the original is implied:
/// text no alternative matches is kept as its own piece).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's regex (case-insensitive contractions spelled out; numbers in groups of up to 3).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's regex: Llama 3's with every digit on its own.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Every digit alone.
const DIGIT: &str = r"\p{N}";

/// The pre-tokenizer families Journey implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// llama.cpp's `default` (also used when the key is absent): punctuation runs, the GPT-2
    /// regex, digit runs, then groups of three ASCII digits.
    Default,
    /// The GPT-2 regex alone (`gpt-2`, `phi-2`, `mpt`, `olmo`, `roberta-bpe`, ...).
    Gpt2,
    /// Each digit alone, then the GPT-2 regex (`smollm`, `starcoder`, `refact`, `command-r`, ...).
    DigitsGpt2,
    /// The Llama 3 regex (`llama-bpe`, `llama3`, `dbrx`, `smaug-bpe`, `chatglm-bpe`, ...).
    Llama3,
    /// The Qwen2 regex (`qwen2`, `stablelm2`, `deepseek-r1-qwen`, `tekken`, ...).
    Qwen2,
}

/// A resolved pre-tokenizer: family plus the llama.cpp flags that travel with the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreTokenizerConfig {
    /// The family.
    pub kind: PreTokenizerKind,
    /// The name found in the file (`""` when absent).
    pub name: String,
    /// A word that is itself a vocabulary entry becomes that token without merging (llama.cpp's
    /// `ignore_merges`, set for Llama 3 and Tekken).
    pub ignore_merges: bool,
    /// Default of `tokenizer.ggml.add_bos_token` for this name when the key is absent.
    pub add_bos_default: bool,
    /// Whether the name was not recognised and the GPT-2 regex is used in its place.
    pub fallback: bool,
}

impl PreTokenizerConfig {
    /// Resolves a `tokenizer.ggml.pre` value (`None`: key absent). Unknown names resolve to the
    /// GPT-2 regex with `fallback` set; the caller warns.
    pub fn from_name(name: Option<&str>) -> Self {
        use PreTokenizerKind::*;
        let name_str = name.unwrap_or("");
        let (kind, ignore_merges, add_bos_default, fallback) = match name_str {
            "" | "default" => (Default, false, false, false),
            "gpt2" | "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "exaone4" | "trillion"
            | "granite-docling" => (Gpt2, false, false, false),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" | "mellum2" => (DigitsGpt2, false, false, false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => (Llama3, true, true, false),
            "dbrx" | "smaug-bpe" | "chatglm-bpe" => (Llama3, false, false, false),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "hunyuan"
            | "megrez" => (Qwen2, false, false, false),
            "tekken" => (Qwen2, true, true, false),
            _ => (Gpt2, false, false, true),
        };
        Self {
            kind,
            name: name_str.to_owned(),
            ignore_merges,
            add_bos_default,
            fallback,
        }
    }

    /// The regexes applied in order.
    pub fn regexes(&self) -> &'static [&'static str] {
        match self.kind {
            PreTokenizerKind::Default => {
                &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"]
            }
            PreTokenizerKind::Gpt2 => &[GPT2],
            PreTokenizerKind::DigitsGpt2 => &[DIGIT, GPT2],
            PreTokenizerKind::Llama3 => &[LLAMA3],
            PreTokenizerKind::Qwen2 => &[QWEN2],
        }
    }

    /// The `tokenizers` pre-tokenizer: the regex splits, then the byte-level mapping.
    pub(crate) fn build(&self) -> tokenizers::Result<PreTokenizerWrapper> {
        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        for re in self.regexes() {
            let split = Split::new(
                SplitPattern::Regex((*re).to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )?;
            steps.push(split.into());
        }
        steps.push(ByteLevel::new(false, false, false).into());
        Ok(Sequence::new(steps).into())
    }
}
