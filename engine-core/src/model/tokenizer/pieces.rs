//! The piece table: the bytes each token renders as (llama.cpp's `token_to_piece`), computed
//! once at load so that decoding is a lookup.

use super::metadata::ModelKind;
use super::{TokenType, bytes, spm};

/// Every token's rendered bytes, concatenated; token `i` is `bytes[ends[i-1]..ends[i]]`.
pub(super) struct Pieces {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Pieces {
    /// The pieces of `tokens` given their (detected) `types`.
    pub(super) fn new(tokens: &[String], types: &[TokenType], kind: ModelKind) -> Self {
        let is_spm = kind == ModelKind::Spm;
        let mut piece_bytes = Vec::new();
        let mut ends = Vec::with_capacity(tokens.len());
        for (text, ty) in tokens.iter().zip(types) {
            match ty {
                TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
                    piece_bytes.extend_from_slice(text.as_bytes())
                }
                TokenType::Normal if is_spm => {
                    // U+2581 back to a space, without an allocation per token.
                    for (k, part) in text.split(spm::SPACE_MARKER).enumerate() {
                        if k > 0 {
                            piece_bytes.push(b' ');
                        }
                        piece_bytes.extend_from_slice(part.as_bytes());
                    }
                }
                TokenType::Normal => bytes::decode_into(text, &mut piece_bytes),
                // llama.cpp reads the byte of `<0xXX>` for both models; a byte-level string
                // (which no converter marks as a byte token) keeps its byte-level meaning.
                TokenType::Byte if is_spm || text.starts_with("<0x") => {
                    piece_bytes.push(spm::byte_of_token(text))
                }
                TokenType::Byte => bytes::decode_into(text, &mut piece_bytes),
                TokenType::Unused | TokenType::Undefined => {}
            }
            ends.push(piece_bytes.len());
        }
        Self {
            bytes: piece_bytes,
            ends,
        }
    }

    /// The piece of token `i`.
    ///
    /// # Panics
    /// If `i` is outside the vocabulary the table was built from.
    pub(super) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}
