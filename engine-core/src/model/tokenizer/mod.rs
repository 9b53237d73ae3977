//! The tokenizer: text to token ids and back, built from a GGUF file's `tokenizer.ggml.*`
//! metadata so that ids match llama.cpp's for the same file.
//!
//! Supported tokenizer models (`tokenizer.ggml.model`):
//! - `gpt2`: byte-level BPE with the pre-tokenizers of [`PreTokenizerKind`], merged by the
//!   `tokenizers` crate. An unknown `tokenizer.ggml.pre` is an error, as in llama.cpp.
//! - `llama`: SentencePiece-style BPE (Llama 2, Mistral, Gemma 3), merged by score with byte
//!   fallback exactly as llama.cpp's `llm_tokenizer_spm`; see the `spm` module for why that one
//!   is hand-written. Spaces become U+2581 and, with `tokenizer.ggml.add_space_prefix` (default
//!   true), a space is prepended to the text at the start and after every special token.
//!   Defaults when keys are absent follow llama.cpp: BOS 1, EOS 2, unknown 0, `add_bos` true.
//!
//! Encoding follows llama.cpp's `llama_tokenize(text, add_special, parse_special)`: the text is
//! first split around control, user-defined and unknown tokens (longest first, as llama.cpp
//! does), and each remaining piece is tokenized by the model. Decoding concatenates each token's
//! piece (llama.cpp's `token_to_piece`): byte-level or `<0xXX>` byte tokens give their bytes,
//! SentencePiece pieces their text with U+2581 turned back into spaces, control tokens their text
//! unless special tokens are skipped. That is what streaming output is made of, in llama.cpp as
//! here; [`Tokenizer::detokenize`] adds `llama_detokenize`'s rules for a whole sequence (BOS/EOS
//! removal, the leading space of `add_space_prefix`, and `clean_spaces` for the BPE
//! pre-tokenizers that keep it).
//!
//! Deviations from llama.cpp, all on files that lack metadata a converter normally writes:
//! - BPE files without `tokenizer.ggml.bos_token_id`/`eos_token_id` give `None`, not id 11;
//! - an SPM byte with neither a `<0xXX>` nor a one-byte token becomes the unknown token (llama.cpp
//!   throws);
//! - model-name-based lstrip/rstrip attributes (Phi-3, some BERTs) are not applied.

mod bytes;
mod incremental;
mod metadata;
mod model;
mod pieces;
mod pretok;
mod special;
mod spm;

#[cfg(test)]
mod tests;

use std::fmt;

use super::gguf::{GgufError, GgufFile};
use metadata::TokenizerMetadata;
use model::Model;
use pieces::Pieces;

pub use incremental::IncrementalDecoder;
pub use pretok::{PreTokenizerConfig, PreTokenizerKind};
pub use special::TokenType;

/// Everything that can go wrong building or using a [`Tokenizer`].
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required key is missing or has the wrong type.
    #[error("tokenizer metadata: {0}")]
    Gguf(#[from] GgufError),
    /// A tokenizer family Journey does not implement.
    #[error(
        "unsupported tokenizer model {0:?} (tokenizer.ggml.model); Journey supports \"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece)"
    )]
    Unsupported(String),
    /// A `tokenizer.ggml.pre` that Journey does not implement: unknown to llama.cpp too, or one of
    /// the few it handles with custom code (`kimi-k2`, `afmoe`, `superbpe`, `gemma4`, ...).
    #[error(
        "unknown or unsupported pre-tokenizer {0:?} (tokenizer.ggml.pre); Journey implements llama.cpp's common ones, e.g. \"default\", \"llama-bpe\", \"qwen2\", \"gpt-4o\", \"tekken\", \"deepseek-v3\""
    )]
    UnknownPreTokenizer(String),
    /// Metadata that is present but inconsistent.
    #[error("invalid tokenizer metadata: {0}")]
    Invalid(String),
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    InvalidId {
        /// The id.
        id: u32,
        /// Number of tokens.
        vocab_size: usize,
    },
    /// An error from the `tokenizers` crate.
    #[error("tokenizer backend: {0}")]
    Backend(String),
}

