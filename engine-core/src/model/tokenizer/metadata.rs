//! The decoding step of [`Tokenizer::from_gguf`](super::Tokenizer::from_gguf): every
//! `tokenizer.ggml.*` key the tokenizer reads (except the model's own merges and scores),
//! typed, with llama.cpp's defaults for absent keys, then checked against each other.

use super::super::gguf::keys::tokenizer as keys;
use super::super::gguf::{GgufError, GgufFile};
use super::special::SpecialIds;
use super::{PreTokenizerConfig, Result, TokenType, TokenizerError};

/// Whether SentencePiece prepends a space to the text (not in `gguf::keys`, which belongs to
/// the model loaders).
pub(super) const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// The tokenizer family of `tokenizer.ggml.model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ModelKind {
    /// `gpt2`: byte-level BPE.
    Bpe,
    /// `llama`: SentencePiece-style merges by score.
    Spm,
}

impl ModelKind {
    fn read(file: &GgufFile) -> Result<Self> {
        match file.get_str(keys::MODEL)? {
            "gpt2" => Ok(Self::Bpe),
            "llama" => Ok(Self::Spm),
            other => Err(TokenizerError::Unsupported(other.to_owned())),
        }
    }
}

/// The tokenizer metadata of a GGUF file, decoded.
#[derive(Debug)]
pub(super) struct TokenizerMetadata {
    pub(super) kind: ModelKind,
    /// Token strings by id (empty ones replaced as llama.cpp does); at least one, and few enough
    /// for u32 ids.
    pub(super) tokens: Vec<String>,
    /// Token types by id, as stored (before the detection of control tokens by text).
    pub(super) types: Vec<TokenType>,
    /// The BPE pre-tokenizer; `None` for SentencePiece.
    pub(super) pre: Option<PreTokenizerConfig>,
    /// SentencePiece: prepend a space at the start and after each special token.
    pub(super) add_space_prefix: bool,
    pub(super) bos: Option<u32>,
    /// EOS, EOT and EOM as the file gives them.
    pub(super) ids: SpecialIds,
    pub(super) unk: Option<u32>,
    pub(super) pad: Option<u32>,
    pub(super) add_bos: bool,
    pub(super) add_eos: bool,
}

impl TokenizerMetadata {
    /// Decodes the keys, in the order that decides which error a file with several gets.
    pub(super) fn read(file: &GgufFile) -> Result<Self> {
        let kind = ModelKind::read(file)?;
        let tokens = read_tokens(file)?;
        let n = tokens.len();
        let types = read_token_types(file, n)?;

        // llama.cpp's defaults per model type: SPM files name BOS 1, EOS 2 and unknown 0 and add
        // BOS unless told otherwise.
        let (default_bos, default_eos, default_unk) = match kind {
            ModelKind::Spm => (Some(1), Some(2), Some(0)),
            ModelKind::Bpe => (None, None, None),
        };
        let pre = match kind {
            ModelKind::Spm => None,
            ModelKind::Bpe => Some(read_pre_tokenizer(file)?),
        };
        let add_bos_default = pre.as_ref().is_none_or(|p| p.add_bos_default);
        let add_space_prefix =
            kind == ModelKind::Spm && read_bool(file, ADD_SPACE_PREFIX)?.unwrap_or(true);

        let bos = read_id(file, keys::BOS_ID, n, default_bos)?;
        let ids = SpecialIds {
            eos: read_id(file, keys::EOS_ID, n, default_eos)?,
            eot: read_id(file, keys::EOT_ID, n, None)?,
            eom: read_id(file, keys::EOM_ID, n, None)?,
        };
        let unk = read_id(file, keys::UNK_ID, n, default_unk)?;
        let pad = read_id(file, keys::PAD_ID, n, None)?;
        let add_bos = read_bool(file, keys::ADD_BOS)?.unwrap_or(add_bos_default);
        let add_eos = read_bool(file, keys::ADD_EOS)?.unwrap_or(false);
        Ok(Self {
            kind,
            tokens,
            types,
            pre,
            add_space_prefix,
            bos,
            ids,
            unk,
            pad,
            add_bos,
            add_eos,
        })
    }

