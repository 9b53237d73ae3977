//! Streaming detokenization: turns generated ids into text one id at a time, holding back the
//! bytes of a character that a byte-level token split until the character completes.

use super::Tokenizer;

/// Per-sequence streaming decoder.
///
/// Each [`push`](Self::push) appends the token's bytes to a small pending buffer and returns the
/// text that became complete; at most the 3 bytes of an unfinished UTF-8 character stay pending,
/// so each call costs O(token length). Invalid byte sequences become U+FFFD exactly as
/// [`String::from_utf8_lossy`] would render them over the whole output, so the concatenation of
/// every push and [`finish`](Self::finish) equals [`Tokenizer::decode`] of all the ids.
#[derive(Clone, Debug, Default)]
pub struct IncrementalDecoder {
    skip_special: bool,
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    /// A decoder; `skip_special` hides control and unknown tokens (as `decode(.., true)`),
    /// otherwise they are rendered as their text.
    pub fn new(skip_special: bool) -> Self {
        Self {
            skip_special,
            pending: Vec::new(),
        }
    }

    /// Adds one token; returns the text completed by it, `None` when nothing completed (a token
    /// that renders as nothing, a partial character, or an id outside the vocabulary, which
    /// contributes nothing).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Option<String> {
        let piece = tok.piece(id, self.skip_special)?;
        if piece.is_empty() {
            return None;
        }
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix up to `valid` is UTF-8 by definition of `valid_up_to`.
                    out.push_str(&String::from_utf8_lossy(
                        &self.pending[start..start + valid],
                    ));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start += valid + bad;
                        }
                        None => {
                            // An unfinished character at the end: keep it for the next token.
                            start += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        (!out.is_empty()).then_some(out)
    }

    /// Bytes still held back (an unfinished character).
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    /// Ends the stream: the held-back bytes rendered lossily (empty when there are none). The
    /// decoder is then empty and can be reused.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
