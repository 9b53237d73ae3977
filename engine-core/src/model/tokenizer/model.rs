//! The model that tokenizes the text between special tokens, built from the vocabulary and the
//! model's own keys: `tokenizer.ggml.merges` for BPE, `tokenizer.ggml.scores` for SentencePiece.

use tokenizers::models::bpe::{BPE, Vocab};

use super::super::gguf::keys::tokenizer as keys;
use super::super::gguf::{GgufFile, MetadataValue};
use super::{PreTokenizerConfig, Result, TokenizerError, backend, spm};

/// The model that tokenizes text between special tokens.
pub(super) enum Model {
    /// Byte-level BPE and its pre-tokenizer, without added tokens (special tokens are split off
    /// first).
    Bpe(Box<tokenizers::Tokenizer>),
    /// SentencePiece-style merges by score.
    Spm(Box<spm::Spm>),
}

impl Model {
    /// BPE with the pre-tokenizer `pre`, or SentencePiece when there is none.
    pub(super) fn from_gguf(
        file: &GgufFile,
        tokens: &[String],
        pre: Option<&PreTokenizerConfig>,
        unk: Option<u32>,
    ) -> Result<Self> {
        Ok(match pre {
            None => Model::Spm(Box::new(spm::Spm::new(
                tokens,
                read_scores(file, tokens.len())?,
                unk,
            )?)),
            Some(pre) => Model::Bpe(Box::new(build_bpe(file, tokens, pre)?)),
        })
    }
}

/// `tokenizer.ggml.scores` (f32 or i32, at least one per token); all 0 when absent, as llama.cpp.
fn read_scores(file: &GgufFile, n: usize) -> Result<Vec<f32>> {
    if file.get(keys::SCORES).is_none() {
        return Ok(vec![0.0; n]);
    }
    let arr = file.get_array(keys::SCORES)?;
    if arr.values.len() < n {
        return Err(TokenizerError::Invalid(format!(
            "{} has {} entries for {n} tokens",
            keys::SCORES,
            arr.values.len()
        )));
    }
    arr.values[..n]
        .iter()
        .map(|v| match v {
            MetadataValue::F32(x) => Ok(*x),
            MetadataValue::I32(x) => Ok(*x as f32),
            other => Err(TokenizerError::Invalid(format!(
                "{} holds {other}, not f32 or i32",
                keys::SCORES
            ))),
        })
        .collect()
}

/// The `tokenizers` BPE model with the pre-tokenizer `pre`.
fn build_bpe(
    file: &GgufFile,
    tokens: &[String],
    pre: &PreTokenizerConfig,
) -> Result<tokenizers::Tokenizer> {
    let merges: Vec<(String, String)> = file
        .get_str_array(keys::MERGES)?
        .into_iter()
        .map(|m| {
            // llama.cpp splits at the first space after the first byte.
            let pos = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1);
            match pos {
                Some(p) => Ok((m[..p].to_owned(), m[p + 1..].to_owned())),
                None => Err(TokenizerError::Invalid(format!("merge {m:?} has no space"))),
            }
        })
        .collect::<Result<_>>()?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe_model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|e| TokenizerError::Invalid(format!("BPE vocabulary/merges: {e}")))?;
    let mut bpe = tokenizers::Tokenizer::new(bpe_model);
    bpe.with_pre_tokenizer(Some(pre.build().map_err(backend)?));
    Ok(bpe)
}