    /// Refuses flags that ask for a BOS or EOS the vocabulary does not have.
    pub(super) fn validate(&self) -> Result<()> {
        if self.add_bos && self.bos.is_none() {
            return Err(TokenizerError::Invalid(format!(
                "{} is true but there is no valid {}",
                keys::ADD_BOS,
                keys::BOS_ID
            )));
        }
        if self.add_eos && self.ids.eos.is_none() {
            return Err(TokenizerError::Invalid(format!(
                "{} is true but there is no valid {}",
                keys::ADD_EOS,
                keys::EOS_ID
            )));
        }
        Ok(())
    }
}

/// `tokenizer.ggml.tokens`, empty strings renamed `[EMPTY_{id}]` as llama.cpp does.
fn read_tokens(file: &GgufFile) -> Result<Vec<String>> {
    let tokens: Vec<String> = file
        .get_str_array(keys::TOKENS)?
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.is_empty() {
                format!("[EMPTY_{i}]")
            } else {
                t.to_owned()
            }
        })
        .collect();
    let n = tokens.len();
    if n == 0 {
        return Err(TokenizerError::Invalid(format!(
            "{} is empty",
            keys::TOKENS
        )));
    }
    if u32::try_from(n).is_err() {
        return Err(TokenizerError::Invalid(format!(
            "{n} tokens do not fit u32 ids"
        )));
    }
    Ok(tokens)
}

/// `tokenizer.ggml.token_type` (at least one per token); all normal when absent.
fn read_token_types(file: &GgufFile, n: usize) -> Result<Vec<TokenType>> {
    if file.get(keys::TOKEN_TYPE).is_none() {
        return Ok(vec![TokenType::Normal; n]);
    }
    let arr = file.get_array(keys::TOKEN_TYPE)?;
    if arr.values.len() < n {
        return Err(TokenizerError::Invalid(format!(
            "{} has {} entries for {n} tokens",
            keys::TOKEN_TYPE,
            arr.values.len()
        )));
    }
    arr.values[..n]
        .iter()
        .map(|v| {
            v.as_i64().map(TokenType::from_i64).ok_or_else(|| {
                TokenizerError::Invalid(format!("{} holds a non-integer {v}", keys::TOKEN_TYPE))
            })
        })
        .collect()
}

/// The BPE pre-tokenizer named by `tokenizer.ggml.pre` (llama.cpp's default when absent).
fn read_pre_tokenizer(file: &GgufFile) -> Result<PreTokenizerConfig> {
    let name = match file.get(keys::PRE) {
        None => None,
        Some(_) => Some(file.get_str(keys::PRE)?),
    };
    PreTokenizerConfig::from_name(name)
        .ok_or_else(|| TokenizerError::UnknownPreTokenizer(name.unwrap_or("").to_owned()))
}

/// Reads an optional token id, `default` when absent; ids outside the vocabulary (the file's or
/// the default) are ignored with a warning, as in llama.cpp.
fn read_id(
    file: &GgufFile,
    key: &str,
    n_tokens: usize,
    default: Option<u32>,
) -> Result<Option<u32>> {
    let default = default.filter(|&d| (d as usize) < n_tokens);
    let Some(v) = file.get(key) else {
        return Ok(default);
    };
    let id = v.as_u64().ok_or_else(|| GgufError::WrongType {
        key: key.to_owned(),
        expected: "unsigned integer",
        found: v.value_type(),
    })?;
    if id >= n_tokens as u64 {
        tracing::warn!(
            "tokenizer: {key} = {id} is outside the vocabulary of {n_tokens} tokens; ignored"
        );
        return Ok(default);
    }
    Ok(Some(id as u32))
}

/// Reads an optional bool.
fn read_bool(file: &GgufFile, key: &str) -> Result<Option<bool>> {
    let Some(v) = file.get(key) else {
        return Ok(None);
    };
    let b = v.as_bool().ok_or_else(|| GgufError::WrongType {
        key: key.to_owned(),
        expected: "bool",
        found: v.value_type(),
    })?;
    Ok(Some(b))
}