/// Result with a [`TokenizerError`].
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;

fn backend(e: impl fmt::Display) -> TokenizerError {
    TokenizerError::Backend(e.to_string())
}

/// A tokenizer loaded from GGUF metadata (byte-level BPE or SentencePiece). Immutable and
/// `Send + Sync`: share one per model; per-sequence decoding state lives in
/// [`IncrementalDecoder`].
pub struct Tokenizer {
    model: Model,
    /// Token strings by id, as stored in the file (empty ones replaced as llama.cpp does).
    tokens: Vec<String>,
    /// Token types by id, after llama.cpp's detection of control tokens by text.
    types: Vec<TokenType>,
    /// The bytes each token renders as.
    pieces: Pieces,
    /// Ids matched in text (control, user-defined, unknown), longest text first.
    specials_by_len: Vec<u32>,
    /// The BPE pre-tokenizer; `None` for SentencePiece, which has none.
    pre: Option<PreTokenizerConfig>,
    /// SentencePiece: prepend a space at the start and after each special token.
    add_space_prefix: bool,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// End-of-generation ids, sorted.
    eog: Vec<u32>,
    /// The most text bytes one token can stand for.
    max_token_bytes: usize,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.tokens.len())
            .field("pre", &self.pre.as_ref().map(|p| p.name.as_str()))
            .field("add_space_prefix", &self.add_space_prefix)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("eog", &self.eog)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata.
    ///
    /// Requires `tokenizer.ggml.model` `"gpt2"` (with `tokenizer.ggml.merges` and a known
    /// `tokenizer.ggml.pre`) or `"llama"`, and `tokenizer.ggml.tokens`; everything else is
    /// optional.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let meta = TokenizerMetadata::read(file)?;
        meta.validate()?;
        let TokenizerMetadata {
            kind,
            tokens,
            mut types,
            pre,
            add_space_prefix,
            bos,
            mut ids,
            unk,
            pad,
            add_bos,
            add_eos,
        } = meta;
        // Detection by text may turn tokens into control tokens, which changes their pieces
        // and which tokens are matched in text: it runs before both.
        let eog = special::detect(&tokens, &mut types, &mut ids);
        let specials_by_len = special::matched_by_length(&tokens, &types);
        let pieces = Pieces::new(&tokens, &types, kind);
        let model = Model::from_gguf(file, &tokens, pre.as_ref(), unk)?;
        let max_token_bytes = (0..tokens.len())
            .map(|i| tokens[i].len().max(pieces.get(i).len()))
            .max()
            .unwrap_or(1)
            .max(1);
        Ok(Self {
            max_token_bytes,
            model,
            tokens,
            types,
            pieces,
            specials_by_len,
            pre,
            add_space_prefix,
            bos,
            eos: ids.eos,
            eot: ids.eot,
            eom: ids.eom,
            unk,
            pad,
            add_bos,
            add_eos,
            eog,
        })
    }

    /// Tokenizes `text` as llama.cpp's `llama_tokenize(text, add_special, parse_special = true)`:
    /// special tokens written in the text (e.g. `<|im_start|>`) become their ids, and with
    /// `add_special` BOS is prepended (EOS appended) iff the file's `add_bos_token`
    /// (`add_eos_token`) says so.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.tokenize(text, add_special, true)
    }

    /// Full form of [`encode`](Self::encode): with `parse_special == false` only user-defined
    /// tokens are matched in the text and control tokens are encoded as plain text.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        self.tokenize_parts(text, add_special, parse_special, &[])
    }

    /// [`encode`](Self::encode), except that control and unknown tokens written inside the
    /// `literal` byte ranges of `text` stay text (as with `parse_special == false` there): how
    /// the special-token text a user types into a chat message stays the user's text.
    pub fn encode_with_literals(
        &self,
        text: &str,
        add_special: bool,
        literal: &[std::ops::Range<usize>],
    ) -> Result<Vec<u32>> {
        self.tokenize_parts(text, add_special, true, literal)
    }

    /// The most text bytes one token stands for.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// The fewest tokens `bytes` bytes of text can encode to (each token stands for at most
    /// the longest token's bytes): a cheap bound to refuse a huge prompt before tokenizing it.
    pub fn min_tokens_for(&self, bytes: usize) -> usize {
        bytes.div_ceil(self.max_token_bytes)
    }

    /// The first control or unknown token whose text occurs in `text`, if any.
    pub fn special_text_in<'a>(&'a self, text: &str) -> Option<&'a str> {
        self.specials_by_len
            .iter()
            .filter(|&&id| self.types[id as usize].is_special())
            .map(|&id| self.tokens[id as usize].as_str())
            .find(|t| !t.is_empty() && text.contains(t))
    }

    fn tokenize_parts(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        literal: &[std::ops::Range<usize>],
    ) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let frags = if parse_special && !literal.is_empty() {
            let keep_text = |id: u32, at: std::ops::Range<usize>| {
                self.types[id as usize] != TokenType::UserDefined
                    && literal.iter().any(|r| at.start < r.end && r.start < at.end)
            };
            special::partition_guarded(text, &self.specials_by_len, &self.tokens, keep_text)
        } else if parse_special {
            special::partition(text, &self.specials_by_len, &self.tokens)
        } else {
            let user: Vec<u32> = self
                .specials_by_len
                .iter()
                .copied()
                .filter(|&i| self.types[i as usize] == TokenType::UserDefined)
                .collect();
            special::partition(text, &user, &self.tokens)
        };
        // SentencePiece: a space goes before the first text and before text after a special token.
        let mut prev_special = true;
        for frag in frags {
            match frag {
                special::Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                special::Fragment::Text(start, end) => {
                    let piece = &text[start..end];
                    match &self.model {
                        Model::Bpe(bpe) => {
                            let enc = bpe.encode_fast(piece, false).map_err(backend)?;
                            out.extend_from_slice(enc.get_ids());
                        }
                        Model::Spm(spm) => {
                            spm.encode(piece, self.add_space_prefix && prev_special, &mut out)?
                        }
                    }
                    prev_special = false;
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    /// The text of `ids`: each token's piece concatenated (control and unknown tokens omitted
    /// when `skip_special`), invalid UTF-8 replaced by U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let piece = self
                .piece(id, skip_special)
                .ok_or(TokenizerError::InvalidId {
                    id,
                    vocab_size: self.tokens.len(),
                })?;
            bytes.extend_from_slice(piece);
        }
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The text of a whole sequence as llama.cpp's `llama_detokenize(ids, remove_special,
    /// unparse_special)`: with `remove_special` a leading BOS and a trailing EOS are dropped (when
    /// the vocabulary adds them); control tokens are rendered only with `unparse_special`; and
    /// with `add_space_prefix` one leading space of the first piece is removed, except after a
    /// dropped BOS (llama.cpp's rule); for BPE pre-tokenizers with llama.cpp's `clean_spaces`, the
    /// spaces before `?!.,` and some apostrophes are removed as there. Invalid UTF-8 is replaced
    /// by U+FFFD.
    pub fn detokenize(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<String> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos && self.bos.is_some() && ids.first() == self.bos.as_ref()
        {
            remove_space = false;
            ids = &ids[1..];
        }
        if remove_special && self.add_eos && self.eos.is_some() && ids.last() == self.eos.as_ref() {
            ids = &ids[..ids.len() - 1];
        }
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let mut piece = self
                .piece(id, !unparse_special)
                .ok_or(TokenizerError::InvalidId {
                    id,
                    vocab_size: self.tokens.len(),
                })?;
            if remove_space {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
            }
            remove_space = false;
            bytes.extend_from_slice(piece);
        }
        if self.pre.as_ref().is_some_and(|p| p.clean_spaces) {
            bytes = clean_spaces(&bytes);
        }
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The bytes token `id` renders as (empty for a special token when `skip_special`); `None`
    /// outside the vocabulary. May be part of a UTF-8 character.
    pub fn piece(&self, id: u32, skip_special: bool) -> Option<&[u8]> {
        let i = id as usize;
        let ty = *self.types.get(i)?;
        if skip_special && ty.is_special() {
            return Some(&[]);
        }
        Some(self.pieces.get(i))
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The token string as stored in the file (byte-level alphabet, e.g. `Ġthe`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token string as stored in the file.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        match &self.model {
            Model::Bpe(bpe) => bpe.token_to_id(text),
            Model::Spm(spm) => spm.id(text),
        }
    }

    /// The type of a token (after llama.cpp's detection of control tokens by text).
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    /// Whether `id` is a control or unknown token: rendered only when special tokens are not
    /// skipped. False for ids outside the vocabulary.
    pub fn is_special(&self, id: u32) -> bool {
        self.token_type(id).is_some_and(TokenType::is_special)
    }

    /// Beginning-of-sequence id.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// End-of-turn id (from the file, else detected by text, e.g. `<|im_end|>`).
    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }

    /// End-of-message id (`<|eom_id|>`).
    pub fn eom_id(&self) -> Option<u32> {
        self.eom
    }

    /// Unknown-token id.
    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    /// Padding id.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// Whether `encode(.., add_special = true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether generating `id` ends the generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// The end-of-generation ids, sorted: EOS, EOT, EOM, FIM pad/repo/separator markers and
    /// every token whose text is a well-known end marker, as llama.cpp computes them.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// The resolved pre-tokenizer of a BPE vocabulary; `None` for SentencePiece.
    pub fn pre_tokenizer(&self) -> Option<&PreTokenizerConfig> {
        self.pre.as_ref()
    }

    /// Whether this is a SentencePiece-style vocabulary (`tokenizer.ggml.model == "llama"`).
    pub fn is_sentencepiece(&self) -> bool {
        matches!(self.model, Model::Spm(_))
    }

    /// Whether SentencePiece encoding prepends a space (`tokenizer.ggml.add_space_prefix`);
    /// always false for BPE.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
}

/// llama.cpp's `clean_spaces` pass of `llama_detokenize`, three passes over the bytes:
/// 1. a space before `?`, `!`, `.` or `,` goes;
/// 2. a lone apostrophe between spaces loses both spaces;
/// 3. a space before the contractions `'s`, `'m`, `'re`, `'ve` goes (not before `'t`, `'d`,
///    `'ll`).
///
/// The first byte is never removed. Each pass looks at its input, not at what it has written.
fn clean_spaces(text: &[u8]) -> Vec<u8> {
    let Some((&first, _)) = text.split_first() else {
        return Vec::new();
    };
    // Pass 1.
    let mut out = vec![first];
    for i in 1..text.len() {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    // Pass 2: the space after the apostrophe is consumed, and cannot start another match.
    let t = out;
    let mut out = vec![t[0]];
    let mut consumed = usize::MAX;
    let mut i = 1;
    while i < t.len() {
        let x = t[i];
        let prev_space = t[i - 1] == b' ' && consumed != i - 1;
        if x == b'\'' && i + 1 < t.len() && prev_space && t[i + 1] == b' ' {
            out.pop();
            out.push(x);
            consumed = i + 1;
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // Pass 3.
    let t = out;
    let mut out = vec![t[0]];
    for i in 1..t.len() {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < t.len() {
            let x1 = t[i + 1];
            let drop = match x1 {
                b's' | b'm' => true,
                b't' | b'd' => false,
                _ => i + 2 < t.len() && matches!((x1, t[i + 2]), (b'r', b'e') | (b'v', b'e')),
            };
            if drop {
                out.pop();
            }
        }
        out.push(x);
    }
    out
}
