//! Special tokens: token types, the end-of-generation set and the split of text around special
//! tokens, all following llama.cpp's `llama-vocab.cpp` (as vendored by llama-cpp-python 0.3.36).

/// Token types of `tokenizer.ggml.token_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// 0, or any value outside 1..=6: rendered as nothing.
    Undefined,
    /// 1: an ordinary vocabulary entry.
    Normal,
    /// 2: the unknown token; matched in text and hidden like a control token.
    Unknown,
    /// 3: a control token such as `<|im_start|>`; matched in text, hidden when special tokens are
    /// skipped.
    Control,
    /// 4: a user-defined token; matched in text and always rendered.
    UserDefined,
    /// 5: unused; rendered as nothing.
    Unused,
    /// 6: a raw byte; decoded like a normal byte-level token.
    Byte,
}

impl TokenType {
    /// From the integer stored in the file.
    pub fn from_i64(v: i64) -> Self {
        match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }

    /// Whether text containing this token's string is split around it during encoding
    /// (control, user-defined and unknown tokens).
    pub fn is_matched_in_text(self) -> bool {
        matches!(self, Self::Control | Self::UserDefined | Self::Unknown)
    }

    /// Whether the token is hidden when decoding with `skip_special` (control and unknown).
    pub fn is_special(self) -> bool {
        matches!(self, Self::Control | Self::Unknown)
    }
}

/// Texts llama.cpp takes for the end-of-turn token when `tokenizer.ggml.eot_token_id` is absent.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
/// Texts of the end-of-message token.
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
/// Fill-in-the-middle markers: detected so that they become control tokens; only pad, repo and
/// file-separator join the end-of-generation set.
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Every token with one of these texts ends generation (and is made a control token).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// The special ids read from the file, before detection by text.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SpecialIds {
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
}

/// The lowest id whose token text is one of `texts`.
fn find_by_text(tokens: &[String], texts: &[&str]) -> Option<u32> {
    tokens
        .iter()
        .position(|t| texts.contains(&t.as_str()))
        .map(|i| i as u32)
}

/// Detects EOT/EOM/FIM tokens by text where the file gave no id, forces them (and every token
/// with an end-of-generation text) to be control tokens, and returns the sorted
/// end-of-generation ids, as llama.cpp's `llama_vocab::impl::load` does.
///
/// llama.cpp scans an unordered map, so when several tokens match one list the one it picks is
/// unspecified; this picks the lowest id. Only the forced types and the EOG set depend on the
/// choice, and every EOT text is also an EOG text.
pub(crate) fn detect(tokens: &[String], types: &mut [TokenType], ids: &mut SpecialIds) -> Vec<u32> {
    fn force_control(id: Option<u32>, types: &mut [TokenType]) {
        // llama.cpp ORs the control bit in; the token then matches and renders as control.
        if let Some(id) = id {
            types[id as usize] = TokenType::Control;
        }
    }
    if ids.eot.is_none() {
        ids.eot = find_by_text(tokens, EOT_TEXTS);
        force_control(ids.eot, types);
    }
    if ids.eom.is_none() {
        ids.eom = find_by_text(tokens, EOM_TEXTS);
        force_control(ids.eom, types);
    }
    for list in [FIM_PRE_TEXTS, FIM_SUF_TEXTS, FIM_MID_TEXTS] {
        force_control(find_by_text(tokens, list), types);
    }
    let mut eog: Vec<u32> = Vec::new();
    for list in [FIM_PAD_TEXTS, FIM_REP_TEXTS, FIM_SEP_TEXTS] {
        let id = find_by_text(tokens, list);
        force_control(id, types);
        eog.extend(id);
    }
    for (i, t) in tokens.iter().enumerate() {
        if EOG_TEXTS.contains(&t.as_str()) {
            force_control(Some(i as u32), types);
            eog.push(i as u32);
        }
    }
    eog.extend(ids.eos);
    eog.extend(ids.eot);
    eog.extend(ids.eom);
    eog.sort_unstable();
    eog.dedup();

    fn with_text(eog: &[u32], tokens: &[String], text: &str) -> Option<u32> {
        eog.iter().copied().find(|&id| tokens[id as usize] == text)
    }
    let has = |eog: &[u32], text: &str| with_text(eog, tokens, text).is_some();
    // o200k_harmony and solar-open: `<|end|>` ends a message, not the generation.
    let has_call = has(&eog, "<|call|>") || has(&eog, "<|calls|>");
    if has_call
        && (has(&eog, "<|return|>") || has(&eog, "<|flush|>"))
        && let Some(end) = with_text(&eog, tokens, "<|end|>")
    {
        types[end as usize] = TokenType::UserDefined;
        eog.retain(|&id| id != end);
    }
    // gemma4 and plamo have an ordinary `</s>`.
    if (has(&eog, "<|tool_response>") || has(&eog, "<|plamo:eos|>"))
        && let Some(s) = with_text(&eog, tokens, "</s>")
    {
        types[s as usize] = TokenType::Normal;
        eog.retain(|&id| id != s);
    }
    eog
}

