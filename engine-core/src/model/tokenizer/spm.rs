//! SentencePiece-style tokenization (`tokenizer.ggml.model == "llama"`) as llama.cpp's
//! `llm_tokenizer_spm` does it: spaces escaped to U+2581, then the text, split into characters,
//! is merged greedily pair by pair, always taking the adjacent pair whose concatenation is the
//! vocabulary entry with the highest score (the leftmost pair on ties); a final piece that is not
//! in the vocabulary falls back to its bytes (`<0xXX>` tokens).
//!
//! Hand-written rather than built on the `tokenizers` crate: its BPE model merges by rank from an
//! explicit merge list and its Unigram model runs Viterbi, neither of which is this algorithm. A
//! merge list derived from the scores (as HF's converters do) differs from llama.cpp where a
//! character missing from the vocabulary still merges with its neighbour, on ties between equal
//! scores, and would cost a pass over the whole vocabulary at every load. The algorithm is one
//! heap and one linked list; the tests compare it with llama.cpp's own output on real files.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::{Result, TokenizerError};

/// The SentencePiece space marker, U+2581.
pub(crate) const SPACE_MARKER: &str = "\u{2581}";

/// The vocabulary data the merge loop needs.
pub(crate) struct Spm {
    /// Every token text to its id (llama.cpp's `token_to_id`: merges may form any token, special
    /// or not, as in llama.cpp).
    ids: HashMap<Box<str>, u32>,
    /// Score of each token (`tokenizer.ggml.scores`, 0 when absent).
    scores: Vec<f32>,
    /// Fallback token of each byte: `<0xXX>`, else the one-byte string, as llama.cpp's
    /// `byte_to_token`.
    byte_ids: [Option<u32>; 256],
    /// Used for a byte that has no token (llama.cpp throws there).
    unk: Option<u32>,
}

/// A run of characters of the escaped text: `text[start..start + len]`, linked to its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    /// Length in bytes; 0 once merged into its left neighbour.
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of two adjacent symbols.
#[derive(Clone, Copy)]
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    /// Byte length of the merged text when the candidate was made; a later mismatch means one
    /// side has changed since and the candidate is stale.
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bigram {
    /// Higher score first, then the leftmost. Scores compare with `<` as in llama.cpp, so `-0.0`
    /// and `0.0` tie (Gemma's vocabulary has both).
    fn cmp(&self, other: &Self) -> Ordering {
        if self.score < other.score {
            Ordering::Less
        } else if self.score > other.score {
            Ordering::Greater
        } else {
            other.left.cmp(&self.left)
        }
    }
}

impl Spm {
    /// Builds the lookup tables. Duplicate token texts are an error: llama.cpp asserts that every
    /// text is unique.
    pub(crate) fn new(tokens: &[String], scores: Vec<f32>, unk: Option<u32>) -> Result<Self> {
        let mut ids: HashMap<Box<str>, u32> = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            if let Some(prev) = ids.insert(t.as_str().into(), i as u32) {
                return Err(TokenizerError::Invalid(format!(
                    "tokens {prev} and {i} have the same text {t:?}"
                )));
            }
        }
        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            *slot = ids.get(hex.as_str()).copied().or_else(|| {
                // The raw byte as a one-byte string; only ASCII bytes are valid `str`s.
                let c = char::from(b as u8);
                (b < 0x80)
                    .then(|| ids.get(c.encode_utf8(&mut [0; 4]) as &str).copied())
                    .flatten()
            });
        }
        Ok(Self {
            ids,
            scores,
            byte_ids,
            unk,
        })
    }

    /// The id of a token text.
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Tokenizes one fragment of text (no special tokens inside); `prefix_space` prepends a space
    /// first (llama.cpp's `add_space_prefix` after BOS or a special token).
    pub(crate) fn encode(&self, text: &str, prefix_space: bool, out: &mut Vec<u32>) -> Result<()> {
        let mut escaped = String::with_capacity(text.len() + 8);
        if prefix_space {
            escaped.push_str(SPACE_MARKER);
        }
        for c in text.chars() {
            if c == ' ' {
                escaped.push_str(SPACE_MARKER);
            } else {
                escaped.push(c);
            }
        }
        let text = escaped.as_str();
        if text.is_empty() {
            return Ok(());
        }

        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (start, c) in text.char_indices() {
            let i = symbols.len();
            let len = c.len_utf8();
            symbols.push(Symbol {
                start,
                len,
                prev: i.checked_sub(1),
                next: (start + len < text.len()).then_some(i + 1),
            });
        }

        let mut heap = BinaryHeap::with_capacity(symbols.len());
        let try_add = |heap: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left, right| {
            let (Some(left), Some(right)) = (left, right) else {
                return;
            };
            let (l, r): (&Symbol, &Symbol) = (&symbols[left], &symbols[right]);
            let merged = &text[l.start..l.start + l.len + r.len];
            if let Some(&id) = self.ids.get(merged) {
                heap.push(Bigram {
                    left,
                    right,
                    score: self.scores[id as usize],
                    size: merged.len(),
                });
            }
        };
        for i in 1..symbols.len() {
            try_add(&mut heap, &symbols, Some(i - 1), Some(i));
        }

        while let Some(b) = heap.pop() {
            let (l, r) = (symbols[b.left], symbols[b.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
                continue;
            }
            symbols[b.left].len += r.len;
            symbols[b.right].len = 0;
            symbols[b.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(b.left);
            }
            try_add(&mut heap, &symbols, l.prev, Some(b.left));
            try_add(&mut heap, &symbols, Some(b.left), r.next);
        }

        let mut cur = Some(0);
        while let Some(i) = cur {
            let s = symbols[i];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                // Every merged symbol is a token, so only a single character lands here.
                None => {
                    for &b in piece.as_bytes() {
                        let id = self.byte_ids[usize::from(b)].or(self.unk).ok_or_else(|| {
                            TokenizerError::Invalid(format!(
                                "no token for byte 0x{b:02X} (no <0x{b:02X}> and no unknown token)"
                            ))
                        })?;
                        out.push(id);
                    }
                }
            }
            cur = s.next;
        }
        Ok(())
    }
}

