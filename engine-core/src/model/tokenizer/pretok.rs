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
/// The contractions of the Llama 3 family, case-insensitive by spelling (llama.cpp's form).
macro_rules! contractions {
    () => {
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
    };
}
/// Falcon's GPT-2 regex step (its first step adds the backtick to the punctuation run).
const FALCON_PUNCT: &str = r"[\p{P}\$\+<=>\^~\|`]+";
/// DeepSeek LLM's explicit Latin/Greek/Cyrillic/... letter ranges, as in llama.cpp.
const DEEPSEEK_LLM_LETTERS: &str = r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";
/// CJK and Hangul runs of the DeepSeek LLM and Coder pre-tokenizers.
const DEEPSEEK_CJK: &str = r"[一-龥ࠀ-一가-퟿]+";
/// DeepSeek V3's word regex.
const DEEPSEEK3: &str = r"[!\x22#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-4o's regex with llama.cpp's rewrite of the case classes as lookaheads.
const GPT4O: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+",
    contractions!(),
    r"?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*",
    contractions!(),
    r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
/// Mistral Tekken's regex (GPT-4o's without contractions, digits alone).
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 3.5's regex: Qwen2's with combining marks kept in words.
const QWEN35: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
/// BLOOM's regex: runs up to whitespace or sentence punctuation.
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";
/// Seed-Coder's regex.
const SEED_CODER: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"
);
/// Ling/BailingMoE's regex (possessive quantifiers made greedy, as llama.cpp does).
const BAILINGMOE: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
/// Qwen2's regex without the contractions.
const UFAKZEKA: &str =
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Lines and newline runs (Laguna's first step).
const LINES: &str = r"[^\n]+|[\n]+";
/// Llama 3's regex with numbers up to any length (MiniCPM 5's second step).
const MINICPM5: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// The pre-tokenizer families Journey implements (each a list of regexes from llama.cpp).
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
    /// The Qwen2 regex (`qwen2`, `stablelm2`, `deepseek-r1-qwen`, `grok-2`, ...).
    Qwen2,
    /// Qwen 3.5 (`qwen35`): Qwen2's with combining marks.
    Qwen35,
    /// DeepSeek LLM (`deepseek-llm`): newlines, letter ranges, punctuation, CJK, digit runs.
    DeepseekLlm,
    /// DeepSeek Coder (`deepseek-coder`).
    DeepseekCoder,
    /// DeepSeek V3 (`deepseek-v3`, `hunyuan-dense`, `joyai-llm`, `hy_v4`).
    Deepseek3,
    /// Falcon (`falcon`).
    Falcon,
    /// GPT-4o (`gpt-4o`, `llama4`, `kanana2`, `talkie`, `minimax-m2`).
    Gpt4o,
    /// Mistral Tekken (`tekken`).
    Tekken,
    /// BLOOM (`bloom`, `poro-chat`, `gpt3-finnish`).
    Bloom,
    /// Viking (`viking`): BLOOM's regex, then each digit alone.
    Viking,
    /// Seed-Coder (`seed-coder`).
    SeedCoder,
    /// Ling (`bailingmoe`, `bailingmoe2`, `llada-moe`).
    BailingMoe,
    /// `ufakzeka`: Qwen2's regex without contractions.
    Ufakzeka,
    /// `laguna`: lines first, then the Qwen2 regex.
    Laguna,
    /// `minicpm5`: groups of up to three digits, then Llama 3's regex with digit runs.
    MiniCpm5,
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
}

impl PreTokenizerConfig {
    /// Resolves a `tokenizer.ggml.pre` value (`None`: key absent, which is llama.cpp's
    /// `default`). `None` for a name llama.cpp does not know or Journey does not implement.
    pub fn from_name(name: Option<&str>) -> Option<Self> {
        use PreTokenizerKind::*;
        let name_str = name.unwrap_or("");
        let (kind, ignore_merges, add_bos_default) = match name_str {
            "" | "default" => (Default, false, false),
            "gpt2" | "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "exaone4" | "trillion"
            | "granite-docling" => (Gpt2, false, false),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" | "mellum2" => (DigitsGpt2, false, false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => (Llama3, true, true),
            "glm4" | "glm5" => (Llama3, true, false),
            "dbrx" | "smaug-bpe" | "chatglm-bpe" => (Llama3, false, false),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "hunyuan"
            | "megrez" | "solar-open" | "grok-2" => (Qwen2, false, false),
            "qwen35" => (Qwen35, false, false),
            "deepseek-llm" => (DeepseekLlm, false, false),
            "deepseek-coder" => (DeepseekCoder, false, false),
            "deepseek-v3" | "hunyuan-dense" | "joyai-llm" | "hy_v4" => (Deepseek3, false, false),
            "falcon" => (Falcon, false, false),
            "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => (Gpt4o, false, false),
            "tekken" => (Tekken, true, true),
            "bloom" | "poro-chat" | "gpt3-finnish" => (Bloom, false, false),
            "viking" => (Viking, false, false),
            "seed-coder" => (SeedCoder, false, false),
            "bailingmoe" | "bailingmoe2" | "llada-moe" => (BailingMoe, false, false),
            "ufakzeka" => (Ufakzeka, false, false),
            "laguna" => (Laguna, false, false),
            "minicpm5" => (MiniCpm5, true, false),
            _ => return None,
        };
        Some(Self {
            kind,
            name: name_str.to_owned(),
            ignore_merges,
            add_bos_default,
        })
    }

    /// The regexes applied in order.
    pub fn regexes(&self) -> &'static [&'static str] {
        use PreTokenizerKind::*;
        match self.kind {
            Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            Gpt2 => &[GPT2],
            DigitsGpt2 => &[DIGIT, GPT2],
            Llama3 => &[LLAMA3],
            Qwen2 => &[QWEN2],
            Qwen35 => &[QWEN35],
            DeepseekLlm => &[
                r"[\r\n]",
                DEEPSEEK_LLM_LETTERS,
                r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
                r"\s+$",
                DEEPSEEK_CJK,
                r"\p{N}+",
            ],
            DeepseekCoder => &[r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", DEEPSEEK_CJK, DIGIT],
            Deepseek3 => &[r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+", DEEPSEEK3],
            Falcon => &[FALCON_PUNCT, GPT2, r"[0-9][0-9][0-9]"],
            Gpt4o => &[GPT4O],
            Tekken => &[TEKKEN],
            Bloom => &[BLOOM],
            Viking => &[BLOOM, DIGIT],
            SeedCoder => &[SEED_CODER],
            BailingMoe => &[BAILINGMOE],
            Ufakzeka => &[UFAKZEKA],
            Laguna => &[LINES, QWEN2],
            MiniCpm5 => &[r"\p{N}{1,3}", MINICPM5],
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