/// The ids that [`partition`] matches in text (control, user-defined, unknown), longest text
/// first, as llama.cpp tries them.
pub(crate) fn matched_by_length(tokens: &[String], types: &[TokenType]) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..tokens.len() as u32)
        .filter(|&i| types[i as usize].is_matched_in_text())
        .collect();
    ids.sort_by_key(|&i| std::cmp::Reverse(tokens[i as usize].len()));
    ids
}

/// A piece of text being tokenized: a byte range still to encode, or a matched special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// `text[start..end]`, not yet tokenized.
    Text(usize, usize),
    /// A special token found in the text.
    Token(u32),
}

/// Splits `text` around the special tokens in `specials` (ids sorted by descending text length),
/// as llama.cpp's `tokenizer_st_partition`: each special token in turn, longest first, claims all
/// its occurrences, left to right, in the text not yet claimed.
pub(crate) fn partition(text: &str, specials: &[u32], tokens: &[String]) -> Vec<Fragment> {
    partition_guarded(text, specials, tokens, |_, _| false)
}

/// [`partition`], except that an occurrence of token `id` at `text[start..end]` for which
/// `keep_text(id, start..end)` holds stays text.
pub(crate) fn partition_guarded(
    text: &str,
    specials: &[u32],
    tokens: &[String],
    keep_text: impl Fn(u32, std::ops::Range<usize>) -> bool,
) -> Vec<Fragment> {
    let mut frags = Vec::new();
    if text.is_empty() {
        return frags;
    }
    frags.push(Fragment::Text(0, text.len()));
    for &id in specials {
        let needle = tokens[id as usize].as_str();
        if needle.is_empty() || !text.contains(needle) {
            continue;
        }
        let mut out = Vec::with_capacity(frags.len() + 2);
        for frag in frags {
            let Fragment::Text(mut start, end) = frag else {
                out.push(frag);
                continue;
            };
            let mut from = start;
            while let Some(pos) = text[from..end].find(needle) {
                let at = from + pos;
                from = at + needle.len();
                if keep_text(id, at..from) {
                    continue;
                }
                if at > start {
                    out.push(Fragment::Text(start, at));
                }
                out.push(Fragment::Token(id));
                start = from;
            }
            if start < end {
                out.push(Fragment::Text(start, end));
            }
        }
        frags = out;
    }
    frags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn partition_longest_first() {
        let tokens = toks(&["<a>", "<a><b>", "x"]);
        let text = "x<a><b>y<a>";
        let frags = partition(text, &[1, 0], &tokens);
        assert_eq!(
            frags,
            vec![
                Fragment::Text(0, 1),
                Fragment::Token(1),
                Fragment::Text(7, 8),
                Fragment::Token(0)
            ]
        );
        assert!(partition("", &[0], &tokens).is_empty());
        assert_eq!(partition("<a>", &[0], &tokens), vec![Fragment::Token(0)]);
    }

    #[test]
    fn eog_detection_smollm_like() {
        let tokens = toks(&[
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<repo_name>",
            "<reponame>",
            "<file_sep>",
            "a",
        ]);
        let mut types = vec![TokenType::Control; 6];
        types.push(TokenType::Normal);
        let mut ids = SpecialIds {
            eos: Some(2),
            ..Default::default()
        };
        let eog = detect(&tokens, &mut types, &mut ids);
        assert_eq!(eog, vec![0, 2, 4]);
        assert_eq!(ids.eot, Some(0));
    }

    #[test]
    fn eog_harmony_drops_end() {
        let tokens = toks(&["<|return|>", "<|call|>", "<|end|>", "x"]);
        let mut types = vec![TokenType::Normal; 4];
        let mut ids = SpecialIds::default();
        let eog = detect(&tokens, &mut types, &mut ids);
        assert_eq!(eog, vec![0, 1]);
        assert_eq!(types[2], TokenType::UserDefined);
        assert_eq!(types[0], TokenType::Control);
    }
}