/// The byte of a byte token `<0xXX>`, read as llama.cpp's `token_to_byte` does (`strtol` of the
/// two characters after `<0x`: leading hex digits, 0 when there are none).
pub(crate) fn byte_of_token(text: &str) -> u8 {
    let digits = text.as_bytes().get(3..).unwrap_or(&[]);
    let mut v: u8 = 0;
    for &d in digits.iter().take(2) {
        match (d as char).to_digit(16) {
            Some(x) => v = v.wrapping_mul(16).wrapping_add(x as u8),
            None => break,
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spm(vocab: &[(&str, f32)]) -> Spm {
        let tokens: Vec<String> = vocab.iter().map(|(t, _)| t.to_string()).collect();
        let scores = vocab.iter().map(|&(_, s)| s).collect();
        Spm::new(&tokens, scores, Some(0)).unwrap()
    }

    #[test]
    fn merges_by_score_leftmost_on_ties() {
        // "aaa": "aa" can form at 0..2 or 1..3 with the same score; the leftmost wins.
        let s = spm(&[("<unk>", 0.0), ("a", -1.0), ("aa", -0.5), ("b", -1.0)]);
        let mut out = Vec::new();
        s.encode("aaa", false, &mut out).unwrap();
        assert_eq!(out, vec![2, 1]);

        // "abc": "bc" (score -1) beats "ab" (score -2) although "ab" is further left.
        let s = spm(&[
            ("<unk>", 0.0),
            ("a", -5.0),
            ("b", -5.0),
            ("c", -5.0),
            ("ab", -2.0),
            ("bc", -1.0),
        ]);
        let mut out = Vec::new();
        s.encode("abc", false, &mut out).unwrap();
        assert_eq!(out, vec![1, 5]);
    }

    #[test]
    fn spaces_escaped_and_byte_fallback() {
        let s = spm(&[
            ("<unk>", 0.0),
            ("▁", -1.0),
            ("▁h", -0.5),
            ("h", -2.0),
            ("<0xC3>", 0.0),
            ("<0xA9>", 0.0),
        ]);
        let mut out = Vec::new();
        s.encode("h é", true, &mut out).unwrap();
        // "▁h" "▁" then é = C3 A9 as byte tokens.
        assert_eq!(out, vec![2, 1, 4, 5]);

        // A byte with no token falls back to the unknown token.
        let mut out = Vec::new();
        s.encode("x", false, &mut out).unwrap();
        assert_eq!(out, vec![0]);
    }

    #[test]
    fn a_character_outside_the_vocab_still_merges() {
        // "é" alone is no token but "é!" is: llama.cpp merges by the concatenation.
        let s = spm(&[("<unk>", 0.0), ("!", -1.0), ("é!", -0.5)]);
        let mut out = Vec::new();
        s.encode("é!", false, &mut out).unwrap();
        assert_eq!(out, vec![2]);
    }

    #[test]
    fn duplicate_texts_rejected() {
        let tokens = vec!["a".to_string(), "a".to_string()];
        assert!(Spm::new(&tokens, vec![0.0, 0.0], None).is_err());
    }

    #[test]
    fn byte_token_parsing() {
        assert_eq!(byte_of_token("<0x0A>"), 10);
        assert_eq!(byte_of_token("<0xFF>"), 255);
        assert_eq!(byte_of_token("<0xZZ>"), 0);
    }
}
